// What a mutator returns: the files of one case, and what the classifier needs to judge the
// engine's answer. The verdict is fixed before the engine runs, from the mutation alone.
import type { BaseName } from './base';

export const FAMILIES = ['st-length', 'st-header', 'st-data', 'st-file', 'config', 'tokenizer', 'corpus-jsonl', 'corpus-tokens'] as const;
export type Family = (typeof FAMILIES)[number];

export const FAMILY_TITLE: Record<Family, string> = {
  'st-length': 'safetensors: header length field',
  'st-header': 'safetensors: header JSON (dtype, shape, data_offsets, names, metadata)',
  'st-data': 'safetensors: data bytes (NaN/Inf, bit flips, runs)',
  'st-file': 'safetensors: file (truncated, extended, replaced, missing)',
  config: 'config.json',
  tokenizer: 'tokenizer.json',
  'corpus-jsonl': 'corpus: .jsonl texts',
  'corpus-tokens': 'corpus: .tokens.bin',
};

/** One file of the case folder: new bytes, removed, or a folder in its place. */
export interface Change {
  /** Relative to the case's model folder (target model) or corpus folder (target corpus). */
  path: string;
  content: Uint8Array | 'delete' | 'dir';
}

export interface Mutation {
  family: Family;
  /** The mutator, e.g. `dtype`; FUZZ.md groups by family and op. */
  op: string;
  /** The mutation with its parameters, for a person reading a failure. */
  detail: string;
  base: BaseName;
  target: 'model' | 'corpus';
  changes: Change[];
  /** A refusal must name one of these as well as the file (a tensor, a field). */
  names?: string[];
  /**
   * Set only when the mutated input is VALID for another model or corpus (a finite weight changed
   * to another finite value, a config value the weights cannot contradict, other text): why. If
   * the engine accepts it with other numbers, that is "valid input, different model", not a
   * silent wrong number. Never set for a corrupt input.
   */
  legit?: string;
  /** Why the input means the same as the base when it does (whitespace, key order, an unread field). */
  harmless?: string;
}

export type Draft = Omit<Mutation, 'family' | 'base' | 'target'>;

export const FINITE_CHANGE =
  'a finite weight changed to another finite value: a valid checkpoint of a different model (nothing in the file can tell it from one saved that way)';
