/** CrossMoments' options and result (crossmoments.ts re-exports them). */
import type { Gemm } from '../gemm';
import type { RotationCache } from '../rotations';
import type { ArrayPool } from './pool';

/** Default `chunkTokens`: a pair whose kept tokens are at most this never holds float64 totals. */
export const CHUNK_TOKENS = 8192;

export interface ModelShape {
  nLayers: number;
  dMlp: number;
}

export interface FastOptions {
  /** Kept tokens of the prefix screen (ignored when `screen()` was fed). Default 65536. */
  screenTokens?: number;
  /** Partner candidates: screened ρ within this of the neuron's screened maximum. Default 0.05. */
  margin?: number;
  /** Rotated-neuron candidates, the same for the baseline. Default 0.05. */
  baselineMargin?: number;
  /** At most this many candidates per neuron and kind (partner, rotated). Default 256 (low correlations have many near ties on a small screen). */
  maxCandidates?: number;
  /**
   * screen() batches go round-robin into this many interleaved sub-screens, each summed on its own
   * (fp32, in place: 3 of them take the memory of one float64 dense total and its fp32 partial).
   * A neuron's partner candidates are the union of the pooled screen's and every sub-screen's
   * (within `margin` of that screen's best). Default 3; 1 is the pooled screen alone.
   */
  subScreens?: number;
  /**
   * The pooled screen's partner margin widens to z·√2·σ_i when that is larger than `margin`, σ_i
   * the sampling error of neuron i's screened ρ estimated from the sub-screens' spread. Default 3;
   * 0 keeps `margin`.
   */
  noiseZ?: number;
  /**
   * The pooled screen's partner margin is at least c·(1 − best²), best the row's screened maximum:
   * low correlations of sparse neurons hinge on rare tokens that a screen may not hold, beyond the
   * sub-screens' spread (on the shipped models a 66k-token screen put a true partner 0.095 below
   * the screen's best at ρ ≈ 0.3). Default 0.125; 0 turns it off.
   */
  lowCorrMargin?: number;
}

/**
 * What the baseline and the zero-variance rule need from m's Gram matrices, over the same n tokens:
 * Σy² (the diagonals) and r_k Σ_l r_kᵀ per rotated neuron (its variance times n). Both N_m long.
 */
export interface YMoments {
  n: number;
  seed: number;
  syy: Float64Array;
  rotVar: Float64Array;
}

export interface CrossMomentsOptions {
  /** Position of model m in `ActivationBatch.models` (1, 2, …; 0 is the reference). */
  model: number;
  ref: ModelShape;
  other: ModelShape;
  /** Seed of the baseline's random matrices, an integer in [0, 2^32); record it in the manifest. */
  seed: number;
  /** Reference columns [start, end) handled by this instance (default: all). */
  block?: readonly [number, number];
  /** Most tokens one fp32 partial sum covers before it goes into the float64 total (default 8192). */
  chunkTokens?: number;
  /** Row blocks of the within-layer Gram products of m (1 = full GEMM; default 2). */
  gramSplit?: number;
  mode?: 'exact' | 'fast';
  fast?: FastOptions;
  /** ORT intra-op threads (default: one per core, at most 8, as the forward pass). */
  threads?: number;
  /** A session cache shared with other accumulators; default: a private one, released by finish(). */
  gemm?: Gemm;
  /**
   * m's moments from another block of this pair over the same tokens (its result's `y`): then no
   * Gram is accumulated. Called by finish(); exact mode only.
   */
  yMoments?: () => YMoments;
  /** Fast mode: a block that only screens (screenCandidates), which may take `yMoments`. */
  screenOnly?: boolean;
  /** Put m's moments into the result (`y`), for the pair's other blocks. */
  exportY?: boolean;
  /**
   * How exact mode's baseline computes Cov_l·R_lᵀ: 'screen' (default), an fp32 GEMM whose proven
   * error bound picks the few entries that could be a row's maximum, those refined in float64
   * (`screenRefine`); 'float64', the whole product as float64 GEMMs (4× slower; kept for
   * comparison in tests and bench/finish.ts). The two agree to float64 rounding.
   */
  baselineFinish?: 'screen' | 'float64';
  /** The run's rotation matrices drawn once and read back (a blocked run's passes all need them). */
  rotations?: RotationCache;
  /** A blocked run's arrays reused from pass to pass (cross/pool.ts); default: fresh arrays. */
  pool?: ArrayPool;
  /**
   * Exact mode: hold the activations of the batch added, when it is the only one, until the
   * finish, whose baseline screen then multiplies them instead of the covariances when the
   * corpus has fewer tokens than that costs (cross/lowrank.ts). For runs whose one batch the
   * run keeps anyway (RunContext.forwards); results are the same either way.
   */
  keepActivations?: boolean;
}

export interface CrossMomentsResult {
  /** Reference columns [refStart, refStart + maxCorr.length). */
  refStart: number;
  /** Tokens counted. */
  n: number;
  seed: number;
  mode: 'exact' | 'fast';
  /** Per reference neuron: max_j ρ_ij over all neurons j of m. */
  maxCorr: Float64Array;
  /** Its argmax: column of m (layer·d_mlp + neuron); −1 when the reference neuron is constant. */
  partner: Int32Array;
  /** max_k ρ(x_i, (R V)_k) over the rotated neurons of all layers of m. */
  baseline: Float64Array;
  /** Its argmax, a rotated-neuron column (layer·d_mlp + k); −1 when none has variance. */
  baselinePartner: Int32Array;
  /** With `exportY`. */
  y?: YMoments;
}
