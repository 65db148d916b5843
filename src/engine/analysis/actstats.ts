// Over 600 lines: one accumulator, ActivationStats, with the pieces of its state: fixed-range
// histograms (Histograms, the SIMD kernel's column panels), the streaming moments
// (MomentAccumulator) and the merge of shards' states, which share one state layout. The seam if
// it grows: Histograms and Panels into a histograms.ts.
/**
 * ActivationStats: exact streaming moments of every neuron's pre-activation over kept tokens
 * (docs/method-notes.md "Activation statistics"), plus a fixed-bin histogram per neuron for the charts.
 *
 * Moments: each batch's mean and central sums Σd², Σd³, Σd⁴ are computed two-pass in float64,
 * then merged into the running totals with Chan/Pébay's pairwise update. Raw power sums
 * (Σx⁴ − …) lose every digit when |mean| ≫ std; central sums do not, and the merge is exact up
 * to rounding, so results hardly depend on how the tokens are split into batches.
 *
 * Histograms: `bins` equal bins per neuron over a range fixed by the first batch that has kept
 * tokens ([min, max] of that batch, widened by `margin`·span each side), plus underflow and
 * overflow counts and the exact running min/max. Memory is N·(bins+2) counts whatever the
 * token count. A range that grows by merging bins would keep every count in range, but a single
 * outlier would then squash the body of a heavy-tailed neuron into a few bins — and the body is
 * what the chart is for; the tails are summarised by under/overflow and min/max.
 */
import { EngineError } from '../errors';
import { KernelMemory } from '../kernels';
import { columnRange, kernelPool, partsFor } from '../kernels/pool';
import type { Accumulator, AccumulatorState, ActivationBatch } from './types';

export interface ActivationStatsOptions {
  /** Neurons per model (L·d_mlp). */
  nNeurons: number;
  /** Which of the batch's models to accumulate (default [0], the reference). */
  models?: number[];
  /** Histogram bins per neuron (default 64). */
  bins?: number;
  /** Histogram range margin, as a fraction of the first batch's span, each side (default 0.25). */
  margin?: number;
  /** false: the JS loop instead of the SIMD kernel (the kernel's reference in tests). */
  kernel?: boolean;
}

/** Fixed-range histograms of N columns: counts[n·(bins+2) + 0] underflow, 1..bins, bins+1 overflow. */
export interface HistogramSet {
  bins: number;
  /** [N] lower edge of bin 1. */
  lo: Float64Array;
  /** [N] upper edge of bin `bins`. */
  hi: Float64Array;
  /** [N × (bins+2)] */
  counts: Uint32Array;
  /** [N] exact extremes over every value seen (±Infinity before any). */
  min: Float64Array;
  max: Float64Array;
}

export interface ActivationStatsResult {
  model: number;
  /** Kept tokens counted (the same for every neuron). */
  count: number;
  /** Population moments of the pre-activation; kurt is NOT excess (a Gaussian gives 3). */
  mean: Float64Array;
  var: Float64Array;
  skew: Float64Array;
  kurt: Float64Array;
  /** Activation frequency: fraction of kept tokens with pre > 0 (the paper's "sparsity"). */
  sparsity: Float64Array;
  hist: HistogramSet;
}

const KIND = 'ActivationStats/1';

/**
 * Streaming histograms over N columns. Shared with examples.ts (post-activation histogram).
 * The range is fixed by the first `add` that sees at least one row.
 */
export class Histograms {
  readonly lo: Float64Array;
  readonly inv: Float64Array; // bins / (hi - lo)
  readonly hi: Float64Array;
  readonly counts: Uint32Array;
  readonly min: Float64Array;
  readonly max: Float64Array;
  fixed = false;
  /** Byte offsets of lo, inv, counts, min, max in `mem` (when the arrays live there). */
  readonly at?: { lo: number; inv: number; counts: number; min: number; max: number };

  /** With `mem`, the arrays live in that kernel memory, where the stats kernel updates them. */
  constructor(
    readonly n: number,
    readonly bins: number,
    readonly margin: number,
    readonly mem?: KernelMemory,
  ) {
    if (!Number.isInteger(bins) || bins < 1) throw new EngineError(`histogram bins must be a positive integer, got ${bins}`);
    if (!(margin >= 0)) throw new EngineError(`histogram margin must be >= 0, got ${margin}`);
    this.hi = new Float64Array(n);
    if (mem) {
      this.at = { lo: mem.alloc(8 * n), inv: mem.alloc(8 * n), counts: mem.alloc(4 * n * (bins + 2)), min: mem.alloc(8 * n), max: mem.alloc(8 * n) };
      this.lo = mem.f64(this.at.lo, n);
      this.inv = mem.f64(this.at.inv, n);
      this.counts = mem.u32(this.at.counts, n * (bins + 2));
      this.min = mem.f64(this.at.min, n).fill(Infinity);
      this.max = mem.f64(this.at.max, n).fill(-Infinity);
    } else {
      this.lo = new Float64Array(n);
      this.inv = new Float64Array(n);
      this.counts = new Uint32Array(n * (bins + 2));
      this.min = new Float64Array(n).fill(Infinity);
      this.max = new Float64Array(n).fill(-Infinity);
    }
  }

  /** Fixes the range from rows [0, rows) of a [rows × n] matrix. */
  private fix(x: Float32Array, rows: number): void {
    const n = this.n;
    const mn = new Float64Array(n).fill(Infinity);
    const mx = new Float64Array(n).fill(-Infinity);
    for (let t = 0, base = 0; t < rows; t++, base += n) {
      for (let j = 0; j < n; j++) {
        const v = x[base + j]!;
        if (v < mn[j]!) mn[j] = v;
        if (v > mx[j]!) mx[j] = v;
      }
    }
    for (let j = 0; j < n; j++) {
      let lo = mn[j]!;
      let hi = mx[j]!;
      const span = hi - lo;
      if (span > 0 && Number.isFinite(span)) {
        lo -= this.margin * span;
        hi += this.margin * span;
      } else {
        // A constant column: centre a unit-scale window on it.
        const half = 0.5 * Math.max(1, Math.abs(lo));
        lo -= half;
        hi += half;
      }
      this.lo[j] = lo;
      this.hi[j] = hi;
      this.inv[j] = this.bins / (hi - lo);
    }
    this.fixed = true;
  }

  /**
   * Counts values [o0, o1) of `col`, all of column j (a column-major panel), and tracks the
   * column's min/max. The range must be fixed (fixFrom) first.
   */
  countColumn(j: number, col: Float32Array, o0: number, o1: number): void {
    let mn = this.min[j]!;
    let mx = this.max[j]!;
    for (let o = o0; o < o1; o++) {
      const v = col[o]!;
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
    this.min[j] = mn;
    this.max[j] = mx;
    binColumn(this.counts, j * (this.bins + 2), this.bins, col, o0, o1, this.lo[j]!, this.inv[j]!);
  }

  /** Fixes the range from a [rows × n] matrix without counting it (see examples.ts). */
  fixFrom(x: Float32Array, rows: number): void {
    if (!this.fixed && rows > 0) this.fix(x, rows);
  }

  /**
   * Adds another histogram's counts (other tokens: a token shard). Both ranges were fixed by the
   * corpus' first batch with kept tokens, so they must agree; a range fixed by nothing takes the other's.
   */
  mergeFrom(o: Histograms): void {
    if (!o.fixed) return;
    if (!this.fixed) {
      this.lo.set(o.lo);
      this.hi.set(o.hi);
      this.inv.set(o.inv);
      this.fixed = true;
    } else {
      for (let j = 0; j < this.n; j++) {
        if (this.lo[j] !== o.lo[j] || this.hi[j] !== o.hi[j]) {
          throw new EngineError(`histograms of column ${j} have other ranges ([${this.lo[j]}, ${this.hi[j]}] vs [${o.lo[j]}, ${o.hi[j]}]): their states were not fixed by the same first batch of the corpus`);
        }
      }
    }
    for (let e = 0; e < this.counts.length; e++) this.counts[e]! += o.counts[e]!;
    for (let j = 0; j < this.n; j++) {
      if (o.min[j]! < this.min[j]!) this.min[j] = o.min[j]!;
      if (o.max[j]! > this.max[j]!) this.max[j] = o.max[j]!;
    }
  }

  result(): HistogramSet {
    return { bins: this.bins, lo: this.lo.slice(), hi: this.hi.slice(), counts: this.counts.slice(), min: this.min.slice(), max: this.max.slice() };
  }

  saveTo(s: AccumulatorState, prefix: string): void {
    s[prefix + 'lo'] = this.lo.slice();
    s[prefix + 'hi'] = this.hi.slice();
    s[prefix + 'counts'] = this.counts.slice();
    s[prefix + 'min'] = this.min.slice();
    s[prefix + 'max'] = this.max.slice();
    s[prefix + 'fixed'] = this.fixed ? 1 : 0;
  }

  loadFrom(s: AccumulatorState, prefix: string): void {
    copyInto(this.lo, s, prefix + 'lo');
    copyInto(this.hi, s, prefix + 'hi');
    copyInto(this.counts, s, prefix + 'counts');
    copyInto(this.min, s, prefix + 'min');
    copyInto(this.max, s, prefix + 'max');
    this.fixed = num(s, prefix + 'fixed') === 1;
    // Recompute exactly as fix() did, so restored binning is bit-identical.
    for (let j = 0; j < this.n; j++) this.inv[j] = this.bins / (this.hi[j]! - this.lo[j]!);
  }
}

/** Columns per panel: 16 × a batch's rows of float32 (64 KB at 1,024 rows) stays in L2. */
export const PANEL = 16;

/**
 * A column-major scratch for walking a [rows × n] row-major matrix PANEL columns at a time, each
 * column contiguous: `for (let j0 = 0; j0 < n; j0 += PANEL) { const w = p.load(x, n, j0, rows); … }`,
 * then column j0+k is data[k·rows, (k+1)·rows), and `bits` is the same memory as int32.
 */
export class Panels {
  data = new Float32Array(0);
  bits = new Int32Array(0);

  /** Copies columns [j0, j0+w) of x into `data` and returns w (PANEL, or fewer at the end). */
  load(x: Float32Array, n: number, j0: number, rows: number): number {
    if (this.data.length < PANEL * rows) {
      this.data = new Float32Array(PANEL * rows);
      this.bits = new Int32Array(this.data.buffer);
    }
    const w = Math.min(PANEL, n - j0);
    transposePanel(x, n, j0, w, rows, this.data);
    return w;
  }
}

/** Copies columns [j0, j0+w) of a [rows × n] matrix into `dst`, column k at k·rows; w ≤ PANEL. */
function transposePanel(x: Float32Array, n: number, j0: number, w: number, rows: number, dst: Float32Array): void {
  if (w === PANEL) return transpose16(x, n, j0, rows, dst);
  for (let t = 0, base = j0; t < rows; t++, base += n) {
    for (let k = 0, o = t; k < w; k++, o += rows) dst[o] = x[base + k]!;
  }
}

/** transposePanel for a whole panel, unrolled (faster than the loop). */
function transpose16(x: Float32Array, n: number, j0: number, rows: number, dst: Float32Array): void {
  const S = rows;
  for (let t = 0, b = j0; t < rows; t++, b += n) {
    dst[t] = x[b]!;
    dst[S + t] = x[b + 1]!;
    dst[2 * S + t] = x[b + 2]!;
    dst[3 * S + t] = x[b + 3]!;
    dst[4 * S + t] = x[b + 4]!;
    dst[5 * S + t] = x[b + 5]!;
    dst[6 * S + t] = x[b + 6]!;
    dst[7 * S + t] = x[b + 7]!;
    dst[8 * S + t] = x[b + 8]!;
    dst[9 * S + t] = x[b + 9]!;
    dst[10 * S + t] = x[b + 10]!;
    dst[11 * S + t] = x[b + 11]!;
    dst[12 * S + t] = x[b + 12]!;
    dst[13 * S + t] = x[b + 13]!;
    dst[14 * S + t] = x[b + 14]!;
    dst[15 * S + t] = x[b + 15]!;
  }
}

/** counts[c + bin(v)]++ for v in col[o0, o1): floor((v − lo)·inv), clamped to under/overflow (0, bins+1). */
function binColumn(counts: Uint32Array, c: number, bins: number, col: Float32Array, o0: number, o1: number, lo: number, inv: number): void {
  for (let o = o0; o < o1; o++) {
    // For 0 ≤ f < bins, f|0 is the floor.
    const f = (col[o]! - lo) * inv;
    counts[c + (f < 0 ? 0 : f >= bins ? bins + 1 : (f | 0) + 1)]++;
  }
}

/** Population moments from central sums; constant columns give var 0, skew 0, kurt 0 (not NaN). */
export function momentsFromCentral(
  n: number,
  m2: number,
  m3: number,
  m4: number,
): { var: number; skew: number; kurt: number } {
  const v = m2 / n;
  // Exactly constant columns have m2 = 0 exactly (per-batch two-pass, δ = 0 in the merge).
  // 0 keeps tables and sorts NaN-free; kurt 0 is impossible for real data (kurt >= 1), so it
  // also marks "constant" unambiguously.
  if (!(v > 0)) return { var: 0, skew: 0, kurt: 0 };
  return { var: v, skew: m3 / n / Math.pow(v, 1.5), kurt: m4 / n / (v * v) };
}

/**
 * Central sums of rows [0, rows) of a [rows × n] float32 matrix, per column, in float64, merged
 * into running (count, mean, m2, m3, m4) with Pébay's formulas. `onValue` lets the caller look at
 * each value in the second pass (sparsity, histograms) without a third sweep.
 */
export class MomentAccumulator {
  count = 0;
  readonly mean: Float64Array;
  readonly m2: Float64Array;
  readonly m3: Float64Array;
  readonly m4: Float64Array;
  // Per-batch scratch.
  private readonly bMean: Float64Array;
  private readonly b2: Float64Array;
  private readonly b3: Float64Array;
  private readonly b4: Float64Array;
  private readonly panels = new Panels();
  /** Set when a batch was refused part-way: the sums hold part of it, so nothing may read them. */
  broken = '';
  /** Kernel path: offsets of the per-batch sums in `mem`, and the batch's copy there. */
  private readonly at?: { bMean: number; b2: number; b3: number; b4: number };

  /**
   * With `mem`, batches run through the SIMD kernel (kernels/assembly/stats.ts) on that memory;
   * `positive` and the histogram passed to add() must then live in it too. Without, the JS loop
   * (the kernel's reference; tests compare the two bit for bit).
   */
  constructor(
    readonly n: number,
    readonly mem?: KernelMemory,
  ) {
    this.mean = new Float64Array(n);
    this.m2 = new Float64Array(n);
    this.m3 = new Float64Array(n);
    this.m4 = new Float64Array(n);
    if (mem) {
      this.at = { bMean: mem.alloc(8 * n), b2: mem.alloc(8 * n), b3: mem.alloc(8 * n), b4: mem.alloc(8 * n) };
      this.bMean = mem.f64(this.at.bMean, n);
      this.b2 = mem.f64(this.at.b2, n);
      this.b3 = mem.f64(this.at.b3, n);
      this.b4 = mem.f64(this.at.b4, n);
    } else {
      this.bMean = new Float64Array(n);
      this.b2 = new Float64Array(n);
      this.b3 = new Float64Array(n);
      this.b4 = new Float64Array(n);
    }
  }

  /** The batch's values in the memory's scratch (shared by every accumulator on that memory). */
  private stage(x: Float32Array): number {
    const off = this.mem!.scratch(4 * x.length);
    this.mem!.f32(off, x.length).set(x);
    return off;
  }

  private addKernel(x: Float32Array, rows: number, positive: Float64Array, hist: Histograms): void {
    const mem = this.mem!;
    const at = this.at!;
    const h = hist.at;
    const posOff = positive.byteOffset;
    if (!h || hist.mem !== mem || !(positive.buffer instanceof SharedArrayBuffer)) throw new EngineError('MomentAccumulator: the kernel path needs positive and the histogram in its memory');
    hist.fixFrom(x, rows);
    const xOff = this.stage(x);
    // Column ranges on the pool's threads; each returns −1 or its first non-finite column.
    const parts = partsFor(this.n, rows);
    let found: number[];
    try {
      found = kernelPool().run(mem, 'stats', 'columnStats', parts, (p) => {
        const [j0, j1] = columnRange(this.n, parts, p);
        return [xOff, this.n, rows, j0, j1, at.bMean, at.b2, at.b3, at.b4, posOff, h.min, h.max, h.lo, h.inv, h.counts, hist.bins];
      });
    } catch (e) {
      this.broken = (e as Error).message;
      throw e;
    }
    const bad = found.find((b) => b >= 0) ?? -1;
    if (bad >= 0) {
      this.broken = `activation column ${bad} has a non-finite value (NaN or ±Infinity) in this batch`;
      throw new EngineError(this.broken);
    }
    this.merge(rows, this.bMean, this.b2, this.b3, this.b4);
  }

  /**
   * Adds a batch. `positive` (optional, [n]) is incremented for every value > 0; `hist` (optional)
   * counts every value.
   *
   * Panels of PANEL columns are copied into a column-major scratch, and each column is walked with
   * its sums in registers. The row-by-row loop this replaces (ten per-column arrays, a branch on
   * v > 0) was 1.6× slower in an A/B on 2,048 × 1,024 Gaussian batches. Each column is still
   * summed in token order, so the figures are bit-identical to that loop's.
   *
   * A non-finite value throws once earlier panels are counted, so the accumulator refuses any
   * further use: the run stops, and a resumed run starts from the last checkpoint.
   */
  add(x: Float32Array, rows: number, positive?: Float64Array, hist?: Histograms): void {
    if (this.broken) throw new EngineError(this.broken);
    if (rows === 0) return;
    if (this.mem && positive && hist) return this.addKernel(x, rows, positive, hist);
    const n = this.n;
    const { bMean, b2, b3, b4 } = this;
    if (hist) hist.fixFrom(x, rows);
    const P = this.panels;
    for (let j0 = 0; j0 < n; j0 += PANEL) {
      const w = P.load(x, n, j0, rows);
      const { data: panel, bits: panelBits } = P;
      for (let k = 0; k < w; k++) {
        const j = j0 + k;
        const o0 = k * rows;
        const o1 = o0 + rows;
        let sum = 0;
        for (let o = o0; o < o1; o++) sum += panel[o]!;
        const mu = sum / rows;
        if (!Number.isFinite(mu)) {
          this.broken = `activation column ${j} has a non-finite value (NaN or ±Infinity) in this batch`;
          throw new EngineError(this.broken);
        }
        let s2 = 0;
        let s3 = 0;
        let s4 = 0;
        let pos = 0;
        for (let o = o0; o < o1; o++) {
          const d = panel[o]! - mu;
          const d2 = d * d;
          s2 += d2;
          s3 += d2 * d;
          s4 += d2 * d2;
          // v > 0 from the float's bits (sign clear, not +0), without a branch: the sign of
          // a value near 0 is a coin flip, and a mispredicted branch cost ~6 ns per value.
          const q = panelBits[o]!;
          pos += (((0 - q) | 0) & ~q) >>> 31;
        }
        bMean[j] = mu;
        b2[j] = s2;
        b3[j] = s3;
        b4[j] = s4;
        if (positive) positive[j] += pos;
      }
      if (hist) for (let k = 0; k < w; k++) hist.countColumn(j0 + k, panel, k * rows, (k + 1) * rows);
    }
    this.merge(rows, bMean, b2, b3, b4);
  }

  /** Pébay (2008) eqs. 2.1–2.3 (Chan et al. for the second moment), column by column. */
  merge(nb: number, mb: Float64Array, m2b: Float64Array, m3b: Float64Array, m4b: Float64Array): void {
    const na = this.count;
    if (na === 0) {
      this.mean.set(mb);
      this.m2.set(m2b);
      this.m3.set(m3b);
      this.m4.set(m4b);
      this.count = nb;
      return;
    }
    const nn = na + nb;
    const { mean, m2, m3, m4 } = this;
    const f1 = nb / nn; // δ·nb/n: mean shift
    const f2 = (na * nb) / nn; // δ²·na·nb/n
    const f3 = (na * nb * (na - nb)) / (nn * nn);
    const f4 = (na * nb * (na * na - na * nb + nb * nb)) / (nn * nn * nn);
    for (let j = 0; j < this.n; j++) {
      const d = mb[j]! - mean[j]!;
      const d2 = d * d;
      const a2 = m2[j]!;
      const a3 = m3[j]!;
      const c2 = m2b[j]!;
      const c3 = m3b[j]!;
      m4[j] = m4[j]! + m4b[j]! + d2 * d2 * f4 + (6 * d2 * (na * na * c2 + nb * nb * a2)) / (nn * nn) + (4 * d * (na * c3 - nb * a3)) / nn;
      m3[j] = a3 + c3 + d2 * d * f3 + (3 * d * (na * c2 - nb * a2)) / nn;
      m2[j] = a2 + c2 + d2 * f2;
      mean[j] = mean[j]! + d * f1;
    }
    this.count = nn;
  }
}

/** Exact streaming pre-activation statistics per neuron, for each selected model. */
export class ActivationStats implements Accumulator<ActivationStatsResult[]> {
  readonly nNeurons: number;
  readonly models: number[];
  readonly bins: number;
  readonly margin: number;
  private readonly moments: MomentAccumulator[];
  private readonly positive: Float64Array[];
  private readonly hists: Histograms[];

  constructor(opts: ActivationStatsOptions) {
    const { nNeurons } = opts;
    if (!Number.isInteger(nNeurons) || nNeurons < 1) throw new EngineError(`nNeurons must be a positive integer, got ${nNeurons}`);
    this.nNeurons = nNeurons;
    this.models = [...(opts.models ?? [0])];
    if (this.models.length === 0 || this.models.some((m) => !Number.isInteger(m) || m < 0)) {
      throw new EngineError(`models must be a non-empty list of model indices, got ${JSON.stringify(opts.models)}`);
    }
    this.bins = opts.bins ?? 64;
    this.margin = opts.margin ?? 0.25;
    // One kernel memory holds every model's arrays and the batch being counted.
    const mem = opts.kernel === false ? undefined : new KernelMemory();
    this.moments = this.models.map(() => new MomentAccumulator(nNeurons, mem));
    this.positive = this.models.map(() => (mem ? mem.f64(mem.alloc(8 * nNeurons), nNeurons) : new Float64Array(nNeurons)));
    this.hists = this.models.map(() => new Histograms(nNeurons, this.bins, this.margin, mem));
  }

  /** Bytes held, for the memory planner: per model and neuron 12 float64 moments and sums, the histogram. */
  static bytes(opts: ActivationStatsOptions): number {
    return (opts.models ?? [0]).length * opts.nNeurons * (12 * 8 + 4 * ((opts.bins ?? 64) + 2));
  }

  add(batch: ActivationBatch): void {
    const N = this.nNeurons;
    const rows = batch.nKept;
    this.models.forEach((m, i) => {
      const acts = batch.models[m];
      if (!acts) throw new EngineError(`ActivationStats: batch ${batch.batchIndex} has no model ${m} (it has ${batch.models.length})`);
      const x = acts.keptPre;
      if (x.length !== rows * N) {
        throw new EngineError(`ActivationStats: model ${m} keptPre has ${x.length} values, expected nKept·N = ${rows}·${N}`);
      }
      this.moments[i]!.add(x, rows, this.positive[i]!, this.hists[i]!);
    });
  }

  /** Whether a histogram's range is still open (prime() fixes it from the corpus' first batches). */
  needsPrime(): boolean {
    return this.hists.some((h) => !h.fixed);
  }

  /**
   * A batch before a token shard's first, seen only to fix the histograms' range as the corpus'
   * first batch with kept tokens fixes it in a single run (nothing is counted).
   */
  prime(batch: ActivationBatch): void {
    this.models.forEach((m, i) => {
      const acts = batch.models[m];
      if (acts && !this.hists[i]!.fixed) this.hists[i]!.fixFrom(acts.keptPre, batch.nKept);
    });
  }

  /** Adds another accumulator's tokens (a token shard): Pébay's merge of the moments, counts summed. */
  mergeFrom(o: ActivationStats): void {
    this.usable();
    o.usable();
    this.models.forEach((_, i) => {
      const a = this.moments[i]!;
      const b = o.moments[i]!;
      if (b.count > 0) a.merge(b.count, b.mean, b.m2, b.m3, b.m4);
      const p = this.positive[i]!;
      const q = o.positive[i]!;
      for (let j = 0; j < this.nNeurons; j++) p[j]! += q[j]!;
      this.hists[i]!.mergeFrom(o.hists[i]!);
    });
  }

  private usable(): void {
    for (const mo of this.moments) if (mo.broken) throw new EngineError(`ActivationStats holds part of a refused batch: ${mo.broken}`);
  }

  state(): AccumulatorState {
    this.usable();
    const s: AccumulatorState = {
      kind: KIND,
      nNeurons: this.nNeurons,
      models: [...this.models],
      bins: this.bins,
      margin: this.margin,
    };
    this.models.forEach((_, i) => {
      const mo = this.moments[i]!;
      const p = `m${i}.`;
      s[p + 'count'] = mo.count;
      s[p + 'mean'] = mo.mean.slice();
      s[p + 'm2'] = mo.m2.slice();
      s[p + 'm3'] = mo.m3.slice();
      s[p + 'm4'] = mo.m4.slice();
      s[p + 'positive'] = this.positive[i]!.slice();
      this.hists[i]!.saveTo(s, p + 'hist.');
    });
    return s;
  }

  static restore(state: AccumulatorState, opts: ActivationStatsOptions): ActivationStats {
    const a = new ActivationStats(opts);
    checkHeader(state, KIND, { nNeurons: a.nNeurons, bins: a.bins, margin: a.margin, models: a.models });
    a.models.forEach((_, i) => {
      const mo = a.moments[i]!;
      const p = `m${i}.`;
      mo.count = num(state, p + 'count');
      copyInto(mo.mean, state, p + 'mean');
      copyInto(mo.m2, state, p + 'm2');
      copyInto(mo.m3, state, p + 'm3');
      copyInto(mo.m4, state, p + 'm4');
      copyInto(a.positive[i]!, state, p + 'positive');
      a.hists[i]!.loadFrom(state, p + 'hist.');
    });
    return a;
  }

  /** Throws if no kept token was ever seen: statistics of nothing are not zeros. */
  finish(): ActivationStatsResult[] {
    this.usable();
    const N = this.nNeurons;
    return this.models.map((model, i) => {
      const mo = this.moments[i]!;
      const n = mo.count;
      if (n === 0) throw new EngineError('ActivationStats: no kept tokens were seen, so there are no activation statistics');
      const r: ActivationStatsResult = {
        model,
        count: n,
        mean: mo.mean.slice(),
        var: new Float64Array(N),
        skew: new Float64Array(N),
        kurt: new Float64Array(N),
        sparsity: new Float64Array(N),
        hist: this.hists[i]!.result(),
      };
      for (let j = 0; j < N; j++) {
        const m = momentsFromCentral(n, mo.m2[j]!, mo.m3[j]!, mo.m4[j]!);
        r.var[j] = m.var;
        r.skew[j] = m.skew;
        r.kurt[j] = m.kurt;
        r.sparsity[j] = this.positive[i]![j]! / n;
      }
      return r;
    });
  }
}

/** ActivationStats states over disjoint tokens (token shards), merged in the order given. */
export function mergeActivationStates(states: readonly AccumulatorState[]): AccumulatorState {
  if (states.length === 0) throw new EngineError('ActivationStats: no states to merge');
  const st = states[0]!;
  const models = st['models'];
  if (!Array.isArray(models)) throw new EngineError('accumulator state: "models" of ActivationStats is missing');
  const opts: ActivationStatsOptions = { nNeurons: num(st, 'nNeurons'), models, bins: num(st, 'bins'), margin: num(st, 'margin') };
  const acc = ActivationStats.restore(st, opts);
  for (const s of states.slice(1)) acc.mergeFrom(ActivationStats.restore(s, opts));
  return acc.state();
}

// ---- state helpers (shared with examples.ts) ----

export function num(s: AccumulatorState, key: string): number {
  const v = s[key];
  if (typeof v !== 'number') throw new EngineError(`accumulator state: "${key}" is missing or not a number`);
  return v;
}

type Typed = Float64Array | Float32Array | Int32Array | Uint32Array;

/** Copies state[key] into `dst`, checking type and length (a mismatched state is a wrong run). */
export function copyInto(dst: Typed, s: AccumulatorState, key: string): void {
  const v = s[key];
  if (v === undefined || typeof v === 'number' || typeof v === 'string') {
    throw new EngineError(`accumulator state: "${key}" is missing`);
  }
  if (v.length !== dst.length) throw new EngineError(`accumulator state: "${key}" has ${v.length} values, expected ${dst.length}`);
  if (!Array.isArray(v) && v.constructor !== dst.constructor) {
    throw new EngineError(`accumulator state: "${key}" is a ${v.constructor.name}, expected ${dst.constructor.name}`);
  }
  dst.set(v as ArrayLike<number>);
}

/** Refuses a state written by another accumulator or with other settings. */
export function checkHeader(s: AccumulatorState, kind: string, want: Record<string, number | number[]>): void {
  if (s['kind'] !== kind) throw new EngineError(`accumulator state is ${JSON.stringify(s['kind'])}, expected ${kind}`);
  for (const [k, w] of Object.entries(want)) {
    const got = s[k];
    const same = Array.isArray(w) ? Array.isArray(got) && got.length === w.length && got.every((g, i) => g === w[i]) : got === w;
    if (!same) throw new EngineError(`accumulator state was written with ${k} = ${JSON.stringify(got)}, but this run has ${JSON.stringify(w)}`);
  }
}
