/**
 * Partners: for each reference neuron and other model, the other model's neuron that correlates
 * best with it. Written twice by the pipeline: `partners.arrow` (long format, one row per
 * reference neuron and other model) and the wide partner columns of `neurons.arrow`
 * (neurons.partnerColumns); read from the first when a run has it, else from the second.
 *
 * partners.arrow: `layer, neuron` (reference), `model` (label, or index into manifest.models),
 * `partner_layer`, `partner_neuron` (or `partner`, a column index l·d_mlp+n), `corr` (or
 * `max_corr`), optional `baseline`.
 */
import * as fs from 'node:fs';
import { writeArrowAtomic } from '../store';
import { runFile } from './files';
import { partnerColumns, readArrowColumns, type ArrowColumns } from './neurons';

export interface PartnerRow {
  /** Row of the reference neuron in the run's table. */
  ref: number;
  /** The other model's label. */
  model: string;
  layer: number;
  neuron: number;
  corr: number;
  baseline: number;
}

/** Where a reference neuron is in the run's table. */
export interface RowIndex {
  nLayers: number;
  dMlp: number;
  /** Neuron column l·d_mlp+n → row (−1: absent). */
  rowOf: Int32Array;
}

const nat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Writes `partners.arrow`. */
export function writePartners(
  dir: string,
  cols: { layer: Int32Array; neuron: Int32Array; model: string[]; partner_layer: Int32Array; partner_neuron: Int32Array; corr: Float64Array; baseline: Float64Array },
  metadata: Record<string, string>,
): Promise<void> {
  return writeArrowAtomic(runFile(dir, 'partners'), cols, metadata);
}

function fromLong(t: ArrowColumns, run: RowIndex, labels: readonly string[]): { rows: PartnerRow[][]; note?: string } {
  const rows: PartnerRow[][] = Array.from({ length: run.rowOf.length }, () => []);
  const num = (name: string) => t.columns.get(name);
  const layer = num('layer');
  const neuron = num('neuron');
  const modelStr = t.text.get('model');
  const modelNum = modelStr ? undefined : num('model');
  const pLayer = num('partner_layer');
  const pNeuron = num('partner_neuron');
  const pCol = num('partner');
  const corr = num('corr') ?? num('max_corr');
  const baseline = num('baseline');
  if (!layer || !neuron || (!modelStr && !modelNum) || !corr || !((pLayer && pNeuron) || pCol)) {
    return {
      rows,
      note: `partners.arrow has columns ${t.names.join(', ')}; expected layer, neuron, model, partner_layer, partner_neuron (or partner), corr`,
    };
  }
  for (let i = 0; i < t.nRows; i++) {
    const l = layer[i]!;
    const n = neuron[i]!;
    if (!(nat(l) && nat(n) && l < run.nLayers && n < run.dMlp)) continue;
    const ref = run.rowOf[l * run.dMlp + n]!;
    if (ref < 0) continue;
    let model: string;
    if (modelStr) model = modelStr[i] || '?';
    else {
      const k = modelNum![i]!;
      model = nat(k) && k < labels.length ? labels[k]! : String(k);
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

/** Partners from neurons.arrow's wide partner columns, one set per other model (`labels[1..]`). */
export function partnersFromColumns(
  columns: ReadonlyMap<string, Float64Array> | Readonly<Record<string, Float64Array>>,
  nRows: number,
  labels: readonly string[],
): { rows: PartnerRow[][] | null; note?: string } {
  const get = (k: string): Float64Array | undefined => (columns instanceof Map ? columns.get(k) : (columns as Record<string, Float64Array>)[k]);
  const others = labels.slice(1).filter((label) => {
    const c = partnerColumns(label);
    return get(c.layer) && get(c.neuron) && get(c.corr);
  });
  if (others.length === 0) return { rows: null, note: 'this run has no partners (no partners.arrow, no partner columns in neurons.arrow)' };
  const rows: PartnerRow[][] = Array.from({ length: nRows }, () => []);
  for (const label of others) {
    const c = partnerColumns(label);
    const pl = get(c.layer)!;
    const pn = get(c.neuron)!;
    const corr = get(c.corr)!;
    const base = get(c.baseline);
    for (let i = 0; i < nRows; i++) {
      if (nat(pl[i]) && nat(pn[i])) rows[i]!.push({ ref: i, model: label, layer: pl[i]!, neuron: pn[i]!, corr: corr[i]!, baseline: base ? base[i]! : NaN });
    }
  }
  return { rows };
}

/**
 * The partners of every reference row: from partners.arrow when the run has it, else from the
 * wide columns of neurons.arrow (`columns`). `note` says why there are none, or what was wrong.
 */
export async function readPartners(
  dir: string,
  run: RowIndex & { nRows: number; columns: Readonly<Record<string, Float64Array>> },
  labels: readonly string[],
): Promise<{ rows: PartnerRow[][] | null; note?: string }> {
  const path = runFile(dir, 'partners');
  if (fs.existsSync(path)) return fromLong(await readArrowColumns(path), run, labels);
  return partnersFromColumns(run.columns, run.nRows, labels);
}
