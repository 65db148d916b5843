// Over 700 lines, not yet split: exact mode, fast mode, result packing and the rotation generator
// share the CrossMoments state. The seams are dense (exact), fast (screen + SDDMM), result
// packing and the rotation generator (rng); the split is issue #18's remaining step, to be made in
// one change on its own so that the bit-identity tests (blocked, fast, rotations) guard it.
/**
 * Cross-model correlation moments: the reference model a (models[0]) against one other model m,
 * on post-activations of kept tokens (method.md, "Correlation across models").
 *
 * Design (measured in bench/analysis.ts; figures in BENCHMARKS.md, "Correlation analysis"):
 * - S_xy is one fp32 GEMM per step (ORT/MLAS, Gemm transA=1 on [tokens × N] as the activations
 *   come) into an fp32 partial updated in place, added into the float64 total before it would
 *   cover more than `chunkTokens` tokens (small batches do not pay an N_a×N_m float64 pass each).
 * - The reference block is shifted by its first token's values (x' = x − x_0; Pearson is
 *   shift-invariant) in one JS pass shared by all pairs of a batch, which also sums Σx', Σx'² in
 *   float64: a constant reference neuron has Σx'² = 0 exactly. m's side is not shifted (a pass
 *   over Y per pair costs ~15% of the step): Σy comes from a ReduceSum in the same ORT run, Σy²
 *   from the Gram diagonal, and zero variance is decided by a relative threshold (Y_REL).
 * - The baseline needs no second pass. Per layer l of m we keep C_l = Σ y_l y_lᵀ as the upper
 *   block triangle of the Gram matrix (a SYRK made of `gramSplit` GEMMs, (s+1)/2s of the flops;
 *   its diagonal is Σy²). At the end, with Σ_l = C_l − s_l s_lᵀ/n and Cov = S_xy − S_x S_yᵀ/n in
 *   float64: cov(x_i, (RV)_k) = (Cov_l·R_lᵀ)_ik and var((RV)_k) = r_k Σ_l r_kᵀ — the method's
 *   S_xy·R_lᵀ and r_kᵀC_l r_k − (r_k·S_y)²/n, centred first. R_l·Σ_l runs as float64 GEMMs on
 *   ORT (2·L·d³, once per pair). Cov_l·R_lᵀ (2·B·N_m·d per block: 8.3 TFLOP per pair at
 *   GPT-2-small size, whatever the token count) runs as one fp32 GEMM whose proven error bound
 *   rules out all but a handful of entries per row; those get their float64 dot (`screenRefine`).
 *   Only the maximum is kept, so the result is the float64 finish's up to its dots' summation
 *   order (|Δ baseline| ≤ 2.4e-15 measured), at the cost of an fp32 GEMM (`baselineFinish`).
 * - Zero variance gives ρ = 0 (never NaN); ρ is clamped to [−1, 1].
 * - Blocks: `block: [start, end)` restricts the reference side to those columns; memory is about
 *   12·(end−start)·N_m bytes (float64 total + fp32 partial), plus m's Gram matrices (12·L·d²
 *   bytes with the fp32 partials). Every output element is computed by the same arithmetic as
 *   without blocks. The Gram matters only through two N_m-vectors (Σy² and each rotated neuron's
 *   variance, `YMoments`), so one block of a pair can export them (`exportY`) and the pair's other
 *   blocks take them (`yMoments`) and hold no Gram at all: a blocked run's memory is the block.
 * - Fast mode (`mode: 'fast'`): all-pairs moments on a screen — batches given to `screen()`
 *   beforehand (the pipeline: every k-th batch of the budget), or else the first `screenTokens`
 *   kept tokens — then for every reference neuron only its candidate partners and rotated neurons
 *   are accumulated over the counted tokens. screen() batches go round-robin into `subScreens`
 *   (3) interleaved sub-screens, each Σx'y an fp32 sum updated in place by the GEMM (3 of them are
 *   the memory of one float64 total and its partial). A partner is a candidate when its screened ρ
 *   is within `margin` (0.05) of the best of any sub-screen, or within max(margin, z·√2·σ_i,
 *   0.125·(1 − best²)) of the pooled screen's best, σ_i the row's sampling error from the
 *   sub-screens' spread (z = 3), the last term for rare-token correlations no screen sample holds;
 *   rotated neurons within max(baselineMargin, z·√2·σ_i) on the pooled screen; at most 256 each.
 *   (A single 32k-token screen with a fixed 0.05 margin missed partners of low-correlation
 *   neurons whose rivals were within its noise: BENCHMARKS.md.) Per step ORT writes x'ᵀ, yᵀ and
 *   the rotated R_l·y_lᵀ (R prepacked in the graph; 2·d² flops per token and layer, as much as one
 *   Gram) into a WebAssembly arena, and a SIMD kernel takes the candidates' dot products. The
 *   baseline cannot reuse S_xy·Rᵀ here — that needs all of S_xy — so rotating the activations is
 *   the price; it is 1/L of the dense product. Reported numbers are exact sums over all counted tokens; only the set
 *   searched for each maximum comes from the screen. A prefix screen of a corpus that drifts
 *   (source after source) misses partners: give `screen()` a sample spread over the corpus. A
 *   neuron constant on the screen keeps every candidate.
 */
import { EngineError, throwIfCancelled, type CancellationSignal } from '../errors';
import { reclaim } from './blocking';
import { Gemm, gramLayout, GramLayout, SddmmArena } from './gemm';
import type { RotationCache } from './rotations';
import type { Accumulator, AccumulatorState, ActivationBatch, StateValue } from './types';

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

const STATE_KIND = 'CrossMoments';
const STATE_VERSION = 1;

/** Default kept tokens of a prefix screen. */
const SCREEN_TOKENS = 65536;
/** Default sub-screens of a screen fed through screen(). */
const SUB_SCREENS = 3;
/** Default cap on candidates per neuron and kind. */
const MAX_CANDIDATES = 256;
/** Default z of the pooled screen's noise margin. */
const NOISE_Z = 3;
/** Default c of the pooled screen's low-correlation margin c·(1 − best²). */
const LOW_CORR_MARGIN = 0.125;
/** Partners per row whose spread across sub-screens estimates the row's sampling error. */
const TOP_SPREAD = 16;
/** Fast mode's arena (the transposed activations of one step) stays under this many bytes. */
const FAST_ARENA_BYTES = 64 * 1024 * 1024;

/**
 * The reference side of one step, shared by every CrossMoments of the run: x' = x − k_x for the
 * block's columns, contiguous, and float64 Σx', Σx'². Keyed by the batch's keptPost array (and
 * index), so the pairs of one batch do this pass once.
 */
interface RefStep {
  kx: Float32Array;
  xs: Float32Array;
  sx: Float64Array;
  sxx: Float64Array;
}

const refSteps = new WeakMap<Float32Array, Map<string, RefStep>>();

function refStep(batch: number, x: Float32Array, Na: number, a0: number, a1: number, t0: number, t1: number, kx: Float32Array): RefStep {
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
  // holds the whole corpus: pipeline.ts) would otherwise hold every block's shifted copy.
  const block = `${batch}:${a0}:${a1}:`;
  for (const k of m.keys()) if (!k.startsWith(block)) m.delete(k);
  m.set(key, step);
  return step;
}

/** Σ x', Σ x'² (float64) of the reference block over some tokens, and their count. */
class XStats {
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
const Y_REL = 1e-4;

/** 1/sqrt(Σ(v−v̄)²) from sums over n tokens; 0 when the variance is not above rel·Σv². */
function invStd(s: ArrayLike<number>, ss: ArrayLike<number>, n: number, rel = 0): Float64Array {
  const out = new Float64Array(s.length);
  if (!(n > 1)) return out;
  for (let i = 0; i < s.length; i++) {
    if (ss[i] === 0) continue;
    const q = ss[i]! - (s[i]! * s[i]!) / n;
    if (q > rel * ss[i]!) out[i] = 1 / Math.sqrt(q);
  }
  return out;
}

/**
 * Streaming cross moments of one model pair (see the file comment). `add()` takes the contract's
 * ActivationBatch (models[0].keptPost vs models[model].keptPost).
 */
export class CrossMoments implements Accumulator<CrossMomentsResult> {
  readonly a0: number;
  readonly a1: number;
  /** Reference columns handled. */
  readonly B: number;
  /** Neurons of the reference model (the width of its keptPost rows). */
  readonly Na: number;
  /** Neurons of m. */
  readonly Nm: number;
  readonly L: number;
  readonly d: number;
  readonly chunk: number;
  readonly mode: 'exact' | 'fast';
  private readonly layout: GramLayout;
  private readonly gemm: Gemm;
  private readonly ownGemm: boolean;
  private finished = false;
  /** The finish's cancel signal: checked per chunk of its loops (every ~100 ms at GPT-2-small size). */
  private signal: CancellationSignal | undefined;
  /** After an exact finish: the (reference, rotated) neuron pairs whose ρ the baseline refined in float64. */
  refined = 0;

  /** The reference block's shift: its first token's values. */
  private kx?: Float32Array;
  /** x statistics over every counted token (every add() token). */
  readonly xs: XStats;
  /** Dense products: all tokens (exact), or the screening tokens (fast; dropped once screened). */
  private dense?: DenseMoments;
  /** Fast mode: screen() was fed, so the screen is not part of the counted tokens. */
  private screened = false;
  /** Fast mode, after the screen. */
  private fast?: FastState;

  constructor(readonly opts: CrossMomentsOptions) {
    const { ref, other } = opts;
    for (const [what, s] of [
      ['reference', ref],
      ['other', other],
    ] as const) {
      if (!Number.isSafeInteger(s.nLayers) || s.nLayers < 1 || !Number.isSafeInteger(s.dMlp) || s.dMlp < 1) {
        throw new EngineError(`CrossMoments: the ${what} model's shape ${s.nLayers}×${s.dMlp} is not positive`);
      }
    }
    if (!Number.isSafeInteger(opts.model) || opts.model < 1) throw new EngineError(`CrossMoments: model index ${opts.model} must be 1 or more`);
    if (!Number.isInteger(opts.seed) || opts.seed < 0 || opts.seed >= 2 ** 32) {
      throw new EngineError(`CrossMoments: seed ${opts.seed} must be an integer in [0, 2^32)`);
    }
    this.Na = ref.nLayers * ref.dMlp;
    const [a0, a1] = opts.block ?? [0, this.Na];
    if (!Number.isSafeInteger(a0) || !Number.isSafeInteger(a1) || a0 < 0 || a1 > this.Na || a0 >= a1) {
      throw new EngineError(`CrossMoments: block [${a0}, ${a1}) is not a non-empty range of the reference's ${this.Na} neurons`);
    }
    this.a0 = a0;
    this.a1 = a1;
    this.B = a1 - a0;
    this.L = other.nLayers;
    this.d = other.dMlp;
    this.Nm = this.L * this.d;
    this.chunk = opts.chunkTokens ?? CHUNK_TOKENS;
    if (!Number.isSafeInteger(this.chunk) || this.chunk < 1) throw new EngineError(`CrossMoments: chunkTokens ${this.chunk} must be a positive integer`);
    this.layout = gramLayout(this.L, this.d, opts.gramSplit ?? (this.d % 2 === 0 ? 2 : 1));
    this.mode = opts.mode ?? 'exact';
    if (this.mode !== 'exact' && this.mode !== 'fast') throw new EngineError(`CrossMoments: unknown mode ${String(this.mode)}`);
    const f = opts.fast ?? {};
    for (const m of [f.margin, f.baselineMargin]) if (m !== undefined && !(m >= 0)) throw new EngineError(`CrossMoments: fast margin ${m} must be ≥ 0`);
    if (f.maxCandidates !== undefined && !(Number.isSafeInteger(f.maxCandidates) && f.maxCandidates >= 1)) {
      throw new EngineError(`CrossMoments: fast maxCandidates ${f.maxCandidates} must be a positive integer`);
    }
    if (f.screenTokens !== undefined && !(Number.isSafeInteger(f.screenTokens) && f.screenTokens >= 1)) {
      throw new EngineError(`CrossMoments: fast screenTokens ${f.screenTokens} must be a positive integer`);
    }
    if (f.noiseZ !== undefined && !(f.noiseZ >= 0)) throw new EngineError(`CrossMoments: fast noiseZ ${f.noiseZ} must be ≥ 0`);
    if (f.lowCorrMargin !== undefined && !(f.lowCorrMargin >= 0)) throw new EngineError(`CrossMoments: fast lowCorrMargin ${f.lowCorrMargin} must be ≥ 0`);
    if (f.subScreens !== undefined && !(Number.isSafeInteger(f.subScreens) && f.subScreens >= 1 && f.subScreens <= 64)) {
      throw new EngineError(`CrossMoments: fast subScreens ${f.subScreens} must be an integer in [1, 64]`);
    }
    if (opts.yMoments && this.mode !== 'exact') throw new EngineError('CrossMoments: yMoments (a block without its own Gram) needs exact mode');
    this.ownGemm = !opts.gemm;
    this.gemm = opts.gemm ?? new Gemm({ threads: opts.threads });
    this.xs = new XStats(this.B);
    // Fast mode allocates on the first add() or screen(): a screen holds sub-screen sums instead.
    if (this.mode === 'exact') this.dense = new DenseMoments(this.B, this.Nm, this.layout, !opts.yMoments);
  }

  private get screenTokens(): number {
    return this.opts.fast?.screenTokens ?? SCREEN_TOKENS;
  }

  private get subScreens(): number {
    return this.opts.fast?.subScreens ?? SUB_SCREENS;
  }

  /** Fast mode's dense moments: a counted prefix (float64 totals), or a screen (sub-screen sums). */
  private denseFor(screen: boolean): DenseMoments {
    this.dense ??= new DenseMoments(this.B, this.Nm, this.layout, true, screen ? this.subScreens : 0);
    return this.dense;
  }

  /** Accumulates the batch's kept tokens. Await it before the next call. */
  async add(batch: ActivationBatch): Promise<void> {
    const { x, y, t } = this.operands(batch);
    const b = batch.batchIndex;
    if (this.mode === 'exact') {
      await this.addDense(b, x, y, 0, t, true);
      return;
    }
    let t0 = 0;
    if (!this.fast) {
      if (!this.screened) {
        // Prefix screen: these tokens are counted and their dense products kept.
        this.denseFor(false);
        const take = Math.min(t, Math.max(0, this.screenTokens - this.xs.n));
        if (take > 0) await this.addDense(b, x, y, 0, take, true);
        t0 = take;
        // Candidates only once tokens beyond the screen arrive: a run that fits in the screen
        // finishes from the dense products, i.e. exactly.
        if (t0 >= t) return;
      }
      this.fast = await this.startFast();
    }
    await this.addFast(this.fast, b, x, y, t0, t);
  }

  /**
   * Fast mode: feeds a screening sample, not counted in the results. Feed every sample batch
   * before the first add(); then every add() batch is counted (the whole corpus, sample included).
   */
  async screen(batch: ActivationBatch): Promise<void> {
    if (this.mode !== 'fast') throw new EngineError('CrossMoments: screen() is for fast mode');
    if (this.xs.n > 0 || this.fast) throw new EngineError('CrossMoments: screen() after add()');
    const { x, y, t } = this.operands(batch);
    this.screened = true;
    const D = this.denseFor(true);
    const part = D.screenCalls++ % D.subs.length;
    await this.addDense(batch.batchIndex, x, y, 0, t, false, part);
  }

  private operands(batch: ActivationBatch): { x: Float32Array; y: Float32Array; t: number } {
    if (this.finished) throw new EngineError('CrossMoments: add() after finish()');
    const m = batch.models[this.opts.model];
    const a = batch.models[0];
    if (!a || !m) throw new EngineError(`CrossMoments: the batch has ${batch.models.length} models; model ${this.opts.model} is missing`);
    const t = batch.nKept;
    if (a.keptPost.length !== t * this.Na) throw new EngineError(`CrossMoments: reference keptPost has ${a.keptPost.length} values, expected ${t}×${this.Na}`);
    if (m.keptPost.length !== t * this.Nm) {
      throw new EngineError(`CrossMoments: model ${this.opts.model} keptPost has ${m.keptPost.length} values, expected ${t}×${this.Nm}`);
    }
    if (t > 0 && !this.kx) this.kx = a.keptPost.slice(this.a0, this.a1);
    return { x: a.keptPost, y: m.keptPost, t };
  }

  /** Token ranges of at most `max` tokens, balanced, covering [t0, t1). */
  private static steps(t0: number, t1: number, max: number): [number, number][] {
    const t = t1 - t0;
    const k = Math.ceil(t / max);
    const out: [number, number][] = [];
    for (let s = 0; s < k; s++) out.push([t0 + Math.floor((s * t) / k), t0 + Math.floor(((s + 1) * t) / k)]);
    return out.filter(([a, b]) => b > a);
  }

  /** `part`: the sub-screen (screen mode), whose fp32 sum the GEMM updates in place. */
  private async addDense(batch: number, x: Float32Array, y: Float32Array, t0: number, t1: number, counted: boolean, part = -1): Promise<void> {
    const D = this.dense!;
    const sub = part >= 0 ? D.subs[part]! : undefined;
    for (const [s0, s1] of CrossMoments.steps(t0, t1, this.chunk)) {
      const n = s1 - s0;
      if (D.partialTokens + n > this.chunk) D.flush();
      const r = refStep(batch, x, this.Na, this.a0, this.a1, s0, s1, this.kx!);
      const ys = y.subarray(s0 * this.Nm, s1 * this.Nm);
      const sy = await this.gemm.crossStep({
        x: r.xs,
        y: ys,
        t: n,
        a: this.B,
        b: this.Nm,
        xy: sub ? sub.xy : D.p32,
        ...(D.withGram ? { gram: { layout: this.layout, parts: D.gp32 } } : {}),
      });
      addInto(D.syAcc, sy);
      D.partialTokens += n;
      D.xs.add(r, n);
      if (sub) {
        addInto(sub.sy, sy);
        sumSquares(sub.syy, ys, n, this.Nm);
        sub.xs.add(r, n);
      }
      if (counted) this.xs.add(r, n);
    }
  }

  // ---- fast mode -------------------------------------------------------------------------

  private rotations(): Float64Array[] {
    return Array.from({ length: this.L }, (_, l) => this.rotation(l, new Float64Array(this.d * this.d)));
  }

  /** R_l into `out`, from the run's cache of drawn matrices when there is one. */
  private rotation(l: number, out: Float64Array): Float64Array {
    const c = this.opts.rotations;
    return c ? c.get(this.opts.seed, l, this.d, out) : rotationMatrix(this.opts.seed, l, this.d, out);
  }

  /** Picks the candidates from the screen and sets up the candidate totals. */
  private async startFast(): Promise<FastState> {
    const D = this.dense!;
    D.finalize();
    const { B, Nm, L, d } = this;
    const margin = this.opts.fast?.margin ?? 0.05;
    const bMargin = this.opts.fast?.baselineMargin ?? 0.05;
    const cap = this.opts.fast?.maxCandidates ?? MAX_CANDIDATES;
    const n = D.xs.n;
    const ix = invStd(D.xs.sx, D.xs.sxx, n);
    const sy = D.sy();
    const subs = D.subs;
    // The pooled screen's Σy² from the sub-screens' float64 sums (the Gram diagonal went through fp32 partials).
    const syy = subs.length ? sumOf(subs.map((u) => u.syy)) : D.syy();
    const iy = invStd(sy, syy, n, Y_REL);
    // Sub-screens with tokens: their own statistics (tokens over which x is constant are skipped per row).
    const parts = subs
      .filter((u) => u.xs.n > 1)
      .map((u) => ({ u, ix: invStd(u.xs.sx, u.xs.sxx, u.xs.n), iy: invStd(u.sy, u.syy, u.xs.n, Y_REL) }));
    // Partners: j is a candidate when its screened ρ is within `margin` of the best of any
    // sub-screen, or within m_i of the pooled screen's best, m_i = max(margin, z·√2·σ_i,
    // c·(1 − best²)) with σ_i the pooled ρ's sampling error estimated from the sub-screens (the
    // spread of the row's top TOP_SPREAD partners' ρ across them, over √K). Score: the largest (ρ − best)/margin over the
    // screens, ≥ −1 for a candidate; best score first, then pooled ρ, at most `cap`.
    const z = this.opts.fast?.noiseZ ?? NOISE_Z;
    // Only with sub-screens (screen()): a prefix screen keeps its plain margin.
    const low = subs.length ? (this.opts.fast?.lowCorrMargin ?? LOW_CORR_MARGIN) : 0;
    const candP: number[][] = [];
    const row = new Float64Array(Nm);
    const score = new Float64Array(Nm);
    const rks = parts.map(() => new Float64Array(Nm));
    const pooled = new Float64Array(subs.length ? Nm : 0);
    /** z·√2·σ_i per reference neuron (0 without sub-screens): the rotated neurons' margin widens to it too. */
    const noise = new Float64Array(B);
    for (let i = 0; i < B; i++) {
      if (ix[i] === 0) {
        // Constant on the screen: nothing to rank by, so every neuron stays a candidate.
        candP.push([...Array(Nm).keys()]);
        continue;
      }
      let sxy: ArrayLike<number> = D.sxy.subarray(i * Nm, (i + 1) * Nm);
      if (subs.length) {
        pooled.fill(0);
        for (const u of subs) addInto(pooled, u.xy.subarray(i * Nm, (i + 1) * Nm));
        sxy = pooled;
      }
      const best = corrRow(row, sxy, D.xs.sx[i]!, sy, n, ix[i]!, iy);
      const live = parts.flatMap((q, k) => (q.ix[i] === 0 ? [] : [{ rk: rks[k]!, bk: corrRow(rks[k]!, q.u.xy.subarray(i * Nm, (i + 1) * Nm), q.u.xs.sx[i]!, q.u.sy, q.u.xs.n, q.ix[i]!, q.iy) }]));
      noise[i] = z * Math.SQRT2 * spread(row, live.map((q) => q.rk));
      const mi = margin > 0 ? Math.max(margin, noise[i]!, low * (1 - best * best)) : 0;
      for (let j = 0; j < Nm; j++) score[j] = mi > 0 ? (row[j]! - best) / mi : row[j]! - best;
      for (const { rk, bk } of live) {
        for (let j = 0; j < Nm; j++) {
          const v = margin > 0 ? (rk[j]! - bk) / margin : rk[j]! - bk;
          if (v > score[j]!) score[j] = v;
        }
      }
      candP.push(pick(score, margin > 0 ? -1 : 0, cap, row));
    }
    if (subs.length) D.pool();
    // Rotated neurons: the same on the pooled screen's baseline correlations, the margin widened to
    // the row's noise estimate as for partners (the sub-screens hold no Gram), two passes over the layers
    // (row maxima, then candidates) so that no B×N_m matrix is held.
    const Rs = this.rotations();
    const R = (l: number): Float64Array => Rs[l]!;
    const ym = await this.gramMoments(D, n, R);
    const best = new Float64Array(B).fill(-Infinity);
    await this.rotatedCorr(D, n, R, ix, ym, (_l, i0, rows, rho) => {
      for (let r = 0; r < rows; r++) for (let k = 0; k < d; k++) if (rho[r * d + k]! > best[i0 + r]!) best[i0 + r] = rho[r * d + k]!;
    });
    const candR: number[][] = Array.from({ length: B }, () => []);
    const vals: number[][] = Array.from({ length: B }, () => []);
    await this.rotatedCorr(D, n, R, ix, ym, (l, i0, rows, rho) => {
      for (let r = 0; r < rows; r++) {
        const i = i0 + r;
        const lim = ix[i] === 0 ? -Infinity : best[i]! - (bMargin > 0 ? Math.max(bMargin, noise[i]!) : 0);
        for (let k = 0; k < d; k++) {
          if (rho[r * d + k]! >= lim) {
            candR[i]!.push(l * d + k);
            vals[i]!.push(rho[r * d + k]!);
          }
        }
      }
    });
    for (let i = 0; i < B; i++) {
      if (ix[i] === 0) continue; // every rotated neuron, as for partners
      const order = [...candR[i]!.keys()].sort((p, q) => vals[i]![q]! - vals[i]![p]! || candR[i]![p]! - candR[i]![q]!);
      candR[i] = order.slice(0, cap).map((o) => candR[i]![o]!);
    }
    const f = new FastState(this, csr(candP), csr(candR));
    if (!this.screened) {
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
        const RC = await this.gemm.abt64(r, D.gram.subarray(l * d * d, (l + 1) * d * d), d, d, d);
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
    this.dense = undefined;
    return f;
  }

  private async addFast(f: FastState, batch: number, x: Float32Array, y: Float32Array, t0: number, t1: number): Promise<void> {
    const { B, Nm } = this;
    for (const [s0, s1] of CrossMoments.steps(t0, t1, f.tc)) {
      const n = s1 - s0;
      const r = refStep(batch, x, this.Na, this.a0, this.a1, s0, s1, this.kx!);
      await this.gemm.fastStep({
        x: r.xs,
        y: y.subarray(s0 * Nm, s1 * Nm),
        t: n,
        a: B,
        b: Nm,
        rot: { layers: this.L, d: this.d, R: f.R32, key: String(this.opts.seed) },
        xt: f.stage.xt.subarray(0, B * n),
        yt: f.stage.yt.subarray(0, Nm * n),
        rt: f.stage.rt.subarray(0, Nm * n),
      });
      // Into the shared arena, where the kernel's threads read them.
      f.arena.f32(f.xt, B * n).set(f.stage.xt.subarray(0, B * n));
      f.arena.f32(f.yt, Nm * n).set(f.stage.yt.subarray(0, Nm * n));
      f.arena.f32(f.rt, Nm * n).set(f.stage.rt.subarray(0, Nm * n));
      this.xs.add(r, n);
      f.step(n);
    }
  }

  // ---- resume ----------------------------------------------------------------------------

  /**
   * Everything needed to resume. Arrays are live views of this accumulator (persist them before
   * the next add()), except fast mode's candidate arrays, which are copies.
   */
  state(): AccumulatorState {
    const s: AccumulatorState = {
      kind: STATE_KIND,
      version: STATE_VERSION,
      header: this.header(),
      screened: this.screened ? 1 : 0,
      phase: this.fast ? 'candidates' : 'dense',
    };
    if (this.kx) s.kx = this.kx;
    this.xs.save(s, '');
    if (this.dense) this.dense.save(s, 'dense.');
    if (this.fast) this.fast.save(s, 'fast.');
    return s;
  }

  private header(): number[] {
    const f = this.opts.fast ?? {};
    return [
      this.opts.model,
      this.opts.ref.nLayers,
      this.opts.ref.dMlp,
      this.L,
      this.d,
      this.a0,
      this.a1,
      this.chunk,
      this.layout.split,
      this.opts.seed,
      this.mode === 'fast' ? 1 : 0,
      ...(this.mode === 'fast' ? [this.screenTokens, f.margin ?? 0.05, f.baselineMargin ?? 0.05, f.maxCandidates ?? MAX_CANDIDATES, this.subScreens, f.noiseZ ?? NOISE_Z, f.lowCorrMargin ?? LOW_CORR_MARGIN] : []),
      // Appended, so that checkpoints of unblocked runs keep their header.
      ...(this.opts.yMoments ? [1] : []),
    ];
  }

  /** Continues exactly where `state()` left off; `opts` must be the options the state was made with. */
  static restore(state: AccumulatorState, opts: CrossMomentsOptions): CrossMoments {
    const c = new CrossMoments(opts);
    if (state.kind !== STATE_KIND || state.version !== STATE_VERSION) {
      throw new EngineError(`CrossMoments: the checkpoint holds ${String(state.kind)} v${String(state.version)}, not ${STATE_KIND} v${STATE_VERSION}`);
    }
    const h = state.header;
    const want = c.header();
    if (!Array.isArray(h) || h.length !== want.length || h.some((v, i) => v !== want[i])) {
      throw new EngineError(`CrossMoments: the checkpoint was made with other settings (${JSON.stringify(h)} vs ${JSON.stringify(want)})`);
    }
    c.screened = num(state, 'screened') === 1;
    if (state.kx !== undefined) {
      c.kx = new Float32Array(c.B);
      copyInto(c.kx, state, 'kx');
    }
    c.xs.load(state, '');
    if (state.phase === 'candidates') {
      c.dense = undefined;
      c.fast = FastState.load(c, state, 'fast.');
    } else if (state.phase === 'dense') {
      // Fast mode allocates its dense moments with the first add() or screen().
      if (c.mode === 'fast' && state['dense.partialTokens'] !== undefined) c.denseFor(c.screened);
      c.dense?.load(state, 'dense.');
    } else {
      throw new EngineError(`CrossMoments: checkpoint phase ${String(state.phase)} is unknown`);
    }
    return c;
  }

  // ---- results ---------------------------------------------------------------------------

  async finish(signal?: CancellationSignal): Promise<CrossMomentsResult> {
    if (this.finished) throw new EngineError('CrossMoments: finish() called twice');
    this.finished = true;
    this.signal = signal;
    try {
      if (this.fast) return this.finishFast(this.fast);
      if (this.screened) {
        // Fast mode, screened, but no add(): nothing was counted.
        return this.result(new Float64Array(this.B), new Int32Array(this.B).fill(-1), new Float64Array(this.B), new Int32Array(this.B).fill(-1));
      }
      // Exact mode, or fast mode whose whole run fit in the prefix screen: the dense products are exact.
      return await this.finishExact(this.dense ?? this.denseFor(false));
    } finally {
      if (this.ownGemm) await this.gemm.release();
    }
  }

  private result(maxCorr: Float64Array, partner: Int32Array, baseline: Float64Array, baselinePartner: Int32Array): CrossMomentsResult {
    return { refStart: this.a0, n: this.xs.n, seed: this.opts.seed, mode: this.mode, maxCorr, partner, baseline, baselinePartner };
  }

  private async finishExact(D: DenseMoments): Promise<CrossMomentsResult> {
    D.finalize();
    const { B, Nm } = this;
    const n = this.xs.n;
    const sx = this.xs.sx;
    const ix = invStd(sx, this.xs.sxx, n);
    const sy = D.sy();
    // One layer's R_l at a time, drawn again where used (into one buffer: each caller is done
    // with layer l before it asks for l + 1): all of them are 8·L·d² bytes (0.9 GB at
    // GPT-2-small size), drawing one is a fraction of a second.
    const Rbuf = new Float64Array(this.d * this.d);
    const R = (l: number): Float64Array => this.rotation(l, Rbuf);
    const ym = this.opts.yMoments ? this.sharedY(n) : await this.gramMoments(D, n, R);
    D.releaseGram();
    if (this.bigFinish()) await reclaim();
    const iy = invStd(sy, ym.syy, n, Y_REL);
    const my = new Float64Array(Nm);
    for (let j = 0; j < Nm; j++) my[j] = n > 0 ? sy[j]! / n : 0;
    const maxCorr = new Float64Array(B);
    const partner = new Int32Array(B).fill(-1);
    const sxy = D.sxy;
    for (let i = 0; i < B; i++) {
      if ((i & 63) === 0) throwIfCancelled(this.signal);
      if (ix[i] === 0) continue;
      const row = i * Nm;
      const sxi = sx[i]!;
      const ixi = ix[i]!;
      let best = -Infinity;
      let arg = -1;
      for (let j = 0; j < Nm; j++) {
        const r = clampCorr((sxy[row + j]! - sxi * my[j]!) * ixi * iy[j]!);
        if (r > best) {
          best = r;
          arg = j;
        }
      }
      maxCorr[i] = best;
      partner[i] = arg;
    }
    const baseline = new Float64Array(B).fill(-Infinity);
    const baselinePartner = new Int32Array(B).fill(-1);
    const d = this.d;
    if (this.opts.baselineFinish === 'float64') {
      await this.rotatedCorr(D, n, R, ix, ym, (l, i0, rows, rho) => {
        for (let r = 0; r < rows; r++) {
          const i = i0 + r;
          for (let k = 0; k < d; k++) {
            if (rho[r * d + k]! > baseline[i]!) {
              baseline[i] = rho[r * d + k]!;
              baselinePartner[i] = l * d + k;
            }
          }
        }
      });
    } else {
      this.refined = await this.rotatedMax(D, n, R, ix, ym, baseline, baselinePartner);
    }
    for (let i = 0; i < B; i++) {
      if (ix[i] === 0) {
        baseline[i] = 0;
        baselinePartner[i] = -1;
      }
    }
    const res = this.result(maxCorr, partner, baseline, baselinePartner);
    if (this.opts.exportY) res.y = ym;
    return res;
  }

  /** A layer's arrays at the end reach 64 MB (GPT-2-small size, not the tiny family): collect as they go. */
  private bigFinish(): boolean {
    return 8 * Math.max(this.B, this.d) * this.d >= 64 * 2 ** 20;
  }

  /** The `yMoments` of another block, checked to be of the same tokens and rotations. */
  private sharedY(n: number): YMoments {
    const y = this.opts.yMoments!();
    if (y.n !== n || y.seed !== this.opts.seed || y.syy.length !== this.Nm || y.rotVar.length !== this.Nm) {
      throw new EngineError(`CrossMoments: the shared moments of model ${this.opts.model} are of other tokens or rotations (n ${y.n} vs ${n}, seed ${y.seed} vs ${this.opts.seed})`);
    }
    return y;
  }

  /**
   * m's moments from its finalized Gram over n tokens: Σy², and r_k Σ_l r_kᵀ with Σ_l = C_l − s sᵀ/n
   * centred in float64 and m's constant neurons zeroed (0 for every k when n ≤ 1).
   */
  private async gramMoments(D: DenseMoments, n: number, R: (layer: number) => Float64Array): Promise<YMoments> {
    const { Nm, d, L } = this;
    const sy = D.sy();
    const syy = D.syy();
    const iy = invStd(sy, syy, n, Y_REL);
    const rotVar = new Float64Array(Nm);
    const Sig = new Float64Array(d * d);
    let RSbuf: Float64Array | undefined;
    for (let l = 0; l < L && n > 1; l++) {
      const off = l * d;
      const constY = (b: number): boolean => iy[off + b] === 0;
      for (let a = 0; a < d; a++) {
        for (let b = 0; b < d; b++) {
          Sig[a * d + b] = constY(a) || constY(b) ? 0 : D.gram[l * d * d + a * d + b]! - (sy[off + a]! * sy[off + b]!) / n;
        }
      }
      throwIfCancelled(this.signal);
      const Rl = R(l);
      const step = rowsPerGemm(d);
      RSbuf ??= new Float64Array(Math.min(step, d) * d);
      for (let k0 = 0; k0 < d; k0 += step) {
        throwIfCancelled(this.signal);
        const rows = Math.min(step, d - k0);
        const RS = await this.gemm.abt64(Rl.subarray(k0 * d, (k0 + rows) * d), Sig, rows, d, d, RSbuf.subarray(0, rows * d)); // R·Σᵀ = R·Σ
        for (let r = 0; r < rows; r++) {
          let v = 0;
          for (let b = 0; b < d; b++) v += RS[r * d + b]! * Rl[(k0 + r) * d + b]!;
          rotVar[off + k0 + r] = v;
        }
      }
      if (this.bigFinish()) await reclaim();
    }
    return { n, seed: this.opts.seed, syy, rotVar };
  }

  /**
   * ρ(x_i, (R_l V_l)_k) for every reference neuron of the block and every rotated neuron, one
   * layer and at most `rowsPerGemm(d)` reference neurons at a time (rows × d, handed to `visit`
   * with the first row's index), from finalized dense moments over n tokens and m's moments `ym`:
   * Cov_l·R_lᵀ over sqrt(var x_i · r_k Σ_l r_kᵀ), with Cov centred in float64 and constant
   * neurons of m zeroed.
   */
  private async rotatedCorr(
    D: DenseMoments,
    n: number,
    R: (layer: number) => Float64Array,
    ix: Float64Array,
    ym: YMoments,
    visit: (layer: number, i0: number, rows: number, rho: Float64Array) => void,
  ): Promise<void> {
    const { B, Nm, d, L } = this;
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
        throwIfCancelled(this.signal);
        const rows = Math.min(step, B - i0);
        for (let r = 0; r < rows; r++) {
          const i = i0 + r;
          for (let b = 0; b < d; b++) cov[r * d + b] = constY(b) ? 0 : D.sxy[i * Nm + off + b]! - (sx[i]! * sy[off + b]!) / n;
        }
        const rho = await this.gemm.abt64(cov.subarray(0, rows * d), Rl, rows, d, d, out.subarray(0, rows * d));
        for (let r = 0; r < rows; r++) for (let k = 0; k < d; k++) rho[r * d + k] = clampCorr(rho[r * d + k]! * ix[i0 + r]! * irv[k]!);
        visit(l, i0, rows, rho);
      }
      if (this.bigFinish()) await reclaim();
    }
  }

  /**
   * The exact baseline, max_k ρ(x_i, (R_l V_l)_k) and its argmax, into `best`/`arg` (−∞/−1 before),
   * with the float64 Cov_l·R_lᵀ done as an fp32 screen plus float64 refinement (`screenRefine`):
   * one layer and `rowsPerGemm32(d)` reference neurons at a time. Returns how many (i, k) were
   * refined in float64.
   */
  private async rotatedMax(
    D: DenseMoments,
    n: number,
    R: (layer: number) => Float64Array,
    ix: Float64Array,
    ym: YMoments,
    best: Float64Array,
    arg: Int32Array,
  ): Promise<number> {
    const { B, Nm, d, L } = this;
    const sx = D.xs.sx;
    const sy = D.sy();
    const iy = invStd(sy, ym.syy, n, Y_REL);
    const step = Math.min(B, rowsPerGemm32(d));
    const cov = new Float64Array(step * d);
    const cov32 = new Float32Array(step * d);
    const out32 = new Float32Array(step * d);
    const R32 = new Float32Array(d * d);
    const sumSq = new Float64Array(step);
    // This layer's Σy and constant-neuron flags, contiguous: the loop below runs B·N_m times.
    const syl = new Float64Array(d);
    const cy = new Uint8Array(d);
    const sxy = D.sxy;
    let refined = 0;
    for (let l = 0; l < L; l++) {
      const off = l * d;
      for (let b = 0; b < d; b++) {
        syl[b] = sy[off + b]!;
        cy[b] = iy[off + b] === 0 ? 1 : 0;
      }
      const Rl = R(l);
      R32.set(Rl);
      const rNorm = maxRowNorm(Rl, d);
      const irv = new Float64Array(d);
      for (let k = 0; k < d; k++) if (ym.rotVar[off + k]! > 0) irv[k] = 1 / Math.sqrt(ym.rotVar[off + k]!);
      for (let i0 = 0; i0 < B; i0 += step) {
        throwIfCancelled(this.signal);
        const rows = Math.min(step, B - i0);
        // The centred covariances in float64, their fp32 copy for the screen and their squared
        // norms, in one pass (screenRefine's own first pass, done here).
        for (let r = 0; r < rows; r++) {
          const src = (i0 + r) * Nm + off;
          const dst = r * d;
          const sxi = sx[i0 + r]!;
          let q = 0;
          for (let b = 0; b < d; b++) {
            const v = cy[b] ? 0 : sxy[src + b]! - (sxi * syl[b]!) / n;
            cov[dst + b] = v;
            cov32[dst + b] = v;
            q += v * v;
          }
          sumSq[r] = q;
        }
        refined += await screenRefine(this.gemm, {
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
        });
      }
      if (this.bigFinish()) await reclaim();
    }
    return refined;
  }

  private finishFast(f: FastState): CrossMomentsResult {
    const { B } = this;
    const n = this.xs.n;
    const sx = this.xs.sx;
    const ix = invStd(sx, this.xs.sxx, n);
    const iy = invStd(f.sy, f.syy, n, Y_REL);
    const irv = invStd(f.sr, f.srr, n, Y_REL);
    const maxCorr = new Float64Array(B);
    const partner = new Int32Array(B).fill(-1);
    const baseline = new Float64Array(B);
    const baselinePartner = new Int32Array(B).fill(-1);
    for (let i = 0; i < B; i++) {
      if ((i & 255) === 0) throwIfCancelled(this.signal);
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
    return this.result(maxCorr, partner, baseline, baselinePartner);
  }

  /** Fast mode: the candidate pairs in total after the screen (null before). */
  candidates(): { partners: number; rotated: number } | null {
    return this.fast ? { partners: this.fast.rpP[this.B]!, rotated: this.fast.rpR[this.B]! } : null;
  }
}

/** Indices with value ≥ lim, largest value first (ties: larger `then`, then lower index), at most `cap`. */
function pick(v: Float64Array, lim: number, cap: number, then: Float64Array = v): number[] {
  const idx: number[] = [];
  for (let j = 0; j < v.length; j++) if (v[j]! >= lim) idx.push(j);
  idx.sort((a, b) => v[b]! - v[a]! || then[b]! - then[a]! || a - b);
  return idx.slice(0, cap);
}

/** One reference neuron's ρ with every neuron of m from sums over n tokens (`out`); returns the maximum. */
function corrRow(out: Float64Array, sxy: ArrayLike<number>, sx: number, sy: Float64Array, n: number, ix: number, iy: Float64Array): number {
  let best = -Infinity;
  for (let j = 0; j < out.length; j++) {
    out[j] = clampCorr((sxy[j]! - (sx * sy[j]!) / n) * ix * iy[j]!);
    if (out[j]! > best) best = out[j]!;
  }
  return best;
}

/** Adds Σ y² of t rows of width w (fp32 values, float64 sums) into `dst`. */
function sumSquares(dst: Float64Array, y: Float32Array, t: number, w: number): void {
  for (let r = 0; r < t; r++) {
    const o = r * w;
    for (let j = 0; j < w; j++) dst[j]! += y[o + j]! * y[o + j]!;
  }
}

/**
 * The sampling error of a pooled ρ row from K ≥ 2 sub-screen rows: for the pooled row's
 * TOP_SPREAD largest entries, the sample variance across sub-screens, averaged, over K; its square
 * root. 0 with fewer than 2 sub-screens.
 */
function spread(pooled: Float64Array, subs: readonly Float64Array[]): number {
  const K = subs.length;
  if (K < 2) return 0;
  const top = pick(pooled, -Infinity, TOP_SPREAD);
  let v = 0;
  for (const j of top) {
    let s1 = 0;
    let s2 = 0;
    for (const r of subs) {
      s1 += r[j]!;
      s2 += r[j]! * r[j]!;
    }
    v += Math.max(0, s2 - (s1 * s1) / K) / (K - 1);
  }
  return Math.sqrt(v / top.length / K);
}

function sumOf(vs: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(vs[0]!.length);
  for (const v of vs) addInto(out, v);
  return out;
}

/** Lists of columns per row as CSR (row pointers, columns). */
function csr(lists: number[][]): { rowptr: Int32Array; cols: Int32Array } {
  const rowptr = new Int32Array(lists.length + 1);
  lists.forEach((l, i) => (rowptr[i + 1] = rowptr[i]! + l.length));
  const cols = new Int32Array(rowptr[lists.length]!);
  lists.forEach((l, i) => cols.set(l, rowptr[i]!));
  return { rowptr, cols };
}

/** One sub-screen of a fast-mode screen: Σ x'y in fp32 (updated in place by the GEMM), Σy, Σy², x's sums. */
interface SubScreen {
  xy: Float32Array;
  sy: Float64Array;
  syy: Float64Array;
  xs: XStats;
}

/**
 * Dense products over some tokens: `sxy` is Σ x'y (block × N_m; x' shifted), `syAcc` Σ y, and
 * `gram` m's within-layer Σ y_l y_lᵀ (diagonal: Σ y²). A fast-mode screen keeps Σ x'y per
 * sub-screen instead (`subs`), pooled into `sxy` (fp32) by `pool()` once candidates are drawn.
 */
class DenseMoments {
  /**
   * Float64 totals, B × N_m, allocated at the first flush; a run whose tokens all fit in one
   * partial never flushes and finishes from the partial itself (`finalize`): the same values,
   * without the 8·B·N_m bytes (a third of a GPT-2-small-size block at 1,024 tokens, where
   * the planner makes blocks 3× as wide). A screen: empty, then the pooled fp32 sums.
   */
  sxy: Float64Array | Float32Array;
  /** The float64 totals exist (a flush happened, or a checkpoint held them). */
  private totals = false;
  readonly subs: SubScreen[];
  /** screen() calls so far: the next batch goes to sub-screen screenCalls mod subs.length. */
  screenCalls = 0;
  /** Σ y, float64 (added every step). */
  readonly syAcc: Float64Array;
  /** L × d × d; the upper block triangle accumulates, `finalize` fills the rest. */
  gram: Float64Array;
  /** fp32 partials since the last flush, updated in place by the GEMMs; released by `finalize`. */
  p32: Float32Array;
  gp32: Float32Array[];
  partialTokens = 0;
  /** x statistics of exactly these tokens. */
  readonly xs: XStats;
  private final = false;

  constructor(
    readonly B: number,
    readonly Nm: number,
    readonly layout: GramLayout,
    /** False: m's moments come from another block (`yMoments`), and no Gram is held. */
    readonly withGram: boolean,
    /** A screen of this many sub-screens (0: float64 totals). */
    subs = 0,
  ) {
    this.subs = Array.from({ length: subs }, () => ({ xy: new Float32Array(B * Nm), sy: new Float64Array(Nm), syy: new Float64Array(Nm), xs: new XStats(B) }));
    this.sxy = new Float64Array(0);
    this.syAcc = new Float64Array(Nm);
    this.p32 = new Float32Array(subs ? 0 : B * Nm);
    this.gram = new Float64Array(withGram ? layout.groups * layout.width * layout.width : 0);
    this.gp32 = withGram ? layout.blocks.map((b) => new Float32Array(b.rows * b.cols)) : [];
    this.xs = new XStats(B);
  }

  /** Adds the fp32 partials into the float64 totals and zeroes them. */
  flush(): void {
    if (this.partialTokens === 0) return;
    if (!this.totals && this.subs.length === 0) {
      this.sxy = new Float64Array(this.B * this.Nm);
      this.totals = true;
    }
    addInto(this.sxy, this.p32);
    this.p32.fill(0);
    this.flushGram();
    this.partialTokens = 0;
  }

  private flushGram(): void {
    const w = this.layout.width;
    this.gp32.forEach((part, bi) => {
      const blk = this.layout.blocks[bi]!;
      const base = blk.group * w * w;
      for (let r = 0; r < blk.rows; r++) {
        const dst = base + (blk.r0 + r) * w + blk.c0;
        const src = r * blk.cols;
        for (let c = 0; c < blk.cols; c++) this.gram[dst + c]! += part[src + c]!;
      }
      part.fill(0);
    });
  }

  /** A screen's sub-screen sums into one (fp32, in place of the first), for the baseline's candidates. */
  pool(): void {
    const [first, ...rest] = this.subs;
    if (!first) return;
    for (const u of rest) for (let e = 0; e < first.xy.length; e++) first.xy[e]! += u.xy[e]!;
    this.sxy = first.xy;
    this.subs.length = 0;
  }

  /** Flushes and makes the Gram matrices symmetric (upper onto lower); no add() after this. */
  finalize(): void {
    if (this.final) return;
    if (!this.totals && this.subs.length === 0) {
      // Never flushed: the partial is the total. A flush would have added it to +0, which turns
      // −0 into +0; so does this pass, so that results stay bit-identical to a flushed run.
      const p = this.p32;
      for (let e = 0; e < p.length; e++) if (p[e] === 0) p[e] = 0;
      this.sxy = p;
      this.flushGram();
      this.partialTokens = 0;
    } else {
      this.flush();
    }
    const w = this.layout.width;
    for (let g = 0; g < this.layout.groups && this.withGram; g++) {
      const base = g * w * w;
      for (let a = 0; a < w; a++) for (let b = a + 1; b < w; b++) this.gram[base + b * w + a] = this.gram[base + a * w + b]!;
    }
    // Nothing is added after this, and at GPT-2-small size they are a third of a block's memory.
    this.p32 = new Float32Array(0);
    this.gp32 = [];
    this.final = true;
  }

  /** After m's moments are taken from it: the Gram is the largest array of a pair's first block. */
  releaseGram(): void {
    this.gram = new Float64Array(0);
  }

  /** Σ y. */
  sy(): Float64Array {
    return this.syAcc;
  }

  /** Σ y² (the Gram diagonals; after flush). */
  syy(): Float64Array {
    const w = this.layout.width;
    const out = new Float64Array(this.Nm);
    for (let j = 0; j < this.Nm; j++) {
      const g = Math.floor(j / w);
      const a = j - g * w;
      out[j] = this.gram[g * w * w + a * w + a]!;
    }
    return out;
  }

  save(s: AccumulatorState, p: string): void {
    s[`${p}partialTokens`] = this.partialTokens;
    s[`${p}sxy`] = this.sxy;
    s[`${p}sy`] = this.syAcc;
    s[`${p}p32`] = this.p32;
    s[`${p}gram`] = this.gram;
    this.gp32.forEach((g, i) => (s[`${p}gp32.${i}`] = g));
    this.xs.save(s, `${p}x.`);
    if (this.subs.length) s[`${p}screenCalls`] = this.screenCalls;
    this.subs.forEach((u, k) => {
      s[`${p}sub${k}.xy`] = u.xy;
      s[`${p}sub${k}.sy`] = u.sy;
      s[`${p}sub${k}.syy`] = u.syy;
      u.xs.save(s, `${p}sub${k}.x.`);
    });
  }

  load(s: AccumulatorState, p: string): void {
    this.partialTokens = num(s, `${p}partialTokens`);
    // Checkpoints of older runs hold the float64 totals even when empty of flushes.
    const saved = s[`${p}sxy`];
    if (this.subs.length === 0 && saved && typeof saved === 'object' && saved.length > 0) {
      this.sxy = new Float64Array(this.B * this.Nm);
      this.totals = true;
    }
    copyInto(this.sxy, s, `${p}sxy`);
    copyInto(this.syAcc, s, `${p}sy`);
    copyInto(this.p32, s, `${p}p32`);
    copyInto(this.gram, s, `${p}gram`);
    this.gp32.forEach((g, i) => copyInto(g, s, `${p}gp32.${i}`));
    this.xs.load(s, `${p}x.`);
    if (this.subs.length) this.screenCalls = num(s, `${p}screenCalls`);
    this.subs.forEach((u, k) => {
      copyInto(u.xy, s, `${p}sub${k}.xy`);
      copyInto(u.sy, s, `${p}sub${k}.sy`);
      copyInto(u.syy, s, `${p}sub${k}.syy`);
      u.xs.load(s, `${p}sub${k}.x.`);
    });
  }
}

/**
 * Fast mode after the screen: candidate lists (CSR) and their float64 totals, m's and the rotated
 * neurons' sums, and the arena where each step's transposed activations land.
 */
class FastState {
  readonly arena = new SddmmArena();
  /** Tokens per step (bounded by the arena size). */
  readonly tc: number;
  readonly R32: Float32Array[];
  /** Where ORT writes each step's x'ᵀ, Yᵀ and (RV)ᵀ (it cannot write into the shared arena). */
  readonly stage: { xt: Float32Array; yt: Float32Array; rt: Float32Array };
  private readonly B: number;
  private readonly Nm: number;
  // Byte offsets in the arena.
  readonly xt: number;
  readonly yt: number;
  readonly rt: number;
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
    this.tc = Math.max(16, Math.min(c.chunk, Math.floor(FAST_ARENA_BYTES / (4 * (B + 2 * Nm)))));
    this.R32 = Array.from({ length: c.L }, (_, l) => Float32Array.from(rotationMatrix(c.opts.seed, l, c.d)));
    this.stage = { xt: new Float32Array(B * this.tc), yt: new Float32Array(Nm * this.tc), rt: new Float32Array(Nm * this.tc) };
    const a = this.arena;
    this.xt = a.alloc(4 * B * this.tc);
    this.yt = a.alloc(4 * Nm * this.tc);
    this.rt = a.alloc(4 * Nm * this.tc);
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

/**
 * Joins the results of reference blocks (any order) into one over all N reference neurons.
 * Refuses gaps, overlaps and blocks of different runs (token count, seed or mode).
 */
export function mergeBlocks(parts: readonly CrossMomentsResult[], N: number): CrossMomentsResult {
  if (parts.length === 0) throw new EngineError('mergeBlocks: no blocks');
  const sorted = [...parts].sort((a, b) => a.refStart - b.refStart);
  const first = sorted[0]!;
  const out: CrossMomentsResult = {
    refStart: 0,
    n: first.n,
    seed: first.seed,
    mode: first.mode,
    maxCorr: new Float64Array(N),
    partner: new Int32Array(N),
    baseline: new Float64Array(N),
    baselinePartner: new Int32Array(N),
  };
  let next = 0;
  for (const p of sorted) {
    if (p.n !== first.n || p.seed !== first.seed || p.mode !== first.mode) {
      throw new EngineError(`mergeBlocks: block at ${p.refStart} comes from another run (n ${p.n}, seed ${p.seed}, ${p.mode})`);
    }
    if (p.refStart !== next) throw new EngineError(`mergeBlocks: blocks leave a gap or overlap at reference neuron ${Math.min(p.refStart, next)}`);
    out.maxCorr.set(p.maxCorr, next);
    out.partner.set(p.partner, next);
    out.baseline.set(p.baseline, next);
    out.baselinePartner.set(p.baselinePartner, next);
    next += p.maxCorr.length;
  }
  if (next !== N) throw new EngineError(`mergeBlocks: blocks cover ${next} of ${N} reference neurons`);
  return out;
}

/**
 * A result as checkpoint state, for a blocked run that finishes some blocks before others stream
 * (see `unpackResult`).
 */
export function packResult(r: CrossMomentsResult): AccumulatorState {
  const s: AccumulatorState = {
    kind: 'CrossMomentsResult',
    refStart: r.refStart,
    n: r.n,
    seed: r.seed,
    mode: r.mode,
    maxCorr: r.maxCorr,
    partner: r.partner,
    baseline: r.baseline,
    baselinePartner: r.baselinePartner,
  };
  if (r.y) {
    s['y.n'] = r.y.n;
    s['y.seed'] = r.y.seed;
    s['y.syy'] = r.y.syy;
    s['y.rotVar'] = r.y.rotVar;
  }
  return s;
}

export function unpackResult(s: AccumulatorState): CrossMomentsResult {
  const f64 = (k: string): Float64Array => {
    const v = s[k];
    if (!(v instanceof Float64Array)) throw new EngineError(`CrossMoments: checkpoint result field ${k} is missing or not a Float64Array`);
    return v;
  };
  const i32 = (k: string): Int32Array => {
    const v = s[k];
    if (!(v instanceof Int32Array)) throw new EngineError(`CrossMoments: checkpoint result field ${k} is missing or not an Int32Array`);
    return v;
  };
  if (s.kind !== 'CrossMomentsResult' || (s.mode !== 'exact' && s.mode !== 'fast')) throw new EngineError('CrossMoments: the checkpoint holds no CrossMoments result');
  const r: CrossMomentsResult = {
    refStart: num(s, 'refStart'),
    n: num(s, 'n'),
    seed: num(s, 'seed'),
    mode: s.mode,
    maxCorr: f64('maxCorr'),
    partner: i32('partner'),
    baseline: f64('baseline'),
    baselinePartner: i32('baselinePartner'),
  };
  const B = r.maxCorr.length;
  if (r.partner.length !== B || r.baseline.length !== B || r.baselinePartner.length !== B) throw new EngineError('CrossMoments: the checkpoint result arrays differ in length');
  if (s['y.syy'] !== undefined) r.y = { n: num(s, 'y.n'), seed: num(s, 'y.seed'), syy: f64('y.syy'), rotVar: f64('y.rotVar') };
  return r;
}

// ---- small helpers -----------------------------------------------------------------------

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
function rowsPerGemm32(d: number): number {
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
  const e = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
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
  const P = await gemm.abt32(cov32, a.R32, rows, d, d, a.out32);
  const cand = new Int32Array(d);
  let refined = 0;
  for (let r = 0; r < rows; r++) {
    const xi = ix[r]!;
    if (xi === 0) continue; // a constant reference neuron: the caller sets 0
    const o = r * d;
    const er = e[r]!;
    // One pass: the largest lower bound so far (or the exact best of earlier layers) rules out
    // every entry whose upper bound is below it; what is left (a handful) is refined after.
    let thr = best[r]!;
    let lbMax = -Infinity;
    let seed = -1;
    let nc = 0;
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
    let bestR = best[r]!;
    let argR = arg[r]!;
    const refine = (k: number): void => {
      const u = (P[o + k]! * xi + er) * irv[k]!;
      // Surely not the maximum: below another entry's lower bound, or below the best so far, or
      // equal to it at a higher index.
      if (u < lbMax || u < bestR || (u <= bestR && col0 + k > argR)) return;
      let s = 0;
      for (let b = 0; b < d; b++) s += cov[o + b]! * R[k * d + b]!;
      const v = clampCorr(s * xi * irv[k]!);
      const c = col0 + k;
      if (v > bestR || (v === bestR && c < argR)) {
        bestR = v;
        argR = c;
      }
      refined++;
    };
    // The largest lower bound first: after it, few others can still win.
    if (seed >= 0) refine(seed);
    for (let q = 0; q < nc; q++) if (cand[q] !== seed) refine(cand[q]!);
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

function clampCorr(r: number): number {
  if (!(r === r)) return 0; // NaN: cannot happen with the zero-variance rules, kept as a guard
  return r > 1 ? 1 : r < -1 ? -1 : r;
}

function addInto(dst: Float64Array | Float32Array, src: ArrayLike<number>): void {
  for (let i = 0; i < dst.length; i++) dst[i]! += src[i]!;
}

function num(s: AccumulatorState, key: string): number {
  const v = s[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new EngineError(`CrossMoments: checkpoint field ${key} is missing or not a number`);
  return v;
}

function copyInto(dst: Float64Array | Float32Array | Int32Array, s: AccumulatorState, key: string): void {
  const v: StateValue | undefined = s[key];
  if (!v || typeof v === 'number' || typeof v === 'string' || v.length !== dst.length || v.constructor !== dst.constructor) {
    throw new EngineError(`CrossMoments: checkpoint field ${key} is missing or has the wrong type or length`);
  }
  dst.set(v as ArrayLike<number>);
}

// ---- the baseline's random matrices --------------------------------------------------------

const MASK64 = (1n << 64n) - 1n;

/** splitmix64 (Steele, Lea, Flood 2014): seeds xoshiro from one 64-bit key. */
function splitmix64(state: { s: bigint }): bigint {
  state.s = (state.s + 0x9e3779b97f4a7c15n) & MASK64;
  let z = state.s;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/**
 * The baseline's random matrix R_l for layer `layer` of model m: d×d, i.i.d. N(0,1) entries, each
 * row then scaled to unit length (not orthogonalised: the paper's approximate rotation).
 * Row-major float64. Reproducible from (seed, layer): splitmix64 of the key seed·2^32 + layer
 * seeds xoshiro128**; normals come in row-major pairs by Box–Muller, z0 = ρ·cos θ, z1 = ρ·sin θ
 * with ρ = sqrt(−2 ln(1 − u1)), θ = 2π·u2, u = 53-bit uniforms in [0, 1).
 */
export function rotationMatrix(seed: number, layer: number, d: number, out?: Float64Array): Float64Array {
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new EngineError(`rotation seed ${seed} must be an integer in [0, 2^32)`);
  if (!Number.isInteger(layer) || layer < 0 || layer >= 2 ** 32) throw new EngineError(`rotation layer ${layer} is not a valid index`);
  // Xoshiro128's state in locals and its steps written out (the class's next() twice per
  // uniform): the same numbers, ~5× faster than through the object — a finish draws L of these
  // (9.4M normals each at GPT-2-small size) every pass.
  const st = { s: ((BigInt(seed) << 32n) | BigInt(layer)) & MASK64 };
  const ka = splitmix64(st);
  const kb = splitmix64(st);
  let s0 = Number(ka & 0xffffffffn) | 0;
  let s1 = Number(ka >> 32n) | 0;
  let s2 = Number(kb & 0xffffffffn) | 0;
  let s3 = Number(kb >> 32n) | 0;
  let t = 0;
  let x = 0;
  if (out && out.length !== d * d) throw new EngineError(`rotationMatrix: the output has ${out.length} values, not ${d}×${d}`);
  // `out`: a buffer reused from layer to layer. A fresh 75 MB array (d = 3,072) costs more in page
  // faults on first touch (~0.3 s on the 2-core VM) than drawing its numbers.
  const R = out ?? new Float64Array(d * d);
  for (let i = 0; i < R.length; i += 2) {
    // u1: 27 high bits of one output, 26 of the next.
    x = Math.imul(s1, 5);
    const h1 = Math.imul((x << 7) | (x >>> 25), 9) >>> 5;
    t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    x = Math.imul(s1, 5);
    const l1 = Math.imul((x << 7) | (x >>> 25), 9) >>> 6;
    t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    x = Math.imul(s1, 5);
    const h2 = Math.imul((x << 7) | (x >>> 25), 9) >>> 5;
    t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    x = Math.imul(s1, 5);
    const l2 = Math.imul((x << 7) | (x >>> 25), 9) >>> 6;
    t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    const rho = Math.sqrt(-2 * Math.log(1 - (h1 * 67108864 + l1) / 9007199254740992));
    const theta = 2 * Math.PI * ((h2 * 67108864 + l2) / 9007199254740992);
    R[i] = rho * Math.cos(theta);
    if (i + 1 < R.length) R[i + 1] = rho * Math.sin(theta);
  }
  for (let k = 0; k < d; k++) {
    let s = 0;
    for (let b = 0; b < d; b++) s += R[k * d + b]! * R[k * d + b]!;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let b = 0; b < d; b++) R[k * d + b]! *= inv;
  }
  return R;
}
