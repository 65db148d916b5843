/**
 * The families-and-roles part of the default plan: the streaming accumulator's spec, and at the
 * end the family assignment, the weight roles, the entropy intervention on the top candidates,
 * and what they add to the run folder:
 *   neurons.arrow            family, family_label, family_vr, position_mi, role, roles,
 *                            attn_head, attn_score, family_hits (columns added by plan.ts)
 *   families.arrow           every neuron's best label and VR of every label kind (long format)
 *   universal_families.csv   the universal neurons' family and role columns (universal.csv keeps
 *                            exactly the paper's schema)
 *   roles.json               entropy intervention results, top attention-deactivation pairs, baselines
 */
import type { ResolvedWeights } from '../arch/common';
import type { Corpus } from '../corpus';
import { EngineError, throwIfCancelled } from '../errors';
import type { TokenClasses } from '../labels';
import type { Column } from '../store';
import { RUN_FILES } from '../run/files';
import { writeFamilies, writeUniversalFamilies as writeUniversalFamilyCsv } from '../run/families';
import { writeRoles } from '../run/roles';
import { ROLE_SETTING_KEYS, ROLE_SETTINGS, roleSettingProblem, type RoleSettings } from '../run/roleSettings';
import { threadsOf } from '../threads';
import type { TopExamplesResult } from './examples';
import { assignFamilies, corpusClasses, DEFAULT_THRESHOLDS, FAMILIES, FamilyStats, labelAt, type FamilyStatsOptions, type FamilyStatsResult, type FamilyThresholds } from './families';
import { ENTROPY_INTERVENTION_VALUES, entropyInterventions } from './intervention';
import { DEFAULT_ENTROPY_QUERY, neuronRoles, ROLES, type RoleOptions } from './roles';
import type { AccumulatorSpec, AccumulatorState, PlanContext } from './types';
import type { WeightStats } from './weightstats';

export interface FamilyPlanOptions {
  /** Default true. */
  enabled?: boolean;
  thresholds?: Partial<FamilyThresholds>;
  roles?: RoleOptions;
  /** Entropy candidates given the intervention, the top of the query's ranking (default 3); with none, the top-ranked neuron is. */
  interventions?: number;
  /** Corpus rows the intervention scores, the first of the budget (default 256). */
  interventionRows?: number;
  /** The CLI's and the editor's flat settings (run/roleSettings.ts); they override the fields above. */
  roleSettings?: RoleSettings;
}

export const DEFAULT_INTERVENTIONS = ROLE_SETTINGS.entropyNeurons.default;
export const DEFAULT_INTERVENTION_ROWS = ROLE_SETTINGS.interventionRows.default;

/** The options with `roleSettings` folded into `roles`, `interventions` and `interventionRows` (each checked). */
export function withRoleSettings(o: FamilyPlanOptions): FamilyPlanOptions {
  const s = o.roleSettings;
  if (!s) return o;
  for (const k of ROLE_SETTING_KEYS) {
    const problem = s[k] === undefined ? undefined : roleSettingProblem(k, s[k]!);
    if (problem) throw new EngineError(`role setting ${problem}`);
  }
  const entropy = { ...o.roles?.entropy };
  if (s.entropyLayers !== undefined) entropy.layerFraction = s.entropyLayers;
  if (s.entropyL2 !== undefined) entropy.l2 = s.entropyL2;
  if (s.entropyVocabKurt !== undefined) entropy.vocabKurt = s.entropyVocabKurt;
  if (s.entropyKurt !== undefined) entropy.kurt = s.entropyKurt;
  const roles: RoleOptions = { ...o.roles, entropy };
  if (s.attentionZ !== undefined) roles.attentionZ = s.attentionZ;
  if (s.attentionPairs !== undefined) roles.topPairs = s.attentionPairs;
  return {
    ...o,
    roles,
    ...(s.entropyNeurons !== undefined ? { interventions: s.entropyNeurons } : {}),
    ...(s.interventionRows !== undefined ? { interventionRows: s.interventionRows } : {}),
  };
}

export const FAMILY_FILES = [RUN_FILES.families, RUN_FILES.universalFamilies, RUN_FILES.roles] as const;

export function familyChoices(o: FamilyPlanOptions): Record<string, string> {
  const th = { ...DEFAULT_THRESHOLDS, ...o.thresholds };
  return {
    family_activation: 'VR of the post-activation (hook_post), kept tokens, as the correlations; position MI on pre > 0',
    family_labels:
      'current and previous token: unigram (lowercased, stripped; ≥ 3000 per 10M kept tokens, at least 10, covering > 3 vocabulary ids), the single letter the token is (alphabet), surface features and first letter (token feature); universal POS mapped from Brown tags, scored on tagged tokens only; document source and topic; position (=t and <k)',
    family_thresholds: `unigram VR > ${th.unigram}, alphabet > ${th.alphabet} for each letter's best neuron only, token feature > ${th.feature}, syntax (POS) > ${th.syntax}, semantic (source, topic) > ${th.semantic}; position: kurtosis < ${th.positionKurtosis} and MI > ${th.positionMi} nats; previous-token labels use their kind's threshold; the passing family with the highest VR wins`,
    roles: `prediction/suppression: vocab_kurt > ${o.roles?.vocabKurt ?? 10} by vocab_skew sign; partition: vocab_var above all of ${o.roles?.directions ?? 1024} random centred unit directions; entropy: ${entropyQueryText(o)}; attention-deactivation: h's z-score > ${o.roles?.attentionZ ?? ROLE_SETTINGS.attentionZ.default} against random directions (the neuron's strongest later head), pairs listed by |h| (top ${o.roles?.topPairs ?? ROLE_SETTINGS.attentionPairs.default})`,
    entropy_intervention: `the top ${o.interventions ?? DEFAULT_INTERVENTIONS} of the entropy ranking that pass the query (none: the top-ranked neuron, marked candidate: false), hook_post fixed at ${ENTROPY_INTERVENTION_VALUES.join(', ')} on the first ${o.interventionRows ?? DEFAULT_INTERVENTION_ROWS} corpus rows (fewer if the budget has fewer); one unfixed forward shared by the neurons`,
  };
}

/** The paper's entropy query as this run applies it (GPT2-small: layer ≥ 10 of 12, l2 ≥ 3, vocab_kurt ≤ 10, kurt ≤ 10). */
function entropyQueryText(o: FamilyPlanOptions): string {
  const q = { ...DEFAULT_ENTROPY_QUERY, ...o.roles?.entropy };
  return `the paper's query scaled to depth: the last max(1, round(${q.layerFraction}·n_layers)) layers, l2_penalty ≥ ${q.l2}, vocab_kurt ≤ ${q.vocabKurt}, kurt (the paper's histogram column) ≤ ${q.kurt}, ranked by vocab_var, smallest first`;
}

const classesOf = new WeakMap<Corpus, TokenClasses>();

/** The token classes of a run's corpus (computed once per corpus object). */
function classes(ctx: PlanContext): TokenClasses {
  let tc = classesOf.get(ctx.corpus);
  if (!tc) {
    const tok = ctx.handles[0]!.tokenizer;
    tc = corpusClasses(ctx.corpus, tok.vocabSize, (id) => tok.tokenString(id));
    classesOf.set(ctx.corpus, tc);
  }
  return tc;
}

function statsOptions(ctx: PlanContext): FamilyStatsOptions {
  const ref = ctx.models[0]!;
  return { nNeurons: ref.nNeurons, nPositions: ref.nPositions, classes: classes(ctx), corpus: ctx.corpus };
}

export function familySpec(ctx: PlanContext): AccumulatorSpec {
  return {
    name: 'families',
    reads: { models: [0], arrays: ['keptPre', 'keptPost'] },
    create: () => new FamilyStats(statsOptions(ctx)),
    restore: (st: AccumulatorState) => FamilyStats.restore(st, statsOptions(ctx)),
  };
}

/** What the families accumulator holds, for the memory planner. */
export function familyBytes(ctx: PlanContext): number {
  return FamilyStats.bytes(statsOptions(ctx));
}

export interface FamilyColumns {
  columns: Record<string, Column>;
  family: string[];
  role: string[];
  roles: string[];
}

/** Families, roles and the intervention; writes families.arrow and roles.json, returns the neurons.arrow columns. */
export async function familyResults(
  ctx: PlanContext,
  o: FamilyPlanOptions,
  inputs: { fam: FamilyStatsResult; kurt: Float64Array; paperKurt: Float64Array; weights: ResolvedWeights; ws: WeightStats; examples: TopExamplesResult; meta: Record<string, string> },
): Promise<FamilyColumns> {
  const ref = ctx.models[0]!;
  const N = ref.nNeurons;
  const D = ref.dMlp;
  const T = ref.nPositions;
  const th = { ...DEFAULT_THRESHOLDS, ...o.thresholds };
  ctx.progress({ phase: 'write', message: 'families: variance reduction of every label' });
  const ex = inputs.fam.explain(ctx.signal);
  const fa = assignFamilies(ex, inputs.kurt, th);
  throwIfCancelled(ctx.signal);

  ctx.progress({ phase: 'write', message: 'roles from the weights' });
  // contextLength: a rotary model's attention score averages over the query positions of these rows.
  const r = neuronRoles(inputs.weights, inputs.ws, inputs.paperKurt, { seed: ctx.settings.seed, ...o.roles, signal: ctx.signal, bos: ctx.handles[0]!.tokenizer.bosId, contextLength: T });
  throwIfCancelled(ctx.signal);

  ctx.progress({ phase: 'write', message: 'entropy intervention' });
  const nRows = Math.min(o.interventionRows ?? DEFAULT_INTERVENTION_ROWS, ctx.corpus.nRows);
  const rows = Array.from({ length: nRows }, (_, q) => Array.from(ctx.corpus.ids.subarray(q * T, (q + 1) * T)));
  const passing = r.entropyRanking.filter((e) => e.candidate).slice(0, o.interventions ?? DEFAULT_INTERVENTIONS);
  // Without a candidate the top-ranked neuron shows the shape. The cost: one forward of the rows, and 9
  // forwards of the layers above each neuron below the last layer (entropySweep.ts).
  const chosen = passing.length ? passing : r.entropyRanking.slice(0, 1);
  const targets = chosen.map(({ index }) => ({ layer: Math.floor(index / D), neuron: index % D }));
  const results = await entropyInterventions(ref.dir, rows, targets, ENTROPY_INTERVENTION_VALUES, {
    signal: ctx.signal,
    threads: threadsOf(ctx.settings),
    // An arena keeps the largest run's [tokens × vocab] tensors after it: at GPT-2-small size
    // (1,024-token rows) that held ~3 GB past the memory budget (bench:scale --write-only).
    memArena: false,
    // One row per onnxruntime run, so that a cancel stops between rows (a run of 8 rows took
    // seconds at GPT-2-small size). Several rows per run saved nothing on the tiny family (the
    // sweep: 21.7 s one row per run, 26.4 s five; BENCHMARKS.md).
    batchTokens: T,
    onTarget: (i) => ctx.progress({ phase: 'write', message: `entropy intervention: L${targets[i]!.layer}.N${targets[i]!.neuron} (${i + 1} of ${targets.length}, ${nRows} rows)` }),
  });
  const entropy = results.map((res, i) => ({ ...targets[i]!, candidate: chosen[i]!.candidate, rows: nRows, ...res }));
  ctx.progress({ phase: 'write', message: 'families and roles files' });
  writeRoles(ctx.runDir, {
    entropy,
    attention: r.attention,
    baseline: r.baseline,
    thresholds: th,
    entropyQuery: { ...DEFAULT_ENTROPY_QUERY, ...o.roles?.entropy },
    intervention: { rows: nRows, neurons: o.interventions ?? DEFAULT_INTERVENTIONS, values: ENTROPY_INTERVENTION_VALUES },
    // Rotary models only (GPT-2's file is unchanged): the query positions the attention score averages over.
    ...(r.attentionQuery ? { attentionQuery: r.attentionQuery } : {}),
  });

  // Which of each neuron's top examples carry its best label (one char per example, rank order).
  const tc = classes(ctx);
  const top = inputs.examples;
  const hits: string[] = new Array(N);
  for (let j = 0; j < N; j++) {
    if ((j & 1023) === 0) throwIfCancelled(ctx.signal);
    let s = '';
    if (fa.label[j]) {
      for (let q = 0; q < top.topCount[j]!; q++) {
        const slot = j * top.k + q;
        s += labelAt(fa.label[j]!, top.top.row[slot]! * T + top.top.pos[slot]!, ctx.corpus, tc) ? '1' : '0';
      }
    }
    hits[j] = s;
  }

  // families.arrow: best label and VR of every kind, long format.
  const K = ex.kinds.length;
  const fl = new Int32Array(N * K);
  const fn = new Int32Array(N * K);
  const kind: string[] = new Array(N * K);
  const label: string[] = new Array(N * K);
  const vr = new Float64Array(N * K);
  let at = 0;
  for (let j = 0; j < N; j++) {
    for (let k = 0; k < K; k++, at++) {
      fl[at] = Math.floor(j / D);
      fn[at] = j % D;
      kind[at] = ex.kinds[k]!;
      const b = ex.best[k * N + j]!;
      label[at] = b >= 0 ? ex.labels[b]! : '';
      vr[at] = ex.vr[k * N + j]!;
    }
  }
  throwIfCancelled(ctx.signal);
  await writeFamilies(ctx.runDir, { layer: fl, neuron: fn, kind, label, vr }, inputs.meta);

  return {
    family: fa.family,
    role: r.role,
    roles: r.roles,
    columns: {
      family: fa.family,
      family_label: fa.label,
      family_vr: fa.vr,
      position_mi: ex.positionMi,
      role: r.role,
      roles: r.roles,
      attn_head: r.attnHead,
      attn_score: r.attnScore,
      family_hits: hits,
    },
  };
}

/** universal_families.csv: layer, neuron, then the family and role columns, universal neurons only (run/families.ts). */
export function writeUniversalFamilies(runDir: string, universal: readonly boolean[], dMlp: number, c: FamilyColumns): void {
  writeUniversalFamilyCsv(runDir, universal, dMlp, c.columns);
}

/** Counts for the manifest and the summary: families over all and universal neurons, roles. */
export function familyCounts(c: FamilyColumns, universal: readonly boolean[]): Record<string, unknown> {
  const fam = Object.fromEntries(FAMILIES.map((f) => [f, { all: 0, universal: 0 }]));
  c.family.forEach((f, j) => {
    fam[f]!.all++;
    if (universal[j]) fam[f]!.universal++;
  });
  const roles = Object.fromEntries(ROLES.map((r) => [r, { all: 0, universal: 0 }]));
  c.roles.forEach((rs, j) => {
    for (const r of rs.split(',').filter(Boolean)) {
      roles[r]!.all++;
      if (universal[j]) roles[r]!.universal++;
    }
  });
  return { families: fam, roles };
}
