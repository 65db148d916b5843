/**
 * The rotated-neuron baseline from dense moments (crossmoments.ts, "The baseline needs no second
 * pass"): m's Gram moments (Σy², each rotated neuron's variance), ρ against the rotated neurons
 * as float64 GEMMs, and the exact maximum by an fp32 screen plus float64 refinement
 * (`screenRefine`). Used by the exact finish (dense.ts) and by fast mode's candidates (fast.ts).
 */
import { throwIfCancelled } from '../../errors';
import { reclaim } from '../blocking';
import type { CrossMoments } from '../crossmoments';
import type { Gemm } from '../gemm';
import { clampCorr, invStd, Y_REL } from './common';
import { ScreenKernels } from './finishKernels';
import type { DenseMoments } from './dense';
import { LowRankScreen } from './lowrank';
import type { YMoments } from './types';

/** A layer's arrays at the end reach 64 MB (GPT-2-small size, not the tiny family): collect as they go. */
export function bigFinish(c: CrossMoments): boolean {
  return 8 * Math.max(c.B, c.d) * c.d >= 64 * 2 ** 20;
}

/**
 * m's moments from its finalized Gram over n tokens: Σy², and r_k Σ_l r_kᵀ with Σ_l = C_l − s sᵀ/n
 * centred in float64 and m's constant neurons zeroed (0 for every k when n ≤ 1).
 */
export async function gramMoments(c: CrossMoments, D: DenseMoments, n: number, R: (layer: number) => Float64Array, f32 = false): Promise<YMoments> {
  const { Nm, d, L } = c;
  const sy = D.sy();
  const syy = D.syy();
  const iy = invStd(sy, syy, n, Y_REL);
  const rotVar = new Float64Array(Nm);
  const Sig = f32 ? new Float32Array(d * d) : new Float64Array(d * d);
  let RSbuf: Float64Array | Float32Array | undefined;
  for (let l = 0; l < L && n > 1; l++) {
    const off = l * d;
    const constY = (b: number): boolean => iy[off + b] === 0;
    for (let a = 0; a < d; a++) {
      for (let b = 0; b < d; b++) {
        Sig[a * d + b] = constY(a) || constY(b) ? 0 : D.gram[l * d * d + a * d + b]! - (sy[off + a]! * sy[off + b]!) / n;
      }
    }
    throwIfCancelled(c.signal);
    const Rl = R(l);
    const R32 = f32 ? Float32Array.from(Rl) : undefined;
    const step = rowsPerGemm(d);
    RSbuf ??= f32 ? new Float32Array(Math.min(step, d) * d) : new Float64Array(Math.min(step, d) * d);
    for (let k0 = 0; k0 < d; k0 += step) {
      throwIfCancelled(c.signal);
      const rows = Math.min(step, d - k0);
      // R·Σᵀ = R·Σ
      const RS = R32
        ? await c.gemm.abt32(R32.subarray(k0 * d, (k0 + rows) * d), Sig as Float32Array, rows, d, d, (RSbuf as Float32Array).subarray(0, rows * d))
        : await c.gemm.abt64(Rl.subarray(k0 * d, (k0 + rows) * d), Sig as Float64Array, rows, d, d, (RSbuf as Float64Array).subarray(0, rows * d));
      for (let r = 0; r < rows; r++) {
        let v = 0;
        for (let b = 0; b < d; b++) v += RS[r * d + b]! * Rl[(k0 + r) * d + b]!;
        rotVar[off + k0 + r] = v;
      }
    }
    if (bigFinish(c)) await reclaim();
  }
  return { n, seed: c.opts.seed, syy, rotVar };
}

/**
 * ρ(x_i, (R_l V_l)_k) for every reference neuron of the block and every rotated neuron, one
 * layer and at most `rowsPerGemm(d)` reference neurons at a time (rows × d, handed to `visit`
 * with the first row's index), from finalized dense moments over n tokens and m's moments `ym`:
 * Cov_l·R_lᵀ over sqrt(var x_i · r_k Σ_l r_kᵀ), with Cov centred in float64 and constant
 * neurons of m zeroed. The float64 finish (`baselineFinish: 'float64'`); fast mode's screen has
 * its fp32 version (fast.ts).
 */
export async function rotatedCorr(
  c: CrossMoments,
  D: DenseMoments,
  n: number,
  R: (layer: number) => Float64Array,
  ix: Float64Array,
  ym: YMoments,
  visit: (layer: number, i0: number, rows: number, rho: Float64Array) => void,
): Promise<void> {
  const { B, Nm, d, L } = c;
  const sx = D.xs.sx;
  const sy = D.sy();
  const iy = invStd(sy, ym.syy, n, Y_REL);
  const step = rowsPerGemm(d);
  const cov = new Float64Array(Math.min(B, step) * d);
  // ρ of one chunk, reused (`visit` is done with it before the next).
  const out = new Float64Array(Math.min(B, step) * d);
  for (let l = 0; l < L; l++) {
    const off = l * d;
    const constY = (b: number): boolean => iy[off + b] === 0;
    const Rl = R(l);
    const irv = new Float64Array(d);
    for (let k = 0; k < d; k++) if (ym.rotVar[off + k]! > 0) irv[k] = 1 / Math.sqrt(ym.rotVar[off + k]!);
    for (let i0 = 0; i0 < B; i0 += step) {
      throwIfCancelled(c.signal);
      const rows = Math.min(step, B - i0);
      for (let r = 0; r < rows; r++) {
        const i = i0 + r;
        for (let b = 0; b < d; b++) cov[r * d + b] = constY(b) ? 0 : D.sxy[i * Nm + off + b]! - (sx[i]! * sy[off + b]!) / n;
      }
      const prod = await c.gemm.abt64(cov.subarray(0, rows * d), Rl, rows, d, d, out.subarray(0, rows * d));
      const rho = out.subarray(0, rows * d);
      for (let r = 0; r < rows; r++) for (let k = 0; k < d; k++) rho[r * d + k] = clampCorr(prod[r * d + k]! * ix[i0 + r]! * irv[k]!);
      visit(l, i0, rows, rho);
    }
    if (bigFinish(c)) await reclaim();
  }
}

/**
 * The exact baseline, max_k ρ(x_i, (R_l V_l)_k) and its argmax, into `best`/`arg` (−∞/−1 before),
 * with the float64 Cov_l·R_lᵀ done as an fp32 screen plus float64 refinement (`screenRefine`):
 * one layer and `rowsPerGemm32(d)` reference neurons at a time. Returns how many (i, k) were
 * refined in float64.
 */
export async function rotatedMax(
  c: CrossMoments,
  D: DenseMoments,
  n: number,
  R: (layer: number) => Float64Array,
  ix: Float64Array,
  ym: YMoments,
  best: Float64Array,
  arg: Int32Array,
): Promise<number> {
  const { B, Nm, d, L } = c;
  const sx = D.xs.sx;
  const sy = D.sy();
  const iy = invStd(sy, ym.syy, n, Y_REL);
  const step = Math.min(B, rowsPerGemm32(d));
  // The per-element passes on the kernel pool (finishKernels.ts; the same operations). The
  // fp32 covariances are copied out of its shared memory for the GEMM (onnxruntime refuses it).
  const K = ScreenKernels.for(d, D.sxy instanceof Float64Array);
  const cov = new Float64Array(step * d);
  const cov32 = new Float32Array(step * d);
  const sumSq = new Float64Array(step);
  const out32 = new Float32Array(step * d);
  const R32 = new Float32Array(d * d);
  const sxy = D.sxy;
  // Fewer tokens than the screen's product costs: the screen from the activations (lowrank.ts).
  const low = LowRankScreen.for(c, D, n);
  const e = low ? new Float64Array(step) : undefined;
  c.lowRank = low !== undefined;
  let refined = 0;
  for (let l = 0; l < L; l++) {
    const off = l * d;
    const irv = layerInputs(K, l, d, sy, iy, ym.rotVar);
    const Rl = R(l);
    R32.set(Rl);
    const rNorm = maxRowNorm(Rl, d);
    if (low) await low.layer(l, R32, sy, iy);
    for (let i0 = 0; i0 < B; i0 += step) {
      throwIfCancelled(c.signal);
      const rows = Math.min(step, B - i0);
      // The centred covariances in float64, their fp32 copy for the screen and their squared
      // norms, in one pass (screenRefine's own first pass, done here).
      K.cov(sxy, Nm, off, i0, rows, sx, n, { cov, cov32, sumSq });
      let screen: { P: Float32Array; e: Float64Array } | undefined;
      if (low) {
        low.bounds(i0, rows, sumSq, rNorm, ix, e!);
        screen = { P: await low.product(i0, rows, out32.subarray(0, rows * d)), e: e!.subarray(0, rows) };
      }
      refined += await screenRefine(c.gemm, {
        ...(screen ? { screen } : {}),
        sumSq: sumSq.subarray(0, rows),
        rows,
        d,
        cov: cov.subarray(0, rows * d),
        cov32: cov32.subarray(0, rows * d),
        out32: out32.subarray(0, rows * d),
        R: Rl,
        R32,
        rNorm,
        ix: ix.subarray(i0, i0 + rows),
        irv,
        col0: off,
        best: best.subarray(i0, i0 + rows),
        arg: arg.subarray(i0, i0 + rows),
        kernels: K,
      });
    }
    if (bigFinish(c)) await reclaim();
  }
  return refined;
}

/**
 * Layer l's Σy and constant-neuron flags into the kernels' memory (contiguous: their loops run
 * B·N_m times), and 1/σ of the layer's rotated neurons (0 where the variance is 0).
 */
export function layerInputs(K: ScreenKernels, l: number, d: number, sy: Float64Array, iy: Float64Array, rotVar: Float64Array): Float64Array {
  const off = l * d;
  const syl = new Float64Array(d);
  const cy = new Uint8Array(d);
  for (let b = 0; b < d; b++) {
    syl[b] = sy[off + b]!;
    cy[b] = iy[off + b] === 0 ? 1 : 0;
  }
  K.setLayer(syl, cy);
  const irv = new Float64Array(d);
  for (let k = 0; k < d; k++) if (rotVar[off + k]! > 0) irv[k] = 1 / Math.sqrt(rotVar[off + k]!);
  return irv;
}

/**
 * Rows of one float64 GEMM at the end (32 MB of output): at GPT-2-small size a layer's B×d
 * product is hundreds of MB, and a dozen of them per block, each a fresh array from ORT, pushed
 * the peak over the budget before the collector caught up. Each element's sum is the same
 * whatever the row count (MLAS splits M, never K), so results do not change.
 */
function rowsPerGemm(d: number): number {
  return Math.max(1, Math.floor((4 * 1024 * 1024) / d));
}

/** Rows of one fp32 screening GEMM at the end (32 MB of fp32 output, as `rowsPerGemm`'s float64). */
export function rowsPerGemm32(d: number): number {
  return Math.max(1, Math.floor((8 * 1024 * 1024) / d));
}

/** Unit roundoff of fp32 and of float64. */
const U32 = 2 ** -24;
const U64 = 2 ** -53;

/**
 * The baseline's maximum over one layer's rotated neurons for `rows` reference neurons, without
 * the float64 GEMM. For row r and rotated neuron k, ρ_rk = (c_r·R_k)·ix_r·irv_k with c_r the
 * float64 centred covariances of x_r with the layer's d neurons (`cov`, rows × d) and R_k row k of
 * R_l (unit length).
 *
 * 1. Screen: P = fl32(c)·fl32(R)ᵀ by one fp32 GEMM. Whatever order MLAS sums in, and with the
 *    operands rounded to fp32, |P_rk − c_r·R_k| ≤ ((d+3)·u₃₂/(1 − (d+3)·u₃₂))·Σ_b|c_rb||R_kb|
 *    (+ d·2⁻¹²³ for underflow and flushed subnormals); the float64 dot below is within
 *    γ₆₄(d)·Σ|c||R| of the exact one; and Σ|c||R| ≤ ‖c_r‖₂·‖R_k‖₂ (Cauchy–Schwarz). So
 *    |P_rk·ix·irv − ρ_rk(float64)| ≤ δ_rk = e_r·irv_k, e_r = G·‖c_r‖₂·max_k‖R_k‖₂·ix_r, plus
 *    a 2⁻⁴⁵ relative term for the float64 roundings of the scalings. At d = 3,072,
 *    G ≈ 1.8e-4: the worst case; the real error is ~100× less (bench/finish.ts).
 * 2. Refine: in one pass over the row, entries whose upper bound is below the largest lower bound
 *    (or the exact best of earlier layers) are ruled out; the rest — the entry with the largest
 *    lower bound first — get their ρ as the float64 dot c_r·R_k (in JS, sequential over b),
 *    scaled and clamped as the float64 finish does, unless the best so far already rules them out.
 *
 * No entry that is skipped can be the row's maximum (or tie it at a lower index), so `best` and
 * `arg` are the maximum and first argmax of the float64 ρ over all (layer, k) — the float64
 * finish's result up to the summation order of its d-term dots (≈1e-16 relative; the fp32 screen
 * never reaches the results). Refinements are a handful per row and layer. Updates
 * `best`/`arg` (views of this block's rows) in place; returns the number of refinements.
 */
export async function screenRefine(
  gemm: Gemm,
  a: {
    rows: number;
    d: number;
    cov: Float64Array;
    cov32: Float32Array;
    out32: Float32Array;
    R: Float64Array;
    R32: Float32Array;
    /** max_k ‖R_k‖₂ (`maxRowNorm(R, d)`; computed when not given). */
    rNorm?: number;
    /** Each row's Σ_b c_rb², summed in b order, with `cov32` already filled (else both are done here). */
    sumSq?: Float64Array;
    ix: Float64Array;
    irv: Float64Array;
    /** Column of this layer's first rotated neuron (layer·d). */
    col0: number;
    best: Float64Array;
    arg: Int32Array;
    /** The screen's pass on the kernel pool (rotatedMax's); else the JS loop. */
    kernels?: ScreenKernels;
    /** P and each row's e_r made another way (lowrank.ts), under the same guarantee. */
    screen?: { P: Float32Array; e: Float64Array };
  },
): Promise<number> {
  const { rows, d, cov, cov32, R, ix, irv, col0, best, arg } = a;
  const rNorm = a.rNorm ?? maxRowNorm(R, d);
  const g32 = ((d + 3) * U32) / (1 - (d + 3) * U32);
  const g64 = (d * U64) / (1 - d * U64);
  // 1 + 1e-6 covers the float64 rounding of the norms and of G itself.
  const G = (g32 + g64) * (1 + 1e-6);
  const under = d * 2 ** -123;
  // Per row, e_r such that the float64 ρ lies in [(P·ix − e_r)·irv_k, (P·ix + e_r)·irv_k] as
  // computed in float64: the screen's bound E_r = G·‖c_r‖·max‖R_k‖ + under, plus 2⁻⁴⁵·M_r
  // (M_r ≥ |P|, |c·R_k|) for the roundings of the scalings and of the bounds themselves.
  const e = a.screen ? a.screen.e : new Float64Array(rows);
  for (let r = 0; r < rows && !a.screen; r++) {
    let s = 0;
    if (a.sumSq) {
      s = a.sumSq[r]!;
    } else {
      for (let b = 0; b < d; b++) {
        const v = cov[r * d + b]!;
        cov32[r * d + b] = v;
        s += v * v;
      }
    }
    const M = 1.01 * Math.sqrt(s) * rNorm;
    e[r] = (G * M + under + 2 ** -45 * M) * ix[r]! * (1 + 2 ** -30);
  }
  const P = a.screen ? a.screen.P : await gemm.abt32(cov32, a.R32, rows, d, d, a.out32);
  const K = a.kernels;
  // The kernel's scan of rows [at, at + K.sub), done when the loop reaches them.
  let win: (ReturnType<ScreenKernels['scan']> & { at: number; n: number }) | undefined;
  let cand: Int32Array<ArrayBufferLike> = new Int32Array(K ? 0 : d);
  let refined = 0;
  const group = new Int32Array(4);
  for (let r = 0; r < rows; r++) {
    const xi = ix[r]!;
    if (xi === 0) continue; // a constant reference neuron: the caller sets 0
    const o = r * d;
    const er = e[r]!;
    // One pass: the largest lower bound so far (or the exact best of earlier layers) rules out
    // every entry whose upper bound is below it; what is left (a handful) is refined after.
    // (screenScan in kernels/assembly/finish.ts is this loop.)
    let lbMax = -Infinity;
    let seed = -1;
    let nc = 0;
    if (K) {
      if (!win || r >= win.at + win.n) {
        const n = Math.min(K.sub, rows - r);
        win = { ...K.scan(P, r, n, ix, e, irv, best), at: r, n };
      }
      const w = r - win.at;
      lbMax = win.lbMax[w]!;
      seed = win.seed[w]!;
      nc = win.nc[w]!;
      cand = win.cand.subarray(w * d, (w + 1) * d);
    } else {
      let thr = best[r]!;
      for (let k = 0; k < d; k++) {
        const t = P[o + k]! * xi;
        const s = irv[k]!;
        const lb = (t - er) * s;
        if (lb > lbMax) {
          lbMax = lb;
          seed = k;
          if (lb > thr) thr = lb;
        }
        // Kept unless its float64 ρ is surely below another's (ties and NaN are kept).
        if (!((t + er) * s < thr)) cand[nc++] = k;
      }
    }
    let bestR = best[r]!;
    let argR = arg[r]!;
    // Surely not the maximum: below another entry's lower bound, or below the best so far, or
    // equal to it at a higher index.
    const ruledOut = (k: number): boolean => {
      const u = (P[o + k]! * xi + er) * irv[k]!;
      return u < lbMax || u < bestR || (u <= bestR && col0 + k > argR);
    };
    const take = (k: number, s: number): void => {
      const v = clampCorr(s * xi * irv[k]!);
      const c = col0 + k;
      if (v > bestR || (v === bestR && c < argR)) {
        bestR = v;
        argR = c;
      }
      refined++;
    };
    // The largest lower bound first: after it, few others can still win.
    if (seed >= 0 && !ruledOut(seed)) {
      let s = 0;
      for (let b = 0; b < d; b++) s += cov[o + b]! * R[seed * d + b]!;
      take(seed, s);
    }
    // The rest four at a time: four independent sums (each still the sequential dot, so the
    // same value), where one sum's chain of dependent additions left the core mostly idle.
    // Refining an entry that the three before it would have ruled out changes nothing: the
    // result is the maximum over a set that holds it either way.
    const g = group;
    let ng = 0;
    for (let q = 0; q <= nc; q++) {
      const k = q < nc ? cand[q]! : -1;
      if (k >= 0 && k !== seed && !ruledOut(k)) g[ng++] = k;
      if (ng === 4 || (q === nc && ng > 0)) {
        const o0 = g[0]! * d;
        const o1 = (ng > 1 ? g[1]! : g[0]!) * d;
        const o2 = (ng > 2 ? g[2]! : g[0]!) * d;
        const o3 = (ng > 3 ? g[3]! : g[0]!) * d;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        for (let b = 0; b < d; b++) {
          const cv = cov[o + b]!;
          s0 += cv * R[o0 + b]!;
          s1 += cv * R[o1 + b]!;
          s2 += cv * R[o2 + b]!;
          s3 += cv * R[o3 + b]!;
        }
        take(g[0]!, s0);
        if (ng > 1) take(g[1]!, s1);
        if (ng > 2) take(g[2]!, s2);
        if (ng > 3) take(g[3]!, s3);
        ng = 0;
      }
    }
    best[r] = bestR;
    arg[r] = argR;
  }
  return refined;
}

/** The largest Euclidean row norm of a d × d matrix (≈ 1 for a rotation matrix's unit rows). */
export function maxRowNorm(R: Float64Array, d: number): number {
  let m = 0;
  for (let k = 0; k < d; k++) {
    let s = 0;
    for (let b = 0; b < d; b++) s += R[k * d + b]! * R[k * d + b]!;
    if (s > m) m = s;
  }
  return Math.sqrt(m);
}
