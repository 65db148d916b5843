/**
 * What CrossMoments' dense and fast modes share (crossmoments.ts; docs/architecture.md): the
 * shifted reference step, x's float64 sums, token steps, 1/σ from sums, and checkpoint helpers.
 */
import { EngineError } from '../../errors';
import type { AccumulatorState, StateValue } from '../types';

/**
 * The reference side of one step, shared by every CrossMoments of the run: x' = x − k_x for the
 * block's columns, contiguous, and float64 Σx', Σx'². Keyed by the batch's keptPost array (and
 * index), so the pairs of one batch do this pass once.
 */
export interface RefStep {
  kx: Float32Array;
  xs: Float32Array;
  sx: Float64Array;
  sxx: Float64Array;
}

const refSteps = new WeakMap<Float32Array, Map<string, RefStep>>();

export function refStep(batch: number, x: Float32Array, Na: number, a0: number, a1: number, t0: number, t1: number, kx: Float32Array): RefStep {
  let m = refSteps.get(x);
  if (!m) refSteps.set(x, (m = new Map()));
  // The batch index too, in case a caller refills one buffer from batch to batch.
  const key = `${batch}:${a0}:${a1}:${t0}:${t1}`;
  const hit = m.get(key);
  if (hit && (hit.kx === kx || hit.kx.every((v, i) => v === kx[i]))) return hit;
  const B = a1 - a0;
  const xs = new Float32Array((t1 - t0) * B);
  const sx = new Float64Array(B);
  const sxx = new Float64Array(B);
  // Four rows at a time: a quarter of the accumulator traffic (about 1.5× faster).
  let r = t0;
  for (; r + 4 <= t1; r += 4) {
    const s0 = r * Na + a0;
    const d0 = (r - t0) * B;
    for (let j = 0; j < B; j++) {
      const k = kx[j]!;
      const a = Math.fround(x[s0 + j]! - k);
      const b = Math.fround(x[s0 + Na + j]! - k);
      const c = Math.fround(x[s0 + 2 * Na + j]! - k);
      const d = Math.fround(x[s0 + 3 * Na + j]! - k);
      xs[d0 + j] = a;
      xs[d0 + B + j] = b;
      xs[d0 + 2 * B + j] = c;
      xs[d0 + 3 * B + j] = d;
      sx[j]! += a + b + (c + d);
      sxx[j]! += a * a + b * b + (c * c + d * d);
    }
  }
  for (; r < t1; r++) {
    const src = r * Na + a0;
    const dst = (r - t0) * B;
    for (let j = 0; j < B; j++) {
      const v = Math.fround(x[src + j]! - kx[j]!);
      xs[dst + j] = v;
      sx[j]! += v;
      sxx[j]! += v * v;
    }
  }
  const step = { kx, xs, sx, sxx };
  // Another block's steps of this buffer are done with: a batch kept from pass to pass (one batch
  // holds the whole corpus: RunContext.forwards, pipeline/pass.ts) would otherwise hold every block's shifted copy.
  const block = `${batch}:${a0}:${a1}:`;
  for (const k of m.keys()) if (!k.startsWith(block)) m.delete(k);
  m.set(key, step);
  return step;
}

/** Σ x', Σ x'² (float64) of the reference block over some tokens, and their count. */
export class XStats {
  n = 0;
  readonly sx: Float64Array;
  readonly sxx: Float64Array;

  constructor(B: number) {
    this.sx = new Float64Array(B);
    this.sxx = new Float64Array(B);
  }

  add(r: RefStep, n: number): void {
    addInto(this.sx, r.sx);
    addInto(this.sxx, r.sxx);
    this.n += n;
  }

  save(s: AccumulatorState, p: string): void {
    s[`${p}n`] = this.n;
    s[`${p}sx`] = this.sx;
    s[`${p}sxx`] = this.sxx;
  }

  load(s: AccumulatorState, p: string): void {
    this.n = num(s, `${p}n`);
    copyInto(this.sx, s, `${p}sx`);
    copyInto(this.sxx, s, `${p}sxx`);
  }
}

/**
 * m's sums are fp32 GEMM partials of unshifted values: for a constant neuron Σy² − (Σy)²/n comes
 * out as noise of about 2e-6·Σy² (measured), so a variance below Y_REL·Σy² cannot be told from 0
 * and counts as zero variance (|mean| > 100·std). The reference side is shifted and summed in
 * float64, so there a constant neuron gives exactly 0.
 */
export const Y_REL = 1e-4;

/** 1/sqrt(Σ(v−v̄)²) from sums over n tokens; 0 when the variance is not above rel·Σv². */
export function invStd(s: ArrayLike<number>, ss: ArrayLike<number>, n: number, rel = 0): Float64Array {
  const out = new Float64Array(s.length);
  if (!(n > 1)) return out;
  for (let i = 0; i < s.length; i++) {
    if (ss[i] === 0) continue;
    const q = ss[i]! - (s[i]! * s[i]!) / n;
    if (q > rel * ss[i]!) out[i] = 1 / Math.sqrt(q);
  }
  return out;
}

export function clampCorr(r: number): number {
  if (!(r === r)) return 0; // NaN: cannot happen with the zero-variance rules, kept as a guard
  return r > 1 ? 1 : r < -1 ? -1 : r;
}

export function addInto(dst: Float64Array | Float32Array, src: ArrayLike<number>): void {
  for (let i = 0; i < dst.length; i++) dst[i]! += src[i]!;
}

export function num(s: AccumulatorState, key: string): number {
  const v = s[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new EngineError(`CrossMoments: checkpoint field ${key} is missing or not a number`);
  return v;
}

export function copyInto(dst: Float64Array | Float32Array | Int32Array, s: AccumulatorState, key: string): void {
  const v: StateValue | undefined = s[key];
  if (!v || typeof v === 'number' || typeof v === 'string' || v.length !== dst.length || v.constructor !== dst.constructor) {
    throw new EngineError(`CrossMoments: checkpoint field ${key} is missing or has the wrong type or length`);
  }
  dst.set(v as ArrayLike<number>);
}

/** Token ranges of at most `max` tokens, balanced, covering [t0, t1). */
export function steps(t0: number, t1: number, max: number): [number, number][] {
  const t = t1 - t0;
  const k = Math.ceil(t / max);
  const out: [number, number][] = [];
  for (let s = 0; s < k; s++) out.push([t0 + Math.floor((s * t) / k), t0 + Math.floor(((s + 1) * t) / k)]);
  return out.filter(([a, b]) => b > a);
}
