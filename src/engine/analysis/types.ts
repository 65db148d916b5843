/**
 * The streaming-pass interfaces every analysis module shares (docs/analysis-contract.md).
 * The pipeline builds one ActivationBatch per batch of corpus rows and hands it to every
 * accumulator in a fixed order, so a resumed run reproduces a full run bit for bit.
 */

/** Neuron (l, n) of a model with d_mlp neurons per layer is column l·d_mlp + n. */
export const neuronColumn = (layer: number, neuron: number, dMlp: number): number => layer * dMlp + neuron;

/** TransformerLens-style neuron name, e.g. `L3.N1204`. */
export const neuronName = (layer: number, neuron: number): string => `L${layer}.N${neuron}`;

/** Token ids the paper drops from statistics: BOS/EOS/pad and "\n". */
export const EOS_ID = 50256;
export const NEWLINE_ID = 198;

export interface ModelActivations {
  /** [nTokens × N] all tokens, neuron columns as above. */
  pre: Float32Array;
  /** [nTokens × N] */
  post: Float32Array;
  /** [nKept × N] only kept tokens, in order. */
  keptPre: Float32Array;
  /** [nKept × N] */
  keptPost: Float32Array;
}

export interface ActivationBatch {
  /** 0, 1, 2, … over the whole run. */
  batchIndex: number;
  /** Token ids of these rows, BOS first. */
  rows: number[][];
  /** Corpus index of rows[0]. */
  rowStart: number;
  /** rows[r] occupies tokens offsets[r] .. offsets[r+1]-1 of the full arrays (length rows.length + 1). */
  offsets: number[];
  /** All tokens of these rows. */
  nTokens: number;
  /** [nTokens]; 1 = counted in statistics. */
  keep: Uint8Array;
  /** [nKept] full-array index of each kept token. */
  keptIndex: Int32Array;
  nKept: number;
  /** models[0] is the reference model. */
  models: ModelActivations[];
}

/** What `state()` returns: plain typed arrays and JSON-able values, so the store can persist it. */
export type StateValue = Float64Array | Float32Array | Int32Array | Uint32Array | number[] | number | string;
export type AccumulatorState = Record<string, StateValue>;

export interface Accumulator<R> {
  add(batch: ActivationBatch): void | Promise<void>;
  /** A sample batch, before any add() (a spec's `screen`: fast mode's screening sample). */
  screen?(batch: ActivationBatch): void | Promise<void>;
  /** Everything needed to resume: plain typed arrays and JSON-able numbers. */
  state(): AccumulatorState;
  /** Final results; may be called once at the end. */
  finish(): R | Promise<R>;
}
