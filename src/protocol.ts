/**
 * The one protocol between the extension host and its webviews. Both bundles import this file,
 * so a renamed field fails to compile on both ends. No `vscode` and no DOM here.
 *
 * Handshake: the webview posts `ready` once its script runs (messages posted before it listens
 * are lost); only then does the host answer `init` with the view's data. A webview that is
 * reloaded (hidden without retainContextWhenHidden, restored after a window reload) posts
 * `ready` again and gets `init` again.
 *
 * Nothing received is trusted: every message goes through a hand-written guard below on receipt
 * (host: `isFromWebview`; webview: `isToWebview`, which checks the whole payload), and anything
 * of the wrong shape is dropped (the host logs it to its output channel).
 *
 * Missing numbers: JSON has no NaN, so a value that is NaN/±Infinity in the run is sent as null.
 */

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

/** A number that may be missing. */
export type Num = number | null;

// ---------------------------------------------------------------------------------------------
// View data

export interface NeuronRef {
  layer: number;
  neuron: number;
}

/** What every run-based view shows in its header. */
export interface RunInfo {
  runDir: string;
  id: string;
  status: string;
  /** Model labels, the reference first. */
  models: string[];
  nLayers: number;
  dMlp: number;
  /** Universal ⇔ excess_corr > threshold. */
  threshold: number;
  /** Tokens the statistics ran over (manifest progress). */
  tokens: number;
  created: string;
}

/** Columns of the neuron table, in display order (all numeric; `family` is separate). */
export const TABLE_COLUMNS = [
  'excess_corr',
  'mean_corr',
  'mean_baseline',
  'max_corr',
  'min_corr',
  'sparsity',
  'kurt',
  'vocab_kurt',
  'w_out_norm',
] as const;
export type TableColumn = (typeof TABLE_COLUMNS)[number];

/**
 * Neuron roles (method.md "Families and roles"): prediction/suppression/partition from the vocab
 * moments, entropy neurons acting through the final LayerNorm, attention-deactivation neurons
 * switching a later head onto BOS.
 */
export const ROLES = ['prediction', 'suppression', 'partition', 'entropy', 'attention-deactivation'] as const;
export type Role = (typeof ROLES)[number];

/** Every reference neuron, as parallel arrays (row i is neuron (layer[i], neuron[i])). */
export interface NeuronColumns {
  layer: number[];
  neuron: number[];
  /** The run's universal flag per neuron. */
  universal: boolean[];
  values: Record<TableColumn, Num[]>;
  /** null: families are not computed in this run yet. */
  family: (string | null)[] | null;
  /** The best explaining label, machine-readable (`unigram:the`, `prev:alphabet:t`…); null: not in this run. */
  familyLabel: (string | null)[] | null;
  /** Variance reduction (0–1) of that label; null: not in this run. */
  familyVr: Num[] | null;
  /** Every role of each neuron, the primary first ([] = none); null: roles not computed in this run. */
  roles: Role[][] | null;
}

export interface LayerSummary {
  layer: number;
  neurons: number;
  universal: number;
  /** 0–100 */
  percent: number;
  medianExcess: Num;
}

export interface Histogram {
  /** bins + 1 edges, ascending. */
  edges: number[];
  counts: number[];
}

export interface FamilyCount {
  family: string;
  neurons: number;
  universal: number;
}

/** Neurons per family and layer (`all[l]`, `universal[l]`), families in display order. */
export interface FamilyLayerCounts {
  family: string;
  all: number[];
  universal: number[];
}

/** Neurons having a role (several roles: counted under each), in total and per layer. */
export interface RoleCount {
  role: Role;
  neurons: number;
  universal: number;
  byLayer: number[];
}

/** An attention-deactivation score of a neuron against a later head (roles.json). */
export interface AttentionScore {
  /** `L3.H1` */
  head: string;
  /** z-score against random unit directions. */
  score: Num;
  /** The raw score ŵ_outᵀ·W_Qᵀ·k_BOS/√d_head (null when the run gives only the z-score). */
  raw: Num;
}

export interface AttentionPair extends AttentionScore {
  layer: number;
  neuron: number;
}

export interface OverviewData {
  run: RunInfo;
  totals: { neurons: number; universal: number; percent: number };
  layers: LayerSummary[];
  excessHistogram: Histogram;
  /** One point per neuron (row order as in the run). */
  scatter: { layer: number[]; neuron: number[]; meanCorr: Num[]; meanBaseline: Num[]; universal: boolean[] };
  /** null: families are not computed in this run yet. */
  families: FamilyCount[] | null;
  /** Per-layer family counts for the stacked bars; null: no families in this run. */
  familyLayers: FamilyLayerCounts[] | null;
  /** null: roles are not computed in this run. */
  roles: RoleCount[] | null;
  /** The strongest neuron–head attention-deactivation pairs (roles.json); null: not in this run. */
  attention: AttentionPair[] | null;
}

export interface TableData {
  run: RunInfo;
  columns: NeuronColumns;
}

export type StatGroup = 'universality' | 'weights' | 'activations' | 'vocab';
export const STAT_GROUPS: readonly StatGroup[] = ['universality', 'weights', 'activations', 'vocab'];

export interface StatRow {
  /** Column name (the paper's). */
  key: string;
  group: StatGroup;
  value: Num;
  /** Percentile rank within the neuron's layer, 0–100. */
  percentile: Num;
}

export interface ExampleToken {
  id: number;
  text: string;
  act: number;
}

export interface ExampleContext {
  /** The neuron's max post-activation in this context. */
  value: number;
  /** Corpus row. */
  row: number;
  /** Index into tokens of the max. */
  maxIndex: number;
  tokens: ExampleToken[];
  /** Whether the max token carries the neuron's best family label (absent: not known). */
  carriesLabel?: boolean;
}

export interface TokenValue {
  id: number;
  text: string;
  value: number;
}

export interface Partner {
  /** Model label (another seed). */
  model: string;
  layer: number;
  neuron: number;
  corr: Num;
  baseline: Num;
  /**
   * The reference neuron that correlates best with this partner among all reference neurons whose
   * best partner in that model it is (null when none is known). Equal to the page's own neuron
   * when this neuron is the partner's best match.
   */
  bestReference: { layer: number; neuron: number; corr: Num } | null;
}

export interface ActivationHistogram extends Histogram {
  under: number;
  over: number;
  min: Num;
  max: Num;
}

/** Why a neuron is in its family: its best label and how much of its variance that label explains. */
export interface FamilyExplanation {
  /** Machine-readable (`unigram:the`, `prev:alphabet:t`, `position:<32`…); null: none. */
  label: string | null;
  /** Variance reduction of the label, 0–1. */
  vr: Num;
  /** Binary mutual information (nats) of firing vs position. */
  positionMi: Num;
}

export interface EntropyPoint {
  lnScale: Num;
  entropy: Num;
  loss: Num;
}

/** Entropy-neuron intervention (roles.json): the activation fixed to `value` at every position. */
export interface EntropyIntervention {
  /** Whether the neuron passes the entropy-neuron rule (false: the run's closest candidate, measured to show the shape). */
  candidate?: boolean;
  baseline: EntropyPoint;
  points: (EntropyPoint & { value: number; dLoss: Num; dEntropy: Num })[];
}

export interface NeuronData {
  run: RunInfo;
  layer: number;
  neuron: number;
  universal: boolean;
  /** undefined: families not computed; null: in no family. */
  family?: string | null;
  /** undefined: the run has no family labels. */
  explanation?: FamilyExplanation;
  /** undefined: roles not computed; [] none; else the primary role first. */
  roles?: Role[];
  /** Attention-deactivation scores against later heads, strongest first (when the run has them). */
  attention?: AttentionScore[];
  /** The entropy intervention of this neuron (when the run made one). */
  entropy?: EntropyIntervention;
  stats: StatRow[];
  /** Post-activation histogram over the corpus. */
  histogram: ActivationHistogram | null;
  examples: ExampleContext[];
  /** Tokens the neuron's output most promotes / suppresses (when the run has them). */
  vocab: { top: TokenValue[]; bottom: TokenValue[] } | null;
  partners: Partner[];
  /** What is missing from this run and why. */
  notes: string[];
}

export interface PromptToken {
  text: string;
  start: number;
  end: number;
  /** null when the caller did not give token ids. */
  id: number | null;
  value: Num;
}

export interface PromptData {
  /** The document's URI (string). */
  document: string;
  /** Its short name. */
  title: string;
  neuronLabel: string;
  tokens: PromptToken[];
}

export type ViewPayload =
  | { view: 'overview'; data: OverviewData }
  | { view: 'table'; data: TableData }
  | { view: 'neuron'; data: NeuronData }
  | { view: 'prompt'; data: PromptData };

// ---------------------------------------------------------------------------------------------
// Messages

/** Webview → host. */
export type FromWebview =
  | { type: 'ready'; protocolVersion: number; view: ViewKind }
  | { type: 'openNeuron'; layer: number; neuron: number }
  | { type: 'openView'; view: 'overview' | 'table' }
  | { type: 'revealRange'; start: number; end: number }
  | { type: 'log'; level: LogLevel; message: string };

export type LogLevel = 'info' | 'warn' | 'error';

/** Host → webview. */
export type ToWebview =
  | { type: 'init'; protocolVersion: number; payload: ViewPayload }
  | { type: 'error'; message: string };

/** Longest `log`/`error` text accepted (longer is a wrong shape, not truncated). */
export const MAX_TEXT = 4000;

// ---------------------------------------------------------------------------------------------
// Persisted webview state (vscode.setState / the panel serializers)

/** Table filters and paging; restored across reloads. */
/** What the table sorts by: a numeric column, position, or a family/role column. */
export type TableSort = TableColumn | 'layer' | 'neuron' | 'family' | 'family_vr' | 'role';

export interface TableUiState {
  universalOnly: boolean;
  /** null: every layer. */
  layer: number | null;
  /** null: every family. */
  family: string | null;
  /** null or absent (state saved before roles existed): every role. */
  role?: Role | null;
  minExcess: number | null;
  maxExcess: number | null;
  sort: TableSort;
  descending: boolean;
  page: number;
}

export interface PanelState {
  v: 1;
  view: ViewKind;
  /** Run-based views: the run folder (absolute). */
  runDir?: string;
  /** Neuron page. */
  neuron?: NeuronRef;
  /** Prompt view: its data (the host cannot recompute it without running the model). */
  prompt?: PromptData;
  table?: TableUiState;
  scrollY?: number;
}

// ---------------------------------------------------------------------------------------------
// Guards: hand-written, total (never throw), strict about every field that is read.

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isFiniteNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isNum = (v: unknown): v is Num => v === null || isFiniteNum(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isNat = (v: unknown): v is number => isInt(v) && v >= 0;
const isText = (v: unknown): v is string => isStr(v) && v.length <= MAX_TEXT;

function every<T>(v: unknown, f: (x: unknown) => x is T): v is T[] {
  if (!Array.isArray(v)) return false;
  for (const x of v) if (!f(x)) return false;
  return true;
}

/** An array of `n` elements each passing `f`. */
function arrayOf<T>(v: unknown, n: number, f: (x: unknown) => x is T): v is T[] {
  return Array.isArray(v) && v.length === n && every(v, f);
}

const isNullableStr = (v: unknown): v is string | null => v === null || isStr(v);

export const isViewKind = (v: unknown): v is ViewKind => v === 'overview' || v === 'table' || v === 'neuron' || v === 'prompt';
const isLogLevel = (v: unknown): v is LogLevel => v === 'info' || v === 'warn' || v === 'error';
const isTableColumn = (v: unknown): v is TableColumn => (TABLE_COLUMNS as readonly unknown[]).includes(v);
export const isRole = (v: unknown): v is Role => (ROLES as readonly unknown[]).includes(v);
/** An attention head name as the engine writes it (`L3.H1`). */
export const isHeadName = (v: unknown): v is string => isStr(v) && /^L\d{1,4}\.H\d{1,4}$/.test(v);
/** A family label: short text (the engine writes `kind:value`, optionally `prev:`-prefixed). */
const isLabel = (v: unknown): v is string => isStr(v) && v.length <= 200;
const isNullableLabel = (v: unknown): v is string | null => v === null || isLabel(v);
const isRoleList = (v: unknown): v is Role[] => every(v, isRole) && new Set(v).size === v.length;
const isStatGroup = (v: unknown): v is StatGroup => (STAT_GROUPS as readonly unknown[]).includes(v);

export function isNeuronRef(v: unknown): v is NeuronRef {
  return isObj(v) && isNat(v.layer) && isNat(v.neuron);
}

export function isRunInfo(v: unknown): v is RunInfo {
  return (
    isObj(v) &&
    isStr(v.runDir) &&
    isStr(v.id) &&
    isStr(v.status) &&
    every(v.models, isStr) &&
    isNat(v.nLayers) &&
    isNat(v.dMlp) &&
    isFiniteNum(v.threshold) &&
    isNat(v.tokens) &&
    isStr(v.created)
  );
}

export function isNeuronColumns(v: unknown): v is NeuronColumns {
  if (!isObj(v) || !every(v.layer, isNat)) return false;
  const n = v.layer.length;
  if (!arrayOf(v.neuron, n, isNat) || !arrayOf(v.universal, n, isBool) || !isObj(v.values)) return false;
  const values = v.values;
  if (!TABLE_COLUMNS.every((c) => arrayOf(values[c], n, isNum))) return false;
  return (
    (v.family === null || arrayOf(v.family, n, isNullableStr)) &&
    (v.familyLabel === null || arrayOf(v.familyLabel, n, isNullableLabel)) &&
    (v.familyVr === null || arrayOf(v.familyVr, n, isNum)) &&
    (v.roles === null || arrayOf(v.roles, n, isRoleList))
  );
}

function isHistogram(v: unknown): v is Histogram {
  return isObj(v) && every(v.counts, isNat) && arrayOf(v.edges, v.counts.length + 1, isFiniteNum);
}

function isLayerSummary(v: unknown): v is LayerSummary {
  return isObj(v) && isNat(v.layer) && isNat(v.neurons) && isNat(v.universal) && isFiniteNum(v.percent) && isNum(v.medianExcess);
}

function isFamilyCount(v: unknown): v is FamilyCount {
  return isObj(v) && isStr(v.family) && isNat(v.neurons) && isNat(v.universal);
}

function isFamilyLayerCounts(v: unknown): v is FamilyLayerCounts {
  return isObj(v) && isStr(v.family) && every(v.all, isNat) && arrayOf(v.universal, v.all.length, isNat);
}

function isRoleCount(v: unknown): v is RoleCount {
  return isObj(v) && isRole(v.role) && isNat(v.neurons) && isNat(v.universal) && every(v.byLayer, isNat);
}

function isAttentionScore(v: unknown): v is AttentionScore {
  return isObj(v) && isHeadName(v.head) && isNum(v.score) && isNum(v.raw);
}

function isAttentionPair(v: unknown): v is AttentionPair {
  return isObj(v) && isAttentionScore(v) && isNat(v.layer) && isNat(v.neuron);
}

export function isOverviewData(v: unknown): v is OverviewData {
  if (!isObj(v) || !isRunInfo(v.run) || !isObj(v.totals) || !isObj(v.scatter)) return false;
  const t = v.totals;
  const s = v.scatter;
  if (!(isNat(t.neurons) && isNat(t.universal) && isFiniteNum(t.percent))) return false;
  if (!every(s.meanCorr, isNum)) return false;
  const n = s.meanCorr.length;
  return (
    arrayOf(s.layer, n, isNat) &&
    arrayOf(s.neuron, n, isNat) &&
    arrayOf(s.meanBaseline, n, isNum) &&
    arrayOf(s.universal, n, isBool) &&
    every(v.layers, isLayerSummary) &&
    isHistogram(v.excessHistogram) &&
    (v.families === null || every(v.families, isFamilyCount)) &&
    (v.familyLayers === null || every(v.familyLayers, isFamilyLayerCounts)) &&
    (v.roles === null || every(v.roles, isRoleCount)) &&
    (v.attention === null || every(v.attention, isAttentionPair))
  );
}

export function isTableData(v: unknown): v is TableData {
  return isObj(v) && isRunInfo(v.run) && isNeuronColumns(v.columns);
}

function isStatRow(v: unknown): v is StatRow {
  return isObj(v) && isStr(v.key) && isStatGroup(v.group) && isNum(v.value) && isNum(v.percentile);
}

function isExampleToken(v: unknown): v is ExampleToken {
  return isObj(v) && isInt(v.id) && isStr(v.text) && isFiniteNum(v.act);
}

function isExampleContext(v: unknown): v is ExampleContext {
  return (
    isObj(v) &&
    isFiniteNum(v.value) &&
    isInt(v.row) &&
    every(v.tokens, isExampleToken) &&
    isNat(v.maxIndex) &&
    (v.tokens.length === 0 || v.maxIndex < v.tokens.length) &&
    (v.carriesLabel === undefined || isBool(v.carriesLabel))
  );
}

function isTokenValue(v: unknown): v is TokenValue {
  return isObj(v) && isInt(v.id) && isStr(v.text) && isFiniteNum(v.value);
}

function isPartner(v: unknown): v is Partner {
  if (!isObj(v) || !isStr(v.model) || !isNat(v.layer) || !isNat(v.neuron) || !isNum(v.corr) || !isNum(v.baseline)) return false;
  const b = v.bestReference;
  return b === null || (isObj(b) && isNat(b.layer) && isNat(b.neuron) && isNum(b.corr));
}

function isActivationHistogram(v: unknown): v is ActivationHistogram {
  return isObj(v) && isHistogram(v) && isNat(v.under) && isNat(v.over) && isNum(v.min) && isNum(v.max);
}

function isFamilyExplanation(v: unknown): v is FamilyExplanation {
  return isObj(v) && isNullableLabel(v.label) && isNum(v.vr) && isNum(v.positionMi);
}

function isEntropyPoint(v: unknown): v is EntropyPoint {
  return isObj(v) && isNum(v.lnScale) && isNum(v.entropy) && isNum(v.loss);
}

function isInterventionPoint(v: unknown): v is EntropyIntervention['points'][number] {
  return isObj(v) && isEntropyPoint(v) && isFiniteNum(v.value) && isNum(v.dLoss) && isNum(v.dEntropy);
}

function isEntropyIntervention(v: unknown): v is EntropyIntervention {
  return isObj(v) && (v.candidate === undefined || isBool(v.candidate)) && isEntropyPoint(v.baseline) && every(v.points, isInterventionPoint);
}

export function isNeuronData(v: unknown): v is NeuronData {
  if (!isObj(v)) return false;
  const vocab = v.vocab;
  return (
    isRunInfo(v.run) &&
    isNat(v.layer) &&
    isNat(v.neuron) &&
    isBool(v.universal) &&
    (v.family === undefined || isNullableStr(v.family)) &&
    (v.explanation === undefined || isFamilyExplanation(v.explanation)) &&
    (v.roles === undefined || isRoleList(v.roles)) &&
    (v.attention === undefined || every(v.attention, isAttentionScore)) &&
    (v.entropy === undefined || isEntropyIntervention(v.entropy)) &&
    every(v.stats, isStatRow) &&
    (v.histogram === null || isActivationHistogram(v.histogram)) &&
    every(v.examples, isExampleContext) &&
    (vocab === null || (isObj(vocab) && every(vocab.top, isTokenValue) && every(vocab.bottom, isTokenValue))) &&
    every(v.partners, isPartner) &&
    every(v.notes, isStr)
  );
}

function isPromptToken(v: unknown): v is PromptToken {
  return (
    isObj(v) &&
    isStr(v.text) &&
    isNat(v.start) &&
    isNat(v.end) &&
    v.end >= v.start &&
    (v.id === null || isNat(v.id)) &&
    isNum(v.value)
  );
}

export function isPromptData(v: unknown): v is PromptData {
  return isObj(v) && isStr(v.document) && isStr(v.title) && isStr(v.neuronLabel) && every(v.tokens, isPromptToken);
}

export function isViewPayload(v: unknown): v is ViewPayload {
  if (!isObj(v)) return false;
  switch (v.view) {
    case 'overview':
      return isOverviewData(v.data);
    case 'table':
      return isTableData(v.data);
    case 'neuron':
      return isNeuronData(v.data);
    case 'prompt':
      return isPromptData(v.data);
    default:
      return false;
  }
}

/** Host-side guard for everything a webview posts. */
export function isFromWebview(m: unknown): m is FromWebview {
  if (!isObj(m)) return false;
  switch (m.type) {
    case 'ready':
      return isInt(m.protocolVersion) && isViewKind(m.view);
    case 'openNeuron':
      return isNat(m.layer) && isNat(m.neuron);
    case 'openView':
      return m.view === 'overview' || m.view === 'table';
    case 'revealRange':
      return isNat(m.start) && isNat(m.end) && m.end >= m.start;
    case 'log':
      return isLogLevel(m.level) && isText(m.message);
    default:
      return false;
  }
}

/** Webview-side guard for everything the host posts (checks the whole payload). */
export function isToWebview(m: unknown): m is ToWebview {
  if (!isObj(m)) return false;
  switch (m.type) {
    case 'init':
      return isInt(m.protocolVersion) && isViewPayload(m.payload);
    case 'error':
      return isText(m.message);
    default:
      return false;
  }
}

export function isTableUiState(v: unknown): v is TableUiState {
  return (
    isObj(v) &&
    isBool(v.universalOnly) &&
    (v.layer === null || isNat(v.layer)) &&
    isNullableStr(v.family) &&
    (v.role === undefined || v.role === null || isRole(v.role)) &&
    isNum(v.minExcess) &&
    isNum(v.maxExcess) &&
    (v.sort === 'layer' || v.sort === 'neuron' || v.sort === 'family' || v.sort === 'family_vr' || v.sort === 'role' || isTableColumn(v.sort)) &&
    isBool(v.descending) &&
    isNat(v.page)
  );
}

/** Persisted state as it comes back from vscode.getState() or a serializer: checked, never trusted. */
export function isPanelState(v: unknown): v is PanelState {
  return (
    isObj(v) &&
    v.v === 1 &&
    isViewKind(v.view) &&
    (v.runDir === undefined || isStr(v.runDir)) &&
    (v.neuron === undefined || isNeuronRef(v.neuron)) &&
    (v.prompt === undefined || isPromptData(v.prompt)) &&
    (v.table === undefined || isTableUiState(v.table)) &&
    (v.scrollY === undefined || (isFiniteNum(v.scrollY) && v.scrollY >= 0))
  );
}

/** A short description of a rejected message for logs (never the whole payload). */
export function describeMessage(m: unknown): string {
  if (!isObj(m)) return m === null ? 'null' : Array.isArray(m) ? 'an array' : typeof m;
  const type = isStr(m.type) ? JSON.stringify(m.type.slice(0, 40)) : typeof m.type;
  const keys = Object.keys(m).slice(0, 8).join(', ');
  return `{type: ${type}; keys: ${keys}}`;
}
