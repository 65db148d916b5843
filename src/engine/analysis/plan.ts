/**
 * The default analysis plan: which accumulators the pipeline feeds, in which order, and how their
 * results become the run folder's files.
 *
 * Accumulators (batch order is fixed, so resume is exact):
 *   cross:<label>  CrossMoments, reference vs each other model (post-activations, kept tokens)
 *   actstats       ActivationStats of every model (pre-activations, kept tokens)
 *   examples       TopExamples of the reference model (post-activations)
 *   layercov       LayerCovariance of the reference (post, kept tokens): the top-5 PCA share per layer
 * Finalize: weight statistics of the reference model, the universality table, then
 *   neurons.arrow   every reference neuron: the paper's columns, `universal`, partner columns
 *   universal.csv   the universal neurons in exactly the paper's schema
 *   partners.arrow  per reference neuron and other model: partner layer/neuron, corr, baseline
 *   vocab.arrow     per reference neuron: top/bottom tokens of its vocab composition
 *   actstats.arrow  activation statistics of every model (for cross-model comparisons)
 *   examples.json + examples.bin  (run/examples.ts)
 *   basis.json      per layer: the top-5 principal components' share of activation variance
 * Each file's format, writer and reader are src/engine/run/.
 */
import { threadsOf } from '../threads';
import { EngineError, throwIfCancelled } from '../errors';
import type { Column } from '../store';
import { writeExamples } from '../run/examples';
import { RUN_FILES } from '../run/files';
import { EXACT_OF, PAPER_COLUMNS, partnerColumns, writeActstats, writeNeurons, writeUniversalCsv } from '../run/neurons';
import { writePartners } from '../run/partners';
import { writeVocab } from '../run/vocab';
import { writeBasis } from '../run/basis';
import { COVARIANCE_MAX_BYTES, LayerCovariance, PCA_TOP, type LayerPca } from './layercov';
import { ActivationStats, type ActivationStatsResult } from './actstats';
import { PaperHistogram, type PaperHistogramResult } from './paperhist';
import { blockBounds } from './blocking';
import { num } from './cross/common';
import { lowRankPays } from './cross/lowrank';
import { ArrayPool, CrossMoments, joinCandidates, mergeBlocks, packResult, unpackResult, type Candidates, type CrossMomentsOptions, type CrossMomentsResult, type YMoments } from './crossmoments';
import { TopExamples, type TopExamplesResult } from './examples';
import type { Accumulator, AccumulatorSpec, AccumulatorState, AnalysisPlan, PlanContext } from './types';
import { universalityTable } from './universality';
import { FAMILY_FILES, withRoleSettings, familyChoices, familyBytes, familyCounts, familyResults, familySpec, writeUniversalFamilies, type FamilyColumns, type FamilyPlanOptions } from './familyResults';
import type { FamilyStatsResult } from './families';
import { openModelWeights, weightStats } from './weightstats';

export const RESULT_FILES = [
  RUN_FILES.neurons,
  RUN_FILES.universalCsv,
  RUN_FILES.partners,
  RUN_FILES.vocab,
  RUN_FILES.actstats,
  RUN_FILES.examplesIndex,
  RUN_FILES.examplesData,
] as const;

const PLAN_CHOICES: Record<string, string> = {
  correlation_activation: 'post-activations (hook_post), kept tokens only, as method.md',
  statistics_activation: 'pre-activations (hook_pre), kept tokens only; exact streaming moments (Pébay merge), not 256-bin histograms',
  examples: 'top contexts per reference neuron over post-activations: one per corpus row (its max over kept tokens), plus interval samples',
  weights: "weight statistics on TransformerLens-processed weights of the reference model (weightstats.ts)",
  partner: 'argmax over every neuron of every layer of the other model; ties keep the lowest column',
  baseline:
    'R_l per layer and pair: i.i.d. N(0,1) d_mlp×d_mlp, rows normalised, not orthogonalised; drawn from (the pair\'s seed, layer) by rng.ts rotationMatrix, a fresh R_l for each other model as the paper draws it (settings.rotationSeeds); computed from accumulated moments, no second pass',
  basis:
    'top-5 principal components of each layer\'s post-activation covariance (kept tokens; fp32 Gram per batch summed in float64; subspace iteration) over its trace; skipped when the covariance would exceed 512 MiB',
  zero_variance: 'a neuron constant over the counted tokens gets ρ = 0 with every partner (partner column −1)',
  correlation_precision:
    'S_xy per batch as a float32 GEMM, accumulated in float64 (mode exact). Mode fast: a screening sample of every k-th batch, ' +
    'k = max(2, floor(tokens / S)), S = 65536 for models of up to 4,096 neurons and 65536·4096/N (at least 8,192) above, ' +
    'read before the main pass, in 3 interleaved sub-screens; a neuron\'s partner candidates ' +
    'are the neurons within 0.05 of the best screened ρ of any sub-screen, or within max(0.05, 3·√2·σ, 0.125·(1 − best²)) of the ' +
    'pooled screen\'s best (σ: the sampling error of the screened ρ, from the sub-screens\' spread), at most 256; rotated-neuron ' +
    'candidates within max(0.05, 3·√2·σ) on the pooled screen, at most 256; then exact float64 sums over all tokens for the ' +
    'candidates (crossmoments.ts, cross/fast.ts). When the pairs do not fit in memory at once, each block of reference neurons ' +
    'screens in a pass of its own and one pass counts every pair\'s candidates (plan.ts fastBlockSpecs)',
};

/** Fast mode's screen: about this many tokens, every k-th batch of the budget (models up to SCREEN_FULL_NEURONS). */
export const SCREEN_TOKENS = 65536;
/** Neurons per model up to which the screen is SCREEN_TOKENS; beyond, it shrinks as 1/N. */
export const SCREEN_FULL_NEURONS = 4096;
/**
 * The smallest screen: at 8,192 tokens the screened ρ's sampling error σ ≈ 1/√8192 puts the noise
 * margin z·√2·σ (z = 3) at 0.047, inside the 0.05 base margin; fewer tokens would widen every
 * row's margin, so more candidates, for less screen.
 */
export const SCREEN_MIN_TOKENS = 8192;

/**
 * The screen's tokens for models of `nNeurons` neurons (the larger of the pair's). Its dense sums
 * cost 2·N_a·N_m per token while the candidates' cost per token grows as N: at GPT-2-small size
 * (36,864 neurons) a 65,536-token screen alone would be ~180 TFLOP per pair, over twice the whole
 * candidate pass at 100k tokens. So it shrinks as 1/N above 4,096 neurons, to 8,192 tokens.
 */
export function screenTokens(nNeurons = 0): number {
  if (nNeurons <= SCREEN_FULL_NEURONS) return SCREEN_TOKENS;
  return Math.max(SCREEN_MIN_TOKENS, Math.round((SCREEN_TOKENS * SCREEN_FULL_NEURONS) / nNeurons));
}

/** Fast mode's screening stride for a corpus of `tokens` tokens: every k-th batch, k ≥ 2. */
export function screenEvery(tokens: number, nNeurons = 0): number {
  return Math.max(2, Math.floor(tokens / screenTokens(nNeurons)));
}

export interface PlanOptions {
  /** Families and roles (issue #6); on by default. */
  families?: FamilyPlanOptions;
}

export function defaultPlan(o: PlanOptions = {}): AnalysisPlan {
  const fam = withRoleSettings(o.families ?? {});
  const families = fam.enabled !== false;
  return {
    choices: { ...PLAN_CHOICES, ...(families ? familyChoices(fam) : {}) },
    accumulators: (ctx) => {
      return [...crossSpecs(ctx), ...statsSpecs(ctx), ...(families ? [familySpec(ctx)] : [])];
    },
    statsBytes: (ctx) => {
      const o = statsOptions(ctx);
      return (
        ActivationStats.bytes(o.stats) +
        TopExamples.bytes(o.examples) +
        PaperHistogram.bytes(o.stats.nNeurons) +
        (covarianceFits(ctx) ? LayerCovariance.bytes(ctx.models[0]!) : 0) +
        (families ? familyBytes(ctx) : 0)
      );
    },
    finalize: (ctx, results) => writeResults(ctx, results, families ? fam : undefined),
  };
}

/** `base` with each accumulator spec passed through `f` (benchmarks time them, tests watch them). */
export function mapSpecs(base: AnalysisPlan, f: (s: AccumulatorSpec) => AccumulatorSpec): AnalysisPlan {
  return { ...base, accumulators: async (ctx) => (await base.accumulators(ctx)).map(f) };
}

/**
 * The cross-model correlation accumulators: reference vs each other model. With `gramBlock` and
 * `refBlock` (the memory budget, blocking.ts) each pair is cut into blocks of reference columns, one pass each;
 * the first block of a pair accumulates m's Gram and exports its moments, the others read them
 * from its result and hold none, and the last block merges the pair's blocks under the pair's name.
 */
export function crossSpecs(ctx: PlanContext): AccumulatorSpec[] {
  const ref = ctx.models[0]!;
  const s = ctx.settings;
  const widest = Math.max(...ctx.models.map((m) => m.nNeurons));
  const screen = s.mode === 'fast' ? { screen: { every: screenEvery(ctx.corpus.nRows * ctx.corpus.nPositions, widest) } } : {};
  // One batch is the whole corpus, with fewer tokens than a layer's width: the finish's baseline
  // screen multiplies the activations, which the run holds anyway (cross/lowrank.ts).
  const tokens = ctx.corpus.nRows * ctx.corpus.nPositions;
  const lowRank = (m: number, width: number): boolean => s.mode === 'exact' && ctx.corpus.nRows <= s.batchRows && lowRankPays(tokens, width, ctx.models[m]!.dMlp);
  const crossOpts = (m: number): CrossMomentsOptions => ({
    model: m,
    ref: { nLayers: ref.nLayers, dMlp: ref.dMlp },
    other: { nLayers: ctx.models[m]!.nLayers, dMlp: ctx.models[m]!.dMlp },
    // The pair's own rotations (runs made before per-pair seeds share the run's seed).
    seed: s.rotationSeeds?.[ctx.models[m]!.label] ?? s.seed,
    mode: s.mode,
    ...(s.chunkTokens ? { chunkTokens: s.chunkTokens } : {}),
    threads: threadsOf(s),
    ...(ctx.rotations ? { rotations: ctx.rotations } : {}),
  });
  const N = ref.nNeurons;
  if (!s.refBlock || !s.gramBlock) {
    return ctx.models.slice(1).map((m, i) => ({
      name: `cross:${m.label}`,
      ...screen,
      // The stream reads every model for the statistics; this narrows what the screen forwards.
      reads: { models: [0, i + 1], arrays: ['keptPost'] },
      create: () => new CrossMoments({ ...crossOpts(i + 1), ...(lowRank(i + 1, N) ? { keepActivations: true } : {}) }),
      restore: (st: AccumulatorState) => CrossMoments.restore(st, crossOpts(i + 1)),
    }));
  }
  const bounds = blockBounds(N, s.gramBlock, s.refBlock);
  const k = bounds.length;
  // One block per pass: each takes the last one's partial and Gram (page faults, not bytes:
  // the pool holds no more than one block's arrays, which the planner counts; cross/pool.ts).
  const pool = new ArrayPool();
  const last = ctx.models.length - 2;
  if (s.mode === 'fast') return fastBlockSpecs(ctx, bounds, pool, crossOpts, screen.screen!);
  return ctx.models.slice(1).flatMap((m, i) => {
    const name = (j: number): string => (j === k - 1 ? `cross:${m.label}` : `cross:${m.label}@${bounds[j]![0]}`);
    return bounds.map((block, j): AccumulatorSpec => {
      const opts = (done: ReadonlyMap<string, unknown>): CrossMomentsOptions => {
        const o: CrossMomentsOptions = { ...crossOpts(i + 1), block, pool, ...(lowRank(i + 1, block[1] - block[0]) ? { keepActivations: true } : {}) };
        if (j === 0) return k > 1 ? { ...o, exportY: true } : o;
        return {
          ...o,
          yMoments: () => {
            const y = (done.get(name(0)) as CrossMomentsResult | undefined)?.y;
            if (!y) throw new EngineError(`${name(j)}: the moments of ${name(0)} are missing`);
            return y;
          },
        };
      };
      const wrap = (c: CrossMoments, done: ReadonlyMap<string, unknown>): Accumulator<CrossMomentsResult> =>
        j < k - 1
          ? c
          : {
              add: (b) => c.add(b),
              screen: (b) => c.screen(b),
              needsPrime: () => c.needsPrime(),
              prime: (b) => c.prime(b),
              state: () => c.state(),
              finish: async (signal) => {
                const parts = Array.from({ length: k - 1 }, (_, q) => done.get(name(q)) as CrossMomentsResult);
                const r = await c.finish(signal);
                // The statistics pass after the cross passes gets the memory back.
                if (i === last) pool.clear();
                return mergeBlocks([...parts, r], N);
              },
            };
      return {
        name: name(j),
        pass: i * k + j,
        ...screen,
        reads: { models: [0, i + 1], arrays: ['keptPost'] },
        pack: (r) => packResult(r as CrossMomentsResult),
        unpack: unpackResult,
        create: (done) => wrap(new CrossMoments(opts(done)), done),
        restore: (st, done) => wrap(CrossMoments.restore(st, opts(done)), done),
      };
    });
  });
}

/**
 * Fast mode when the pairs do not fit at once (models of GPT-2-small size): what does not fit is
 * the screen's dense sums, B × N_m per sub-screen. So each block of reference neurons screens in a
 * pass of its own (the sample batches alone: a few thousand tokens), and finishes into its
 * candidate lists; then one pass streams the corpus for every pair's candidates at once, the
 * blocks' lists joined (`screen:<label>@<first>` → `cross:<label>`). Streaming the corpus once per
 * block instead would forward the reference and m, and rotate m, in every block's pass. The
 * candidates get passes of their own, as many pairs each as the planner fits, not the
 * statistics': at GPT-2-small size each pair's candidate state and rotations hold ~0.8 GB, and the
 * statistics ~2 GB (blocking.ts).
 */
function fastBlockSpecs(
  ctx: PlanContext,
  bounds: readonly [number, number][],
  pool: ArrayPool,
  crossOpts: (m: number) => CrossMomentsOptions,
  screen: { every: number },
): AccumulatorSpec[] {
  const k = bounds.length;
  const pairs = ctx.models.length - 1;
  const screenName = (label: string, j: number): string => `screen:${label}@${bounds[j]![0]}`;
  const blocks = ctx.models.slice(1).flatMap((m, i) =>
    bounds.map(
      (block, j): AccumulatorSpec => ({
        name: screenName(m.label, j),
        pass: i * k + j,
        screen,
        screenOnly: true,
        reads: { models: [0, i + 1], arrays: ['keptPost'] },
        pack: (r) => packCandidates(r as Candidates),
        unpack: unpackCandidates,
        create: (done) => {
          // The pair's first block holds m's Gram over the screen and passes m's moments on; the
          // others hold none, so they are wider (blocking.ts counts the Gram in the first only).
          const y =
            j === 0
              ? { exportY: true }
              : {
                  yMoments: () => {
                    const r = done.get(screenName(m.label, 0)) as (Candidates & { y?: YMoments }) | undefined;
                    if (!r?.y) throw new EngineError(`${screenName(m.label, j)}: the screen moments of ${screenName(m.label, 0)} are missing`);
                    return r.y;
                  },
                };
          const c = new CrossMoments({ ...crossOpts(i + 1), block, pool, screenOnly: true, ...y });
          return {
            add: () => {
              throw new EngineError(`${screenName(m.label, j)} screens only; it was given a batch to count`);
            },
            screen: (b) => c.screen(b),
            state: () => c.state(),
            finish: async () => {
              const r = await c.screenCandidates();
              // The candidates' pass gets the memory back.
              if (i === pairs - 1 && j === k - 1) pool.clear();
              return r;
            },
          };
        },
        restore: () => {
          throw new EngineError(`${screenName(m.label, j)}: a screen is not resumed part-way (its pass starts again)`);
        },
      }),
    ),
  );
  // As many pairs per candidates' pass as the planner fits (blocking.ts).
  const group = ctx.settings.candidatePairs ?? pairs;
  const candidates = ctx.models.slice(1).map(
    (m, i): AccumulatorSpec => ({
      name: `cross:${m.label}`,
      pass: pairs * k + Math.floor(i / group),
      reads: { models: [0, i + 1], arrays: ['keptPost'] },
      pack: (r) => packResult(r as CrossMomentsResult),
      unpack: unpackResult,
      create: (done) =>
        CrossMoments.withCandidates(
          crossOpts(i + 1),
          joinCandidates(
            bounds.map((_, j) => {
              const c = done.get(screenName(m.label, j)) as Candidates | undefined;
              if (!c) throw new EngineError(`cross:${m.label}: the candidates of ${screenName(m.label, j)} are missing`);
              return c;
            }),
          ),
        ),
      restore: (st) => CrossMoments.restore(st, crossOpts(i + 1)),
    }),
  );
  return [...blocks, ...candidates];
}

function packCandidates(c: Candidates & { y?: YMoments }): AccumulatorState {
  return {
    kind: 'candidates',
    rowptrP: c.P.rowptr,
    colsP: c.P.cols,
    rowptrR: c.R.rowptr,
    colsR: c.R.cols,
    ...(c.y ? { yN: c.y.n, ySeed: c.y.seed, ySyy: c.y.syy, yRotVar: c.y.rotVar } : {}),
  };
}

function unpackCandidates(st: AccumulatorState): Candidates & { y?: YMoments } {
  const arr = (k: string): Int32Array => {
    const v = st[k];
    if (!(v instanceof Int32Array)) throw new EngineError(`a screen's candidates: checkpoint field ${k} is missing or not an Int32Array`);
    return v;
  };
  if (st.kind !== 'candidates') throw new EngineError(`a screen's candidates: the checkpoint holds ${String(st.kind)}`);
  const cand = { P: { rowptr: arr('rowptrP'), cols: arr('colsP') }, R: { rowptr: arr('rowptrR'), cols: arr('colsR') } };
  if (st.yN === undefined) return cand;
  const f64 = (k: string): Float64Array => {
    const v = st[k];
    if (!(v instanceof Float64Array)) throw new EngineError(`a screen's candidates: checkpoint field ${k} is missing or not a Float64Array`);
    return v;
  };
  return { ...cand, y: { n: num(st, 'yN'), seed: num(st, 'ySeed'), syy: f64('ySyy'), rotVar: f64('yRotVar') } };
}

/** Activation statistics of every model and top examples of the reference. */
function statsOptions(ctx: PlanContext) {
  const ref = ctx.models[0]!;
  const s = ctx.settings;
  return {
    stats: { nNeurons: ref.nNeurons, models: ctx.models.map((_, i) => i) },
    examples: { nNeurons: ref.nNeurons, models: [0], k: s.topK, seed: s.seed },
  };
}

/** Whether the reference's per-layer covariance is small enough to accumulate (layercov.ts). */
const covarianceFits = (ctx: PlanContext): boolean => LayerCovariance.bytes(ctx.models[0]!) <= COVARIANCE_MAX_BYTES;

function statsSpecs(ctx: PlanContext): AccumulatorSpec[] {
  const { stats: statsOpts, examples: exOpts } = statsOptions(ctx);
  const ref = ctx.models[0]!;
  const covOpts = { nLayers: ref.nLayers, dMlp: ref.dMlp, threads: threadsOf(ctx.settings) };
  const cov: AccumulatorSpec[] = covarianceFits(ctx)
    ? [
        {
          name: 'layercov',
          reads: { models: [0], arrays: ['keptPost'] },
          create: () => new LayerCovariance(covOpts),
          restore: (st: AccumulatorState) => LayerCovariance.restore(st, covOpts),
        },
      ]
    : [];
  // Reads declared so that a blocked run's statistics pass forwards the other models for their
  // kept pre-activations alone (a quarter of what every array of them would hold).
  return [
    {
      name: 'actstats',
      reads: { models: statsOpts.models, arrays: ['keptPre'] },
      create: () => new ActivationStats(statsOpts),
      restore: (st: AccumulatorState) => ActivationStats.restore(st, statsOpts),
    },
    {
      name: 'examples',
      reads: { models: exOpts.models, arrays: ['post', 'keptPost'] },
      create: () => new TopExamples(exOpts),
      restore: (st: AccumulatorState) => TopExamples.restore(st, exOpts),
    },
    {
      // The paper's sparsity and moments (universal.csv): the reference's pre over all tokens.
      name: 'paperhist',
      reads: { models: [0], arrays: ['pre'] },
      create: () => new PaperHistogram(statsOpts.nNeurons),
      restore: (st: AccumulatorState) => PaperHistogram.restore(st, statsOpts.nNeurons),
    },
    ...cov,
  ];
}

async function writeResults(ctx: PlanContext, results: Map<string, unknown>, fam?: FamilyPlanOptions): Promise<Record<string, unknown>> {
  const ref = ctx.models[0]!;
  const others = ctx.models.slice(1);
  const N = ref.nNeurons;
  const M = ref.dMlp;
  const s = ctx.settings;
  const cross = others.map((m) => results.get(`cross:${m.label}`) as CrossMomentsResult);
  const stats = results.get('actstats') as ActivationStatsResult[];
  const examples = results.get('examples') as TopExamplesResult[];
  const ph = results.get('paperhist') as PaperHistogramResult;

  ctx.progress({ phase: 'write', message: 'weight statistics of the reference model' });
  throwIfCancelled(ctx.signal);
  const opened = openModelWeights(ref.dir);
  let w: Awaited<ReturnType<typeof weightStats>>;
  let famCols: FamilyColumns | undefined;
  const st = stats[0]!;
  // Deterministic metadata only: a resumed run's files equal an uninterrupted run's.
  const meta = {
    reference: ref.label,
    models: ctx.models.map((m) => m.label).join(','),
    threshold: String(s.threshold),
    baseline_seed: String(s.seed),
    corpus_sha256: ctx.corpus.hash,
    tokens: String(ctx.corpus.tokens.used),
  };
  try {
    w = await weightStats(opened.weights, { threads: threadsOf(s), signal: ctx.signal });
    if (fam) {
      throwIfCancelled(ctx.signal);
      famCols = await familyResults(ctx, fam, {
        fam: results.get('families') as FamilyStatsResult,
        kurt: st.kurt,
        paperKurt: ph.kurt,
        weights: opened.weights,
        ws: w,
        examples: examples[0]!,
        meta,
      });
    }
  } finally {
    opened.close();
  }
  const u = universalityTable(
    others.map((m, i) => ({ label: m.label, dMlp: m.dMlp, result: cross[i]! })),
    { nLayers: ref.nLayers, dMlp: ref.dMlp },
    { threshold: s.threshold },
  );

  const layer = new Int32Array(N);
  const neuron = new Int32Array(N);
  for (let j = 0; j < N; j++) {
    layer[j] = Math.floor(j / M);
    neuron[j] = j % M;
  }
  const paper: Record<(typeof PAPER_COLUMNS)[number], Float64Array | Int32Array> = {
    layer,
    neuron,
    max_corr: u.max_corr,
    mean_corr: u.mean_corr,
    min_corr: u.min_corr,
    max_baseline: u.max_baseline,
    min_baseline: u.min_baseline,
    mean_baseline: u.mean_baseline,
    w_in_norm: w.w_in_norm,
    input_bias: w.input_bias,
    w_out_norm: w.w_out_norm,
    in_out_sim: w.in_out_sim,
    l2_penalty: w.l2_penalty,
    // The paper's columns as its code computes them (paperhist.ts); the exact ones follow below.
    mean: ph.mean,
    var: ph.var,
    skew: ph.skew,
    kurt: ph.kurt,
    vocab_mean: w.vocab_mean,
    vocab_var: w.vocab_var,
    vocab_skew: w.vocab_skew,
    vocab_kurt: w.vocab_kurt,
    sparsity: ph.sparsity,
    excess_corr: u.excess_corr,
  };
  const universal = Array.from(u.universal, (x) => !!x);
  // Exact streaming statistics over kept tokens, under names that say so (run/neurons.ts EXACT_OF).
  const exact = Object.fromEntries((['sparsity', 'mean', 'var', 'skew', 'kurt'] as const).map((c) => [EXACT_OF[c], st[c]]));
  const columns: Record<string, Column> = { ...paper, ...exact, universal };
  others.forEach((m, i) => {
    const c = partnerColumns(m.label);
    const p = cross[i]!.partner;
    columns[c.layer] = Int32Array.from(p, (x) => Math.floor(x / m.dMlp));
    columns[c.neuron] = Int32Array.from(p, (x) => x % m.dMlp);
    columns[c.corr] = cross[i]!.maxCorr;
    columns[c.baseline] = cross[i]!.baseline;
  });
  if (famCols) Object.assign(columns, famCols.columns);
  const dir = ctx.runDir;
  // Cancel points between the files (each is written atomically; a cancel leaves no half file).
  ctx.progress({ phase: 'write', message: 'result files: neurons.arrow, universal.csv, partners.arrow, vocab.arrow, actstats.arrow' });
  throwIfCancelled(ctx.signal);
  await writeNeurons(dir, columns, meta);
  if (famCols) writeUniversalFamilies(dir, universal, M, famCols);

  // universal.csv: the paper's schema and order, universal neurons only, layer-major.
  const rows: Record<string, number>[] = [];
  for (let j = 0; j < N; j++) {
    if (!universal[j]) continue;
    const r: Record<string, number> = {};
    for (const c of PAPER_COLUMNS) r[c] = paper[c][j]!;
    rows.push(r);
  }
  writeUniversalCsv(dir, rows);
  throwIfCancelled(ctx.signal);

  // partners.arrow: long format, reference neuron × other model.
  const P = N * others.length;
  const pl = new Int32Array(P);
  const pn = new Int32Array(P);
  const pLayer = new Int32Array(P);
  const pNeuron = new Int32Array(P);
  const pCorr = new Float64Array(P);
  const pBase = new Float64Array(P);
  const pModel: string[] = new Array(P);
  let k = 0;
  for (let j = 0; j < N; j++) {
    others.forEach((m, i) => {
      const c = cross[i]!.partner[j]!;
      pl[k] = layer[j]!;
      pn[k] = neuron[j]!;
      pModel[k] = m.label;
      pLayer[k] = Math.floor(c / m.dMlp);
      pNeuron[k] = c % m.dMlp;
      pCorr[k] = cross[i]!.maxCorr[j]!;
      pBase[k] = cross[i]!.baseline[j]!;
      k++;
    });
  }
  throwIfCancelled(ctx.signal);
  await writePartners(dir, { layer: pl, neuron: pn, model: pModel, partner_layer: pLayer, partner_neuron: pNeuron, corr: pCorr, baseline: pBase }, meta);

  // vocab.arrow: top/bottom tokens of each neuron's vocab composition.
  const K = w.topK;
  const V = 2 * N * K;
  const vl = new Int32Array(V);
  const vn = new Int32Array(V);
  const side: string[] = new Array(V);
  const rank = new Int32Array(V);
  const token = new Int32Array(V);
  const value = new Float64Array(V);
  k = 0;
  for (let j = 0; j < N; j++) {
    for (const [name, ids, vals] of [
      ['top', w.topTokens, w.topValues],
      ['bottom', w.bottomTokens, w.bottomValues],
    ] as const) {
      for (let q = 0; q < K; q++) {
        vl[k] = layer[j]!;
        vn[k] = neuron[j]!;
        side[k] = name;
        rank[k] = q;
        token[k] = ids[j * K + q]!;
        value[k] = vals[j * K + q]!;
        k++;
      }
    }
  }
  throwIfCancelled(ctx.signal);
  await writeVocab(dir, { layer: vl, neuron: vn, side, rank, token, value }, meta);

  // actstats.arrow: every model's exact activation statistics, long format, named as in neurons.arrow.
  const A = stats.length * N;
  const am: string[] = new Array(A);
  const al = new Int32Array(A);
  const an = new Int32Array(A);
  const acols = { mean_exact: new Float64Array(A), var_exact: new Float64Array(A), skew_exact: new Float64Array(A), kurt_exact: new Float64Array(A), act_freq: new Float64Array(A) };
  k = 0;
  for (const r of stats) {
    const m = ctx.models[r.model]!;
    for (let j = 0; j < m.nNeurons; j++, k++) {
      am[k] = m.label;
      al[k] = Math.floor(j / m.dMlp);
      an[k] = j % m.dMlp;
      for (const c of ['mean', 'var', 'skew', 'kurt', 'sparsity'] as const) acols[EXACT_OF[c] as keyof typeof acols][k] = r[c][j]!;
    }
  }
  throwIfCancelled(ctx.signal);
  await writeActstats(dir, { model: am, layer: al, neuron: an, ...acols }, meta);

  ctx.progress({ phase: 'write', message: 'result files: examples' });
  throwIfCancelled(ctx.signal);
  writeExamples(dir, examples);
  throwIfCancelled(ctx.signal);
  const pca = results.get('layercov') as LayerPca[] | undefined;
  if (pca) writeBasis(dir, pca, PCA_TOP);

  const nUniversal = rows.length;
  return {
    neurons: N,
    universal: nUniversal,
    universal_percent: (100 * nUniversal) / N,
    kept_tokens: st.count,
    files: [...RESULT_FILES, ...(pca ? [RUN_FILES.basis] : []), ...(famCols ? FAMILY_FILES : [])],
    ...(famCols ? familyCounts(famCols, universal) : {}),
  };
}
