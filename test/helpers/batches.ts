/**
 * An ActivationBatch of T tokens in one row, every token kept, each model's arrays all the given
 * [T × N] activations: what accumulator tests and the benches (bench/analysis.ts, finish.ts)
 * feed the analysis directly, without a forward.
 */
import type { ActivationBatch } from '../../src/engine/analysis/types';

export function keptBatch(models: Float32Array[], T: number, batchIndex = 0): ActivationBatch {
  return {
    batchIndex,
    rows: [],
    rowStart: 0,
    offsets: [0, T],
    nTokens: T,
    keep: new Uint8Array(T).fill(1),
    keptIndex: Int32Array.from({ length: T }, (_, i) => i),
    nKept: T,
    models: models.map((v) => ({ pre: v, post: v, keptPre: v, keptPost: v })),
  };
}
