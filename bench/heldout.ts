// Held-out rows of the shipped family as CrossMoments batches (keptPost only), shared by
// bench/analysis.ts and the bench/diag-*.ts diagnostics: rows of BOS + 127 corpus tokens in corpus
// order, 8 rows per batch (the pipeline's default), tokens 50256 and 198 dropped.
import { readFileSync } from 'node:fs';
import type { ActivationBatch } from '../src/engine/analysis/types';
import type { Model } from '../src/engine/runtime';

export const HELDOUT_TOKENS = 'models/corpus/heldout.tokens.bin';
export const ROW = 128;
export const ROWS_PER_BATCH = 8;

export interface HeldoutBatches {
  nRows: number;
  nBatches: number;
  /** Forward of every model over batch b; keptPost per model ([kept × N], layer-major columns). */
  batch(b: number): Promise<ActivationBatch>;
}

export function heldoutBatches(models: readonly Model[], tokens: number): HeldoutBatches {
  const buf = readFileSync(HELDOUT_TOKENS);
  const ids = new Uint16Array(buf.buffer, buf.byteOffset, buf.byteLength >> 1);
  const nRows = Math.min(Math.floor(tokens / ROW), Math.floor(ids.length / (ROW - 1)));
  const nBatches = Math.ceil(nRows / ROWS_PER_BATCH);
  const batch = async (b: number): Promise<ActivationBatch> => {
    const rows: number[][] = [];
    for (let r = b * ROWS_PER_BATCH; r < Math.min(nRows, (b + 1) * ROWS_PER_BATCH); r++) {
      rows.push([50256, ...Array.from(ids.subarray(r * (ROW - 1), (r + 1) * (ROW - 1)))]);
    }
    const flat = rows.flat();
    const keptIndex = Int32Array.from(flat.flatMap((id, i) => (id === 50256 || id === 198 ? [] : [i])));
    const acts: Float32Array[] = [];
    for (const m of models) {
      const L = m.nLayers;
      const D = m.dMlp;
      const N = L * D;
      const run = await m.runTokens(rows, { hooks: ['post'] });
      const kept = new Float32Array(keptIndex.length * N);
      keptIndex.forEach((t, k) => {
        for (let l = 0; l < L; l++) kept.set(run.hookPost[l]!.subarray(t * D, (t + 1) * D), k * N + l * D);
      });
      acts.push(kept);
    }
    const keep = new Uint8Array(flat.length);
    for (const t of keptIndex) keep[t] = 1;
    return {
      batchIndex: b,
      rows,
      rowStart: b * ROWS_PER_BATCH,
      offsets: rows.reduce((o, r) => [...o, o[o.length - 1]! + r.length], [0]),
      nTokens: flat.length,
      keep,
      keptIndex,
      nKept: keptIndex.length,
      models: acts.map((a) => ({ pre: a, post: a, keptPre: a, keptPost: a })),
    };
  };
  return { nRows, nBatches, batch };
}
