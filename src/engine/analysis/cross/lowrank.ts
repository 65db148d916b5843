/**
 * The baseline's fp32 screen from the activations when the corpus has fewer tokens than a layer
 * has neurons (`screenRefine`'s step 1 by another product; its step 2 and the results unchanged).
 *
 * Why: the screen P = fl32(Cov_l)·fl32(R_l)ᵀ costs 2·B·d·N_m per block (8.35 TFLOP per pair at
 * GPT-2-small size, whatever the token count: most of a 1,024-token run). But Cov_l = X̃ᵀ·Ỹ_l
 * (centred activations) has rank ≤ T, so Cov_l·R_lᵀ = X̃ᵀ·(Ỹ_l·R_lᵀ): with Z_lᵀ = R_l·Ỹ_lᵀ
 * (2·T·d² per layer) the block's screen is X̃ᵀ·Z_l, 2·B·T·N_m. It pays when T·(B + d) < B·d:
 * at 1,024 tokens, 2.78 + 0.23 TFLOP per pair instead of 8.35. It needs the activations at the
 * finish, which a run holds anyway when one batch is the whole corpus (RunContext.forwards).
 *
 * The screen only decides which entries get their float64 dot c_r·R_k (c_r the stored float64
 * covariances, as always); so the results stay the float64 finish's, bit for bit the same as
 * the Cov-product screen's, provided the bound below holds for every entry. P is further from
 * c_r·R_k here, because c_r came from fp32 sums of the uncentred products:
 * - stored vs exact: c_rb = S_rb − sx_r·sy_b/n with S = Σ_t x'_tr·y_tb an fp32 GEMM over T tokens
 *   and sy an fp32 sum (ReduceSum), so |c_rb − Σ_t x̃_tr·ỹ_tb| ≤ (2γ_T + ε₆₄)·‖x'_r‖·‖y_b‖
 *   (|sx_r|/n·Σ_t|y_tb| ≤ ‖x'_r‖·‖y_b‖ by Cauchy–Schwarz, n = T); summed against R_k,
 *   ≤ (2γ_T + ε₆₄)·‖x'_r‖·‖Y_l‖_F·‖R_k‖;
 * - the screen: ỹ, x̃ and R rounded to fp32, Z an fp32 sum over d, P an fp32 sum over T:
 *   |P_rk − Σ_t x̃_tr·z_tk| ≤ G₂·‖x̃_r‖·‖Ỹ_l‖_F·‖R_k‖, G₂ = γ_{T+2} + γ_{d+3} + γ_{T+2}·γ_{d+3};
 * - the refined dot's own float64 error, γ₆₄(d)·‖c_r‖·‖R_k‖, as `screenRefine`'s bound has it;
 * plus terms for flushed subnormals and the float64 roundings of the scalings. m's constant
 * neurons are zero in c and in Ỹ alike. γ_k = k·2⁻²⁴/(1 − k·2⁻²⁴).
 */
import type { CrossMoments } from '../crossmoments';
import type { DenseMoments } from './dense';

const U32 = 2 ** -24;
const U64 = 2 ** -53;
const gamma = (k: number, u: number): number => (k * u) / (1 - k * u);

/** The kept activations of the one batch a block saw (CrossMoments.keptActivations). */
export interface KeptActivations {
  /** Reference keptPost [T × N_a] and m's [T × N_m], as the stream read them. */
  x: Float32Array;
  y: Float32Array;
  t: number;
  /** The reference block's shift (x' = fl32(x − kx), as refStep computes it). */
  kx: Float32Array;
}

/** Whether the low-rank screen costs less than the Cov-product screen: T·(B + d) < B·d. */
export function lowRankPays(T: number, B: number, d: number): boolean {
  return T > 0 && T * (B + d) < B * d;
}

export class LowRankScreen {
  /** X̃ᵀ: the block's centred shifted activations, [B × T] fp32. */
  private readonly xt: Float32Array;
  /** ‖x̃_r‖₂ and ‖x'_r‖₂ per row (float64). */
  private readonly xn: Float64Array;
  private readonly xpn: Float64Array;
  /** Layer l's Ỹ_l [T × d] and Z_lᵀ = R_l·Ỹ_lᵀ [d × T], fp32. */
  private readonly yl: Float32Array;
  private readonly zt: Float32Array;
  /** Layer l's ‖Ỹ_l‖_F and ‖Y_l‖_F (float64). */
  private fc = 0;
  private fu = 0;

  private constructor(
    private readonly c: CrossMoments,
    private readonly acts: KeptActivations,
    private readonly n: number,
  ) {
    const { B, d } = c;
    const T = acts.t;
    this.xt = new Float32Array(B * T);
    this.xn = new Float64Array(B);
    this.xpn = new Float64Array(B);
    this.yl = new Float32Array(T * d);
    this.zt = new Float32Array(d * T);
  }

  /**
   * The screen for this block's finish, or undefined when it does not apply: no activations kept
   * (more than one batch), they are not the counted tokens (a resumed state), or it costs more.
   */
  static for(c: CrossMoments, D: DenseMoments, n: number): LowRankScreen | undefined {
    const acts = c.keptActivations();
    if (!acts || acts.t !== n || D.xs.n !== n || !lowRankPays(n, c.B, c.d)) return undefined;
    const s = new LowRankScreen(c, acts, n);
    s.centreX(D);
    return s;
  }

  /** X̃ᵀ from the same x' the stream summed, centred by the block's Σx'/n. */
  private centreX(D: DenseMoments): void {
    const { x, t: T, kx } = this.acts;
    const { B, Na, a0 } = this.c;
    const n = this.n;
    const mu = new Float64Array(B);
    for (let i = 0; i < B; i++) mu[i] = D.xs.sx[i]! / n;
    const ss = new Float64Array(B);
    for (let t = 0; t < T; t++) {
      const src = t * Na + a0;
      for (let i = 0; i < B; i++) {
        const v = Math.fround(x[src + i]! - kx[i]!) - mu[i]!;
        this.xt[i * T + t] = v;
        ss[i]! += v * v;
      }
    }
    for (let i = 0; i < B; i++) {
      this.xn[i] = Math.sqrt(ss[i]!);
      this.xpn[i] = Math.sqrt(D.xs.sxx[i]!);
    }
  }

  /**
   * Layer l: Ỹ_l = Y_l − Σy/n with m's constant neurons (iy = 0) zeroed, its norms, and
   * Z_lᵀ = fl32(R_l)·Ỹ_lᵀ.
   */
  async layer(l: number, R32: Float32Array, sy: Float64Array, iy: Float64Array): Promise<void> {
    const { d, Nm } = this.c;
    const { y, t: T } = this.acts;
    const off = l * d;
    const nu = new Float64Array(d);
    const live = new Uint8Array(d);
    for (let b = 0; b < d; b++) {
      nu[b] = sy[off + b]! / this.n;
      live[b] = iy[off + b] === 0 ? 0 : 1;
    }
    let fc = 0;
    let fu = 0;
    for (let t = 0; t < T; t++) {
      const src = t * Nm + off;
      const dst = t * d;
      for (let b = 0; b < d; b++) {
        const v = y[src + b]!;
        fu += v * v;
        const w = live[b] ? v - nu[b]! : 0;
        this.yl[dst + b] = w;
        fc += w * w;
      }
    }
    this.fc = Math.sqrt(fc);
    this.fu = Math.sqrt(fu);
    await this.c.gemm.abt32(R32, this.yl, d, d, T, this.zt);
  }

  /** P = X̃ᵀ·Z_l for rows [i0, i0 + rows) of the block: rows × d into `out`. */
  product(i0: number, rows: number, out: Float32Array): Promise<Float32Array> {
    const T = this.acts.t;
    return this.c.gemm.abt32(this.xt.subarray(i0 * T, (i0 + rows) * T), this.zt, rows, T, this.c.d, out);
  }

  /**
   * Per row, e_r such that the float64 ρ of every rotated neuron k lies in
   * [(P·ix − e_r)·irv_k, (P·ix + e_r)·irv_k] (the file comment's terms): what `screenRefine`'s
   * scan takes. `sumSq` holds Σ_b c_rb² of the stored covariances; `rNorm` ≥ max_k ‖R_k‖.
   */
  bounds(i0: number, rows: number, sumSq: Float64Array, rNorm: number, ix: Float64Array, e: Float64Array): void {
    const T = this.acts.t;
    const d = this.c.d;
    const gT = gamma(T + 2, U32);
    const gd = gamma(d + 3, U32);
    // 1 + 1e-6 covers the float64 rounding of the norms and of the factors themselves.
    const G2 = (gT + gd + gT * gd) * (1 + 1e-6);
    const GS = (2 * gamma(T, U32) + (4 * T + 2 * d + 16) * U64) * (1 + 1e-6);
    const g64 = gamma(d, U64) * (1 + 1e-6);
    for (let r = 0; r < rows; r++) {
      const A = this.xn[i0 + r]! * (1 + 1e-9);
      const X = this.xpn[i0 + r]! * (1 + 1e-9);
      const C = Math.sqrt(sumSq[r]!) * (1 + 1e-9);
      // Flushed subnormals: at most 2⁻¹²⁶ per fp32 operation, in S, sy, Z and P.
      const under = 2 ** -120 * (T + d + Math.sqrt(T) * A * d + Math.sqrt(d) * rNorm * T * (1 + X));
      const E = rNorm * (G2 * A * this.fc + GS * X * this.fu + g64 * C) + under;
      const M = 1.01 * rNorm * Math.max(C, A * this.fc * (1 + G2)) + under;
      e[r] = (E + 2 ** -45 * M) * ix[i0 + r]! * (1 + 2 ** -30);
    }
  }
}
