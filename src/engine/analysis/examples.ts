// Over 700 lines: one accumulator, TopExamples: its per-model state (top-K heaps, keyed interval
// samples that merge as the scale doubles and across token shards, histograms), the SIMD path and
// the result; they share the slot layout. The merge of shards (mergeFrom) could move out with it. The
// run folder's format of it is src/engine/run/examples.ts.
/**
 * TopExamples: per neuron, the contexts that activate it most, contexts sampled across its
 * activation range (as Neuronpedia shows them), and a histogram of its post-activation.
 *
 * A context is a corpus row. Its candidate value for a neuron is the row's maximum
 * post-activation over KEPT tokens (dropped tokens — BOS, EOS, "\n" — are never chosen), at the
 * first position reaching it. Each row therefore appears at most once per neuron, so one long
 * repetitive row cannot fill the whole top-K. Every stored example carries its token window
 * (`before` tokens before the max, `after` after, clipped to the row) and the neuron's
 * activation on each window token (dropped ones included), so the UI shades text without
 * running the model.
 *
 * Top-K: a min-heap per neuron over K fixed slots (an index heap, so window data never moves);
 * a per-neuron threshold (the heap's root once full) rejects almost every candidate with one
 * compare. Ties keep the earlier row.
 *
 * Interval samples: the activation range (0, S] is cut into `intervals` equal buckets
 * (b·S/F, (b+1)·S/F], S a power of two ≥ the running max. Each bucket keeps the `perInterval`
 * contexts of smallest sample key, the key a hash of (seed, model, neuron, corpus row): keys are
 * i.i.d. uniform, so that is a uniform sample without replacement of the bucket's contexts. When
 * the max passes S, S doubles and adjacent bucket pairs merge, keeping the smallest keys of both
 * (the smallest keys of their union). So the final max lies in (S/2, S], and between
 * intervals/2 and intervals buckets lie below it, with exact edges. Memory is fixed.
 *
 * Nothing depends on the order rows arrive in (issue #17, token shards): S is the smallest power
 * of two ≥ the max, a bucket's sample is the smallest keys of the contexts in it (ties of keys
 * broken by the lower row), and the top-K is ranked by value, then row. So the states of shards
 * of the corpus merge (`mergeExampleStates`) to what one pass over it holds, and a resumed run
 * and any batch split give bit-identical results.
 *
 * The run folder's examples.json + examples.bin (their layout, writer and readers) are
 * src/engine/run/examples.ts.
 */
import { EngineError } from '../errors';
import { KernelMemory } from '../kernels';
import { columnRange, kernelPool, partsFor } from '../kernels/pool';
import { checkHeader, copyInto, HistogramSet, Histograms, num, PANEL, Panels } from './actstats';
import type { Accumulator, AccumulatorState, ActivationBatch } from './types';

export interface TopExamplesOptions {
  /** Neurons per model (L·d_mlp). */
  nNeurons: number;
  /** Which of the batch's models to collect for (default [0], the reference). */
  models?: number[];
  /** Top contexts per neuron (default 20). */
  k?: number;
  /** Window tokens before / after the max (default 12 / 4). */
  before?: number;
  after?: number;
  /** Activation-interval buckets over (0, S] (default 16; even). */
  intervals?: number;
  /** Reservoir size per bucket (default 3). */
  perInterval?: number;
  /** Histogram bins and range margin (see actstats.ts Histograms; default 64, 0.25). */
  bins?: number;
  margin?: number;
  /** Reservoir RNG seed (default 0). */
  seed?: number;
  /** false: the JS loop instead of the SIMD kernel for the per-value pass (the kernel's reference in tests). */
  kernel?: boolean;
}

/** One context, as the neuron page shows it. */
export interface Example {
  /** Corpus row index. */
  row: number;
  /** Position of the max within the row. */
  pos: number;
  /** The neuron's post-activation there. */
  value: number;
  /** Row position of tokens[0]. */
  start: number;
  tokens: number[];
  /** The neuron's post-activation on each window token. */
  acts: number[];
}

export interface NeuronExamples {
  top: Example[];
  /** Buckets from 0 up to the last one with any context; `seen` = contexts whose max fell in it. */
  intervals: { lo: number; hi: number; seen: number; examples: Example[] }[];
  hist: { lo: number; hi: number; under: number; counts: number[]; over: number; min: number; max: number };
}

/** A block of fixed-size example slots: slot s has its window at [s·W, (s+1)·W). */
export interface ExampleSlots {
  value: Float32Array;
  row: Int32Array;
  pos: Int32Array;
  start: Int32Array;
  /** Window length (≤ W); tokens beyond it are id −1, act 0. */
  len: Int32Array;
  ids: Int32Array;
  acts: Float32Array;
}

// 2: sample keys by hash instead of one RNG in corpus order; buckets (lo, hi] (issue #17).
const KIND = 'TopExamples/2';

/** murmur3's 32-bit finalizer: every input bit flips each output bit with probability about 1/2. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * A context's sample key, uniform over 2^32: a hash of (seed of the run and model, neuron,
 * corpus row). It depends on nothing else, so any machine holding the row draws the same key.
 */
export function sampleKey(keySeed: number, j: number, row: number): number {
  return fmix32(Math.imul(fmix32((keySeed ^ Math.imul(j, 0x9e3779b1)) >>> 0) ^ row, 0x27d4eb2f) ^ (j >>> 16));
}

/** The bucket (b·S/F, (b+1)·S/F] holding v ∈ (0, S]: halving S halves v·F/S exactly, so buckets merge in pairs consistently. */
export function bucketOf(v: number, S: number, F: number): number {
  const b = Math.ceil((v / S) * F) - 1;
  return b < 0 ? 0 : b >= F ? F - 1 : b;
}
/** The arrays of an ExampleSlots block (also the names run/examples.ts stores them under). */
export const SLOT_FIELDS = ['value', 'row', 'pos', 'start', 'len', 'ids', 'acts'] as const;

function newSlots(n: number, w: number): ExampleSlots {
  return {
    value: new Float32Array(n),
    row: new Int32Array(n).fill(-1),
    pos: new Int32Array(n),
    start: new Int32Array(n),
    len: new Int32Array(n),
    ids: new Int32Array(n * w).fill(-1),
    acts: new Float32Array(n * w),
  };
}

function copySlot(src: ExampleSlots, s: number, dst: ExampleSlots, d: number, w: number): void {
  dst.value[d] = src.value[s]!;
  dst.row[d] = src.row[s]!;
  dst.pos[d] = src.pos[s]!;
  dst.start[d] = src.start[s]!;
  dst.len[d] = src.len[s]!;
  dst.ids.set(src.ids.subarray(s * w, s * w + w), d * w);
  dst.acts.set(src.acts.subarray(s * w, s * w + w), d * w);
}

function slotExample(sl: ExampleSlots, s: number, w: number): Example {
  const len = sl.len[s]!;
  return {
    row: sl.row[s]!,
    pos: sl.pos[s]!,
    value: sl.value[s]!,
    start: sl.start[s]!,
    tokens: Array.from(sl.ids.subarray(s * w, s * w + len)),
    acts: Array.from(sl.acts.subarray(s * w, s * w + len)),
  };
}

/** A context offered for neuron j: row rowIds (full-array tokens o0…), max at row position pos. */
interface Candidate {
  value: number;
  corpusRow: number;
  pos: number;
  /** Window [start, end) in row positions. */
  start: number;
  end: number;
  j: number;
  o0: number;
  rowIds: readonly number[];
  post: Float32Array;
  N: number;
  W: number;
}

function writeSlot(sl: ExampleSlots, slot: number, c: Candidate): void {
  const { start, end, W, N, j, o0, post, rowIds } = c;
  sl.value[slot] = c.value;
  sl.row[slot] = c.corpusRow;
  sl.pos[slot] = c.pos;
  sl.start[slot] = start;
  sl.len[slot] = end - start;
  const w0 = slot * W;
  for (let q = 0; q < W; q++) {
    const p = start + q;
    if (p < end) {
      sl.ids[w0 + q] = rowIds[p]!;
      sl.acts[w0 + q] = post[(o0 + p) * N + j]!;
    } else {
      sl.ids[w0 + q] = -1;
      sl.acts[w0 + q] = 0;
    }
  }
}

interface Settings {
  N: number;
  K: number;
  W: number;
  before: number;
  after: number;
  F: number;
  R: number;
}

/** Everything collected for one model. */
class ModelState {
  readonly topCount: Int32Array; // [N]
  readonly heap: Int32Array; // [N×K] slot indices (0..K-1), min-heap order
  readonly thr: Float64Array; // [N] heap root value once full, else −∞
  readonly top: ExampleSlots; // [N×K]
  readonly scale: Float64Array; // [N] S (0: nothing positive yet)
  readonly seen: Float64Array; // [N×F]
  readonly fill: Int32Array; // [N×F]
  readonly samples: ExampleSlots; // [N×F×R]
  readonly hist: Histograms;
  private readonly scratch: ExampleSlots; // 2R slots for merges

  constructor(
    readonly s: Settings,
    bins: number,
    margin: number,
    /** Seeds the sample keys: the run's seed and which model (sampleKey). */
    readonly keySeed: number,
    mem?: KernelMemory,
  ) {
    const { N, K, W, F, R } = s;
    this.topCount = new Int32Array(N);
    this.heap = new Int32Array(N * K);
    this.thr = new Float64Array(N).fill(-Infinity);
    this.top = newSlots(N * K, W);
    this.scale = new Float64Array(N);
    this.seen = new Float64Array(N * F);
    this.fill = new Int32Array(N * F);
    this.samples = newSlots(N * F * R, W);
    this.hist = new Histograms(N, bins, margin, mem);
    this.scratch = newSlots(2 * R, W);
  }

  /** Slot a sorts before slot b in the min-heap: smaller value, or equal value and later row. */
  private less(a: number, b: number): boolean {
    const v = this.top.value;
    return v[a]! < v[b]! || (v[a] === v[b] && this.top.row[a]! > this.top.row[b]!);
  }

  offerTop(j: number, cand: Candidate): void {
    const K = this.s.K;
    const base = j * K;
    const h = this.heap;
    const k = this.topCount[j]!;
    if (k < K) {
      writeSlot(this.top, base + k, cand);
      // Sift up.
      let i = k;
      h[base + i] = k;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!this.less(base + h[base + i]!, base + h[base + p]!)) break;
        const tmp = h[base + i]!;
        h[base + i] = h[base + p]!;
        h[base + p] = tmp;
        i = p;
      }
      this.topCount[j] = k + 1;
      if (k + 1 === K) this.thr[j] = this.top.value[base + h[base]!]!;
      return;
    }
    writeSlot(this.top, base + h[base]!, cand);
    // Sift down from the root.
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= K) break;
      let c = l;
      if (l + 1 < K && this.less(base + h[base + l + 1]!, base + h[base + l]!)) c = l + 1;
      if (!this.less(base + h[base + c]!, base + h[base + i]!)) break;
      const tmp = h[base + i]!;
      h[base + i] = h[base + c]!;
      h[base + c] = tmp;
      i = c;
    }
    this.thr[j] = this.top.value[base + h[base]!]!;
  }

  /** The sample key of neuron j's context in corpus row `row` (see the file comment). */
  key(j: number, row: number): number {
    return sampleKey(this.keySeed, j, row);
  }

  /** Slot a of the samples has a larger (key, row) than a candidate's: the candidate stays before it. */
  private worstSlot(base: number, n: number, j: number): number {
    let w = base;
    let wk = this.key(j, this.samples.row[w]!);
    for (let q = base + 1; q < base + n; q++) {
      const k = this.key(j, this.samples.row[q]!);
      if (k > wk || (k === wk && this.samples.row[q]! > this.samples.row[w]!)) {
        w = q;
        wk = k;
      }
    }
    return w;
  }

  offerSample(j: number, v: number, cand: Candidate): void {
    const { F, R } = this.s;
    let S = this.scale[j]!;
    if (S === 0) {
      S = Math.pow(2, Math.ceil(Math.log2(v)));
      // log2 may be off by an ulp at powers of two: make v ∈ (S/2, S] exactly.
      while (S < v) S *= 2;
      while (S / 2 >= v) S /= 2;
      this.scale[j] = S;
    }
    while (v > S) S = this.double(j);
    const idx = j * F + bucketOf(v, S, F);
    this.seen[idx]!++;
    const f = this.fill[idx]!;
    if (f < R) {
      writeSlot(this.samples, idx * R + f, cand);
      this.fill[idx] = f + 1;
      return;
    }
    const w = this.worstSlot(idx * R, R, j);
    const k = this.key(j, cand.corpusRow);
    const wk = this.key(j, this.samples.row[w]!);
    if (k < wk || (k === wk && cand.corpusRow < this.samples.row[w]!)) writeSlot(this.samples, w, cand);
  }

  /**
   * Bucket `dst` takes the contexts of smallest key among `n` slots of `src` (from `at`), which
   * must not be `this.samples` rows that `dst` overwrites: they are copied through the scratch.
   */
  private keepSmallest(j: number, src: ExampleSlots, at: readonly number[], dst: number): void {
    const { R, W } = this.s;
    const order = at
      .map((s) => ({ s, k: this.key(j, src.row[s]!), row: src.row[s]! }))
      .sort((a, b) => a.k - b.k || a.row - b.row)
      .slice(0, R);
    const sc = this.scratch;
    order.forEach((o, q) => copySlot(src, o.s, sc, q, W));
    order.forEach((_, q) => copySlot(sc, q, this.samples, dst * R + q, W));
    this.fill[dst] = order.length;
  }

  /** S → 2S: bucket i takes old buckets 2i and 2i+1 (the smallest keys of both); the upper half empties. */
  double(j: number): number {
    const { F, R } = this.s;
    for (let i = 0; i < F / 2; i++) {
      const a = j * F + 2 * i;
      const b = a + 1;
      const at: number[] = [];
      for (let q = 0; q < this.fill[a]!; q++) at.push(a * R + q);
      for (let q = 0; q < this.fill[b]!; q++) at.push(b * R + q);
      const seen = this.seen[a]! + this.seen[b]!;
      this.keepSmallest(j, this.samples, at, j * F + i);
      this.seen[j * F + i] = seen;
    }
    for (let i = F / 2; i < F; i++) {
      this.fill[j * F + i] = 0;
      this.seen[j * F + i] = 0;
    }
    return (this.scale[j] = this.scale[j]! * 2);
  }

  /**
   * Adds `o`'s contexts (another shard of the corpus: other rows) into this state, as if its rows
   * had been offered here: the top-K by value then row, the buckets at the larger scale, the
   * histograms summed (their ranges must agree: both fixed by the corpus' first batch).
   */
  mergeFrom(o: ModelState): void {
    const { N, K, F, R, W } = this.s;
    const both = newSlots(2 * R, W);
    for (let j = 0; j < N; j++) {
      // Top-K: the union, ranked, the first K, laid out as a heap again.
      const cand: { sl: ExampleSlots; s: number }[] = [];
      for (let q = 0; q < this.topCount[j]!; q++) cand.push({ sl: this.top, s: j * K + q });
      for (let q = 0; q < o.topCount[j]!; q++) cand.push({ sl: o.top, s: j * K + q });
      cand.sort((a, b) => b.sl.value[b.s]! - a.sl.value[a.s]! || a.sl.row[a.s]! - b.sl.row[b.s]!);
      const keep = cand.slice(0, K);
      const tmp = newSlots(keep.length, W);
      keep.forEach((c, q) => copySlot(c.sl, c.s, tmp, q, W));
      // Descending by (value, −row) is a valid min-heap reversed: fill the heap from the end.
      for (let q = 0; q < keep.length; q++) copySlot(tmp, q, this.top, j * K + q, W);
      for (let q = 0; q < keep.length; q++) this.heap[j * K + q] = keep.length - 1 - q;
      this.topCount[j] = keep.length;
      // Buckets: both at the larger scale, then each bucket's smallest keys of the two.
      const so = o.scale[j]!;
      if (so === 0) continue;
      if (this.scale[j] === 0) this.scale[j] = so;
      while (this.scale[j]! < so) this.double(j);
      let s = so;
      while (s < this.scale[j]!) s = o.double(j);
      for (let b = 0; b < F; b++) {
        const idx = j * F + b;
        if (o.fill[idx] === 0 && o.seen[idx] === 0) continue;
        const at: number[] = [];
        let n = 0;
        for (let q = 0; q < this.fill[idx]!; q++) copySlot(this.samples, idx * R + q, both, n++, W);
        for (let q = 0; q < o.fill[idx]!; q++) copySlot(o.samples, idx * R + q, both, n++, W);
        for (let q = 0; q < n; q++) at.push(q);
        this.keepSmallest(j, both, at, idx);
        this.seen[idx]! += o.seen[idx]!;
      }
    }
    this.hist.mergeFrom(o.hist);
  }

  /** Rebuilds the thresholds from the heaps (not stored in state). */
  recomputeThresholds(): void {
    const { N, K } = this.s;
    for (let j = 0; j < N; j++) {
      this.thr[j] = this.topCount[j] === K ? this.top.value[j * K + this.heap[j * K]!]! : -Infinity;
    }
  }
}

/** The top, sampled and histogram examples of every neuron of one model. */
export class TopExamplesResult {
  constructor(
    readonly model: number,
    readonly nNeurons: number,
    readonly k: number,
    readonly before: number,
    readonly after: number,
    readonly intervals: number,
    readonly perInterval: number,
    /** [N] valid top slots per neuron; slots j·K … j·K+count−1 in rank order (value desc, row asc). */
    readonly topCount: Int32Array,
    readonly top: ExampleSlots,
    /** [N] S per neuron: bucket b covers (b·S/F, (b+1)·S/F]; 0 = never positive. */
    readonly scale: Float64Array,
    /** [N×F] contexts seen per bucket. */
    readonly seen: Float64Array,
    /** [N×F] filled slots per bucket; slots (j·F+b)·R … in value-desc order. */
    readonly fill: Int32Array,
    readonly samples: ExampleSlots,
    readonly hist: HistogramSet,
  ) {}

  get window(): number {
    return this.before + 1 + this.after;
  }

  /** Plain objects for one neuron (column l·d_mlp + n). */
  neuron(j: number): NeuronExamples {
    if (!Number.isInteger(j) || j < 0 || j >= this.nNeurons) throw new EngineError(`neuron column ${j} is outside 0..${this.nNeurons - 1}`);
    const { k: K, intervals: F, perInterval: R, window: W } = this;
    const top: Example[] = [];
    for (let q = 0; q < this.topCount[j]!; q++) top.push(slotExample(this.top, j * K + q, W));
    const S = this.scale[j]!;
    let last = -1;
    for (let b = 0; b < F; b++) if (this.seen[j * F + b]! > 0) last = b;
    const intervals: NeuronExamples['intervals'] = [];
    for (let b = 0; b <= last; b++) {
      const idx = j * F + b;
      const examples: Example[] = [];
      for (let q = 0; q < this.fill[idx]!; q++) examples.push(slotExample(this.samples, idx * R + q, W));
      intervals.push({ lo: (b * S) / F, hi: ((b + 1) * S) / F, seen: this.seen[idx]!, examples });
    }
    const B = this.hist.bins;
    const c = Array.from(this.hist.counts.subarray(j * (B + 2), (j + 1) * (B + 2)));
    return {
      top,
      intervals,
      hist: {
        lo: this.hist.lo[j]!,
        hi: this.hist.hi[j]!,
        under: c[0]!,
        counts: c.slice(1, B + 1),
        over: c[B + 1]!,
        min: this.hist.min[j]!,
        max: this.hist.max[j]!,
      },
    };
  }
}

/** Top-K, interval-sampled contexts and post-activation histograms per neuron. */
export class TopExamples implements Accumulator<TopExamplesResult[]> {
  readonly nNeurons: number;
  readonly models: number[];
  readonly k: number;
  readonly before: number;
  readonly after: number;
  readonly intervals: number;
  readonly perInterval: number;
  readonly bins: number;
  readonly margin: number;
  readonly seed: number;
  private readonly per: ModelState[];
  /** [rows × N] per batch row and neuron: the max over its kept tokens, and the first token holding it. */
  private rowMax: Float32Array<ArrayBufferLike> = new Float32Array(0);
  private rowArg: Int32Array<ArrayBufferLike> = new Int32Array(0);
  /** [rows + 1]: row r's kept tokens are keptIndex[keptStart[r] .. keptStart[r+1]). */
  private keptStart: Int32Array<ArrayBufferLike> = new Int32Array(1);
  private readonly panels = new Panels();
  /** The kernel's memory (histograms, the batch, its row maxima); undefined: the JS loop. */
  private readonly mem?: KernelMemory;

  /** Bytes held, for the memory planner: per model and neuron the top-K and interval slots, the histogram. */
  static bytes(opts: TopExamplesOptions): number {
    const W = (opts.before ?? 12) + 1 + (opts.after ?? 4);
    const F = opts.intervals ?? 16;
    const slots = (opts.k ?? 20) + F * (opts.perInterval ?? 3);
    const perNeuron = slots * (20 + 8 * W) + 4 * (opts.k ?? 20) + 12 * F + 4 * ((opts.bins ?? 64) + 2) + 56;
    return (opts.models ?? [0]).length * opts.nNeurons * perNeuron;
  }

  constructor(opts: TopExamplesOptions) {
    const int = (name: string, v: number, min: number): number => {
      if (!Number.isInteger(v) || v < min) throw new EngineError(`TopExamples: ${name} must be an integer >= ${min}, got ${v}`);
      return v;
    };
    this.nNeurons = int('nNeurons', opts.nNeurons, 1);
    this.models = [...(opts.models ?? [0])];
    if (this.models.length === 0 || this.models.some((m) => !Number.isInteger(m) || m < 0)) {
      throw new EngineError(`TopExamples: models must be a non-empty list of model indices, got ${JSON.stringify(opts.models)}`);
    }
    this.k = int('k', opts.k ?? 20, 1);
    this.before = int('before', opts.before ?? 12, 0);
    this.after = int('after', opts.after ?? 4, 0);
    this.intervals = int('intervals', opts.intervals ?? 16, 2);
    if (this.intervals % 2) throw new EngineError(`TopExamples: intervals must be even (buckets merge in pairs), got ${this.intervals}`);
    this.perInterval = int('perInterval', opts.perInterval ?? 3, 1);
    this.bins = opts.bins ?? 64;
    this.margin = opts.margin ?? 0.25;
    this.seed = int('seed', opts.seed ?? 0, 0);
    const s: Settings = {
      N: this.nNeurons,
      K: this.k,
      W: this.before + 1 + this.after,
      before: this.before,
      after: this.after,
      F: this.intervals,
      R: this.perInterval,
    };
    this.mem = opts.kernel === false ? undefined : new KernelMemory();
    this.per = this.models.map((m) => new ModelState(s, this.bins, this.margin, fmix32((this.seed ^ Math.imul(m + 1, 0x6d2b79f5)) >>> 0), this.mem));
  }

  add(batch: ActivationBatch): void {
    const N = this.nNeurons;
    const { offsets, keep, rows, nTokens } = batch;
    if (offsets.length !== rows.length + 1 || offsets[rows.length] !== nTokens || keep.length !== nTokens) {
      throw new EngineError(`TopExamples: batch ${batch.batchIndex} has inconsistent offsets/keep for ${rows.length} rows of ${nTokens} tokens`);
    }
    const { before, after } = this;
    const W = before + 1 + after;
    this.models.forEach((m, i) => {
      const acts = batch.models[m];
      if (!acts) throw new EngineError(`TopExamples: batch ${batch.batchIndex} has no model ${m} (it has ${batch.models.length})`);
      const post = acts.post;
      if (post.length !== nTokens * N) throw new EngineError(`TopExamples: model ${m} post has ${post.length} values, expected nTokens·N = ${nTokens}·${N}`);
      const st = this.per[i]!;
      const hist = st.hist;
      if (!hist.fixed) hist.fixFrom(acts.keptPost, batch.nKept);
      const thr = st.thr;
      // One mutable candidate record, so the hot loop allocates nothing.
      const ctx: Candidate = { value: 0, corpusRow: 0, pos: 0, start: 0, end: 0, j: 0, o0: 0, rowIds: [], post, N, W };
      if (acts.keptPost.length !== batch.nKept * N || batch.keptIndex.length !== batch.nKept) {
        throw new EngineError(`TopExamples: model ${m} keptPost has ${acts.keptPost.length} values, expected nKept·N = ${batch.nKept}·${N}`);
      }
      this.rowMaxima(acts.keptPost, batch, hist);
      const { rowMax, rowArg, keptStart } = this;

      for (let r = 0; r < rows.length; r++) {
        const o0 = offsets[r]!;
        const o1 = offsets[r + 1]!;
        if (rows[r]!.length !== o1 - o0) throw new EngineError(`TopExamples: batch ${batch.batchIndex} row ${r} has ${rows[r]!.length} ids but spans ${o1 - o0} tokens`);
        if (keptStart[r + 1] === keptStart[r]) continue;
        const rowLen = o1 - o0;
        ctx.rowIds = rows[r]!;
        ctx.o0 = o0;
        ctx.corpusRow = batch.rowStart + r;
        for (let j = 0, rj = r * N; j < N; j++, rj++) {
          const v = rowMax[rj]!;
          const overTop = v > thr[j]!;
          if (!overTop && !(v > 0)) continue;
          const pos = rowArg[rj]! - o0;
          const start = Math.max(0, pos - before);
          const end = Math.min(rowLen, pos + after + 1);
          ctx.value = v;
          ctx.pos = pos;
          ctx.start = start;
          ctx.end = end;
          ctx.j = j;
          if (overTop) st.offerTop(j, ctx);
          if (v > 0) st.offerSample(j, v, ctx);
        }
      }
    });
  }

  /** Whether a histogram's range is still open (prime() fixes it from the corpus' first batches). */
  needsPrime(): boolean {
    return this.per.some((st) => !st.hist.fixed);
  }

  /**
   * A batch before a token shard's first, seen only to fix what the corpus' first batch fixes in
   * a single run: the histograms' range (nothing is counted).
   */
  prime(batch: ActivationBatch): void {
    this.models.forEach((m, i) => {
      const acts = batch.models[m];
      const h = this.per[i]!.hist;
      if (acts && !h.fixed) h.fixFrom(acts.keptPost, batch.nKept);
    });
  }

  /** Adds another accumulator's contexts (other corpus rows: a token shard) into this one. */
  mergeFrom(o: TopExamples): void {
    this.per.forEach((st, i) => {
      st.mergeFrom(o.per[i]!);
      st.recomputeThresholds();
    });
  }

  /**
   * Fills rowMax/rowArg/keptStart for the batch and counts the kept values into `hist`, walking
   * panels of PANEL neurons column-major (see MomentAccumulator.add): the row-by-row loop touched
   * five per-neuron arrays per value. Ties keep the first token, as the row-by-row loop did.
   */
  private rowMaxima(kept: Float32Array, batch: ActivationBatch, hist: Histograms): void {
    const N = this.nNeurons;
    const { rows, offsets, keptIndex, nKept } = batch;
    const R = rows.length;
    const mem = this.mem;
    if (this.rowMax.length < R * N) {
      // In kernel memory, the kernel writes them in place (a new region when a batch has more rows).
      this.rowMax = mem ? mem.f32(mem.alloc(4 * R * N), R * N) : new Float32Array(R * N);
      this.rowArg = mem ? mem.i32(mem.alloc(4 * R * N), R * N) : new Int32Array(R * N);
    }
    if (this.keptStart.length < R + 1) this.keptStart = mem ? mem.i32(mem.alloc(4 * (R + 1)), R + 1) : new Int32Array(R + 1);
    const ks = this.keptStart;
    for (let r = 0, k = 0; r < R; r++) {
      ks[r] = k;
      while (k < nKept && keptIndex[k]! < offsets[r + 1]!) k++;
      ks[r + 1] = k;
    }
    if (nKept === 0) return;
    if (mem) {
      // The batch and its kept indices in the scratch, then one kernel call (kernels/assembly/stats.ts).
      const x = mem.scratch(4 * (kept.length + nKept));
      mem.f32(x, kept.length).set(kept);
      const ki = x + 4 * kept.length;
      mem.i32(ki, nKept).set(keptIndex.subarray(0, nKept));
      const h = hist.at!;
      const parts = partsFor(N, nKept);
      kernelPool().run(mem, 'stats', 'rowMaxHist', parts, (p) => {
        const [j0, j1] = columnRange(N, parts, p);
        return [x, N, nKept, j0, j1, ks.byteOffset, ki, R, this.rowMax.byteOffset, this.rowArg.byteOffset, h.min, h.max, h.lo, h.inv, h.counts, hist.bins];
      });
      return;
    }
    const { panels: P, rowMax, rowArg } = this;
    for (let j0 = 0; j0 < N; j0 += PANEL) {
      const w = P.load(kept, N, j0, nKept);
      const panel = P.data;
      for (let q = 0; q < w; q++) {
        const j = j0 + q;
        const c0 = q * nKept;
        for (let r = 0; r < R; r++) {
          let best = -Infinity;
          let arg = 0;
          for (let k = ks[r]!, k1 = ks[r + 1]!; k < k1; k++) {
            const v = panel[c0 + k]!;
            if (v > best) {
              best = v;
              arg = k;
            }
          }
          rowMax[r * N + j] = best;
          rowArg[r * N + j] = best > -Infinity ? keptIndex[arg]! : 0;
        }
        hist.countColumn(j, panel, c0, c0 + nKept);
      }
    }
  }

  state(): AccumulatorState {
    const s: AccumulatorState = {
      kind: KIND,
      ...this.header(),
    };
    this.per.forEach((st, i) => {
      const p = `m${i}.`;
      s[p + 'topCount'] = st.topCount.slice();
      s[p + 'heap'] = st.heap.slice();
      s[p + 'scale'] = st.scale.slice();
      s[p + 'seen'] = st.seen.slice();
      s[p + 'fill'] = st.fill.slice();
      for (const f of SLOT_FIELDS) {
        s[p + 'top.' + f] = st.top[f].slice();
        s[p + 'samples.' + f] = st.samples[f].slice();
      }
      st.hist.saveTo(s, p + 'hist.');
    });
    return s;
  }

  private header(): Record<string, number | number[]> {
    return {
      nNeurons: this.nNeurons,
      models: [...this.models],
      k: this.k,
      before: this.before,
      after: this.after,
      intervals: this.intervals,
      perInterval: this.perInterval,
      bins: this.bins,
      margin: this.margin,
      seed: this.seed,
    };
  }

  static restore(state: AccumulatorState, opts: TopExamplesOptions): TopExamples {
    const a = new TopExamples(opts);
    checkHeader(state, KIND, a.header());
    a.per.forEach((st, i) => {
      const p = `m${i}.`;
      copyInto(st.topCount, state, p + 'topCount');
      copyInto(st.heap, state, p + 'heap');
      copyInto(st.scale, state, p + 'scale');
      copyInto(st.seen, state, p + 'seen');
      copyInto(st.fill, state, p + 'fill');
      for (const f of SLOT_FIELDS) {
        copyInto(st.top[f], state, p + 'top.' + f);
        copyInto(st.samples[f], state, p + 'samples.' + f);
      }
      st.hist.loadFrom(state, p + 'hist.');
      st.recomputeThresholds();
    });
    return a;
  }

  /** Results per selected model, in `models` order; examples sorted by value (desc), then row. */
  finish(): TopExamplesResult[] {
    const { nNeurons: N, k: K, intervals: F, perInterval: R } = this;
    const W = this.before + 1 + this.after;
    return this.per.map((st, i) => {
      const top = newSlots(N * K, W);
      const samples = newSlots(N * F * R, W);
      const order = (sl: ExampleSlots, base: number, n: number): number[] =>
        Array.from({ length: n }, (_, q) => base + q).sort((a, b) => sl.value[b]! - sl.value[a]! || sl.row[a]! - sl.row[b]!);
      for (let j = 0; j < N; j++) {
        order(st.top, j * K, st.topCount[j]!).forEach((s, q) => copySlot(st.top, s, top, j * K + q, W));
        for (let b = 0; b < F; b++) {
          const idx = j * F + b;
          order(st.samples, idx * R, st.fill[idx]!).forEach((s, q) => copySlot(st.samples, s, samples, idx * R + q, W));
        }
      }
      return new TopExamplesResult(
        this.models[i]!,
        N,
        K,
        this.before,
        this.after,
        F,
        R,
        st.topCount.slice(),
        top,
        st.scale.slice(),
        st.seen.slice(),
        st.fill.slice(),
        samples,
        st.hist.result(),
      );
    });
  }
}

/** The options a TopExamples state was written with (its header). */
function optionsOf(st: AccumulatorState): TopExamplesOptions {
  const models = st['models'];
  if (!Array.isArray(models)) throw new EngineError('accumulator state: "models" of TopExamples is missing');
  const o: TopExamplesOptions = { nNeurons: num(st, 'nNeurons'), models };
  for (const k of ['k', 'before', 'after', 'intervals', 'perInterval', 'bins', 'margin', 'seed'] as const) o[k] = num(st, k);
  return o;
}

/**
 * The states of TopExamples over disjoint sets of corpus rows (token shards), merged: the state
 * one accumulator fed every row would hold, up to the heap's slot layout (finish() ranks them).
 */
export function mergeExampleStates(states: readonly AccumulatorState[]): AccumulatorState {
  if (states.length === 0) throw new EngineError('TopExamples: no states to merge');
  const opts = optionsOf(states[0]!);
  const acc = TopExamples.restore(states[0]!, opts);
  for (const s of states.slice(1)) acc.mergeFrom(TopExamples.restore(s, opts));
  return acc.state();
}
