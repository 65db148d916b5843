/**
 * CrossMoments' fast mode (crossmoments.ts, "Fast mode"): candidates drawn from the screen's dense
 * moments, the candidates' sums per step (ORT rotates m; SIMD kernels in an arena transpose x' and
 * y and take the sampled products), and the finish over the candidates.
 */
import { EngineError, throwIfCancelled } from '../../errors';
import type { CrossMoments } from '../crossmoments';
import { SddmmArena } from '../gemm';
import type { AccumulatorState } from '../types';
import { reclaim } from '../blocking';
import { bigFinish, gramMoments, layerInputs, rowsPerGemm32 } from './baseline';
import { addInto, clampCorr, copyInto, invStd, refStep, steps, Y_REL } from './common';
import { sharedY, type DenseMoments } from './dense';
import { pickPartners, RotatedKeep, ScreenKernels } from './finishKernels';
import type { CrossMomentsResult, YMoments } from './types';

/** Default kept tokens of a prefix screen. */
export const SCREEN_TOKENS = 65536;
/** Default sub-screens of a screen fed through screen(). */
export const SUB_SCREENS = 3;
/** Default cap on candidates per neuron and kind. */
export const MAX_CANDIDATES = 256;
/** Default z of the pooled screen's noise margin. */
export const NOISE_Z = 3;
/** Default c of the pooled screen's low-correlation margin c·(1 − best²). */
export const LOW_CORR_MARGIN = 0.125;
/** Fast mode's arena (one step's activations: x'ᵀ, Yᵀ, (RV)ᵀ and a token-major staging copy) stays under this many bytes. */
const FAST_ARENA_BYTES = 64 * 1024 * 1024;

/**
 * Bytes a pair's candidate state holds at most (FastState, and onnxruntime's copy of the rotations):
 * the arena, both candidate lists at the cap (a column and a float64 total each), R_l in fp32, the
 * staging of one step and m's sums. The planner counts it (blocking.ts).
 */
export function fastStateBytes(B: number, L: number, d: number, cap = MAX_CANDIDATES): number {
  const Nm = L * d;
  return FAST_ARENA_BYTES + 2 * 12 * B * Math.min(cap, Nm) + 4 * L * d * d + FAST_ARENA_BYTES / 2 + 32 * Nm;
}

function rotations(c: CrossMoments): Float64Array[] {
  return Array.from({ length: c.L }, (_, l) => c.rotation(l, new Float64Array(c.d * c.d)));
}

/** Candidate lists of a block's reference neurons (CSR over its rows): partners and rotated neurons of m. */
export interface Candidates {
  P: { rowptr: Int32Array; cols: Int32Array };
  R: { rowptr: Int32Array; cols: Int32Array };
}

/**
 * Picks the candidates from the screen and sets up the candidate totals. `D`: the dense moments of
 * the screen (`screened`: fed through screen()) or of the counted prefix.
 */
export async function startFast(c: CrossMoments, D: DenseMoments, screened: boolean): Promise<FastState> {
  const { cand, Rs, sy } = await pickCandidates(c, D);
  const { B, Nm, L, d } = c;
  const f = new FastState(c, cand.P, cand.R);
  if (!screened) {
    // The prefix is part of the counted tokens: every total starts from its dense products.
    for (let i = 0; i < B; i++) {
      for (let c = f.rpP[i]!; c < f.rpP[i + 1]!; c++) f.cxy[c] = D.sxy[i * Nm + f.clP[c]!]!;
      for (let c = f.rpR[i]!; c < f.rpR[i + 1]!; c++) {
        const col = f.clR[c]!;
        const l = Math.floor(col / d);
        const k = col - l * d;
        const r = Rs[l]!;
        let s = 0;
        for (let b = 0; b < d; b++) s += D.sxy[i * Nm + l * d + b]! * r[k * d + b]!;
        f.cxr[c] = s;
      }
    }
    f.sy.set(sy);
    f.syy.set(D.syy());
    for (let l = 0; l < L; l++) {
      const r = Rs[l]!;
      const RC = await c.gemm.abt64(r, D.gram.subarray(l * d * d, (l + 1) * d * d), d, d, d);
      for (let k = 0; k < d; k++) {
        let s1 = 0;
        let s2 = 0;
        for (let b = 0; b < d; b++) {
          s1 += r[k * d + b]! * sy[l * d + b]!;
          s2 += RC[k * d + b]! * r[k * d + b]!;
        }
        f.sr[l * d + k] = s1;
        f.srr[l * d + k] = s2;
      }
    }
  }
  return f;
}

/**
 * The candidates of the block's reference neurons from the screen's dense moments `D` (see
 * crossmoments.ts, "Fast mode"). Also returns the rotations and Σy it used (a prefix screen's
 * totals start from them).
 */
export async function pickCandidates(c: CrossMoments, D: DenseMoments): Promise<{ cand: Candidates; Rs: Float64Array[]; sy: Float64Array; ym: YMoments }> {
  D.finalize();
  const { B, Nm, d } = c;
  const margin = c.opts.fast?.margin ?? 0.05;
  const bMargin = c.opts.fast?.baselineMargin ?? 0.05;
  const cap = c.opts.fast?.maxCandidates ?? MAX_CANDIDATES;
  const n = D.xs.n;
  const ix = invStd(D.xs.sx, D.xs.sxx, n);
  const sy = D.sy();
  const subs = D.subs;
  // The pooled screen's Σy² from the sub-screens' float64 sums (the Gram diagonal went through fp32 partials).
  const syy = subs.length ? sumOf(subs.map((u) => u.syy)) : D.syy();
  const iy = invStd(sy, syy, n, Y_REL);
  // Partners: j is a candidate when its screened ρ is within `margin` of the best of any
  // sub-screen with tokens (tokens over which x is constant are skipped per row), or within m_i of
  // the pooled screen's best, m_i = max(margin, z·√2·σ_i, c·(1 − best²)) with σ_i the pooled ρ's
  // sampling error estimated from the sub-screens (the spread of the row's top 16 partners' ρ
  // across them, over √K). Score: the largest (ρ − best)/margin over the screens, ≥ −1 for a
  // candidate; best score first, then pooled ρ, at most `cap`. A row constant on the screen has
  // nothing to rank by: every neuron stays a candidate. On the kernel pool (pickPartners): at
  // GPT-2-small size a block is ~8,000 rows × 36,864 neurons × 4 screens.
  // noise: z·√2·σ_i per reference neuron (0 without sub-screens); the rotated neurons' margin widens to it too.
  const { cand: candP, noise } = pickPartners(
    B,
    Nm,
    { xy: D.sxy, sx: D.xs.sx, ix, sy, iy, n },
    subs.map((u) => ({ xy: u.xy, sx: u.xs.sx, ix: invStd(u.xs.sx, u.xs.sxx, u.xs.n), sy: u.sy, iy: invStd(u.sy, u.syy, u.xs.n, Y_REL), n: u.xs.n, live: u.xs.n > 1 })),
    {
      margin,
      z: c.opts.fast?.noiseZ ?? NOISE_Z,
      // Only with sub-screens (screen()): a prefix screen keeps its plain margin.
      low: subs.length ? (c.opts.fast?.lowCorrMargin ?? LOW_CORR_MARGIN) : 0,
      cap,
    },
    c.signal,
  );
  if (subs.length) D.pool();
  // Rotated neurons: the same on the pooled screen's baseline correlations, the margin widened to
  // the row's noise estimate as for partners (the sub-screens hold no Gram). One pass over the
  // layers in fp32 (selection only: fp32's error is far below the margins): a row keeps what is
  // within its margin of its maximum so far, and what falls below the final maximum's is dropped
  // at the end, so no B×N_m matrix is held.
  const Rs = rotations(c);
  const R = (l: number): Float64Array => Rs[l]!;
  // A block after the pair's first takes m's screen moments from it (no Gram of its own).
  const ym = c.opts.yMoments ? sharedY(c, n) : await gramMoments(c, D, n, R, true);
  const best = new Float64Array(B).fill(-Infinity);
  const widen = (i: number): number => (ix[i] === 0 ? Infinity : bMargin > 0 ? Math.max(bMargin, noise[i]!) : 0);
  const candR: number[][] = Array.from({ length: B }, () => []);
  const vals: number[][] = Array.from({ length: B }, () => []);
  const keep = (i: number, lim: number): void => {
    const c = candR[i]!;
    const v = vals[i]!;
    let w = 0;
    for (let q = 0; q < c.length; q++) {
      if (v[q]! >= lim) {
        c[w] = c[q]!;
        v[w++] = v[q]!;
      }
    }
    c.length = w;
    v.length = w;
  };
  const widths = Float64Array.from({ length: B }, (_, i) => widen(i));
  // Per layer and chunk of rows: the centred covariances (fp32), their product with R_l (an fp32
  // GEMM), then ρ, the row maxima and what is within reach of them on the kernel pool.
  const { Nm: N, L } = c;
  const sx = D.xs.sx;
  const syAll = D.sy();
  const iyR = invStd(syAll, ym.syy, n, Y_REL);
  const step = Math.min(B, rowsPerGemm32(d));
  const K = ScreenKernels.for(d, D.sxy instanceof Float64Array);
  const keeper = RotatedKeep.for(d);
  const cov = new Float64Array(step * d);
  const cov32 = new Float32Array(step * d);
  const sumSq = new Float64Array(step);
  const out32 = new Float32Array(step * d);
  for (let l = 0; l < L; l++) {
    const off = l * d;
    const irv = layerInputs(K, l, d, syAll, iyR, ym.rotVar);
    const R32 = Float32Array.from(R(l));
    for (let i0 = 0; i0 < B; i0 += step) {
      throwIfCancelled(c.signal);
      const rows = Math.min(step, B - i0);
      K.cov(D.sxy, N, off, i0, rows, sx, n, { cov, cov32, sumSq });
      const prod = await c.gemm.abt32(cov32.subarray(0, rows * d), R32, rows, d, d, out32.subarray(0, rows * d));
      keeper.keep(prod, rows, ix.subarray(i0, i0 + rows), irv, best.subarray(i0, i0 + rows), widths.subarray(i0, i0 + rows), (r, ks, vs, count) => {
        const i = i0 + r;
        const ci = candR[i]!;
        const vi = vals[i]!;
        for (let q = 0; q < count; q++) {
          ci.push(off + ks[q]!);
          vi.push(vs[q]!);
        }
        if (ci.length > 8 * cap) keep(i, best[i]! - widths[i]!);
      });
    }
    if (bigFinish(c)) await reclaim();
  }
  for (let i = 0; i < B; i++) keep(i, best[i]! - widen(i));
  for (let i = 0; i < B; i++) {
    if ((i & 255) === 0) throwIfCancelled(c.signal);
    if (ix[i] === 0) continue; // every rotated neuron, as for partners
    // Best ρ first, then the lower column: a row's columns are in increasing order (pushed layer
    // by layer, k by k; keep() keeps the order), so pick's tie on position is the tie on column.
    // A full comparator sort here took ~34 s per GPT-2-small-size block (thousands per row).
    const cols = candR[i]!;
    candR[i] = pick(Float64Array.from(vals[i]!), -Infinity, cap).map((o) => cols[o]!);
  }
  return { cand: { P: csr(candP), R: csr(candR) }, Rs, sy, ym };
}

/** Blocks' candidate lists, in order of their rows, as one list over all of them. */
export function joinCandidates(blocks: readonly Candidates[]): Candidates {
  const join = (qs: readonly { rowptr: Int32Array; cols: Int32Array }[]) => {
    const rows = qs.reduce((a, q) => a + q.rowptr.length - 1, 0);
    const rowptr = new Int32Array(rows + 1);
    const cols = new Int32Array(qs.reduce((a, q) => a + q.cols.length, 0));
    let r = 0;
    let at = 0;
    for (const q of qs) {
      for (let i = 1; i < q.rowptr.length; i++) rowptr[r + i] = at + q.rowptr[i]!;
      cols.set(q.cols, at);
      r += q.rowptr.length - 1;
      at += q.cols.length;
    }
    return { rowptr, cols };
  };
  return { P: join(blocks.map((b) => b.P)), R: join(blocks.map((b) => b.R)) };
}

export async function addFast(c: CrossMoments, f: FastState, kx: Float32Array, batch: number, x: Float32Array, y: Float32Array, t0: number, t1: number): Promise<void> {
  const { B, Nm } = c;
  for (const [s0, s1] of steps(t0, t1, f.tc)) {
    const n = s1 - s0;
    const r = refStep(batch, x, c.Na, c.a0, c.a1, s0, s1, kx);
    const a = f.arena;
    // x' and y go into the shared arena token-major (one copy each) and the kernel transposes them
    // there; ORT rotates m from the token-major y (it cannot write into the arena: a third copy).
    a.f32(f.src, B * n).set(r.xs);
    a.transpose(f.src, n, B, f.xt);
    const ys = y.subarray(s0 * Nm, s1 * Nm);
    a.f32(f.src, Nm * n).set(ys);
    a.transpose(f.src, n, Nm, f.yt);
    const rt = f.stage.subarray(0, Nm * n);
    await c.gemm.rotateStep({ y: ys, t: n, b: Nm, rot: { layers: c.L, d: c.d, R: f.rotations, key: String(c.opts.seed) }, rt });
    a.f32(f.rt, Nm * n).set(rt);
    c.xs.add(r, n);
    f.step(n);
  }
}

export function finishFast(c: CrossMoments, f: FastState): CrossMomentsResult {
  const { B } = c;
  const n = c.xs.n;
  const sx = c.xs.sx;
  const ix = invStd(sx, c.xs.sxx, n);
  const iy = invStd(f.sy, f.syy, n, Y_REL);
  const irv = invStd(f.sr, f.srr, n, Y_REL);
  const maxCorr = new Float64Array(B);
  const partner = new Int32Array(B).fill(-1);
  const baseline = new Float64Array(B);
  const baselinePartner = new Int32Array(B).fill(-1);
  for (let i = 0; i < B; i++) {
    if ((i & 255) === 0) throwIfCancelled(c.signal);
    if (ix[i] === 0) continue;
    let best = -Infinity;
    let arg = -1;
    for (let c = f.rpP[i]!; c < f.rpP[i + 1]!; c++) {
      const j = f.clP[c]!;
      const r = clampCorr((f.cxy[c]! - (sx[i]! * f.sy[j]!) / n) * ix[i]! * iy[j]!);
      if (r > best) [best, arg] = [r, j];
    }
    maxCorr[i] = best;
    partner[i] = arg;
    best = -Infinity;
    arg = -1;
    for (let c = f.rpR[i]!; c < f.rpR[i + 1]!; c++) {
      const k = f.clR[c]!;
      const r = clampCorr((f.cxr[c]! - (sx[i]! * f.sr[k]!) / n) * ix[i]! * irv[k]!);
      if (r > best) [best, arg] = [r, k];
    }
    baseline[i] = best;
    baselinePartner[i] = arg;
  }
  return c.result(maxCorr, partner, baseline, baselinePartner);
}

/**
 * Fast mode after the screen: candidate lists (CSR) and their float64 totals, m's and the rotated
 * neurons' sums, and the arena where each step's transposed activations land.
 */
export class FastState {
  readonly arena = new SddmmArena();
  /** Tokens per step (bounded by the arena size). */
  readonly tc: number;
  /**
   * The pair's R_l in fp32, drawn when the rotation's graph is built: only onnxruntime's session
   * holds them after that (4·L·d² bytes, 0.45 GB at GPT-2-small size, not twice).
   */
  readonly rotations: () => Float32Array[];
  /** Where ORT writes each step's (RV)ᵀ (it cannot write into the shared arena). */
  readonly stage: Float32Array;
  private readonly B: number;
  private readonly Nm: number;
  // Byte offsets in the arena.
  readonly xt: number;
  readonly yt: number;
  readonly rt: number;
  /** Token-major x' or y of a step, before the kernel transposes it. */
  readonly src: number;
  private readonly oOnes: number;
  private readonly oIdRp: number;
  private readonly oIdCl: number;
  private readonly oZero: number;
  private readonly oRowSum: number;
  private readonly oRowSq: number;
  private readonly oRpP: number;
  private readonly oClP: number;
  private readonly oCxy: number;
  private readonly oRpR: number;
  private readonly oClR: number;
  private readonly oCxr: number;
  // Views.
  readonly rpP: Int32Array;
  readonly clP: Int32Array;
  readonly cxy: Float64Array;
  readonly rpR: Int32Array;
  readonly clR: Int32Array;
  readonly cxr: Float64Array;
  /** Σ y, Σ y², Σ (RV)_k, Σ (RV)_k² over the counted tokens. */
  readonly sy: Float64Array;
  readonly syy: Float64Array;
  readonly sr: Float64Array;
  readonly srr: Float64Array;

  constructor(c: CrossMoments, P: { rowptr: Int32Array; cols: Int32Array }, Rc: { rowptr: Int32Array; cols: Int32Array }) {
    const { B, Nm } = c;
    this.B = B;
    this.Nm = Nm;
    this.tc = Math.max(16, Math.min(c.chunk, Math.floor(FAST_ARENA_BYTES / (4 * (B + 2 * Nm + Math.max(B, Nm))))));
    this.rotations = () => Array.from({ length: c.L }, (_, l) => Float32Array.from(c.rotation(l, new Float64Array(c.d * c.d))));
    this.stage = new Float32Array(Nm * this.tc);
    const a = this.arena;
    this.xt = a.alloc(4 * B * this.tc);
    this.yt = a.alloc(4 * Nm * this.tc);
    this.rt = a.alloc(4 * Nm * this.tc);
    this.src = a.alloc(4 * Math.max(B, Nm) * this.tc);
    // Row sums and sums of squares run through the same kernel: dot with a ones row, and with itself.
    this.oOnes = a.alloc(4 * this.tc);
    this.oIdRp = a.alloc(4 * (Nm + 1));
    this.oIdCl = a.alloc(4 * Nm);
    this.oZero = a.alloc(4 * Nm);
    this.oRowSum = a.alloc(8 * Nm);
    this.oRowSq = a.alloc(8 * Nm);
    this.oRpP = a.alloc(4 * (B + 1));
    this.oClP = a.alloc(4 * P.cols.length);
    this.oCxy = a.alloc(8 * P.cols.length);
    this.oRpR = a.alloc(4 * (B + 1));
    this.oClR = a.alloc(4 * Rc.cols.length);
    this.oCxr = a.alloc(8 * Rc.cols.length);
    a.seal();
    a.f32(this.oOnes, this.tc).fill(1);
    a.i32(this.oIdRp, Nm + 1).forEach((_, i, v) => (v[i] = i));
    a.i32(this.oIdCl, Nm).forEach((_, i, v) => (v[i] = i));
    this.rpP = a.i32(this.oRpP, B + 1);
    this.clP = a.i32(this.oClP, P.cols.length);
    this.cxy = a.f64(this.oCxy, P.cols.length);
    this.rpR = a.i32(this.oRpR, B + 1);
    this.clR = a.i32(this.oClR, Rc.cols.length);
    this.cxr = a.f64(this.oCxr, Rc.cols.length);
    this.rpP.set(P.rowptr);
    this.clP.set(P.cols);
    this.rpR.set(Rc.rowptr);
    this.clR.set(Rc.cols);
    this.sy = new Float64Array(Nm);
    this.syy = new Float64Array(Nm);
    this.sr = new Float64Array(Nm);
    this.srr = new Float64Array(Nm);
  }

  /** The sums of one step whose x'ᵀ, Yᵀ and (RV)ᵀ (n tokens) are in the arena. */
  step(n: number): void {
    const a = this.arena;
    a.sddmm(this.xt, this.yt, n, this.oRpP, this.oClP, this.B, this.oCxy);
    a.sddmm(this.xt, this.rt, n, this.oRpR, this.oClR, this.B, this.oCxr);
    for (const [rows, s, ss] of [
      [this.yt, this.sy, this.syy],
      [this.rt, this.sr, this.srr],
    ] as const) {
      const sum = a.f64(this.oRowSum, this.Nm);
      const sq = a.f64(this.oRowSq, this.Nm);
      sum.fill(0);
      sq.fill(0);
      a.sddmm(rows, this.oOnes, n, this.oIdRp, this.oZero, this.Nm, this.oRowSum);
      a.sddmm(rows, rows, n, this.oIdRp, this.oIdCl, this.Nm, this.oRowSq);
      addInto(s, sum);
      addInto(ss, sq);
    }
  }

  save(s: AccumulatorState, p: string): void {
    // Copies: views of the arena would drag its whole buffer into a structured clone.
    s[`${p}rowptrP`] = this.rpP.slice();
    s[`${p}colsP`] = this.clP.slice();
    s[`${p}cxy`] = this.cxy.slice();
    s[`${p}rowptrR`] = this.rpR.slice();
    s[`${p}colsR`] = this.clR.slice();
    s[`${p}cxr`] = this.cxr.slice();
    s[`${p}sy`] = this.sy;
    s[`${p}syy`] = this.syy;
    s[`${p}sr`] = this.sr;
    s[`${p}srr`] = this.srr;
  }

  static load(c: CrossMoments, s: AccumulatorState, p: string): FastState {
    const arr = (k: string): Int32Array => {
      const v = s[`${p}${k}`];
      if (!(v instanceof Int32Array)) throw new EngineError(`CrossMoments: checkpoint field ${p}${k} is missing or not an Int32Array`);
      return v;
    };
    const P = { rowptr: arr('rowptrP'), cols: arr('colsP') };
    const Rc = { rowptr: arr('rowptrR'), cols: arr('colsR') };
    for (const q of [P, Rc]) {
      if (q.rowptr.length !== c.B + 1 || q.rowptr[c.B] !== q.cols.length || q.cols.some((j) => j < 0 || j >= c.Nm)) {
        throw new EngineError('CrossMoments: the checkpoint candidate lists do not fit this block');
      }
    }
    const f = new FastState(c, P, Rc);
    for (const k of ['cxy', 'cxr', 'sy', 'syy', 'sr', 'srr'] as const) copyInto(f[k], s, `${p}${k}`);
    return f;
  }
}

/** Indices with value ≥ lim, largest value first (ties: larger `then`, then lower index), at most `cap`. */
export function pick(v: Float64Array, lim: number, cap: number, then: Float64Array = v): number[] {
  // A low-correlation row may admit most of m (tens of thousands at GPT-2-small size): only values
  // ≥ the cap-th largest can be among the first `cap`, so that value is found by selection
  // first, and the comparator sort sees only those (and their ties).
  if (scratch.length < v.length) scratch = new Float64Array(v.length);
  let m = 0;
  for (let j = 0; j < v.length; j++) if (v[j]! >= lim) scratch[m++] = v[j]!;
  const thr = m > cap ? Math.max(lim, kthLargest(scratch, m, cap)) : lim;
  const idx: number[] = [];
  for (let j = 0; j < v.length; j++) if (v[j]! >= thr) idx.push(j);
  idx.sort((a, b) => v[b]! - v[a]! || then[b]! - then[a]! || a - b);
  return idx.slice(0, cap);
}

let scratch = new Float64Array(0);

/** The k-th largest of a[0..m) (1 ≤ k ≤ m; no NaN), by quickselect; reorders a. */
export function kthLargest(a: Float64Array, m: number, k: number): number {
  const t = m - k; // its index in ascending order
  let lo = 0;
  let hi = m - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const x = a[i]!;
        a[i++] = a[j]!;
        a[j--] = x;
      }
    }
    if (t <= j) hi = j;
    else if (t >= i) lo = i;
    else break;
  }
  return a[t]!;
}

function sumOf(vs: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(vs[0]!.length);
  for (const v of vs) addInto(out, v);
  return out;
}

/** Lists of columns per row as CSR (row pointers, columns). */
function csr(lists: readonly ArrayLike<number>[]): { rowptr: Int32Array; cols: Int32Array } {
  const rowptr = new Int32Array(lists.length + 1);
  lists.forEach((l, i) => (rowptr[i + 1] = rowptr[i]! + l.length));
  const cols = new Int32Array(rowptr[lists.length]!);
  lists.forEach((l, i) => cols.set(l, rowptr[i]!));
  return { rowptr, cols };
}
