/**
 * Neuron tables: `neurons.arrow` (one row per reference neuron: the paper's columns, `universal`,
 * partner, family and role columns), `universal.csv` (the paper's schema, exactly) and
 * `actstats.arrow`; and the paper's own published CSVs, which `universal-neurons table` reads in
 * the same schema. The one decoder of these files: the CLI's summary, the editor's run view
 * (view.ts) and the panels' run data (data.ts) all read through `readNeuronArrow` /
 * `readNeuronCsv`.
 *
 * Arrow IPC is the file format pandas `read_feather` and polars `read_ipc` open.
 */
import * as fs from 'node:fs';
import { EngineError, ioReason } from '../errors';
import { csvText, writeArrowAtomic, writeFileAtomic, type Column } from '../store';
import { runFile } from './files';

/** The paper's universal.csv columns, in order (docs/method-notes.md "Table schema"). */
export const PAPER_COLUMNS = [
  'layer',
  'neuron',
  'max_corr',
  'mean_corr',
  'min_corr',
  'max_baseline',
  'min_baseline',
  'mean_baseline',
  'w_in_norm',
  'input_bias',
  'w_out_norm',
  'in_out_sim',
  'l2_penalty',
  'mean',
  'var',
  'skew',
  'kurt',
  'vocab_mean',
  'vocab_var',
  'vocab_skew',
  'vocab_kurt',
  'sparsity',
  'excess_corr',
] as const;
export type PaperColumn = (typeof PAPER_COLUMNS)[number];

/** Partner columns of neurons.arrow for other model `label`. */
export const partnerColumns = (label: string) => ({
  layer: `partner_layer_${label}`,
  neuron: `partner_neuron_${label}`,
  corr: `corr_${label}`,
  baseline: `baseline_${label}`,
});

export interface NeuronTable {
  /** Where it came from (for messages). */
  source: string;
  nRows: number;
  /** Numeric columns by name (booleans as 0/1, missing values NaN), in file order. */
  columns: Map<string, Float64Array>;
  /** Text columns (Arrow utf8 or dictionary: family, role, …; a missing value is ''); absent from CSV tables. */
  text?: Map<string, string[]>;
  /** Which of `columns` are booleans in the file (`universal`); absent from CSV tables. */
  booleans?: Set<string>;
}

// ---------------------------------------------------------------------------------------------
// Arrow

/** The columns of an Arrow IPC file, decoded once: numbers (booleans 0/1, nulls NaN) and text (nulls ''). */
export interface ArrowColumns {
  nRows: number;
  /** Every field's name, in file order (also those of types read as neither). */
  names: string[];
  columns: Map<string, Float64Array>;
  text: Map<string, string[]>;
  booleans: Set<string>;
}

/** Decodes an Arrow IPC file of the run folder (neurons, partners, vocab tables). */
export async function readArrowColumns(path: string): Promise<ArrowColumns> {
  // Loaded on first use: the extension never pays for it at activation.
  const arrow = await import('apache-arrow');
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(path);
  } catch (e) {
    throw new EngineError(`cannot read ${path}: ${ioReason(e)}`, path);
  }
  let t: import('apache-arrow').Table;
  try {
    t = arrow.tableFromIPC(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    throw new EngineError(`${path} is not an Arrow IPC file (${(e as Error).message})`, path);
  }
  const columns = new Map<string, Float64Array>();
  const text = new Map<string, string[]>();
  const booleans = new Set<string>();
  const n = t.numRows;
  for (const f of t.schema.fields) {
    const v = t.getChild(f.name);
    if (!v) continue;
    const type = f.type;
    if (arrow.DataType.isUtf8(type) || arrow.DataType.isLargeUtf8(type) || arrow.DataType.isDictionary(type)) {
      text.set(f.name, Array.from({ length: n }, (_, i) => String(v.get(i) ?? '')));
      continue;
    }
    const isBool = arrow.DataType.isBool(type);
    if (!(isBool || arrow.DataType.isInt(type) || arrow.DataType.isFloat(type))) continue;
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const x: unknown = v.get(i);
      out[i] = x === null || x === undefined ? NaN : typeof x === 'boolean' ? (x ? 1 : 0) : Number(x);
    }
    columns.set(f.name, out);
    if (isBool) booleans.add(f.name);
  }
  return { nRows: n, names: t.schema.fields.map((f) => f.name), columns, text, booleans };
}

/** Reads an Arrow IPC neuron table (neurons.arrow): numeric, boolean and text columns; `layer` and `neuron` are required. */
export async function readNeuronArrow(path: string): Promise<NeuronTable> {
  const { nRows, columns, text, booleans } = await readArrowColumns(path);
  if (!columns.has('layer') || !columns.has('neuron')) throw new EngineError(`${path} has no layer/neuron columns`, path);
  // Runs written before the paper-compatible columns held the exact statistics under the paper's
  // names: they are read under the exact names, and the paper's columns are absent, not wrong.
  if (!columns.has('act_freq') && columns.has('sparsity')) {
    for (const [paper, exact] of Object.entries(EXACT_OF)) {
      const c = columns.get(paper);
      if (!c) continue;
      columns.set(exact, c);
      columns.delete(paper);
    }
  }
  return { source: path, nRows, columns, text, booleans };
}

/**
 * The exact activation statistics (kept tokens, streaming moments) beside the paper's columns of
 * the same quantity (its 257-bin fp16 histogram over all tokens; analysis/paperhist.ts).
 */
export const EXACT_OF: Readonly<Record<'sparsity' | 'mean' | 'var' | 'skew' | 'kurt', string>> = {
  sparsity: 'act_freq',
  mean: 'mean_exact',
  var: 'var_exact',
  skew: 'skew_exact',
  kurt: 'kurt_exact',
};

/** Writes `neurons.arrow` of the run in `dir`. */
export function writeNeurons(dir: string, columns: Record<string, Column>, metadata: Record<string, string>): Promise<void> {
  return writeArrowAtomic(runFile(dir, 'neurons'), columns, metadata);
}

/** Writes `actstats.arrow`: every model's exact activation statistics, long format (model, layer, neuron, mean_exact, var_exact, skew_exact, kurt_exact, act_freq). */
export function writeActstats(dir: string, columns: Record<string, Column>, metadata: Record<string, string>): Promise<void> {
  return writeArrowAtomic(runFile(dir, 'actstats'), columns, metadata);
}

// ---------------------------------------------------------------------------------------------
// CSV in the paper's schema

/** Splits one CSV line (RFC 4180 quotes; the paper's files are plain numbers). */
function csvCells(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function cellNumber(raw: string): number {
  const s = raw.trim();
  if (s === '' || /^(nan|NaN|NA|null|None)$/.test(s)) return NaN;
  if (/^true$/i.test(s)) return 1;
  if (/^false$/i.test(s)) return 0;
  if (/^-?inf(inity)?$/i.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  const x = Number(s);
  return Number.isNaN(x) ? NaN : x;
}

/**
 * Reads a CSV in the paper's schema (any column order, extra columns kept, a pandas index column
 * — empty or "Unnamed: 0" header — dropped). `layer` and `neuron` are required.
 */
export function readNeuronCsv(path: string): NeuronTable {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new EngineError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : ioReason(e)}`, path);
  }
  if (text.includes('\u0000')) throw new EngineError(`${path} looks binary, not a CSV table`, path);
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new EngineError(`${path} is empty`, path);
  const head = csvCells(lines[0]!).map((h) => h.trim());
  for (const need of ['layer', 'neuron']) {
    if (!head.includes(need)) {
      throw new EngineError(`${path} has no "${need}" column (columns: ${head.join(', ')}); expected the paper's universal.csv schema`, path);
    }
  }
  const keepIdx = head.map((h, i) => (h === '' || /^Unnamed: \d+$/.test(h) ? -1 : i)).filter((i) => i >= 0);
  const n = lines.length - 1;
  const columns = new Map<string, Float64Array>();
  for (const i of keepIdx) if (!columns.has(head[i]!)) columns.set(head[i]!, new Float64Array(n));
  for (let r = 0; r < n; r++) {
    const cells = csvCells(lines[r + 1]!);
    if (cells.length !== head.length) {
      throw new EngineError(`${path}:${r + 2}: ${cells.length} cells, the header has ${head.length}`, path);
    }
    for (const i of keepIdx) columns.get(head[i]!)![r] = cellNumber(cells[i]!);
  }
  const layer = columns.get('layer')!;
  const neuron = columns.get('neuron')!;
  for (let r = 0; r < n; r++) {
    if (!(Number.isInteger(layer[r]) && layer[r]! >= 0 && Number.isInteger(neuron[r]) && neuron[r]! >= 0)) {
      throw new EngineError(`${path}:${r + 2}: layer and neuron must be non-negative integers`, path);
    }
  }
  return { source: path, nRows: n, columns };
}

/** The paper's universal.csv text of `rows` (every paper column, in order; missing values empty). */
export const paperCsvText = (rows: readonly Record<string, number>[]): string => csvText(PAPER_COLUMNS, rows);

/** Writes `universal.csv` of the run in `dir`: the universal neurons' rows in the paper's schema. */
export function writeUniversalCsv(dir: string, rows: readonly Record<string, number>[]): void {
  writeFileAtomic(runFile(dir, 'universalCsv'), paperCsvText(rows));
}
