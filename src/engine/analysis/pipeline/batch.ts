/**
 * One batch of corpus rows as the accumulators see it (docs/analysis-contract.md): the models'
 * forwards over rows [rowStart, rowStart+nRows), laid out as ActivationBatch, with only what a
 * pass reads; and the message that names the model when a forward produced a non-finite value.
 */
import { keptFilter, row, type Corpus } from '../../corpus';
import { firstNonFinite } from '../../arch/common';
import { EngineError, throwIfCancelled, type CancellationSignal } from '../../errors';
import type { Model } from '../../runtime';
import type { AccumulatorSpec, ActivationBatch, ModelActivations } from '../types';
import type { ForwardPrefetch } from './prefetch';

/**
 * Layer arrays [T×d_mlp] interleaved into one [rows×N] matrix (neuron (l,n) at column
 * l·d_mlp+n): every token, or with `tokens` only those, packed in that order. Kept rows are
 * gathered straight from the layers: a full matrix compacted afterwards cost a copy and an
 * allocation per model and batch, and the full pre-activations are rarely read.
 */
export function interleave(layers: readonly Float32Array[], nTokens: number, dMlp: number, tokens?: Int32Array): Float32Array {
  const L = layers.length;
  const N = L * dMlp;
  const rows = tokens ? tokens.length : nTokens;
  const out = new Float32Array(rows * N);
  for (let l = 0; l < L; l++) {
    const src = layers[l]!;
    for (let k = 0; k < rows; k++) {
      const t = tokens ? tokens[k]! : k;
      out.set(src.subarray(t * dMlp, (t + 1) * dMlp), k * N + l * dMlp);
    }
  }
  return out;
}

/**
 * What one batch forwards and keeps, per model (index = model): the arrays it keeps; an empty
 * list means the model does not run.
 */
export type BatchReads = readonly (readonly (keyof ModelActivations)[])[];

/** The union of specs' reads, per model: a model keeps only what some spec reading it wants. */
export function unionReads(reads: readonly NonNullable<AccumulatorSpec['reads']>[], nModels: number): BatchReads {
  return Array.from({ length: nModels }, (_, i) => [...new Set(reads.filter((r) => r.models.includes(i)).flatMap((r) => r.arrays))]);
}

/** The arrays of a model that a pass wants, as `runKept` returns them. */
function keptKinds(want: (k: keyof ModelActivations) => boolean): (keyof ModelActivations)[] {
  return (['keptPre', 'keptPost', 'post', 'pre'] as const).filter((k) => want(k));
}

function forwardKey(batchIndex: number, rowStart: number, nRows: number, model: number, kinds: readonly string[]): string {
  return `${batchIndex}:${rowStart}:${nRows}:${model}:${kinds.join(',')}`;
}

/** The `forwards` keys a pass reading `reads` asks buildBatch for (one batch of `nRows` rows). */
export function forwardKeys(reads: BatchReads | undefined, models: number, nRows: number): Set<string> {
  const keys = new Set<string>();
  for (let i = 0; i < models && reads; i++) {
    const want = (k: keyof ModelActivations): boolean => reads[i]!.includes(k);
    // A model read for every token's pre (the statistics pass' reference) is not kept: the
    // last pass's forwards would stay held through the finish and the write (1.7 GB more at
    // GPT-2-small size, measured), and no later pass reads it again.
    if (!want('pre')) keys.add(forwardKey(0, 0, nRows, i, keptKinds(want)));
  }
  return keys;
}

/**
 * Builds the contract's ActivationBatch for rows [rowStart, rowStart+nRows) of the corpus. With
 * `reads`, only the models that read something run and only the arrays read are kept; the
 * others are empty.
 */
export async function buildBatch(
  handles: readonly Model[],
  corpus: Corpus,
  batchIndex: number,
  rowStart: number,
  nRows: number,
  signal?: CancellationSignal,
  reads?: AccumulatorSpec['reads'] | BatchReads,
  /** Forwards kept from an earlier pass over the same batch (RunContext.forwards), filled as they run. */
  forwards?: Map<string, ModelActivations>,
  /** Forwards on a worker thread (prefetch.ts): taken when requested ahead, else run there now. */
  prefetch?: ForwardPrefetch,
): Promise<ActivationBatch> {
  const perModel = perModelReads(reads, handles.length);
  const { rows, offsets, nTokens, keep, keptIndex } = batchTokens(handles, corpus, rowStart, nRows);
  const models: ModelActivations[] = [];
  const empty = new Float32Array(0);
  for (const [i, m] of handles.entries()) {
    const want = (k: keyof ModelActivations): boolean => !perModel || perModel[i]!.includes(k);
    const wantPre = want('pre') || want('keptPre');
    const wantPost = want('post') || want('keptPost');
    if (!(wantPre || wantPost)) {
      models.push({ pre: empty, post: empty, keptPre: empty, keptPost: empty });
      continue;
    }
    // The analysis' layout straight from ORT (it concatenates layers and gathers kept rows).
    {
      const kind = keptKinds(want);
      const key = forwardKey(batchIndex, rowStart, nRows, i, kind);
      const kept = forwards?.get(key);
      if (kept) {
        models.push(kept);
        continue;
      }
      let ahead = prefetch?.take(key);
      if (!ahead && prefetch?.has(i)) {
        throwIfCancelled(signal);
        if (prefetch.request(key, i, m, rows, keptIndex, kind)) ahead = prefetch.take(key);
      }
      const k = ahead ? await ahead : await m.runKept(rows, keptIndex, kind, signal);
      if (k) {
        const acts = { pre: k.pre ?? empty, post: k.post ?? empty, keptPre: k.keptPre ?? empty, keptPost: k.keptPost ?? empty };
        if (!want('pre')) forwards?.set(key, acts);
        models.push(acts);
        continue;
      }
    }
    const hooks: ('pre' | 'post')[] = [...(wantPre ? ['pre' as const] : []), ...(wantPost ? ['post' as const] : [])];
    const run = await m.runTokens(rows, { hooks, signal });
    const d = m.dMlp;
    models.push({
      pre: want('pre') ? interleave(run.hookPre, nTokens, d) : empty,
      post: want('post') ? interleave(run.hookPost, nTokens, d) : empty,
      keptPre: want('keptPre') ? interleave(run.hookPre, nTokens, d, keptIndex) : empty,
      keptPost: want('keptPost') ? interleave(run.hookPost, nTokens, d, keptIndex) : empty,
    });
  }
  return { batchIndex, rows, rowStart, offsets, nTokens, keep, keptIndex, nKept: keptIndex.length, models };
}

function perModelReads(reads: AccumulatorSpec['reads'] | BatchReads | undefined, nModels: number): BatchReads | undefined {
  return reads && !Array.isArray(reads) ? unionReads([reads as NonNullable<AccumulatorSpec['reads']>], nModels) : (reads as BatchReads | undefined);
}

/**
 * Starts on the worker the forwards that buildBatch will ask for batch `batchIndex` (those that
 * go through runKept), so that they run while this thread accumulates the batch before.
 */
export function prefetchBatch(
  prefetch: ForwardPrefetch,
  handles: readonly Model[],
  corpus: Corpus,
  batchIndex: number,
  rowStart: number,
  nRows: number,
  reads?: AccumulatorSpec['reads'] | BatchReads,
): void {
  const perModel = perModelReads(reads, handles.length);
  let tokens: ReturnType<typeof batchTokens> | undefined;
  for (const [i, m] of handles.entries()) {
    const want = (k: keyof ModelActivations): boolean => !perModel || perModel[i]!.includes(k);
    if (!prefetch.has(i)) continue;
    const kind = keptKinds(want);
    if (kind.length === 0) continue;
    tokens ??= batchTokens(handles, corpus, rowStart, nRows);
    prefetch.request(forwardKey(batchIndex, rowStart, nRows, i, kind), i, m, tokens.rows, tokens.keptIndex, kind);
  }
}

/** The models a pass forwards (every one when the pass does not say): what the forward worker loads. */
export function keptModels(reads: BatchReads | undefined, nModels: number): number[] {
  return Array.from({ length: nModels }, (_, i) => i).filter((i) => !reads || reads[i]!.length > 0);
}

/** A batch's rows of token ids, their offsets, and which tokens the analysis keeps. */
function batchTokens(handles: readonly Model[], corpus: Corpus, rowStart: number, nRows: number) {
  const rows: number[][] = [];
  for (let r = rowStart; r < rowStart + nRows; r++) rows.push(row(corpus, r));
  const offsets = [0];
  for (const r of rows) offsets.push(offsets[offsets.length - 1]! + r.length);
  const nTokens = offsets[rows.length]!;
  const keep = new Uint8Array(nTokens);
  const kept: number[] = [];
  const isKept = keptFilter(handles[0]!.tokenizer);
  let t = 0;
  for (const r of rows) {
    for (const id of r) {
      if (isKept(id)) {
        keep[t] = 1;
        kept.push(t);
      }
      t++;
    }
  }
  const keptIndex = Int32Array.from(kept);
  return { rows, offsets, nTokens, keep, keptIndex };
}

/**
 * When an accumulator refuses a batch, which model produced a non-finite value, if one did. The
 * statistics see only columns ("activation column 1234 has a non-finite value"); weights are
 * checked finite at open, so this is a forward pass overflowing fp32, and the message must name
 * the model. Scanned only after a failure, so a healthy run pays nothing for it.
 */
export function nonFiniteError(batch: ActivationBatch, handles: readonly Pick<Model, 'dir' | 'nLayers' | 'dMlp' | 'weightsPath'>[]): EngineError | undefined {
  for (const [i, m] of batch.models.entries()) {
    const h = handles[i];
    if (!h) continue;
    for (const k of ['pre', 'post', 'keptPre', 'keptPost'] as const) {
      const a = m[k];
      const j = firstNonFinite(a);
      if (j < 0) continue;
      const N = h.nLayers * h.dMlp;
      const col = j % N;
      const row = Math.floor(j / N);
      const token = k.startsWith('kept') ? batch.keptIndex[row]! : row;
      let r = 0;
      while (r + 1 < batch.offsets.length - 1 && batch.offsets[r + 1]! <= token) r++;
      return new EngineError(
        `${h.dir}: the forward pass produced ${a[j]} at L${Math.floor(col / h.dMlp)}.N${col % h.dMlp} (hook_${/pre$/i.test(k) ? 'pre' : 'post'}) ` +
          `in corpus row ${batch.rowStart + r}, position ${token - batch.offsets[r]!}, although every weight is finite: the model's weights overflow fp32 ` +
          'on this corpus, so its statistics cannot be computed. Check the checkpoint (a weight of absurd size), or leave this model out',
        h.weightsPath,
      );
    }
  }
  return undefined;
}
