// Case i of seed s: its family, base checkpoint and mutation, drawn from the case's own stream.
import { type BaseName, baseModels } from '../base';
import { type Family, FAMILIES, type Mutation } from '../mutation';
import { caseSeed, Prng } from '../prng';
import { configJson } from './config';
import { corpusJsonl, corpusTokens } from './corpus';
import { dataBytes, headerJson, headerLength, wholeFile } from './safetensors';
import { tokenizerJson } from './tokenizer';

/** Share of the cases per family. The tokenizer's are the slowest (a 2 MB tokenizer parsed each time). */
export const WEIGHTS: Record<Family, number> = {
  'st-length': 1,
  'st-header': 3,
  'st-data': 2,
  'st-file': 1.5,
  config: 3,
  tokenizer: 1.5,
  'corpus-jsonl': 2,
  'corpus-tokens': 1.5,
};

export function mutationFor(seed: number, index: number): Mutation {
  const r = new Prng(caseSeed(seed, index));
  const family = r.weighted(FAMILIES.map((f) => [f, WEIGHTS[f]] as const));
  const st = family.startsWith('st-');
  const base: BaseName = st ? r.weighted([['f32', 3], ['f16', 1], ['bf16', 1]] as const) : 'f32';
  const b = baseModels()[base];
  const draft =
    family === 'st-length' ? headerLength(r, b)
    : family === 'st-header' ? headerJson(r, b)
    : family === 'st-data' ? dataBytes(r, b)
    : family === 'st-file' ? wholeFile(r, b)
    : family === 'config' ? configJson(r, b)
    : family === 'tokenizer' ? tokenizerJson(r, b)
    : family === 'corpus-jsonl' ? corpusJsonl(r)
    : corpusTokens(r);
  return { family, base, target: family.startsWith('corpus') ? 'corpus' : 'model', ...draft };
}
