/**
 * `vocab.arrow`: per reference neuron, the tokens its output most promotes (`side` 'top') and
 * suppresses ('bottom'), from its vocab composition W_out·W_U: `layer, neuron, side, rank,
 * token, value`.
 */
import * as fs from 'node:fs';
import { writeArrowAtomic } from '../store';
import { runFile } from './files';
import { readArrowColumns } from './neurons';
import type { RowIndex } from './partners';

export interface TokenValueId {
  id: number;
  value: number;
}

/** Top and bottom tokens by row of the run's table. */
export type VocabByRow = Map<number, { top: TokenValueId[]; bottom: TokenValueId[] }>;

const nat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

export function writeVocab(
  dir: string,
  cols: { layer: Int32Array; neuron: Int32Array; side: string[]; rank: Int32Array; token: Int32Array; value: Float64Array },
  metadata: Record<string, string>,
): Promise<void> {
  return writeArrowAtomic(runFile(dir, 'vocab'), cols, metadata);
}

/** null when the run has no vocab.arrow, or one without the needed columns. Rows of other neurons and bad entries are skipped. */
export async function readVocab(dir: string, run: RowIndex): Promise<VocabByRow | null> {
  const path = runFile(dir, 'vocab');
  if (!fs.existsSync(path)) return null;
  const t = await readArrowColumns(path);
  const layer = t.columns.get('layer');
  const neuron = t.columns.get('neuron');
  const side = t.text.get('side');
  const rank = t.columns.get('rank');
  const token = t.columns.get('token');
  const value = t.columns.get('value');
  if (!layer || !neuron || !side || !token || !value) return null;
  const out: VocabByRow = new Map();
  const order: { row: number; side: 'top' | 'bottom'; rank: number; id: number; value: number }[] = [];
  for (let i = 0; i < t.nRows; i++) {
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
