/**
 * The paper's activation columns, computed as its code computes them (issue #14 item 1;
 * ../shared/method.md "Activation statistics"): a 256-edge histogram of each reference neuron's
 * pre-activation, cast to fp16, over **all** tokens of the rows (BOS and "\n" included; the
 * statistics of actstats.ts count kept tokens only). From it:
 *   sparsity = the share of counts from the bin holding 0 upwards: in effect P(pre > −0.098);
 *   mean, var, skew, kurt = population moments of the bin centres (tails clipped to the outer
 *   bins; kurtosis not excess).
 * The paper's summary code bins with `torch.searchsorted(linspace(-10, 15, 256), acts_fp16)`:
 * 257 bins, bin i holding edges[i−1] < x ≤ edges[i]; its moments use the centres of the edges
 * extended by one step each side.
 *
 * These are what a user sets beside the paper's tables (`universal.csv` carries them); the exact
 * streaming values stay in neurons.arrow as `act_freq` and `*_exact`.
 */
import { EngineError } from '../errors';
import { KernelMemory } from '../kernels';
import { columnRange, kernelPool, partsFor } from '../kernels/pool';
import type { Accumulator, AccumulatorState, ActivationBatch } from './types';

export const PAPER_BINS = 257;

/**
 * `torch.linspace(-10, 15, 256)` in float32 as torch's CPU kernel computes it (checked equal to
 * torch's own values in test/fixtures/golden/paper-hist.json): vectors of 8 from a base
 * `start + step·i0` (fused) for the first half, `end − step·(255 − i0)` for the second, then
 * `base + step·k`.
 */
export const PAPER_EDGES: Float32Array = (() => {
  const f = Math.fround;
  const step = f(25 / 255);
  const e = new Float32Array(256);
  for (let i0 = 0; i0 < 256; i0 += 8) {
    const base = i0 < 128 ? f(-10 + step * i0) : f(15 - step * (255 - i0));
    for (let k = 0; k < 8; k++) e[i0 + k] = f(base + f(step * k));
  }
  return e;
})();

/** The paper's `zero_bin = argmax(edges >= 0)`. */
export const PAPER_ZERO_BIN = PAPER_EDGES.findIndex((x) => x >= 0);

/**
 * Bin centres of the edges extended by one step each side, in float32 as the paper's code has
 * them. Its moments then sum in float32; these sum in float64 (closer to the histogram's own
 * moments, within float32 rounding of the paper's).
 */
const CENTRES: Float64Array = (() => {
  const f = Math.fround;
  const e = Array.from(PAPER_EDGES);
  const ext = [f(f(e[0]! + e[0]!) - e[1]!), ...e, f(f(e[255]! + e[255]!) - e[254]!)];
  return Float64Array.from({ length: PAPER_BINS }, (_, i) => f(f(ext[i]! + ext[i + 1]!) / 2));
})();

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** A float32 value rounded to the nearest fp16 (ties to even), as torch's `.to(float16)`; overflow to ±Infinity. */
export function toHalf(x: number): number {
  F32[0] = x;
  const bits = U32[0]!;
  const sign = bits >>> 31 ? -1 : 1;
  const exp = (bits >>> 23) & 0xff;
  if (exp === 0xff) return bits & 0x7fffff ? NaN : sign * Infinity;
  const a = Math.abs(F32[0]!);
  // The spacing of fp16 values at a: 2^(E−10) with E its exponent, 2^−24 below 2^−14 (subnormals).
  const ulp = 2 ** (Math.max(exp - 127, -14) - 10);
  const q = a / ulp; // exact: a power-of-two scaling
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r += 1;
  const h = r * ulp;
  return h > 65504 ? sign * Infinity : sign * h;
}

/** The float32 searchsorted of v: the first i with edges[i] ≥ v (256 when none). */
function searchsorted(v: number): number {
  // A first guess from the uniform spacing, then the exact float32 edges decide.
  let i = Math.ceil((v + 10) * 10.2);
  if (i < 0) i = 0;
  else if (i > 256) i = 256;
  while (i > 0 && PAPER_EDGES[i - 1]! >= v) i--;
  while (i < 256 && PAPER_EDGES[i]! < v) i++;
  return i;
}

/** Half the largest fp16 spacing within the edges' range (2^−7 for 8 ≤ |x| < 16). */
const NEAR = 2 ** -8;

/** The paper's bin of one pre-activation: searchsorted(edges, fp16(x)), 0..256. */
export function paperBin(x: number): number {
  if (x !== x) return PAPER_BINS - 1; // NaN sorts last (the engine refuses non-finite activations before this)
  const i = searchsorted(x);
  // fp16 moves x by at most half its spacing: it can cross an edge only when one is that near.
  const lo = i > 0 ? x - PAPER_EDGES[i - 1]! : Infinity;
  const hi = i < 256 ? PAPER_EDGES[i]! - x : Infinity;
  return lo > NEAR && hi > NEAR ? i : searchsorted(toHalf(x));
}

/**
 * A lookup table over cells of 1/1024 from −10 (under 2^−9 wide, so each holds at most one edge):
 * the bin of every x in the cell, or −1 where an edge lies within NEAR of the cell (paperBin
 * decides). Most values then cost one multiply and one load.
 */
const CELLS = 1024;
const LUT: Int16Array = (() => {
  const n = 25 * CELLS + 2;
  const t = new Int16Array(n);
  for (let c = 0; c < n; c++) {
    const a = -10 + c / CELLS - NEAR;
    const b = -10 + (c + 1) / CELLS + NEAR;
    const i = searchsorted(a);
    // One bin for the whole widened cell: no edge in (a, b].
    t[c] = i === searchsorted(b) ? i : -1;
  }
  return t;
})();

/** paperBin through the table; the same bins (test/unit/paper-hist.test.ts). */
export function paperBinFast(x: number): number {
  const c = Math.floor((x + 10) * CELLS);
  if (c >= 0 && c < LUT.length) {
    const v = LUT[c]!;
    if (v >= 0) return v;
  }
  return paperBin(x);
}

export interface PaperHistogramResult {
  sparsity: Float64Array;
  mean: Float64Array;
  var: Float64Array;
  skew: Float64Array;
  kurt: Float64Array;
  /** Tokens counted per neuron (every token of the rows). */
  n: number;
}

const KIND = 'paper-histogram';

/**
 * The reference model's 257-bin fp16 histograms over all tokens; one accumulator per run. The
 * counting runs as a WebAssembly kernel over column ranges on the worker pool
 * (kernels/assembly/paperhist.ts: paperBinFast's operations, so the same counts); `kernel:
 * false` keeps the JS loop (tests compare the two). The JS loop was 27 ns per value on the
 * main thread: 56 s of a 1M-token run of the tiny family (BENCHMARKS.md).
 */
export class PaperHistogram implements Accumulator<PaperHistogramResult> {
  readonly counts: Uint32Array;
  n = 0;
  private readonly mem?: KernelMemory;
  private readonly at?: { counts: number; lut: number; edges: number };

  constructor(
    readonly nNeurons: number,
    opts: { kernel?: boolean } = {},
  ) {
    if (!Number.isInteger(nNeurons) || nNeurons < 1) throw new EngineError(`nNeurons must be a positive integer, got ${nNeurons}`);
    const n = nNeurons * PAPER_BINS;
    if (opts.kernel === false) {
      this.counts = new Uint32Array(n);
      return;
    }
    const mem = new KernelMemory(4 * n + 2 * LUT.length + 4 * 256 + 1024);
    this.mem = mem;
    this.at = { counts: mem.alloc(4 * n), lut: mem.alloc(2 * LUT.length), edges: mem.alloc(4 * 256) };
    this.counts = mem.u32(this.at.counts, n);
    new Int16Array(mem.buffer, this.at.lut, LUT.length).set(LUT);
    mem.f32(this.at.edges, 256).set(PAPER_EDGES);
  }

  /** Bytes held, for the memory planner. */
  static bytes(nNeurons: number): number {
    return nNeurons * PAPER_BINS * 4;
  }

  add(batch: ActivationBatch): void {
    const N = this.nNeurons;
    const acts = batch.models[0];
    if (!acts) throw new EngineError(`PaperHistogram: batch ${batch.batchIndex} has no reference model`);
    const x = acts.pre;
    const T = batch.nTokens;
    if (x.length !== T * N) throw new EngineError(`PaperHistogram: reference pre has ${x.length} values, expected nTokens·N = ${T}·${N}`);
    if (this.n + T > 0xffffffff) throw new EngineError('PaperHistogram: more than 2^32 tokens; split the run');
    const c = this.counts;
    const { mem, at } = this;
    if (mem && at) {
      const xOff = mem.scratch(4 * x.length);
      mem.f32(xOff, x.length).set(x);
      const parts = partsFor(N, T);
      kernelPool().run(mem, 'paperhist', 'paperCounts', parts, (p) => [xOff, T, N, ...columnRange(N, parts, p), at.counts, at.lut, LUT.length, at.edges]);
    } else {
      for (let t = 0; t < T; t++) {
        const o = t * N;
        for (let j = 0; j < N; j++) c[j * PAPER_BINS + paperBinFast(x[o + j]!)]!++;
      }
    }
    this.n += T;
  }

  state(): AccumulatorState {
    // A copy: the counts may be a view of the kernels' shared memory.
    return { kind: KIND, nNeurons: this.nNeurons, n: this.n, counts: this.counts.slice() };
  }

  static restore(st: AccumulatorState, nNeurons: number): PaperHistogram {
    if (st.kind !== KIND) throw new EngineError(`checkpoint state is ${String(st.kind)}, expected ${KIND}`);
    if (st.nNeurons !== nNeurons) throw new EngineError(`checkpoint paper histogram has ${String(st.nNeurons)} neurons, the run ${nNeurons}`);
    const counts = st.counts;
    if (!(counts instanceof Uint32Array) || counts.length !== nNeurons * PAPER_BINS) throw new EngineError('checkpoint paper histogram counts are malformed');
    if (typeof st.n !== 'number' || !Number.isSafeInteger(st.n) || st.n < 0) throw new EngineError('checkpoint paper histogram count is malformed');
    const h = new PaperHistogram(nNeurons);
    h.counts.set(counts);
    h.n = st.n;
    return h;
  }

  finish(): PaperHistogramResult {
    const N = this.nNeurons;
    const out: PaperHistogramResult = {
      sparsity: new Float64Array(N),
      mean: new Float64Array(N),
      var: new Float64Array(N),
      skew: new Float64Array(N),
      kurt: new Float64Array(N),
      n: this.n,
    };
    for (let j = 0; j < N; j++) {
      const o = j * PAPER_BINS;
      let tot = 0;
      let up = 0;
      let s1 = 0;
      for (let b = 0; b < PAPER_BINS; b++) {
        const k = this.counts[o + b]!;
        tot += k;
        if (b >= PAPER_ZERO_BIN) up += k;
        s1 += CENTRES[b]! * k;
      }
      const mean = s1 / tot;
      let m2 = 0;
      let m3 = 0;
      let m4 = 0;
      for (let b = 0; b < PAPER_BINS; b++) {
        const k = this.counts[o + b]!;
        if (!k) continue;
        const d = CENTRES[b]! - mean;
        m2 += d * d * k;
        m3 += d * d * d * k;
        m4 += d * d * d * d * k;
      }
      const v = m2 / tot;
      out.sparsity[j] = up / tot;
      out.mean[j] = mean;
      out.var[j] = v;
      out.skew[j] = m3 / (tot * v ** 1.5);
      out.kurt[j] = m4 / (tot * v * v);
    }
    return out;
  }
}

/** PaperHistogram states over disjoint tokens (token shards), merged: the counts summed (fixed edges). */
export function mergePaperHistStates(states: readonly AccumulatorState[]): AccumulatorState {
  if (states.length === 0) throw new EngineError('PaperHistogram: no states to merge');
  const N = states[0]!.nNeurons;
  if (typeof N !== 'number') throw new EngineError('checkpoint paper histogram is malformed');
  const acc = PaperHistogram.restore(states[0]!, N);
  for (const s of states.slice(1)) {
    const o = PaperHistogram.restore(s, N);
    for (let e = 0; e < acc.counts.length; e++) acc.counts[e]! += o.counts[e]!;
    acc.n += o.n;
  }
  return { ...acc.state(), counts: acc.counts.slice() };
}
