// Over 700 lines: a run reader, payload builders and example slices; issue #18 moves the reader
// to src/engine/run/ and the payloads to src/view/.
/**
 * Read-only loading of an analysis run folder (docs/analysis-contract.md) for the result views.
 * No `vscode` import (unit-testable) and no maths: numbers come from the run's files, summaries
 * from the engine's pure helpers (src/engine/analysis/{percentile,summaries}.ts).
 *
 * Files read:
 * - `manifest.json` (required; must say `complete`);
 * - `neurons.arrow` (required, read with the store's readNeuronArrow): one row per reference
 *   neuron, the paper's columns, optional `universal` (bool; else excess_corr > threshold),
 *   optional `family` (utf8) column, partner columns (store.partnerColumns);
 * - `partners.arrow` (optional; else the partner columns of neurons.arrow): long format, one row
 *   per reference neuron and other model — `layer, neuron` (reference), `model` (label, or index
 *   into manifest.models), `partner_layer`, `partner_neuron` (or `partner`, a column index
 *   l·d_mlp+n), `corr` (or `max_corr`), optional `baseline`;
 * - `examples.json` + `examples.bin` (optional, examples.ts layout): read per neuron by slicing the
 *   fixed-stride arrays, never the whole file (hundreds of MB for GPT2-small);
 * - `vocab.arrow` (optional): `layer, neuron, side` ('top'|'bottom'), `rank`, `token`, `value`;
 * - families and roles (optional, newer runs): neurons.arrow's `family_label`, `role`, `roles`,
 *   `attn_head`, `family_hits` (utf8) and `family_vr`, `position_mi`, `attn_score` (float64)
 *   columns, and `roles.json` (rolesFile.ts). A column of the wrong type counts as absent.
 * Token text comes from the reference model's tokenizer (manifest.models[0].dir); without it the
 * views show token ids.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { percentileRank } from '../engine/analysis/percentile';
import { packageRoot, runModelDir } from '../locate';
import { partnerColumns, readNeuronArrow } from '../engine/store';
import { bestReferenceByPartner, familyCounts, histogram, isUniversal, layerShares, partnerKey } from '../engine/analysis/summaries';
import { familyLayerCounts, roleCounts } from './familyCounts';
import { readRolesFile, ROLES_FILE, type RolesFile } from './rolesFile';
import type {
  ActivationHistogram,
  AttentionScore,
  ExampleContext,
  NeuronData,
  NeuronRef,
  Num,
  OverviewData,
  Partner,
  Role,
  RunInfo,
  StatGroup,
  StatRow,
  TableColumn,
  TableData,
  TokenValue,
} from '../protocol';
import { isHeadName, isRole, TABLE_COLUMNS } from '../protocol';

export class RunDataError extends Error {}

interface ManifestModel {
  label: string;
  dir: string;
  nLayers: number;
  dMlp: number;
}

interface ExamplesArrayRef {
  dtype: 'f32' | 'f64' | 'i32' | 'u32';
  length: number;
  offset: number;
}

interface ExamplesModel {
  model: number;
  nNeurons: number;
  k: number;
  window: number;
  bins: number;
  arrays: Record<string, ExamplesArrayRef>;
}

interface PartnerRow {
  ref: number;
  model: string;
  layer: number;
  neuron: number;
  corr: number;
  baseline: number;
}

type Tok = { tokenString(id: number): string };

export interface RunData {
  dir: string;
  info: RunInfo;
  nLayers: number;
  dMlp: number;
  /** Per row of neurons.arrow. */
  layer: Int32Array;
  neuron: Int32Array;
  /** Neuron column l·d_mlp+n → row (−1: absent). */
  rowOf: Int32Array;
  /** Rows of each layer. */
  layerRows: number[][];
  /** Numeric columns, NaN for missing values. */
  columns: Map<string, Float64Array>;
  /** Per row: the run's universal flag (its `universal` column, else excess_corr > threshold). */
  universal: boolean[];
  family: (string | null)[] | null;
  /** Best explaining label per row (`family_label`); null: not in this run. */
  familyLabel: (string | null)[] | null;
  /** Roles per row, the primary (`role`) first; null: roles not in this run. */
  roles: Role[][] | null;
  /** Strongest attention-deactivation head per row (`attn_head`; its z-score is column `attn_score`). */
  attnHead: (string | null)[] | null;
  /** Per row, '1'/'0' per stored top example: does its max token carry the label (`family_hits`). */
  familyHits: (string | null)[] | null;
  /** roles.json, when the run has one. */
  rolesFile: RolesFile | null;
  /** Partners per reference row. */
  partners: PartnerRow[][] | null;
  partnerNote?: string;
  examples: ExamplesModel | null;
  vocab: Map<number, { top: { id: number; value: number }[]; bottom: { id: number; value: number }[] }> | null;
  tokenizer: Tok | null;
  tokenizerNote?: string;
}

// ---------------------------------------------------------------------------------------------

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const nat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new RunDataError(`cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new RunDataError(`${path} is not valid JSON (${(e as Error).message})`);
  }
}

function checkManifest(m: unknown, path: string): { models: ManifestModel[]; info: Omit<RunInfo, 'runDir'> } {
  const bad = (why: string) => new RunDataError(`${path}: ${why}`);
  if (!isObj(m) || m.format !== 'universal-neurons/run@1') throw bad('not a run manifest of this tool (format universal-neurons/run@1)');
  if (m.status !== 'complete') {
    throw bad(`the run is ${typeof m.status === 'string' ? m.status : 'in an unknown state'}; its results are written when it completes`);
  }
  if (!Array.isArray(m.models) || m.models.length === 0) throw bad('lists no models');
  const models: ManifestModel[] = m.models.map((x, i) => {
    if (!isObj(x) || typeof x.label !== 'string' || typeof x.dir !== 'string' || !nat(x.nLayers) || !nat(x.dMlp) || x.nLayers < 1 || x.dMlp < 1) {
      throw bad(`model ${i} lacks label, dir, nLayers or dMlp`);
    }
    return { label: x.label, dir: x.dir, nLayers: x.nLayers, dMlp: x.dMlp };
  });
  const settings = isObj(m.settings) ? m.settings : {};
  const threshold = typeof settings.threshold === 'number' && Number.isFinite(settings.threshold) ? settings.threshold : 0.5;
  const progress = isObj(m.progress) ? m.progress : {};
  return {
    models,
    info: {
      id: typeof m.id === 'string' ? m.id : '',
      status: m.status,
      models: models.map((x) => x.label),
      nLayers: models[0]!.nLayers,
      dMlp: models[0]!.dMlp,
      threshold,
      tokens: nat(progress.tokens_done) ? progress.tokens_done : 0,
      created: typeof m.created === 'string' ? m.created : '',
    },
  };
}

type ArrowTable = import('apache-arrow').Table;

async function readArrow(path: string): Promise<ArrowTable> {
  const arrow = await import('apache-arrow');
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(path);
  } catch (e) {
    throw new RunDataError(`cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return arrow.tableFromIPC(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    throw new RunDataError(`${path} is not an Arrow IPC file (${(e as Error).message})`);
  }
}

function fieldType(t: ArrowTable, name: string): 'num' | 'str' | 'bool' | undefined {
  const f = t.schema.fields.find((x) => x.name === name);
  if (!f) return undefined;
  const s = String(f.type);
  if (s === 'Utf8' || s === 'LargeUtf8') return 'str';
  if (s === 'Bool') return 'bool';
  if (/^(Float|Int|Uint)/.test(s)) return 'num';
  return undefined;
}

/** A numeric (or boolean) column as float64 with NaN for nulls; undefined if absent or not numeric. */
function numColumn(t: ArrowTable, name: string): Float64Array | undefined {
  const kind = fieldType(t, name);
  if (kind !== 'num' && kind !== 'bool') return undefined;
  const v = t.getChild(name)!;
  const out = new Float64Array(t.numRows);
  for (let i = 0; i < t.numRows; i++) {
    const x: unknown = v.get(i);
    out[i] = x === null || x === undefined ? NaN : typeof x === 'boolean' ? (x ? 1 : 0) : Number(x);
  }
  return out;
}

function strColumn(t: ArrowTable, name: string): (string | null)[] | undefined {
  if (fieldType(t, name) !== 'str') return undefined;
  const v = t.getChild(name)!;
  const out: (string | null)[] = [];
  for (let i = 0; i < t.numRows; i++) {
    const x: unknown = v.get(i);
    out.push(typeof x === 'string' && x !== '' ? x : null);
  }
  return out;
}

/** Roles per row from `role` (primary) and `roles` (comma-separated); unknown role names are dropped. */
function readRoles(primary: (string | null)[] | undefined, all: (string | null)[] | undefined): Role[][] | null {
  if (!primary && !all) return null;
  const n = (primary ?? all)!.length;
  return Array.from({ length: n }, (_, i) => {
    const list = [primary?.[i] ?? '', ...(all?.[i] ?? '').split(',')].map((x) => x.trim()).filter(isRole);
    return [...new Set(list)];
  });
}

async function loadTokenizer(dir: string): Promise<{ tok: Tok | null; note?: string }> {
  try {
    const { Tokenizer } = await import('../engine/tokenizer');
    const { resolveModelDir } = await import('../engine/checkpoint');
    const d = resolveModelDir(dir);
    if (fs.existsSync(join(d, 'tokenizer.json'))) return { tok: Tokenizer.fromTokenizerJson(join(d, 'tokenizer.json')) };
    if (fs.existsSync(join(d, 'vocab.json')) && fs.existsSync(join(d, 'merges.txt'))) {
      return { tok: Tokenizer.fromVocabMerges(join(d, 'vocab.json'), join(d, 'merges.txt')) };
    }
    return { tok: null, note: `no tokenizer in ${d}: tokens are shown as ids` };
  } catch (e) {
    return { tok: null, note: `the reference model's tokenizer could not be loaded (${(e as Error).message}): tokens are shown as ids` };
  }
}

function readPartners(t: ArrowTable, run: Pick<RunData, 'rowOf' | 'dMlp' | 'nLayers'>, models: ManifestModel[]): { rows: PartnerRow[][]; note?: string } {
  const rows: PartnerRow[][] = Array.from({ length: run.rowOf.length }, () => []);
  const layer = numColumn(t, 'layer');
  const neuron = numColumn(t, 'neuron');
  const modelStr = strColumn(t, 'model');
  const modelNum = modelStr ? undefined : numColumn(t, 'model');
  const pLayer = numColumn(t, 'partner_layer');
  const pNeuron = numColumn(t, 'partner_neuron');
  const pCol = numColumn(t, 'partner');
  const corr = numColumn(t, 'corr') ?? numColumn(t, 'max_corr');
  const baseline = numColumn(t, 'baseline');
  if (!layer || !neuron || (!modelStr && !modelNum) || !corr || !((pLayer && pNeuron) || pCol)) {
    return {
      rows,
      note: `partners.arrow has columns ${t.schema.fields.map((f) => f.name).join(', ')}; expected layer, neuron, model, partner_layer, partner_neuron (or partner), corr`,
    };
  }
  for (let i = 0; i < t.numRows; i++) {
    const l = layer[i]!;
    const n = neuron[i]!;
    if (!(nat(l) && nat(n) && l < run.nLayers && n < run.dMlp)) continue;
    const ref = run.rowOf[l * run.dMlp + n]!;
    if (ref < 0) continue;
    let model: string;
    if (modelStr) model = modelStr[i] ?? '?';
    else {
      const k = modelNum![i]!;
      model = nat(k) && k < models.length ? models[k]!.label : String(k);
    }
    let pl: number;
    let pn: number;
    if (pLayer && pNeuron) {
      pl = pLayer[i]!;
      pn = pNeuron[i]!;
    } else {
      const c = pCol![i]!;
      pl = Math.floor(c / run.dMlp);
      pn = c - pl * run.dMlp;
    }
    if (!(nat(pl) && nat(pn))) continue;
    rows[ref]!.push({ ref, model, layer: pl, neuron: pn, corr: corr[i]!, baseline: baseline ? baseline[i]! : NaN });
  }
  return { rows };
}

/** Partners from neurons.arrow's wide partner columns (store.partnerColumns), one set per other model. */
function partnersFromColumns(columns: Map<string, Float64Array>, layer: Int32Array, models: ManifestModel[]): { rows: PartnerRow[][] | null; note?: string } {
  const others = models.slice(1).filter((m) => {
    const c = partnerColumns(m.label);
    return columns.has(c.layer) && columns.has(c.neuron) && columns.has(c.corr);
  });
  if (others.length === 0) return { rows: null, note: 'this run has no partners (no partners.arrow, no partner columns in neurons.arrow)' };
  const rows: PartnerRow[][] = Array.from({ length: layer.length }, () => []);
  for (const m of others) {
    const c = partnerColumns(m.label);
    const pl = columns.get(c.layer)!;
    const pn = columns.get(c.neuron)!;
    const corr = columns.get(c.corr)!;
    const base = columns.get(c.baseline);
    for (let i = 0; i < layer.length; i++) {
      if (nat(pl[i]) && nat(pn[i])) rows[i]!.push({ ref: i, model: m.label, layer: pl[i]!, neuron: pn[i]!, corr: corr[i]!, baseline: base ? base[i]! : NaN });
    }
  }
  return { rows };
}

function readVocab(t: ArrowTable, run: Pick<RunData, 'rowOf' | 'dMlp' | 'nLayers'>): RunData['vocab'] {
  const layer = numColumn(t, 'layer');
  const neuron = numColumn(t, 'neuron');
  const side = strColumn(t, 'side');
  const rank = numColumn(t, 'rank');
  const token = numColumn(t, 'token');
  const value = numColumn(t, 'value');
  if (!layer || !neuron || !side || !token || !value) return null;
  const out: NonNullable<RunData['vocab']> = new Map();
  const order: { row: number; side: 'top' | 'bottom'; rank: number; id: number; value: number }[] = [];
  for (let i = 0; i < t.numRows; i++) {
    const l = layer[i]!;
    const n = neuron[i]!;
    const s = side[i];
    if (!(nat(l) && nat(n) && l < run.nLayers && n < run.dMlp) || (s !== 'top' && s !== 'bottom') || !nat(token[i]) || !Number.isFinite(value[i]!)) continue;
    const row = run.rowOf[l * run.dMlp + n]!;
    if (row >= 0) order.push({ row, side: s, rank: rank ? rank[i]! : i, id: token[i]!, value: value[i]! });
  }
  order.sort((a, b) => a.rank - b.rank);
  for (const o of order) {
    let e = out.get(o.row);
    if (!e) out.set(o.row, (e = { top: [], bottom: [] }));
    e[o.side].push({ id: o.id, value: o.value });
  }
  return out;
}

function readExamplesIndex(path: string, nNeurons: number): { model: ExamplesModel | null; note?: string } {
  const j = readJsonFile(path);
  if (!isObj(j) || j.format !== 'universal-neurons-examples' || j.version !== 1 || j.littleEndian !== true || !Array.isArray(j.models)) {
    return { model: null, note: `${path} is not an examples index this version reads` };
  }
  const m = j.models.find((x) => isObj(x) && x.model === 0);
  if (!isObj(m) || !nat(m.nNeurons) || !nat(m.k) || !nat(m.window) || !nat(m.bins) || !isObj(m.arrays)) {
    return { model: null, note: `${path} has no examples for the reference model` };
  }
  if (m.nNeurons !== nNeurons) return { model: null, note: `${path} covers ${m.nNeurons} neurons, the run ${nNeurons}` };
  const arrays: Record<string, ExamplesArrayRef> = {};
  for (const [k, v] of Object.entries(m.arrays)) {
    if (isObj(v) && (v.dtype === 'f32' || v.dtype === 'f64' || v.dtype === 'i32' || v.dtype === 'u32') && nat(v.length) && nat(v.offset)) {
      arrays[k] = { dtype: v.dtype, length: v.length, offset: v.offset };
    }
  }
  return { model: { model: 0, nNeurons: m.nNeurons, k: m.k, window: m.window, bins: m.bins, arrays } };
}

/** Loads a complete run folder. Throws RunDataError with a message naming the file. */
export async function loadRun(runDir: string): Promise<RunData> {
  const manifestPath = join(runDir, 'manifest.json');
  if (!fs.existsSync(manifestPath)) throw new RunDataError(`${runDir} is not a run folder (no manifest.json)`);
  const { models, info } = checkManifest(readJsonFile(manifestPath), manifestPath);
  const { nLayers, dMlp } = info;
  const neuronsPath = join(runDir, 'neurons.arrow');
  if (!fs.existsSync(neuronsPath)) throw new RunDataError(`${runDir} has no neurons.arrow`);
  let table: Awaited<ReturnType<typeof readNeuronArrow>>;
  try {
    table = await readNeuronArrow(neuronsPath);
  } catch (e) {
    throw new RunDataError((e as Error).message);
  }
  const columns = table.columns;
  const nRows = table.nRows;
  const layerF = columns.get('layer')!;
  const neuronF = columns.get('neuron')!;
  columns.delete('layer');
  columns.delete('neuron');
  const N = nLayers * dMlp;
  const rowOf = new Int32Array(N).fill(-1);
  const layer = new Int32Array(nRows);
  const neuron = new Int32Array(nRows);
  const layerRows: number[][] = Array.from({ length: nLayers }, () => []);
  for (let i = 0; i < nRows; i++) {
    const l = layerF[i]!;
    const n = neuronF[i]!;
    if (!(nat(l) && nat(n) && l < nLayers && n < dMlp)) throw new RunDataError(`${neuronsPath} row ${i}: neuron L${l}.N${n} is outside ${nLayers}×${dMlp}`);
    if (rowOf[l * dMlp + n]! >= 0) throw new RunDataError(`${neuronsPath}: neuron L${l}.N${n} appears twice`);
    rowOf[l * dMlp + n] = i;
    layer[i] = l;
    neuron[i] = n;
    layerRows[l]!.push(i);
  }
  // Text columns (the store's reader keeps numbers only): families and roles, when a run has them.
  const raw = await readArrow(neuronsPath);
  const family = strColumn(raw, 'family') ?? null;
  const familyLabel = strColumn(raw, 'family_label')?.map((x) => (x !== null && x.length <= 200 ? x : null)) ?? null;
  const roles = readRoles(strColumn(raw, 'role'), strColumn(raw, 'roles'));
  const attnHead = strColumn(raw, 'attn_head')?.map((x) => (isHeadName(x) ? x : null)) ?? null;
  const familyHits = strColumn(raw, 'family_hits')?.map((x) => (x !== null && /^[01]+$/.test(x) ? x : null)) ?? null;
  const rolesFile = readRolesFile(runDir, (l, n) => (l < nLayers && n < dMlp && rowOf[l * dMlp + n]! >= 0 ? l * dMlp + n : undefined));
  const flag = columns.get('universal');
  const excess = columns.get('excess_corr');
  const universal = Array.from({ length: nRows }, (_, i) =>
    flag ? flag[i] === 1 : excess ? isUniversal(excess[i]!, info.threshold) : false,
  );
  const base = { rowOf, dMlp, nLayers };

  let partners: RunData['partners'] = null;
  let partnerNote: string | undefined;
  const partnersPath = join(runDir, 'partners.arrow');
  if (fs.existsSync(partnersPath)) {
    const r = readPartners(await readArrow(partnersPath), base, models);
    partners = r.rows;
    partnerNote = r.note;
  } else {
    const r = partnersFromColumns(columns, layer, models);
    partners = r.rows;
    partnerNote = r.note;
  }

  let examples: ExamplesModel | null = null;
  const exJson = join(runDir, 'examples.json');
  if (fs.existsSync(exJson) && fs.existsSync(join(runDir, 'examples.bin'))) {
    examples = readExamplesIndex(exJson, N).model;
  }
  const vocabPath = join(runDir, 'vocab.arrow');
  const vocab = fs.existsSync(vocabPath) ? readVocab(await readArrow(vocabPath), base) : null;
  // A run made elsewhere (the shipped demo run) names another machine's folder: the shipped family stands in.
  const { tok, note } = await loadTokenizer(runModelDir(models[0]!, packageRoot(__dirname)));

  return {
    dir: runDir,
    info: { runDir, ...info },
    nLayers,
    dMlp,
    layer,
    neuron,
    rowOf,
    layerRows,
    columns,
    universal,
    family,
    familyLabel,
    roles,
    attnHead,
    familyHits,
    rolesFile,
    partners,
    partnerNote,
    examples,
    vocab,
    tokenizer: tok,
    tokenizerNote: note,
  };
}

// ---------------------------------------------------------------------------------------------
// Cache: a run's files do not change once complete, but a re-run into the same folder may.

const cache = new Map<string, { key: string; data: Promise<RunData> }>();
const CACHE_SIZE = 3;

function stamp(runDir: string): string {
  return ['manifest.json', 'neurons.arrow', 'partners.arrow', 'examples.json', 'vocab.arrow', ROLES_FILE]
    .map((f) => {
      try {
        return String(fs.statSync(join(runDir, f)).mtimeMs);
      } catch {
        return '-';
      }
    })
    .join('|');
}

export function getRun(runDir: string): Promise<RunData> {
  const key = stamp(runDir);
  const hit = cache.get(runDir);
  if (hit && hit.key === key) {
    cache.delete(runDir);
    cache.set(runDir, hit); // most recently used last
    return hit.data;
  }
  const data = loadRun(runDir);
  cache.set(runDir, { key, data });
  data.catch(() => {
    if (cache.get(runDir)?.data === data) cache.delete(runDir);
  });
  while (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value!);
  return data;
}

// ---------------------------------------------------------------------------------------------
// View payloads

const num = (x: number | undefined): Num => (x !== undefined && Number.isFinite(x) ? x : null);
const nan = (n: number): Float64Array => new Float64Array(n).fill(NaN);

function col(run: RunData, name: string): Float64Array {
  return run.columns.get(name) ?? nan(run.layer.length);
}

function tokenText(run: RunData, id: number): string {
  if (!run.tokenizer) return `⟨${id}⟩`;
  try {
    return run.tokenizer.tokenString(id);
  } catch {
    return `⟨${id}⟩`;
  }
}

export function overviewData(run: RunData): OverviewData {
  const excess = col(run, 'excess_corr');
  const universal = run.universal;
  const nUniv = universal.filter(Boolean).length;
  const layers = layerShares(run.layer, excess, run.info.threshold, run.nLayers).map((s) => ({ ...s, medianExcess: num(s.medianExcess) }));
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
  };
}

/** Attention pairs the overview lists (roles.json holds the top pairs; the page stays short). */
const ATTENTION_PAIRS = 12;

export function tableData(run: RunData): TableData {
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
  ['activations', ['mean', 'var', 'skew', 'kurt', 'sparsity']],
  ['vocab', ['vocab_mean', 'vocab_var', 'vocab_skew', 'vocab_kurt']],
];

/** One neuron's page. Throws RunDataError when the neuron is not in the run. */
export function neuronData(run: RunData, ref: NeuronRef): NeuronData {
  const { layer: l, neuron: n } = ref;
  if (!(l >= 0 && l < run.nLayers && n >= 0 && n < run.dMlp) || run.rowOf[l * run.dMlp + n]! < 0) {
    throw new RunDataError(`L${l}.N${n} is not a neuron of this run (${run.nLayers} layers × ${run.dMlp})`);
  }
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
      const ex = readNeuronExamples(run, l * run.dMlp + n);
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
    notes,
  };
}

/** The family explanation, roles, attention scores and entropy intervention of one row (what the run has). */
function familyParts(run: RunData, row: number): Pick<NeuronData, 'explanation' | 'roles' | 'attention' | 'entropy'> {
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

const bestCache = new WeakMap<RunData, ReturnType<typeof bestReferenceByPartner>>();
function bestIndex(run: RunData): ReturnType<typeof bestReferenceByPartner> {
  let b = bestCache.get(run);
  if (!b) {
    b = bestReferenceByPartner(run.partners!.flat());
    bestCache.set(run, b);
  }
  return b;
}

// ---------------------------------------------------------------------------------------------
// Examples: slices of examples.bin for one neuron (column j).

const WIDTH = { f32: 4, f64: 8, i32: 4, u32: 4 } as const;

function readSlice(fd: number, ex: ExamplesModel, name: string, from: number, count: number): Float64Array {
  const ref = ex.arrays[name];
  if (!ref) throw new RunDataError(`examples index has no array ${name}`);
  if (from < 0 || from + count > ref.length) throw new RunDataError(`examples array ${name} is shorter than the index says`);
  const w = WIDTH[ref.dtype];
  const buf = Buffer.alloc(count * w);
  const got = fs.readSync(fd, new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), 0, buf.byteLength, ref.offset + from * w);
  if (got !== buf.byteLength) throw new RunDataError(`examples.bin is truncated (array ${name})`);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const o = i * w;
    out[i] =
      ref.dtype === 'f32' ? buf.readFloatLE(o) : ref.dtype === 'f64' ? buf.readDoubleLE(o) : ref.dtype === 'i32' ? buf.readInt32LE(o) : buf.readUInt32LE(o);
  }
  return out;
}

export function readNeuronExamples(run: RunData, j: number): { examples: ExampleContext[]; histogram: ActivationHistogram | null } {
  const ex = run.examples!;
  const { k: K, window: W, bins: B } = ex;
  const fd = fs.openSync(join(run.dir, 'examples.bin'), 'r');
  try {
    const count = Math.min(K, readSlice(fd, ex, 'topCount', j, 1)[0]!);
    const s = j * K;
    const value = readSlice(fd, ex, 'top.value', s, K);
    const rowA = readSlice(fd, ex, 'top.row', s, K);
    const pos = readSlice(fd, ex, 'top.pos', s, K);
    const start = readSlice(fd, ex, 'top.start', s, K);
    const len = readSlice(fd, ex, 'top.len', s, K);
    const ids = readSlice(fd, ex, 'top.ids', s * W, K * W);
    const acts = readSlice(fd, ex, 'top.acts', s * W, K * W);
    const examples: ExampleContext[] = [];
    for (let q = 0; q < count; q++) {
      const L = Math.max(0, Math.min(W, len[q]!));
      const tokens = [];
      for (let t = 0; t < L; t++) {
        const id = ids[q * W + t]!;
        tokens.push({ id, text: id >= 0 ? tokenText(run, id) : '', act: Number.isFinite(acts[q * W + t]!) ? acts[q * W + t]! : 0 });
      }
      const maxIndex = Math.max(0, Math.min(L - 1, pos[q]! - start[q]!));
      examples.push({ value: value[q]!, row: rowA[q]!, maxIndex, tokens });
    }
    let histogram: ActivationHistogram | null = null;
    if (ex.arrays['hist.counts'] && B > 0) {
      const lo = readSlice(fd, ex, 'hist.lo', j, 1)[0]!;
      const hi = readSlice(fd, ex, 'hist.hi', j, 1)[0]!;
      const c = readSlice(fd, ex, 'hist.counts', j * (B + 2), B + 2);
      const mn = readSlice(fd, ex, 'hist.min', j, 1)[0]!;
      const mx = readSlice(fd, ex, 'hist.max', j, 1)[0]!;
      if (Number.isFinite(lo) && Number.isFinite(hi) && hi > lo) {
        histogram = {
          edges: Array.from({ length: B + 1 }, (_, b) => (b === B ? hi : lo + ((hi - lo) * b) / B)),
          counts: Array.from(c.subarray(1, B + 1)),
          under: c[0]!,
          over: c[B + 1]!,
          min: num(mn),
          max: num(mx),
        };
      }
    }
    return { examples, histogram };
  } finally {
    fs.closeSync(fd);
  }
}
