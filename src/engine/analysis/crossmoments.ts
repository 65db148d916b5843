/**
 * Cross-model correlation moments: the reference model a (models[0]) against one other model m,
 * on post-activations of kept tokens (method.md, "Correlation across models").
 *
 * This file holds the accumulator's state and its add/screen/checkpoint/finish entry points; the
 * work is in cross/: `common.ts` (the shifted reference step, x's sums, shared helpers),
 * `dense.ts` (dense products, the exact finish), `baseline.ts` (the rotated baseline from dense
 * moments: m's Gram moments, `screenRefine`), `fast.ts` (fast mode: screen, candidates, SDDMM
 * steps, its finish), `result.ts` (joining and packing results), `types.ts` (options and result).
 * The rotation matrices are drawn by `rotationMatrix` (../rng.ts).
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
 *   When one batch holds the corpus and it has fewer tokens than that GEMM costs
 *   (`keepActivations`: T·(B + d) < B·d), the screen is X̃ᵀ·(Ỹ_l·R_lᵀ) from the activations
 *   instead, under a wider bound and with the same results (cross/lowrank.ts).
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
 *   neuron constant on the screen keeps every candidate. The screen picks candidates with fp32
 *   products for the rotated neurons (its margins are ≥ 0.05; only selection depends on it).
 * - Fast mode in blocks (models of GPT-2-small size): a block may only screen
 *   (`screenCandidates`, `screenOnly`), its first exporting m's screen moments to the pair's
 *   other blocks as above; `withCandidates` then counts the joined lists of every block over the
 *   corpus in one accumulator for the whole pair (plan.ts fastBlockSpecs).
 */
import { EngineError, type CancellationSignal } from '../errors';
import { rotationMatrix } from '../rng';
import { DenseMoments, finishExact, sumSquares } from './cross/dense';
import { addInto, copyInto, num, refStep, steps, XStats } from './cross/common';
import { addFast, FastState, finishFast, LOW_CORR_MARGIN, MAX_CANDIDATES, NOISE_Z, pickCandidates, SCREEN_TOKENS, startFast, SUB_SCREENS, type Candidates } from './cross/fast';
import type { KeptActivations } from './cross/lowrank';
import { CHUNK_TOKENS, type CrossMomentsOptions, type CrossMomentsResult, type YMoments } from './cross/types';
import { Gemm, gramLayout, GramLayout } from './gemm';
import type { Accumulator, AccumulatorState, ActivationBatch } from './types';

// The accumulator's pieces live in cross/ (docs/architecture.md); its public names stay here.
export { CHUNK_TOKENS, type CrossMomentsOptions, type CrossMomentsResult, type FastOptions, type ModelShape, type YMoments } from './cross/types';
export { mergeBlocks, packResult, unpackResult } from './cross/result';
export { maxRowNorm, screenRefine } from './cross/baseline';
export { joinCandidates, type Candidates } from './cross/fast';
export { rotationMatrix } from '../rng';
export { ArrayPool } from './cross/pool';

const STATE_KIND = 'CrossMoments';
const STATE_VERSION = 1;

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
  // Read by the modules of cross/ (the class's methods, split by concern), as are `signal`,
  // `rotation()` and the fields above.
  readonly layout: GramLayout;
  readonly gemm: Gemm;
  private readonly ownGemm: boolean;
  private finished = false;
  /** The finish's cancel signal: checked per chunk of its loops (every ~100 ms at GPT-2-small size). */
  signal: CancellationSignal | undefined;
  /** After an exact finish: the (reference, rotated) neuron pairs whose ρ the baseline refined in float64. */
  refined = 0;
  /** After an exact finish: whether the baseline's screen came from the activations (cross/lowrank.ts). */
  lowRank = false;

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
  /** `keepActivations`: the one batch's activations (null once a second batch came). */
  private acts?: { x: Float32Array; y: Float32Array; t: number } | null;

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
    // Fast mode shares them only between blocks that screen alone (screenCandidates; plan.ts fastBlockSpecs).
    if (opts.yMoments && this.mode !== 'exact' && !opts.screenOnly) throw new EngineError('CrossMoments: yMoments (a block without its own Gram) needs exact mode, or a fast-mode block that only screens');
    this.ownGemm = !opts.gemm;
    this.gemm = opts.gemm ?? new Gemm({ threads: opts.threads });
    this.xs = new XStats(this.B);
    // Fast mode allocates on the first add() or screen(): a screen holds sub-screen sums instead.
    if (this.mode === 'exact') this.dense = new DenseMoments(this.B, this.Nm, this.layout, !opts.yMoments, 0, opts.pool);
  }

  get screenTokens(): number {
    return this.opts.fast?.screenTokens ?? SCREEN_TOKENS;
  }

  get subScreens(): number {
    return this.opts.fast?.subScreens ?? SUB_SCREENS;
  }

  /** Fast mode's dense moments: a counted prefix (float64 totals), or a screen (sub-screen sums). */
  private denseFor(screen: boolean): DenseMoments {
    this.dense ??= new DenseMoments(this.B, this.Nm, this.layout, !this.opts.yMoments, screen ? this.subScreens : 0, this.opts.pool);
    return this.dense;
  }

  /** Accumulates the batch's kept tokens. Await it before the next call. */
  async add(batch: ActivationBatch): Promise<void> {
    const { x, y, t } = this.operands(batch);
    const b = batch.batchIndex;
    if (this.mode === 'exact') {
      if (this.opts.keepActivations && t > 0) this.acts = this.acts === undefined ? { x, y, t } : null;
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
      this.fast = await startFast(this, this.dense!, this.screened);
      this.dense = undefined;
    }
    await addFast(this, this.fast, this.kx!, b, x, y, t0, t);
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

  /**
   * Fast mode, a block's screen alone (a blocked run at model size): the candidates its screen
   * picked, which `withCandidates` takes for the whole pair. Ends this accumulator.
   */
  async screenCandidates(): Promise<Candidates & { y?: YMoments }> {
    if (this.mode !== 'fast' || !this.screened || this.xs.n > 0 || this.fast) throw new EngineError('CrossMoments: screenCandidates() needs a fast-mode screen and nothing counted');
    if (this.finished) throw new EngineError('CrossMoments: screenCandidates() after finish()');
    this.finished = true;
    try {
      const { cand, ym } = await pickCandidates(this, this.dense!);
      this.dense = undefined;
      // m's screen moments, for the pair's other blocks (`exportY`), which then hold no Gram.
      return this.opts.exportY ? { ...cand, y: ym } : cand;
    } finally {
      if (this.ownGemm) await this.gemm.release();
    }
  }

  /**
   * Fast mode with the candidates already picked (the blocks' screens, joined): every add() is
   * counted into the candidates' totals. `opts.block` must be the rows `cand` covers.
   */
  static withCandidates(opts: CrossMomentsOptions, cand: Candidates): CrossMoments {
    const c = new CrossMoments({ ...opts, mode: 'fast' });
    if (cand.P.rowptr.length !== c.B + 1 || cand.R.rowptr.length !== c.B + 1) {
      throw new EngineError(`CrossMoments: candidate lists for ${cand.P.rowptr.length - 1} reference neurons, the block has ${c.B}`);
    }
    for (const q of [cand.P, cand.R]) {
      if (q.rowptr[c.B] !== q.cols.length || q.cols.some((j) => j < 0 || j >= c.Nm)) throw new EngineError('CrossMoments: the candidate lists do not fit this pair');
    }
    c.screened = true;
    c.fast = new FastState(c, cand.P, cand.R);
    return c;
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

  /** `part`: the sub-screen (screen mode), whose fp32 sum the GEMM updates in place. */
  private async addDense(batch: number, x: Float32Array, y: Float32Array, t0: number, t1: number, counted: boolean, part = -1): Promise<void> {
    const D = this.dense!;
    const sub = part >= 0 ? D.subs[part]! : undefined;
    for (const [s0, s1] of steps(t0, t1, this.chunk)) {
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


  /** The one batch's activations (`keepActivations`), if that is all this accumulator saw. */
  keptActivations(): KeptActivations | undefined {
    return this.acts && this.kx && this.acts.t === this.xs.n ? { ...this.acts, kx: this.kx } : undefined;
  }

  /** R_l into `out`, from the run's cache of drawn matrices when there is one. */
  rotation(l: number, out: Float64Array): Float64Array {
    const c = this.opts.rotations;
    return c ? c.get(this.opts.seed, l, this.d, out) : rotationMatrix(this.opts.seed, l, this.d, out);
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

  /** Whether the reference shift is still open (prime() sets it from the corpus' first kept token). */
  needsPrime(): boolean {
    return !this.kx;
  }

  /**
   * A batch before a token shard's first, seen only to take the shift a single run takes from the
   * corpus' first kept token: every shard then sums x' = x − k_x with the same k_x.
   */
  prime(batch: ActivationBatch): void {
    const a = batch.models[0];
    if (!this.kx && a && batch.nKept > 0 && a.keptPost.length === batch.nKept * this.Na) this.kx = a.keptPost.slice(this.a0, this.a1);
  }

  /**
   * Adds another accumulator over other tokens of the corpus (a token shard, exact mode) into
   * this one: its float64 sums (each shard flushed its fp32 partial into them at its end) and
   * counts. Equal to one accumulator fed every token up to the order of float64 additions, when
   * each shard began where a single run flushes (parts.ts chooses shard boundaries so).
   */
  mergeFrom(o: CrossMoments): void {
    if (this.mode !== 'exact' || o.mode !== 'exact') throw new EngineError('CrossMoments: only exact mode merges over tokens');
    if (this.kx && o.kx && this.kx.some((v, i) => !Object.is(v, o.kx![i]))) {
      throw new EngineError('CrossMoments: the shards shifted the reference by different first tokens (each must take the corpus\' first kept token)');
    }
    this.kx ??= o.kx;
    this.xs.sx.forEach((_, i) => {
      this.xs.sx[i]! += o.xs.sx[i]!;
      this.xs.sxx[i]! += o.xs.sxx[i]!;
    });
    this.xs.n += o.xs.n;
    this.dense!.absorb(o.dense!);
  }

  /** The options a state was written with (its header), enough to restore and merge it. */
  static optionsOf(st: AccumulatorState): CrossMomentsOptions {
    const h = st.header;
    if (!Array.isArray(h) || h.length < 11) throw new EngineError('CrossMoments: the state has no header');
    const [model, refL, refD, L, d, a0, a1, chunk, split, seed, fast] = h as number[];
    if (fast) throw new EngineError('CrossMoments: only exact mode merges over tokens');
    const shared = h.length > 11 && h[11] === 1;
    return {
      model: model!,
      ref: { nLayers: refL!, dMlp: refD! },
      other: { nLayers: L!, dMlp: d! },
      block: [a0!, a1!],
      chunkTokens: chunk!,
      gramSplit: split!,
      seed: seed!,
      mode: 'exact',
      ...(shared ? { yMoments: () => { throw new EngineError('CrossMoments: a merged state is not finished here'); } } : {}),
    };
  }

  // ---- results ---------------------------------------------------------------------------

  async finish(signal?: CancellationSignal): Promise<CrossMomentsResult> {
    if (this.finished) throw new EngineError('CrossMoments: finish() called twice');
    this.finished = true;
    this.signal = signal;
    try {
      if (this.fast) return finishFast(this, this.fast);
      if (this.screened) {
        // Fast mode, screened, but no add(): nothing was counted.
        return this.result(new Float64Array(this.B), new Int32Array(this.B).fill(-1), new Float64Array(this.B), new Int32Array(this.B).fill(-1));
      }
      // Exact mode, or fast mode whose whole run fit in the prefix screen: the dense products are exact.
      return await finishExact(this, this.dense ?? this.denseFor(false));
    } finally {
      this.acts = null;
      if (this.ownGemm) await this.gemm.release();
    }
  }

  result(maxCorr: Float64Array, partner: Int32Array, baseline: Float64Array, baselinePartner: Int32Array): CrossMomentsResult {
    return { refStart: this.a0, n: this.xs.n, seed: this.opts.seed, mode: this.mode, maxCorr, partner, baseline, baselinePartner };
  }

  /** Fast mode: the candidate pairs in total after the screen (null before). */
  candidates(): { partners: number; rotated: number } | null {
    return this.fast ? { partners: this.fast.rpP[this.B]!, rotated: this.fast.rpR[this.B]! } : null;
  }
}

/** CrossMoments states over disjoint tokens (token shards, exact mode), merged in the order given. */
export function mergeCrossStates(states: readonly AccumulatorState[]): AccumulatorState {
  if (states.length === 0) throw new EngineError('CrossMoments: no states to merge');
  const opts = CrossMoments.optionsOf(states[0]!);
  const acc = CrossMoments.restore(states[0]!, opts);
  for (const s of states.slice(1)) acc.mergeFrom(CrossMoments.restore(s, opts));
  return acc.state();
}
