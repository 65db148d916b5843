/**
 * The one protocol between the extension host and its webviews. Both bundles import this file,
 * so a renamed field fails to compile on both ends. No `vscode` and no DOM here.
 *
 * Every message, payload and persisted state is written once, as a schema (src/schema.ts); its
 * type is inferred from the schema (`Infer`) and its guard checks the schema, so the type and the
 * check cannot drift apart. Checks that span fields (parallel arrays of one length, a
 * histogram's edges, a range's ends) are `refine`s in the schema.
 *
 * Handshake: the webview posts `ready` once its script runs (messages posted before it listens
 * are lost); only then does the host answer `init` with the view's data. A webview that is
 * reloaded (hidden without retainContextWhenHidden, restored after a window reload) posts
 * `ready` again and gets `init` again.
 *
 * Nothing received is trusted: every message goes through its guard on receipt (host:
 * `isFromWebview`; webview: `isToWebview`, which checks the whole payload), and anything of the
 * wrong shape is dropped (the host logs it to its output channel). Unknown extra fields are
 * ignored, as before.
 *
 * Missing numbers: JSON has no NaN, so a value that is NaN/±Infinity in the run is sent as null.
 */
import { array, boolean, integer, literal, nullable, number, object, optional, picklist, refine, string, union, variant, type Infer, type Schema } from './schema';

export const PROTOCOL_VERSION = 3;

export type ViewKind = 'overview' | 'table' | 'neuron' | 'prompt';
export const VIEW_KINDS: readonly ViewKind[] = ['overview', 'table', 'neuron', 'prompt'];

/** WebviewPanel view types; each has a serializer and an `onWebviewPanel:<viewType>` activation event. */
export const VIEW_TYPES: Readonly<Record<ViewKind, string>> = {
  overview: 'universalNeurons.overview',
  table: 'universalNeurons.table',
  neuron: 'universalNeurons.neuron',
  prompt: 'universalNeurons.prompt',
};

/** Columns of the neuron table, in display order (all numeric; `family` is separate). */
export const TABLE_COLUMNS = [
  'excess_corr',
  'mean_corr',
  'mean_baseline',
  'max_corr',
  'min_corr',
  'sparsity',
  'act_freq',
  'kurt',
  'vocab_kurt',
  'w_out_norm',
] as const;
export type TableColumn = (typeof TABLE_COLUMNS)[number];

/**
 * Neuron roles (docs/method-notes.md "Families and roles"): prediction/suppression/partition from
 * the vocab moments, entropy neurons acting through the final LayerNorm, attention-deactivation
 * neurons switching a later head onto BOS. In display order.
 */
export const ROLES = ['prediction', 'suppression', 'partition', 'entropy', 'attention-deactivation'] as const;
export type Role = (typeof ROLES)[number];

export type StatGroup = 'universality' | 'weights' | 'activations' | 'vocab';
export const STAT_GROUPS: readonly StatGroup[] = ['universality', 'weights', 'activations', 'vocab'];

export type LogLevel = 'info' | 'warn' | 'error';

/** Longest `log`/`error` text accepted (longer is a wrong shape, not truncated). */
export const MAX_TEXT = 4000;

/** A number that may be missing (sent as null). */
export type Num = number | null;

// ---------------------------------------------------------------------------------------------
// Building blocks

const str = string();
const bool = boolean();
const finite = number();
/** A number that may be missing (NaN/±Infinity in the run). */
const num = nullable(finite);
const int = integer();
const nat = integer({ min: 0 });
const text = string({ max: MAX_TEXT });
/** A family label: short text (the engine writes `kind:value`, optionally `prev:`-prefixed). */
const label = string({ max: 200 });
/** An attention head name as the engine writes it (`L3.H1`). */
const headName = string({ pattern: /^L\d{1,4}\.H\d{1,4}$/ });
const role = picklist(ROLES);
/** Roles of one neuron, the primary first, none twice. */
const roleList = refine(array(role), (a) => new Set(a).size === a.length, 'a role appears twice');
const viewKind = picklist(VIEW_KINDS);
const tableColumn = picklist(TABLE_COLUMNS);

/** Every listed array field of an object has the length of the first. */
const sameLength =
  <T extends Record<string, unknown>>(...keys: (keyof T)[]) =>
  (o: T): boolean =>
    keys.every((k) => (o[k] as unknown[] | null) === null || (o[k] as unknown[]).length === (o[keys[0]!] as unknown[]).length);

// ---------------------------------------------------------------------------------------------
// View data

export const NeuronRefSchema = object({ layer: nat, neuron: nat });
export type NeuronRef = Infer<typeof NeuronRefSchema>;

/** What every run-based view shows in its header. */
export const RunInfoSchema = object({
  runDir: str,
  id: str,
  status: str,
  /** Model labels, the reference first. */
  models: array(str),
  nLayers: nat,
  dMlp: nat,
  /** Universal ⇔ excess_corr > threshold. */
  threshold: finite,
  /** Tokens the statistics ran over (manifest progress). */
  tokens: nat,
  created: str,
});
export type RunInfo = Infer<typeof RunInfoSchema>;

const numColumn = array(num);
const tableValues = object(Object.fromEntries(TABLE_COLUMNS.map((c) => [c, numColumn])) as Record<TableColumn, typeof numColumn>);

/** Every reference neuron, as parallel arrays (row i is neuron (layer[i], neuron[i])). */
export const NeuronColumnsSchema = refine(
  object({
    layer: array(nat),
    neuron: array(nat),
    /** The run's universal flag per neuron. */
    universal: array(bool),
    values: tableValues,
    /** null: families are not computed in this run yet. */
    family: nullable(array(nullable(str))),
    /** The best explaining label, machine-readable (`unigram:the`, `prev:alphabet:t`…); null: not in this run. */
    familyLabel: nullable(array(nullable(label))),
    /** Variance reduction (0–1) of that label; null: not in this run. */
    familyVr: nullable(numColumn),
    /** Every role of each neuron, the primary first ([] = none); null: roles not computed in this run. */
    roles: nullable(array(roleList)),
  }),
  (c) => sameLength<typeof c>('layer', 'neuron', 'universal', 'family', 'familyLabel', 'familyVr', 'roles')(c) && TABLE_COLUMNS.every((k) => c.values[k].length === c.layer.length),
  'the columns differ in length',
);
export type NeuronColumns = Infer<typeof NeuronColumnsSchema>;

const LayerSummarySchema = object({
  layer: nat,
  neurons: nat,
  universal: nat,
  /** 0–100 */
  percent: finite,
  medianExcess: num,
});
export type LayerSummary = Infer<typeof LayerSummarySchema>;

const histogramEntries = {
  /** bins + 1 edges, ascending. */
  edges: array(finite),
  counts: array(nat),
};
const EDGES = 'a histogram needs one edge more than its bins';
const HistogramSchema = refine(
  object(histogramEntries),
  (h) => h.edges.length === h.counts.length + 1,
  EDGES,
);
export type Histogram = Infer<typeof HistogramSchema>;

const FamilyCountSchema = object({ family: str, neurons: nat, universal: nat });
export type FamilyCount = Infer<typeof FamilyCountSchema>;

/** Neurons per family and layer (`all[l]`, `universal[l]`), families in display order. */
const FamilyLayerCountsSchema = refine(
  object({ family: str, all: array(nat), universal: array(nat) }),
  (f) => f.universal.length === f.all.length,
  'all and universal differ in length',
);
export type FamilyLayerCounts = Infer<typeof FamilyLayerCountsSchema>;

/** Neurons having a role (several roles: counted under each), in total and per layer. */
const RoleCountSchema = object({ role, neurons: nat, universal: nat, byLayer: array(nat) });
export type RoleCount = Infer<typeof RoleCountSchema>;

const attentionScoreEntries = {
  /** `L3.H1` */
  head: headName,
  /** z-score against random unit directions. */
  score: num,
  /** The raw score ŵ_outᵀ·W_Qᵀ·k_BOS/√d_head (null when the run gives only the z-score). */
  raw: num,
};
/** An attention-deactivation score of a neuron against a later head (roles.json). */
const AttentionScoreSchema = object(attentionScoreEntries);
export type AttentionScore = Infer<typeof AttentionScoreSchema>;

const AttentionPairSchema = object({ ...attentionScoreEntries, layer: nat, neuron: nat });
export type AttentionPair = Infer<typeof AttentionPairSchema>;

/** p10/p25/p50/p75/p90 of a distribution (a box with whiskers); null when the group is empty. */
const QuantilesSchema = object({ p10: num, p25: num, p50: num, p75: num, p90: num });
export type QuantilesData = Infer<typeof QuantilesSchema>;

/** One statistic of "properties of universal neurons": within-layer percentiles (0–100), universal vs the rest. */
const PropertySchema = object({
  /** Column name (PROPERTY_STATS in src/view/properties.ts). */
  stat: str,
  universal: QuantilesSchema,
  rest: QuantilesSchema,
  nUniversal: nat,
  nRest: nat,
  /** Median raw values, in the column's units. */
  medianUniversal: num,
  medianRest: num,
});
export type PropertyData = Infer<typeof PropertySchema>;

/** "Is the basis privileged?" for one layer. */
const LayerBasisSchema = object({
  layer: nat,
  /** The rotated baseline (mean_baseline) over the layer's neurons. */
  baseline: QuantilesSchema,
  /** The neurons' mean_corr over the layer. */
  corr: QuantilesSchema,
  /** Top-5 principal components' share (0–1) of the layer's activation variance; null: not in this run. */
  pcaTop5: num,
  privileged: bool,
  /** The one-line reading. */
  reading: str,
});
export type LayerBasisData = Infer<typeof LayerBasisSchema>;

export const OverviewDataSchema = object({
  run: RunInfoSchema,
  totals: object({ neurons: nat, universal: nat, percent: finite }),
  layers: array(LayerSummarySchema),
  excessHistogram: HistogramSchema,
  /** One point per neuron (row order as in the run). */
  scatter: refine(
    object({ layer: array(nat), neuron: array(nat), meanCorr: numColumn, meanBaseline: numColumn, universal: array(bool) }),
    (s) => sameLength<typeof s>('meanCorr', 'layer', 'neuron', 'meanBaseline', 'universal')(s),
    'the scatter columns differ in length',
  ),
  /** null: families are not computed in this run yet. */
  families: nullable(array(FamilyCountSchema)),
  /** Per-layer family counts for the stacked bars; null: no families in this run. */
  familyLayers: nullable(array(FamilyLayerCountsSchema)),
  /** null: roles are not computed in this run. */
  roles: nullable(array(RoleCountSchema)),
  /** The strongest neuron–head attention-deactivation pairs (roles.json); null: not in this run. */
  attention: nullable(array(AttentionPairSchema)),
  /** Properties of universal neurons (the paper's Fig. 3), and the statistics this run lacks. */
  properties: object({ stats: array(PropertySchema), missing: array(str) }),
  /** Is the basis privileged? Per layer. */
  basis: array(LayerBasisSchema),
});
export type OverviewData = Infer<typeof OverviewDataSchema>;

export const TableDataSchema = object({ run: RunInfoSchema, columns: NeuronColumnsSchema });
export type TableData = Infer<typeof TableDataSchema>;

const StatRowSchema = object({
  /** Column name (the paper's). */
  key: str,
  group: picklist(STAT_GROUPS),
  value: num,
  /** Percentile rank within the neuron's layer, 0–100. */
  percentile: num,
});
export type StatRow = Infer<typeof StatRowSchema>;

const ExampleTokenSchema = object({ id: int, text: str, act: finite });
export type ExampleToken = Infer<typeof ExampleTokenSchema>;

const ExampleContextSchema = refine(
  object({
    /** The neuron's max post-activation in this context. */
    value: finite,
    /** Corpus row. */
    row: int,
    /** Index into tokens of the max. */
    maxIndex: nat,
    tokens: array(ExampleTokenSchema),
    /** Whether the max token carries the neuron's best family label (absent: not known). */
    carriesLabel: optional(bool),
  }),
  (e) => e.tokens.length === 0 || e.maxIndex < e.tokens.length,
  'maxIndex is past the tokens',
);
export type ExampleContext = Infer<typeof ExampleContextSchema>;

const TokenValueSchema = object({ id: int, text: str, value: finite });
export type TokenValue = Infer<typeof TokenValueSchema>;

const PartnerSchema = object({
  /** Model label (another seed). */
  model: str,
  layer: nat,
  neuron: nat,
  corr: num,
  baseline: num,
  /**
   * The reference neuron that correlates best with this partner among all reference neurons whose
   * best partner in that model it is (null when none is known). Equal to the page's own neuron
   * when this neuron is the partner's best match.
   */
  bestReference: nullable(object({ layer: nat, neuron: nat, corr: num })),
});
export type Partner = Infer<typeof PartnerSchema>;

const ActivationHistogramSchema = refine(
  object({ ...histogramEntries, under: nat, over: nat, min: num, max: num }),
  (h) => h.edges.length === h.counts.length + 1,
  EDGES,
);
export type ActivationHistogram = Infer<typeof ActivationHistogramSchema>;

/** Why a neuron is in its family: its best label and how much of its variance that label explains. */
const FamilyExplanationSchema = object({
  /** Machine-readable (`unigram:the`, `prev:alphabet:t`, `position:<32`…); null: none. */
  label: nullable(label),
  /** Variance reduction of the label, 0–1. */
  vr: num,
  /** Binary mutual information (nats) of firing vs position. */
  positionMi: num,
});
export type FamilyExplanation = Infer<typeof FamilyExplanationSchema>;

const entropyPointEntries = { lnScale: num, entropy: num, loss: num };
const EntropyPointSchema = object(entropyPointEntries);
export type EntropyPoint = Infer<typeof EntropyPointSchema>;

/** Entropy-neuron intervention (roles.json): the activation fixed to `value` at every position. */
const EntropyInterventionSchema = object({
  /** Whether the neuron passes the entropy-neuron rule (false: the run's closest candidate, measured to show the shape). */
  candidate: optional(bool),
  baseline: EntropyPointSchema,
  points: array(object({ ...entropyPointEntries, value: finite, dLoss: num, dEntropy: num })),
});
export type EntropyIntervention = Infer<typeof EntropyInterventionSchema>;

/** A next token whose probability an ablation moves (neuronEffect.ts): mean Δp over the contexts' positions. */
const EffectTokenSchema = object({ id: int, text: str, delta: finite, positions: nat });
export type EffectToken = Infer<typeof EffectTokenSchema>;

/** One ablation of "What it does": the neuron zeroed (or set to its run mean) on its top contexts. */
const AblationEffectSchema = object({
  /** "zero at hook_post", "run mean (0.123) at hook_pre". */
  label: str,
  kind: picklist(['zero', 'mean']),
  hook: picklist(['pre', 'post']),
  mean: optional(finite),
  /** Mean over every next-token prediction of the contexts, nats. */
  meanDeltaLoss: num,
  meanCleanLoss: num,
  /** Mean Δ loss of predicting the token after each context's maximum. */
  meanDeltaLossAtMax: num,
  up: array(EffectTokenSchema),
  down: array(EffectTokenSchema),
  /** |Δp| a token outside both top-k lists can add per position is below this. */
  bound: finite,
});
export type AblationEffectData = Infer<typeof AblationEffectSchema>;

/** The neuron page's "What it does" section (computed on request: it runs the model). */
export const NeuronEffectDataSchema = object({
  layer: nat,
  neuron: nat,
  /** The model the contexts ran on (the run's reference). */
  model: str,
  contexts: nat,
  predictions: nat,
  positions: nat,
  topK: nat,
  ablations: array(AblationEffectSchema),
  /** What was left out and why (no run mean, …). */
  notes: array(str),
  ms: finite,
});
export type NeuronEffectData = Infer<typeof NeuronEffectDataSchema>;

/** A development run's neuron (issue #15): its best-partner correlation in each training checkpoint, the final (itself, 1) last. */
const DevelopmentSchema = object({
  /** The training run (hub repo `org/name`). */
  repo: str,
  points: array(
    object({
      label: str,
      /** Training step; null for a final checkpoint no stepN ref names. */
      step: nullable(nat),
      corr: num,
      /** The checkpoint's best-correlated neuron; null at the final checkpoint (the neuron itself). */
      partner: nullable(object({ layer: nat, neuron: nat })),
    }),
  ),
});
export type Development = Infer<typeof DevelopmentSchema>;

export const NeuronDataSchema = object({
  run: RunInfoSchema,
  layer: nat,
  neuron: nat,
  universal: bool,
  /** undefined: families not computed; null: in no family. */
  family: optional(nullable(str)),
  /** undefined: the run has no family labels. */
  explanation: optional(FamilyExplanationSchema),
  /** undefined: roles not computed; [] none; else the primary role first. */
  roles: optional(roleList),
  /** Attention-deactivation scores against later heads, strongest first (when the run has them). */
  attention: optional(array(AttentionScoreSchema)),
  /** The entropy intervention of this neuron (when the run made one). */
  entropy: optional(EntropyInterventionSchema),
  stats: array(StatRowSchema),
  /** Post-activation histogram over the corpus. */
  histogram: nullable(ActivationHistogramSchema),
  examples: array(ExampleContextSchema),
  /** Tokens the neuron's output most promotes / suppresses (when the run has them). */
  vocab: nullable(object({ top: array(TokenValueSchema), bottom: array(TokenValueSchema) })),
  partners: array(PartnerSchema),
  /** In a development run: the neuron's correlation with its best partner at each training step. */
  development: optional(DevelopmentSchema),
  /** What is missing from this run and why. */
  notes: array(str),
});
export type NeuronData = Infer<typeof NeuronDataSchema>;

const PromptTokenSchema = refine(
  object({
    text: str,
    start: nat,
    end: nat,
    /** null when the caller did not give token ids. */
    id: nullable(nat),
    value: num,
  }),
  (t) => t.end >= t.start,
  'a token ends before it starts',
);
export type PromptToken = Infer<typeof PromptTokenSchema>;

export const PromptDataSchema = object({
  /** The document's URI (string). */
  document: str,
  /** Its short name. */
  title: str,
  neuronLabel: str,
  tokens: array(PromptTokenSchema),
});
export type PromptData = Infer<typeof PromptDataSchema>;

export const ViewPayloadSchema = variant('view', [
  object({ view: literal('overview'), data: OverviewDataSchema }),
  object({ view: literal('table'), data: TableDataSchema }),
  object({ view: literal('neuron'), data: NeuronDataSchema }),
  object({ view: literal('prompt'), data: PromptDataSchema }),
]);
export type ViewPayload = Infer<typeof ViewPayloadSchema>;

// ---------------------------------------------------------------------------------------------
// Messages

/** Webview → host. */
export const FromWebviewSchema = variant('type', [
  object({ type: literal('ready'), protocolVersion: int, view: viewKind }),
  object({ type: literal('openNeuron'), layer: nat, neuron: nat }),
  object({ type: literal('openView'), view: picklist(['overview', 'table']) }),
  /** Zero-ablate this neuron on the prompt open in the editor (Intervene on Neuron). */
  object({ type: literal('intervene'), layer: nat, neuron: nat }),
  /** Run "What it does" for this neuron of the page's run (cached per run and neuron). */
  object({ type: literal('measureEffect'), layer: nat, neuron: nat }),
  /** Stop the "What it does" run in flight. */
  object({ type: literal('cancelEffect') }),
  refine(
    object({ type: literal('revealRange'), start: nat, end: nat }),
    (r) => r.end >= r.start,
    'a range ends before it starts',
  ),
  object({ type: literal('log'), level: picklist(['info', 'warn', 'error']), message: text }),
]);
export type FromWebview = Infer<typeof FromWebviewSchema>;

/** Host → webview. */
export const ToWebviewSchema = variant('type', [
  object({ type: literal('init'), protocolVersion: int, payload: ViewPayloadSchema }),
  object({ type: literal('error'), message: text }),
  /** "What it does" of the neuron page: in progress (done of total contexts), finished, failed or cancelled. */
  object({
    type: literal('effect'),
    layer: nat,
    neuron: nat,
    state: picklist(['running', 'done', 'error', 'cancelled']),
    progress: optional(object({ done: nat, total: nat })),
    data: optional(NeuronEffectDataSchema),
    message: optional(text),
  }),
]);
export type ToWebview = Infer<typeof ToWebviewSchema>;

// ---------------------------------------------------------------------------------------------
// Persisted webview state (vscode.setState / the panel serializers)

/** What the table sorts by: a numeric column, position, or a family/role column. */
const tableSort = union(tableColumn, picklist(['layer', 'neuron', 'family', 'family_vr', 'role']));
export type TableSort = Infer<typeof tableSort>;

/** Table filters and paging; restored across reloads. */
export const TableUiStateSchema = object({
  universalOnly: bool,
  /** null: every layer. */
  layer: nullable(nat),
  /** null: every family. */
  family: nullable(str),
  /** null or absent (state saved before roles existed): every role. */
  role: optional(nullable(role)),
  minExcess: num,
  maxExcess: num,
  sort: tableSort,
  descending: bool,
  page: nat,
});
export type TableUiState = Infer<typeof TableUiStateSchema>;

export const PanelStateSchema = object({
  v: literal(1),
  view: viewKind,
  /** Run-based views: the run folder (absolute). */
  runDir: optional(str),
  /** Neuron page. */
  neuron: optional(NeuronRefSchema),
  /** Prompt view: its data (the host cannot recompute it without running the model). */
  prompt: optional(PromptDataSchema),
  table: optional(TableUiStateSchema),
  scrollY: optional(number({ min: 0 })),
});
export type PanelState = Infer<typeof PanelStateSchema>;

// ---------------------------------------------------------------------------------------------
// Guards: each checks its schema; total (never throws).

const guard =
  <T>(schema: Schema<T>) =>
  (x: unknown): x is T =>
    schema.check(x);

export const isViewKind = guard(viewKind);
export const isRole = guard(role);
export const isHeadName = guard(headName);
export const isNeuronRef = guard(NeuronRefSchema);
export const isRunInfo = guard(RunInfoSchema);
export const isNeuronColumns = guard(NeuronColumnsSchema);
export const isOverviewData = guard(OverviewDataSchema);
export const isTableData = guard(TableDataSchema);
export const isNeuronData = guard(NeuronDataSchema);
export const isPromptData = guard(PromptDataSchema);
export const isViewPayload = guard(ViewPayloadSchema);
/** Host-side guard for everything a webview posts. */
export const isFromWebview = guard(FromWebviewSchema);
/** Webview-side guard for everything the host posts (checks the whole payload). */
export const isToWebview = guard(ToWebviewSchema);
export const isTableUiState = guard(TableUiStateSchema);
/** Persisted state as it comes back from vscode.getState() or a serializer: checked, never trusted. */
export const isPanelState = guard(PanelStateSchema);

/** A short description of a rejected message for logs (never the whole payload). */
export function describeMessage(m: unknown): string {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return m === null ? 'null' : Array.isArray(m) ? 'an array' : typeof m;
  const o = m as Record<string, unknown>;
  const type = typeof o.type === 'string' ? JSON.stringify(o.type.slice(0, 40)) : typeof o.type;
  const keys = Object.keys(o).slice(0, 8).join(', ');
  return `{type: ${type}; keys: ${keys}}`;
}
