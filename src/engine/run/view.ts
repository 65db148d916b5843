/**
 * A finished analysis run as the editor reads it: the checked manifest and the reference model's
 * per-neuron table (`neurons.arrow`; `universal.csv` when the Arrow file is absent), with the
 * universal flags and the family and role columns worked out once. The hover, the Runs tree, the
 * neuron picker and the current-run state hold this; the panels add the optional files on top
 * (data.ts). Queries the editor needs (universal neurons ranked by excess correlation, grouped by
 * layer and family, one neuron's row, the paper-schema export) are pure functions here.
 *
 * Every failure is a RunError saying whether the folder is missing, incomplete (still running,
 * cancelled, failed) or corrupt, so the editor can offer the right fix.
 */
import * as fs from 'node:fs';
import { basename, join } from 'node:path';
import type { NeuronRef } from '../editor';
import { RunError } from '../errors';
import { isUniversal } from './defaults';
import { familyColumns, type FamilyColumns } from './families';
import { runFile } from './files';
import { runLiveness, statusText } from './liveness';
import { manifestThreshold, readManifest, requireComplete, type StoredManifest } from './manifest';
import { PAPER_COLUMNS, paperCsvText, readNeuronArrow, readNeuronCsv, type NeuronTable } from './neurons';

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
  manifest: StoredManifest;
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
  /** Per row: the run's `universal` column, else excess_corr > threshold (universal.csv: every row). */
  universal: Uint8Array;
  /** Family label per row when the run has one (`family` column); '' = none. */
  family: string[] | undefined;
  /** The family and role columns, typed and checked (null where the run lacks one). */
  families: FamilyColumns;
  /** Every numeric column by name (paper schema and whatever else the run wrote; boolean columns aside). */
  columns: Record<string, Float64Array>;
  /** Every text column by name. */
  text: Record<string, string[]>;
  /** The table as decoded (every numeric and boolean column). */
  table: NeuronTable;
  /** Where the table came from. */
  source: 'neurons.arrow' | 'universal.csv';
  /** layer·dMlp + neuron → row */
  rowIndex: Map<number, number>;
  /** Neuron column l·d_mlp+n → row (−1: absent). */
  rowOf: Int32Array;
  /** Rows of each layer, in table order. */
  layerRows: number[][];
}

/** Opens a complete run: manifest + the reference model's neuron table. */
export async function openRunView(dir: string): Promise<RunView> {
  const manifest = readManifest(dir);
  requireComplete(manifest, dir);
  const arrowPath = runFile(dir, 'neurons');
  const csvPath = runFile(dir, 'universalCsv');
  let table: NeuronTable;
  let source: RunView['source'];
  try {
    if (fs.existsSync(arrowPath)) {
      table = await readNeuronArrow(arrowPath);
      source = 'neurons.arrow';
    } else if (fs.existsSync(csvPath)) {
      table = readNeuronCsv(csvPath);
      source = 'universal.csv';
    } else {
      throw new RunError(`run ${manifest.id} in ${dir} has neither neurons.arrow nor universal.csv`, 'corrupt', dir);
    }
  } catch (e) {
    throw e instanceof RunError ? e : new RunError((e as Error).message, 'corrupt', dir);
  }
  const layerCol = table.columns.get('layer')!;
  const neuronCol = table.columns.get('neuron')!;
  const excess = table.columns.get('excess_corr');
  if (!excess) throw new RunError(`${table.source} lacks the excess_corr column`, 'corrupt', dir);
  const models: RunModel[] = manifest.models.map((m, i) => ({
    label: m.label,
    dir: m.dir,
    role: i === 0 ? 'reference' : 'other',
    nLayers: m.nLayers,
    dMlp: m.dMlp,
  }));
  const reference = models[0]!;
  const { nLayers, dMlp } = reference;
  const n = table.nRows;
  const layer = new Int32Array(n);
  const neuron = new Int32Array(n);
  const rowIndex = new Map<number, number>();
  const rowOf = new Int32Array(nLayers * dMlp).fill(-1);
  const layerRows: number[][] = Array.from({ length: nLayers }, () => []);
  for (let r = 0; r < n; r++) {
    const l = layerCol[r]!;
    const j = neuronCol[r]!;
    if (!Number.isInteger(l) || !Number.isInteger(j) || l < 0 || j < 0 || l >= nLayers || j >= dMlp) {
      throw new RunError(`row ${r} of the neuron table names L${l}.N${j}, outside the reference model (${nLayers} layers × ${dMlp})`, 'corrupt', dir);
    }
    if (rowOf[l * dMlp + j]! >= 0) throw new RunError(`${table.source}: neuron L${l}.N${j} appears twice`, 'corrupt', dir);
    layer[r] = l;
    neuron[r] = j;
    rowIndex.set(l * dMlp + j, r);
    rowOf[l * dMlp + j] = r;
    layerRows[l]!.push(r);
  }
  const threshold = manifestThreshold(manifest);
  const flag = table.columns.get('universal');
  const universal = new Uint8Array(n);
  for (let r = 0; r < n; r++) universal[r] = flag ? (flag[r] ? 1 : 0) : isUniversal(excess[r]!, threshold) ? 1 : 0;
  // universal.csv holds only the universal neurons.
  if (source === 'universal.csv' && !flag) universal.fill(1);
  const columns: Record<string, Float64Array> = {};
  for (const [name, c] of table.columns) if (!table.booleans?.has(name)) columns[name] = c;
  const text: Record<string, string[]> = Object.fromEntries(table.text ?? []);
  const corpusTokens = manifest.progress?.tokens_done;
  return {
    dir,
    id: manifest.id,
    created: manifest.created,
    manifest,
    models,
    reference,
    threshold,
    corpusTokens: typeof corpusTokens === 'number' ? corpusTokens : undefined,
    nRows: n,
    layer,
    neuron,
    excess,
    universal,
    family: text.family,
    families: familyColumns(table),
    columns,
    text,
    table,
    source,
    rowIndex,
    rowOf,
    layerRows,
  };
}

// ---------------------------------------------------------------------------------------------
// Queries

/** Row of neuron `ref`, or -1. */
export function rowOf(run: Pick<RunView, 'rowIndex' | 'reference'>, ref: NeuronRef): number {
  if (ref.layer < 0 || ref.neuron < 0 || ref.neuron >= run.reference.dMlp) return -1;
  return run.rowIndex.get(ref.layer * run.reference.dMlp + ref.neuron) ?? -1;
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
        return fs.statSync(p).isDirectory() && fs.existsSync(runFile(p, 'manifest'));
      } catch {
        return false;
      }
    })
    .sort()
    .reverse();
}

/**
 * The run's table in the paper's `universal.csv` schema (docs/method-notes.md "Table schema"),
 * every reference neuron or only the universal ones; columns the run lacks are written empty.
 */
export function paperCsv(run: Pick<RunView, 'nRows' | 'layer' | 'neuron' | 'columns' | 'universal'>, onlyUniversal: boolean): string {
  const rows: Record<string, number>[] = [];
  for (let r = 0; r < run.nRows; r++) {
    if (onlyUniversal && !run.universal[r]) continue;
    const row: Record<string, number> = {};
    for (const c of PAPER_COLUMNS) row[c] = c === 'layer' ? run.layer[r]! : c === 'neuron' ? run.neuron[r]! : (run.columns[c]?.[r] ?? NaN);
    rows.push(row);
  }
  return paperCsvText(rows);
}

/** A run folder's status line for lists (the Runs tree): never throws; `unreadable` when the manifest is not usable. */
export function runStatus(dir: string): { status: string; id: string; models: string; detail?: string } {
  try {
    const m = readManifest(dir);
    // A `running` manifest whose process is gone on this host was killed: 'interrupted' (liveness.ts).
    const status = m.status === 'running' && runLiveness(m) === 'dead' ? 'interrupted' : m.status;
    const detail = m.status === 'complete' ? undefined : statusText(m, `universal-neurons analyze --resume ${dir}`);
    return { status, id: m.id, models: m.models.map((x) => x.label).join(', '), ...(detail ? { detail } : {}) };
  } catch {
    return { status: 'unreadable', id: basename(dir), models: '' };
  }
}
