/**
 * The result panels' payloads (overview, table, neuron page: src/protocol.ts) from a loaded run.
 * The view layer: no `vscode`, DOM or Node import and no maths; numbers come from the run's
 * files (src/engine/run/data.ts loads them), summaries from summaries.ts, percentile.ts and
 * counts.ts. The host hands a run and a reader of a neuron's examples (its file access) in; the
 * webview receives what comes out.
 */
import type {
  ActivationHistogram,
  AttentionPair,
  AttentionScore,
  EntropyIntervention,
  ExampleContext,
  NeuronData,
  NeuronRef,
  Num,
  OverviewData,
  Development,
  Partner,
  PromptData,
  Role,
  RunInfo,
  StatGroup,
  StatRow,
  TableColumn,
  TableData,
  TokenValue,
} from '../protocol';
import { TABLE_COLUMNS } from '../protocol';
import { familyCounts, familyLayerCounts, roleCounts } from './counts';
import { percentileRank } from './percentile';
import { basisReading, layerBasis, universalProperties, type Quantiles } from './properties';
import { bestReferenceByPartner, histogram, layerShares, partnerKey } from './summaries';

/** A run as the payloads read it (src/engine/run/data.ts RunData has every field). */
export interface PanelRun {
  info: RunInfo;
  nLayers: number;
  dMlp: number;
  /** Per row of the neuron table. */
  layer: Int32Array;
  neuron: Int32Array;
  /** Neuron column l·d_mlp+n → row (−1: absent). */
  rowOf: Int32Array;
  /** Rows of each layer. */
  layerRows: number[][];
  /** Numeric columns but layer and neuron, NaN for missing values. */
  columns: ReadonlyMap<string, Float64Array>;
  universal: boolean[];
  family: (string | null)[] | null;
  familyLabel: (string | null)[] | null;
  roles: Role[][] | null;
  attnHead: (string | null)[] | null;
  familyHits: (string | null)[] | null;
  rolesFile: { entropy: ReadonlyMap<number, EntropyIntervention>; attention: AttentionPair[]; note?: string } | null;
  partners: { ref: number; model: string; layer: number; neuron: number; corr: number; baseline: number }[][] | null;
  partnerNote?: string;
  /** A development run's checkpoints (engine/development.ts DevelopmentAxis); absent or null otherwise. */
  development?: { repo: string; final: { label: string; step: number | null }; earlier: { label: string; step: number | null }[] } | null;
  /** Non-null when the run has examples (neuronData reads a neuron's through its reader). */
  examples: object | null;
  vocab: ReadonlyMap<number, { top: { id: number; value: number }[]; bottom: { id: number; value: number }[] }> | null;
  tokenizer: { tokenString(id: number): string } | null;
  tokenizerNote?: string;
  /** Per layer, the top-5 principal components' share of activation variance (null: not in this run). */
  pcaTop5?: readonly (number | null)[] | null;
}

/** One neuron's stored examples as numbers (src/engine/run/examples.ts NeuronExamples). */
export interface ExampleNumbers {
  /** Valid top examples. */
  count: number;
  window: number;
  /** Per example: max value, corpus row, position of the max, window start and length. */
  value: ArrayLike<number>;
  row: ArrayLike<number>;
  pos: ArrayLike<number>;
  start: ArrayLike<number>;
  len: ArrayLike<number>;
  /** [example × window] token ids (−1 past the window) and activations. */
  ids: ArrayLike<number>;
  acts: ArrayLike<number>;
  /** `bins` bins over [lo, hi]; counts has the underflow first and the overflow last. */
  hist: { bins: number; lo: number; hi: number; counts: ArrayLike<number>; min: number; max: number } | null;
}

const num = (x: number | undefined): Num => (x !== undefined && Number.isFinite(x) ? x : null);
const nan = (n: number): Float64Array => new Float64Array(n).fill(NaN);

function col(run: PanelRun, name: string): Float64Array {
  return run.columns.get(name) ?? nan(run.layer.length);
}

function tokenText(run: Pick<PanelRun, 'tokenizer'>, id: number): string {
  if (!run.tokenizer) return `⟨${id}⟩`;
  try {
    return run.tokenizer.tokenString(id);
  } catch {
    return `⟨${id}⟩`;
  }
}

/** The overview page: per-layer shares, the excess histogram, the scatter, family and role counts. */
export function overviewData(run: PanelRun): OverviewData {
  const excess = col(run, 'excess_corr');
  const universal = run.universal;
  const nUniv = universal.filter(Boolean).length;
  const layers = layerShares(run.layer, excess, universal, run.nLayers).map((s) => ({ ...s, medianExcess: num(s.medianExcess) }));
  return {
    run: run.info,
    totals: { neurons: run.layer.length, universal: nUniv, percent: run.layer.length ? (100 * nUniv) / run.layer.length : 0 },
    layers,
    excessHistogram: histogram(excess, 50),
    scatter: { layer: Array.from(run.layer), neuron: Array.from(run.neuron), meanCorr: Array.from(col(run, 'mean_corr'), num), meanBaseline: Array.from(col(run, 'mean_baseline'), num), universal },
    families: run.family ? familyCounts(run.family, universal) : null,
    familyLayers: run.family ? familyLayerCounts(run.family, run.layer, universal, run.nLayers) : null,
    roles: run.roles ? roleCounts(run.roles, run.layer, universal, run.nLayers) : null,
    attention: run.rolesFile ? run.rolesFile.attention.slice(0, ATTENTION_PAIRS) : null,
    ...propertiesData(run),
  };
}

const quantilesData = (q: Quantiles) => ({ p10: num(q.p10), p25: num(q.p25), p50: num(q.p50), p75: num(q.p75), p90: num(q.p90) });

/** The overview's "properties of universal neurons" and "is the basis privileged?" (properties.ts). */
function propertiesData(run: PanelRun): Pick<OverviewData, 'properties' | 'basis'> {
  const p = universalProperties(run.layer, run.universal, run.columns);
  const basis = layerBasis(run.layer, col(run, 'mean_corr'), col(run, 'mean_baseline'), run.nLayers, run.pcaTop5 ?? null);
  return {
    properties: {
      stats: p.stats.map((s) => ({ ...s, universal: quantilesData(s.universal), rest: quantilesData(s.rest), medianUniversal: num(s.medianUniversal), medianRest: num(s.medianRest) })),
      missing: p.missing,
    },
    basis: basis.map((b) => ({ layer: b.layer, baseline: quantilesData(b.baseline), corr: quantilesData(b.corr), pcaTop5: b.pcaTop5 === null ? null : num(b.pcaTop5), privileged: b.privileged, reading: basisReading(b) })),
  };
}

/** Attention pairs the overview lists (roles.json holds the top pairs; the page stays short). */
const ATTENTION_PAIRS = 12;

/** The table page: every reference neuron, as parallel columns. */
export function tableData(run: PanelRun): TableData {
  const values = {} as Record<TableColumn, Num[]>;
  for (const c of TABLE_COLUMNS) values[c] = Array.from(col(run, c), num);
  return {
    run: run.info,
    columns: {
      layer: Array.from(run.layer),
      neuron: Array.from(run.neuron),
      universal: run.universal,
      values,
      family: run.family,
      familyLabel: run.familyLabel,
      familyVr: run.columns.has('family_vr') ? Array.from(col(run, 'family_vr'), num) : null,
      roles: run.roles,
    },
  };
}

const STAT_KEYS: [StatGroup, string[]][] = [
  ['universality', ['excess_corr', 'mean_corr', 'max_corr', 'min_corr', 'mean_baseline', 'max_baseline', 'min_baseline']],
  ['weights', ['w_in_norm', 'input_bias', 'w_out_norm', 'in_out_sim', 'l2_penalty']],
  // Exact (kept tokens) first, then the paper's histogram columns (universal.csv).
  ['activations', ['mean_exact', 'var_exact', 'skew_exact', 'kurt_exact', 'act_freq', 'sparsity', 'mean', 'var', 'skew', 'kurt']],
  ['vocab', ['vocab_mean', 'vocab_var', 'vocab_skew', 'vocab_kurt']],
];

/** Whether `ref` is a neuron of the run's table. */
export function inRun(run: Pick<PanelRun, 'nLayers' | 'dMlp' | 'rowOf'>, ref: NeuronRef): boolean {
  const { layer: l, neuron: n } = ref;
  return l >= 0 && l < run.nLayers && n >= 0 && n < run.dMlp && run.rowOf[l * run.dMlp + n]! >= 0;
}

/**
 * One neuron's page; undefined when the neuron is not in the run. `readExamples(j)` reads neuron
 * column j's stored examples (the host's file access); a failure becomes a note.
 */
export function neuronData(run: PanelRun, ref: NeuronRef, readExamples: (column: number) => ExampleNumbers): NeuronData | undefined {
  if (!inRun(run, ref)) return undefined;
  const { layer: l, neuron: n } = ref;
  const row = run.rowOf[l * run.dMlp + n]!;
  const notes: string[] = [];
  const stats: StatRow[] = [];
  const layerRows = run.layerRows[l]!;
  for (const [group, keys] of STAT_KEYS) {
    for (const key of keys) {
      const c = run.columns.get(key);
      if (!c) continue;
      const sample = layerRows.map((r) => c[r]!);
      stats.push({ key, group, value: num(c[row]), percentile: num(percentileRank(c[row]!, sample)) });
    }
  }

  let histogram: ActivationHistogram | null = null;
  let examples: ExampleContext[] = [];
  if (run.examples) {
    try {
      const ex = exampleContexts(run, readExamples(l * run.dMlp + n));
      histogram = ex.histogram;
      examples = ex.examples;
    } catch (e) {
      notes.push(`examples could not be read: ${(e as Error).message}`);
    }
  } else notes.push('this run has no examples (examples.json/examples.bin): no contexts or activation histogram');

  let vocab: NeuronData['vocab'] = null;
  const v = run.vocab?.get(row);
  if (v) {
    const tv = (x: { id: number; value: number }): TokenValue => ({ id: x.id, text: tokenText(run, x.id), value: x.value });
    vocab = { top: v.top.map(tv), bottom: v.bottom.map(tv) };
  } else notes.push('vocab (logit) effects are not in this run yet');

  const partners: Partner[] = [];
  if (run.partners) {
    const best = bestIndex(run);
    for (const p of run.partners[row]!) {
      const b = best.get(partnerKey(p.model, p.layer, p.neuron));
      partners.push({
        model: p.model,
        layer: p.layer,
        neuron: p.neuron,
        corr: num(p.corr),
        baseline: num(p.baseline),
        bestReference: b ? { layer: run.layer[b.ref]!, neuron: run.neuron[b.ref]!, corr: num(b.corr) } : null,
      });
    }
  }
  if (run.partnerNote) notes.push(run.partnerNote);
  if (run.rolesFile?.note) notes.push(run.rolesFile.note);
  const hits = run.familyHits?.[row];
  if (hits) examples = examples.map((e, i) => (i < hits.length ? { ...e, carriesLabel: hits[i] === '1' } : e));
  if (run.tokenizerNote && (examples.length || vocab)) notes.push(run.tokenizerNote);

  return {
    run: run.info,
    layer: l,
    neuron: n,
    universal: run.universal[row]!,
    ...(run.family ? { family: run.family[row] ?? null } : {}),
    ...familyParts(run, row),
    stats,
    histogram,
    examples,
    vocab,
    partners,
    ...developmentOf(run, row),
    notes,
  };
}

/** The neuron's best-partner correlation per training checkpoint, then the final checkpoint (itself: 1). */
function developmentOf(run: PanelRun, row: number): Pick<NeuronData, 'development'> {
  const axis = run.development;
  if (!axis || !run.partners) return {};
  const mine = run.partners[row]!;
  const points: Development['points'] = axis.earlier.map((c) => {
    const p = mine.find((x) => x.model === c.label);
    return { label: c.label, step: c.step, corr: num(p?.corr), partner: p ? { layer: p.layer, neuron: p.neuron } : null };
  });
  points.push({ label: axis.final.label, step: axis.final.step, corr: 1, partner: null });
  return { development: { repo: axis.repo, points } };
}

/** The family explanation, roles, attention scores and entropy intervention of one row (what the run has). */
function familyParts(run: PanelRun, row: number): Pick<NeuronData, 'explanation' | 'roles' | 'attention' | 'entropy'> {
  const out: Pick<NeuronData, 'explanation' | 'roles' | 'attention' | 'entropy'> = {};
  const vr = run.columns.get('family_vr');
  const mi = run.columns.get('position_mi');
  if (run.familyLabel || vr || mi) out.explanation = { label: run.familyLabel?.[row] ?? null, vr: num(vr?.[row]), positionMi: num(mi?.[row]) };
  if (run.roles) out.roles = run.roles[row]!;
  const j = run.layer[row]! * run.dMlp + run.neuron[row]!;
  const fromFile = run.rolesFile?.attention.filter((a) => a.layer === run.layer[row] && a.neuron === run.neuron[row]) ?? [];
  const attention: AttentionScore[] = fromFile.map(({ head, score, raw }) => ({ head, score, raw }));
  const head = run.attnHead?.[row];
  if (head && !attention.some((a) => a.head === head)) attention.unshift({ head, score: num(run.columns.get('attn_score')?.[row]), raw: null });
  if (attention.length) out.attention = attention;
  const entropy = run.rolesFile?.entropy.get(j);
  if (entropy) out.entropy = entropy;
  return out;
}

const bestCache = new WeakMap<PanelRun, ReturnType<typeof bestReferenceByPartner>>();
function bestIndex(run: PanelRun): ReturnType<typeof bestReferenceByPartner> {
  let b = bestCache.get(run);
  if (!b) {
    b = bestReferenceByPartner(run.partners!.flat());
    bestCache.set(run, b);
  }
  return b;
}

/** One neuron's examples and histogram as the page shows them: token text, the max token, the histogram's edges. */
export function exampleContexts(run: Pick<PanelRun, 'tokenizer'>, ex: ExampleNumbers): { examples: ExampleContext[]; histogram: ActivationHistogram | null } {
  const W = ex.window;
  const examples: ExampleContext[] = [];
  for (let q = 0; q < ex.count; q++) {
    const L = Math.max(0, Math.min(W, ex.len[q]!));
    const tokens = [];
    for (let t = 0; t < L; t++) {
      const id = ex.ids[q * W + t]!;
      const act = ex.acts[q * W + t]!;
      tokens.push({ id, text: id >= 0 ? tokenText(run, id) : '', act: Number.isFinite(act) ? act : 0 });
    }
    const maxIndex = Math.max(0, Math.min(L - 1, ex.pos[q]! - ex.start[q]!));
    examples.push({ value: ex.value[q]!, row: ex.row[q]!, maxIndex, tokens });
  }
  let histogram: ActivationHistogram | null = null;
  const h = ex.hist;
  if (h && Number.isFinite(h.lo) && Number.isFinite(h.hi) && h.hi > h.lo) {
    const B = h.bins;
    histogram = {
      edges: Array.from({ length: B + 1 }, (_, b) => (b === B ? h.hi : h.lo + ((h.hi - h.lo) * b) / B)),
      counts: Array.from({ length: B }, (_, b) => h.counts[b + 1]!),
      under: h.counts[0]!,
      over: h.counts[B + 1]!,
      min: num(h.min),
      max: num(h.max),
    };
  }
  return { examples, histogram };
}

/** The prompt view: `values` (one per token; missing or non-finite: unshaded) over the document's tokens. */
export function promptData(
  document: string,
  title: string,
  neuronLabel: string,
  tokens: readonly { text: string; start: number; end: number; id?: number }[],
  values: readonly number[],
): PromptData {
  return {
    document,
    title,
    neuronLabel,
    tokens: tokens.map((t, i) => {
      const v = values[i];
      return {
        text: t.text,
        start: t.start,
        end: t.end,
        id: typeof t.id === 'number' && Number.isSafeInteger(t.id) && t.id >= 0 ? t.id : null,
        value: typeof v === 'number' && Number.isFinite(v) ? v : null,
      };
    }),
  };
}
