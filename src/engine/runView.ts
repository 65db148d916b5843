/**
 * A finished analysis run as the editor reads it (docs/analysis-contract.md "Results store"):
 * the manifest, and the reference model's per-neuron table (`neurons.arrow`; `universal.csv` when
 * the Arrow file is absent). Queries the editor needs — universal neurons ranked by excess
 * correlation, grouped by layer and family, one neuron's row — are pure functions here.
 *
 * Every failure is a RunError saying whether the folder is missing, incomplete (still running,
 * cancelled, failed) or corrupt, so the editor can offer the right fix.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { EngineError } from './errors';
import { csvText, PAPER_COLUMNS, readNeuronCsv } from './store';
import type { Manifest } from './analysis/pipeline';
import type { NeuronRef } from './editor';

export type RunProblem = 'missing' | 'incomplete' | 'corrupt';

export class RunError extends EngineError {
  constructor(
    message: string,
    readonly problem: RunProblem,
    readonly runDir: string,
  ) {
    super(message, runDir);
    this.name = 'RunError';
  }
}

export interface RunModel {
  label: string;
  dir: string;
  role: 'reference' | 'other';
  nLayers: number;
  dMlp: number;
}

export interface RunView {
  dir: string;
  id: string;
  created: string;
  /** models[0] is the reference model: the table's neurons are its neurons. */
  models: RunModel[];
  reference: RunModel;
  threshold: number;
  corpusTokens: number | undefined;
  /** Rows of the table (one per reference neuron present). */
  nRows: number;
  layer: Int32Array;
  neuron: Int32Array;
  excess: Float64Array;
  universal: Uint8Array;
  /** Family label per row when the run has one (`family` column); '' = none. */
  family: string[] | undefined;
  /** Every numeric column by name (paper schema and whatever else the run wrote). */
  columns: Record<string, Float64Array>;
  /** Every text column by name. */
  text: Record<string, string[]>;
  /** Where the table came from. */
  source: 'neurons.arrow' | 'universal.csv';
  /** layer·dMlp + neuron → row */
  rowIndex: Map<number, number>;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads and checks `manifest.json`. */
export function readRunManifest(dir: string): Manifest {
  if (!fs.existsSync(dir)) throw new RunError(`the run folder ${dir} does not exist (moved or deleted)`, 'missing', dir);
  const path = join(dir, 'manifest.json');
  if (!fs.existsSync(path)) throw new RunError(`${dir} is not an analysis run: it has no manifest.json`, 'corrupt', dir);
  let m: unknown;
  try {
    m = JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (e) {
    throw new RunError(`${path} is unreadable or not valid JSON (${(e as Error).message})`, 'corrupt', dir);
  }
  if (!isObject(m) || m.format !== 'universal-neurons/run@1') {
    throw new RunError(`${path} is not a run manifest of this tool (format ${JSON.stringify(isObject(m) ? m.format : m)})`, 'corrupt', dir);
  }
  const models = m.models;
  if (!Array.isArray(models) || models.length < 1 || !models.every((x) => isObject(x) && typeof x.dir === 'string' && Number.isInteger(x.nLayers) && Number.isInteger(x.dMlp))) {
    throw new RunError(`${path} lists no usable models`, 'corrupt', dir);
  }
  const manifest = m as unknown as Manifest;
  if (manifest.status !== 'complete') {
    const how =
      manifest.status === 'running'
        ? 'is still running (or was killed)'
        : manifest.status === 'cancelled'
          ? 'was cancelled'
          : `failed${manifest.error ? `: ${manifest.error}` : ''}`;
    throw new RunError(`run ${manifest.id ?? dir} ${how}; it has no results yet (resume it with the CLI's analyze --resume)`, 'incomplete', dir);
  }
  return manifest;
}

type ColumnData = { kind: 'num'; data: Float64Array } | { kind: 'text'; data: string[] } | { kind: 'bool'; data: Uint8Array };

async function readArrowColumns(path: string, dir: string): Promise<Map<string, ColumnData>> {
  const arrow = await import('apache-arrow');
  let table: import('apache-arrow').Table;
  try {
    table = arrow.tableFromIPC(fs.readFileSync(path));
  } catch (e) {
    throw new RunError(`${path} is not a readable Arrow IPC file (${(e as Error).message})`, 'corrupt', dir);
  }
  const out = new Map<string, ColumnData>();
  for (const field of table.schema.fields) {
    const vec = table.getChild(field.name);
    if (!vec) continue;
    const t = field.type;
    if (arrow.DataType.isBool(t)) {
      const a = new Uint8Array(vec.length);
      for (let i = 0; i < vec.length; i++) a[i] = vec.get(i) ? 1 : 0;
      out.set(field.name, { kind: 'bool', data: a });
    } else if (arrow.DataType.isUtf8(t) || arrow.DataType.isLargeUtf8(t) || arrow.DataType.isDictionary(t)) {
      const a: string[] = new Array(vec.length);
      for (let i = 0; i < vec.length; i++) a[i] = String(vec.get(i) ?? '');
      out.set(field.name, { kind: 'text', data: a });
    } else if (arrow.DataType.isInt(t) || arrow.DataType.isFloat(t)) {
      const a = new Float64Array(vec.length);
      for (let i = 0; i < vec.length; i++) {
        const v = vec.get(i);
        a[i] = v === null || v === undefined ? NaN : Number(v);
      }
      out.set(field.name, { kind: 'num', data: a });
    }
  }
  return out;
}

/** universal.csv through the store's reader of paper-schema CSVs (quotes, a pandas index column). */
function readCsvColumns(path: string, dir: string): Map<string, ColumnData> {
  try {
    const t = readNeuronCsv(path);
    return new Map([...t.columns].map(([k, v]) => [k, { kind: 'num', data: v } as ColumnData]));
  } catch (e) {
    throw new RunError((e as Error).message, 'corrupt', dir);
  }
}

/** Opens a complete run: manifest + the reference model's neuron table. */
export async function openRunView(dir: string): Promise<RunView> {
  const manifest = readRunManifest(dir);
  const arrowPath = join(dir, 'neurons.arrow');
  const csvPath = join(dir, 'universal.csv');
  let cols: Map<string, ColumnData>;
  let source: RunView['source'];
  if (fs.existsSync(arrowPath)) {
    cols = await readArrowColumns(arrowPath, dir);
    source = 'neurons.arrow';
  } else if (fs.existsSync(csvPath)) {
    cols = readCsvColumns(csvPath, dir);
    source = 'universal.csv';
  } else {
    throw new RunError(`run ${manifest.id} in ${dir} has neither neurons.arrow nor universal.csv`, 'corrupt', dir);
  }
  const num = (name: string): Float64Array | undefined => {
    const c = cols.get(name);
    return c?.kind === 'num' ? c.data : undefined;
  };
  const layerCol = num('layer');
  const neuronCol = num('neuron');
  const excessCol = num('excess_corr');
  if (!layerCol || !neuronCol || !excessCol) {
    throw new RunError(`${source === 'neurons.arrow' ? arrowPath : csvPath} lacks the layer, neuron or excess_corr column`, 'corrupt', dir);
  }
  const models: RunModel[] = manifest.models.map((m, i) => ({
    label: m.label ?? `model ${i}`,
    dir: m.dir,
    role: i === 0 ? 'reference' : 'other',
    nLayers: m.nLayers,
    dMlp: m.dMlp,
  }));
  const reference = models[0]!;
  const n = layerCol.length;
  const layer = new Int32Array(n);
  const neuron = new Int32Array(n);
  const rowIndex = new Map<number, number>();
  for (let r = 0; r < n; r++) {
    const l = layerCol[r]!;
    const j = neuronCol[r]!;
    if (!Number.isInteger(l) || !Number.isInteger(j) || l < 0 || j < 0 || l >= reference.nLayers || j >= reference.dMlp) {
      throw new RunError(`row ${r} of the neuron table names L${l}.N${j}, outside the reference model (${reference.nLayers} layers × ${reference.dMlp})`, 'corrupt', dir);
    }
    layer[r] = l;
    neuron[r] = j;
    rowIndex.set(l * reference.dMlp + j, r);
  }
  const threshold = typeof manifest.settings?.threshold === 'number' ? manifest.settings.threshold : 0.5;
  const flag = cols.get('universal');
  const universal = new Uint8Array(n);
  for (let r = 0; r < n; r++) {
    universal[r] = flag?.kind === 'bool' ? flag.data[r]! : flag?.kind === 'num' ? (flag.data[r]! ? 1 : 0) : excessCol[r]! > threshold ? 1 : 0;
  }
  // universal.csv holds only the universal neurons.
  if (source === 'universal.csv' && !flag) universal.fill(1);
  const columns: Record<string, Float64Array> = {};
  const text: Record<string, string[]> = {};
  for (const [name, c] of cols) {
    if (c.kind === 'num') columns[name] = c.data;
    else if (c.kind === 'text') text[name] = c.data;
  }
  const corpusTokens = manifest.progress?.tokens_done;
  return {
    dir,
    id: manifest.id,
    created: manifest.created,
    models,
    reference,
    threshold,
    corpusTokens: typeof corpusTokens === 'number' ? corpusTokens : undefined,
    nRows: n,
    layer,
    neuron,
    excess: excessCol,
    universal,
    family: text.family,
    columns,
    text,
    source,
    rowIndex,
  };
}

// ---------------------------------------------------------------------------------------------
// Queries

/** Row of neuron `ref`, or -1. */
export function rowOf(run: Pick<RunView, 'rowIndex' | 'reference'>, ref: NeuronRef): number {
  if (ref.layer < 0 || ref.neuron < 0 || ref.neuron >= run.reference.dMlp) return -1;
  return run.rowIndex.get(ref.layer * run.reference.dMlp + ref.neuron) ?? -1;
}

/** Rows by excess correlation, highest first (NaN last; ties: lower layer, lower neuron). */
export function rankByExcess(run: Pick<RunView, 'excess' | 'layer' | 'neuron' | 'universal'>, k: number, onlyUniversal = false): number[] {
  const rows: number[] = [];
  for (let r = 0; r < run.excess.length; r++) if (!onlyUniversal || run.universal[r]) rows.push(r);
  const key = (r: number) => (Number.isNaN(run.excess[r]!) ? -Infinity : run.excess[r]!);
  rows.sort((a, b) => key(b) - key(a) || run.layer[a]! - run.layer[b]! || run.neuron[a]! - run.neuron[b]!);
  return rows.slice(0, Math.max(0, k));
}

export const NO_FAMILY = 'no family assigned';

/**
 * Universal neurons grouped by layer, then by family (families sorted by name, the unassigned
 * group last), each group by excess correlation, highest first.
 */
export function universalByLayerAndFamily(
  run: Pick<RunView, 'excess' | 'layer' | 'neuron' | 'universal' | 'family' | 'reference'>,
): { layer: number; families: { family: string; rows: number[] }[] }[] {
  const byLayer = new Map<number, Map<string, number[]>>();
  for (const r of rankByExcess(run, run.excess.length, true)) {
    const l = run.layer[r]!;
    const fam = run.family?.[r] || NO_FAMILY;
    let m = byLayer.get(l);
    if (!m) byLayer.set(l, (m = new Map()));
    let list = m.get(fam);
    if (!list) m.set(fam, (list = []));
    list.push(r);
  }
  const out: { layer: number; families: { family: string; rows: number[] }[] }[] = [];
  for (let l = 0; l < run.reference.nLayers; l++) {
    const m = byLayer.get(l) ?? new Map<string, number[]>();
    const families = [...m.entries()]
      .sort(([a], [b]) => (a === NO_FAMILY ? 1 : b === NO_FAMILY ? -1 : a < b ? -1 : a > b ? 1 : 0))
      .map(([family, rows]) => ({ family, rows }));
    out.push({ layer: l, families });
  }
  return out;
}

/** Distinct families of the universal neurons with their counts (largest first). */
export function familyCounts(run: Pick<RunView, 'universal' | 'family'>): { family: string; count: number }[] {
  const counts = new Map<string, number>();
  for (let r = 0; r < run.universal.length; r++) {
    if (!run.universal[r]) continue;
    const f = run.family?.[r] || NO_FAMILY;
    counts.set(f, (counts.get(f) ?? 0) + 1);
  }
  return [...counts.entries()].map(([family, count]) => ({ family, count })).sort((a, b) => b.count - a.count || (a.family < b.family ? -1 : 1));
}

/** Run folders under `runsDir` (folders holding a manifest.json), newest first by name. */
export function listRuns(runsDir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(runsDir);
  } catch {
    return [];
  }
  return names
    .filter((n) => !n.startsWith('.'))
    .map((n) => join(runsDir, n))
    .filter((p) => {
      try {
        return fs.statSync(p).isDirectory() && fs.existsSync(join(p, 'manifest.json'));
      } catch {
        return false;
      }
    })
    .sort()
    .reverse();
}

/**
 * The run's table in the paper's `universal.csv` schema (method.md "Table schema"), every reference
 * neuron or only the universal ones; columns the run lacks are written empty.
 */
export function paperCsv(run: Pick<RunView, 'nRows' | 'layer' | 'neuron' | 'columns' | 'universal'>, onlyUniversal: boolean): string {
  const rows: Record<string, number>[] = [];
  for (let r = 0; r < run.nRows; r++) {
    if (onlyUniversal && !run.universal[r]) continue;
    const row: Record<string, number> = {};
    for (const c of PAPER_COLUMNS) row[c] = c === 'layer' ? run.layer[r]! : c === 'neuron' ? run.neuron[r]! : (run.columns[c]?.[r] ?? NaN);
    rows.push(row);
  }
  return csvText(PAPER_COLUMNS, rows);
}
