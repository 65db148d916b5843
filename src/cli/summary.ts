/**
 * The text summary of a neuron table in the paper's schema: per layer (neurons, universal count
 * and %, median excess correlation, median rotated baseline), counts at thresholds 0.3/0.4/0.5,
 * and the top universal neurons. Shared by `analyze`, `summary RUN` and `table FILE.csv`.
 *
 * A table may hold every neuron (our runs) or only the universal ones (the paper's published
 * universal.csv): then neurons per layer are unknown unless given (`dMlp`), and counts at
 * thresholds below the table's own cut are lower bounds, which the output says.
 */
import { isUniversal, SUMMARY_THRESHOLDS } from '../engine/run/defaults';
import type { NeuronTable } from '../engine/run/neurons';
import { FAMILIES } from '../engine/analysis/families';
import { EngineError } from '../engine/errors';
import { basisReading, layerBasis, PROPERTY_STATS, statMedians, universalProperties, type PropertyStat } from '../view/properties';

export interface SummaryOptions {
  threshold: number;
  top: number;
  /** Neurons per layer, when the table does not hold them all. */
  dMlp?: number;
  /** Lines printed above the table (run, models, tokens). */
  header?: string[];
  /** Partner columns to show for top neurons: label → [layer column, neuron column, corr column]. */
  partners?: { label: string; layer: string; neuron: string; corr: string }[];
  /** Another table's median statistics over its universal neurons, shown beside this one's (`table --run`). */
  compare?: { label: string; medians: ReadonlyMap<PropertyStat, number>; missing: readonly PropertyStat[] };
  /** Per layer, the top-5 principal components' share of activation variance (null or absent: not in this run). */
  pcaTop5?: readonly (number | null)[] | null;
}

function median(values: number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : '-');
const pct = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}%` : '-');

/** Columns right-aligned (numbers) except the first and any listed in `left`. */
function table(head: string[], rows: string[][], left: number[] = []): string[] {
  const w = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const isLeft = (c: number) => c === 0 || left.includes(c);
  const line = (r: string[]) =>
    r
      .map((cell, c) => (isLeft(c) ? (c === r.length - 1 ? cell : cell.padEnd(w[c]!)) : cell.padStart(w[c]!)))
      .join('  ');
  return [line(head), ...rows.map(line)];
}

export function summarizeTable(t: NeuronTable, opts: SummaryOptions): string[] {
  const out = [...(opts.header ?? [])];
  const col = (name: string) => t.columns.get(name);
  const layer = col('layer')!;
  const neuron = col('neuron')!;
  let excess = col('excess_corr');
  const meanCorr = col('mean_corr');
  const meanBase = col('mean_baseline');
  if (!excess) {
    if (!meanCorr || !meanBase) {
      // Another schema: an error (exit 1) that names what is missing, never an empty summary with exit 0.
      const missing = ['excess_corr', ...(meanCorr ? [] : ['mean_corr']), ...(meanBase ? [] : ['mean_baseline'])];
      throw new EngineError(
        `${t.source} is not in the paper's universal.csv schema: it lacks the column${missing.length > 1 ? 's' : ''} ${missing.join(', ')} ` +
          `(needed: excess_corr, or mean_corr and mean_baseline; it has ${[...t.columns.keys()].join(', ')})`,
        t.source,
      );
    }
    excess = meanCorr.map((x, i) => x - meanBase[i]!);
    out.push('(excess_corr computed as mean_corr − mean_baseline)');
  }
  const n = t.nRows;
  let nLayers = 0;
  let maxNeuron = -1;
  for (let i = 0; i < n; i++) {
    nLayers = Math.max(nLayers, layer[i]! + 1);
    maxNeuron = Math.max(maxNeuron, neuron[i]!);
  }
  // Every (layer, neuron) present exactly once ⇒ the table holds all neurons.
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) seen.add(layer[i]! * (maxNeuron + 1) + neuron[i]!);
  const complete = seen.size === n && n === nLayers * (maxNeuron + 1);
  const dMlp = complete ? maxNeuron + 1 : opts.dMlp;
  if (!complete && opts.dMlp !== undefined && maxNeuron >= opts.dMlp) {
    out.push(`warning: the table has neuron ${maxNeuron}, beyond --d-mlp ${opts.dMlp}`);
  }
  let minExcess = Infinity;
  for (let i = 0; i < n; i++) if (Number.isFinite(excess[i]!)) minExcess = Math.min(minExcess, excess[i]!);
  // A partial table (the paper's universal.csv) was cut at some excess ≤ its lowest row; taking
  // that cut as the threshold asked for, counts below it are lower bounds.
  const cut = complete ? -Infinity : Math.min(minExcess, opts.threshold);
  const isU = (i: number, thr: number) => isUniversal(excess![i]!, thr);

  if (!complete) {
    out.push(
      `${t.source}: ${n} neurons in layers 0–${nLayers - 1}, not every neuron of the model (lowest excess ${f3(minExcess)})` +
        (dMlp ? `; ${dMlp} neurons per layer as given` : '; neurons per layer unknown (give --d-mlp for percentages)'),
    );
  }
  const rows: string[][] = [];
  let totU = 0;
  for (let l = 0; l < nLayers; l++) {
    const idx: number[] = [];
    for (let i = 0; i < n; i++) if (layer[i] === l) idx.push(i);
    const u = idx.filter((i) => isU(i, opts.threshold)).length;
    totU += u;
    const neurons = complete ? idx.length : dMlp;
    rows.push([
      String(l),
      neurons === undefined ? '?' : String(neurons),
      String(u),
      neurons ? pct((100 * u) / neurons) : '-',
      f3(median(idx.map((i) => excess![i]!))),
      meanBase ? f3(median(idx.map((i) => meanBase[i]!))) : '-',
    ]);
  }
  const total = complete ? n : dMlp !== undefined ? dMlp * nLayers : undefined;
  rows.push([
    'all',
    total === undefined ? '?' : String(total),
    String(totU),
    total ? pct((100 * totU) / total) : '-',
    f3(median(Array.from(excess))),
    meanBase ? f3(median(Array.from(meanBase))) : '-',
  ]);
  const scope = complete ? '' : ' (rows in the table)';
  out.push(...table(['layer', 'neurons', 'universal', '%', `median excess${scope}`, `median baseline${scope}`], rows));

  const thresholds = [...new Set([...SUMMARY_THRESHOLDS, opts.threshold])].sort((a, b) => a - b);
  const counts = thresholds.map((thr) => {
    let c = 0;
    for (let i = 0; i < n; i++) if (isU(i, thr)) c++;
    const lower = thr < cut ? ' (at least: the table holds no lower excess)' : '';
    return `> ${thr}: ${c}${total ? ` (${pct((100 * c) / total)})` : ''}${lower}`;
  });
  out.push('');
  out.push(`universal neurons by excess threshold: ${counts.join(', ')}`);

  const uIdx: number[] = [];
  for (let i = 0; i < n; i++) if (isU(i, opts.threshold)) uIdx.push(i);
  if (uIdx.length && meanCorr && meanBase) {
    out.push(
      `medians over the ${uIdx.length} universal neurons: mean_corr ${f3(median(uIdx.map((i) => meanCorr[i]!)))}, ` +
        `mean_baseline ${f3(median(uIdx.map((i) => meanBase[i]!)))}` +
        (col('act_freq') ? `, activation frequency ${f3(median(uIdx.map((i) => col('act_freq')![i]!)))}` : '') +
        (col('sparsity') ? `, sparsity ${f3(median(uIdx.map((i) => col('sparsity')![i]!)))}` : '') +
        (col('kurt') ? `, kurtosis ${f3(median(uIdx.map((i) => col('kurt')![i]!)))}` : '') +
        (col('kurt_exact') ? ` (exact ${f3(median(uIdx.map((i) => col('kurt_exact')![i]!)))})` : ''),
    );
  }
  out.push(...propertiesSummary(t, complete, (i) => isU(i, opts.threshold), opts.compare));
  if (complete && meanCorr && meanBase) out.push(...basisSummary(layer, meanCorr, meanBase, nLayers, opts.pcaTop5 ?? null));
  out.push(...familySummary(t, nLayers, (i) => isU(i, opts.threshold)));
  if (opts.top > 0) {
    out.push('');
    if (uIdx.length === 0) {
      out.push(`no neuron has excess correlation > ${opts.threshold}`);
    } else {
      uIdx.sort((a, b) => excess![b]! - excess![a]! || layer[a]! - layer[b]! || neuron[a]! - neuron[b]!);
      const show = uIdx.slice(0, opts.top);
      out.push(`top ${show.length} of ${uIdx.length} universal neurons (excess > ${opts.threshold}):`);
      const extra = (name: string) => (col(name) ? [name] : []);
      const head = ['neuron', 'excess', 'mean_corr', 'min_corr', 'max_corr', 'mean_baseline', ...extra('act_freq'), ...extra('sparsity'), ...extra('kurt')];
      const fam = t.text?.get('family');
      const famLabel = t.text?.get('family_label');
      if (fam) head.push('family');
      const partners = opts.partners ?? [];
      if (partners.length) head.push('best partner per model');
      const body = show.map((i) => {
        const r = [`L${layer[i]}.N${neuron[i]}`, f3(excess![i]!)];
        for (const c of ['mean_corr', 'min_corr', 'max_corr', 'mean_baseline', ...extra('act_freq'), ...extra('sparsity'), ...extra('kurt')]) r.push(f3(col(c)?.[i] ?? NaN));
        if (fam) r.push(fam[i] === 'unexplained' ? `(${famLabel?.[i] ?? ''} ${f3(col('family_vr')?.[i] ?? NaN)})` : `${fam[i]} ${famLabel?.[i] ?? ''} ${f3(col('family_vr')?.[i] ?? NaN)}`);
        if (partners.length) {
          r.push(partners.map((p) => `${p.label}:L${col(p.layer)![i]}.N${col(p.neuron)![i]}(${f3(col(p.corr)![i]!)})`).join(' '));
        }
        return r;
      });
      const left = [...(fam ? [head.length - (partners.length ? 2 : 1)] : []), ...(partners.length ? [head.length - 1] : [])];
      out.push(...table(head, body, left).map((l) => '  ' + l));
    }
  }
  out.push('', ...SUMMARY_LEGEND);
  return out;
}

/**
 * Properties of universal neurons (the paper's Fig. 3) as medians: for a table of every neuron, the
 * median within-layer percentile of each statistic over universal neurons and over the rest; for
 * any table, the median raw value over its universal neurons (beside `compare`'s, same units).
 */
export function propertiesSummary(
  t: NeuronTable,
  complete: boolean,
  isU: (i: number) => boolean,
  compare?: SummaryOptions['compare'],
): string[] {
  const uRows: number[] = [];
  for (let i = 0; i < t.nRows; i++) if (isU(i)) uRows.push(i);
  const own = statMedians(t.columns, uRows);
  const out: string[] = ['', 'properties of universal neurons' + (complete ? ' (median percentile within the layer, 50 = typical; raw median in the column\'s units)' : ' (raw medians, in the column\'s units)') + ':'];
  if (!complete) out.push("  (percentiles within a layer need every neuron of the layer; this table holds only some)");
  if (own.medians.size === 0 && !compare) {
    out.push(`  none of the statistics (${PROPERTY_STATS.join(', ')}) is in ${t.source}`);
    return out;
  }
  const pct = complete ? universalProperties(t.columns.get('layer')!, Array.from({ length: t.nRows }, (_, i) => isU(i)), t.columns) : undefined;
  const head = ['statistic', ...(pct ? ['universal %ile', 'rest %ile'] : []), `${t.source.split(/[\\/]/).pop()} (${uRows.length} universal)`, ...(compare ? [compare.label] : [])];
  const rows: string[][] = [];
  for (const stat of PROPERTY_STATS) {
    const p = pct?.stats.find((x) => x.stat === stat);
    const m = own.medians.get(stat);
    const c = compare?.medians.get(stat);
    if (m === undefined && c === undefined) continue;
    rows.push([stat, ...(pct ? [f1(p?.universal.p50 ?? NaN), f1(p?.rest.p50 ?? NaN)] : []), g4(m ?? NaN), ...(compare ? [g4(c ?? NaN)] : [])]);
  }
  out.push(...table(head, rows).map((l) => '  ' + l));
  if (own.missing.length) out.push(`  not in ${t.source}: ${own.missing.join(', ')}`);
  if (compare?.missing.length) out.push(`  not in ${compare.label}: ${compare.missing.join(', ')}`);
  return out;
}

/** Is the basis privileged? Per layer: the rotated baseline's quartiles, mean_corr's median, the top-5 PCs' share and the reading. */
function basisSummary(layer: Float64Array, meanCorr: Float64Array, meanBase: Float64Array, nLayers: number, pcaTop5: readonly (number | null)[] | null): string[] {
  const b = layerBasis(layer, meanCorr, meanBase, nLayers, pcaTop5);
  const out = ['', 'is the basis privileged? (rotated baseline: the other models\' neurons randomly rotated)'];
  out.push(
    ...table(
      ['layer', 'median mean_corr', 'baseline p25', 'p50', 'p75', 'p90', 'top-5 PCs of variance'],
      b.map((l) => [String(l.layer), f3(l.corr.p50), f3(l.baseline.p25), f3(l.baseline.p50), f3(l.baseline.p75), f3(l.baseline.p90), l.pcaTop5 === null ? 'not in this run' : pct(100 * l.pcaTop5)]),
    ).map((l) => '  ' + l),
  );
  for (const l of b) out.push(`  L${l.layer}: ${basisReading(l)}`);
  return out;
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const g4 = (x: number) => (Number.isFinite(x) ? String(Number(x.toPrecision(4))) : '-');

/** What the summary's words and brackets mean (docs/method-notes.md, ../shared/method.md). */
export const SUMMARY_LEGEND = [
  'legend:',
  '  excess = mean_corr - mean_baseline; universal when excess > the threshold. mean/min/max_corr: the',
  "    correlation with the best partner in each other model (mean, min, max over the models); baseline: the",
  "    same with the other model's neurons randomly rotated (what chance alignment gives).",
  '  kept: tokens counted in the statistics and correlations: every token but EOS (50256) and "\\n" (198);',
  '    the forward still sees them.',
  '  act_freq: activation frequency, the share of kept tokens whose pre-activation is > 0 (high = fires',
  '    often, not "sparse"). sparsity: the same as the paper\'s code computes it, from a 257-bin fp16',
  '    histogram over all tokens (in effect pre > -0.098). kurt: kurtosis of the pre-activation from that',
  '    histogram (not excess; Gaussian 3); "exact": over kept tokens, unbinned.',
  '  brackets: "12 (3)" in the families and roles tables is all neurons (universal ones). A family',
  '    "(label 0.123)" in brackets is unexplained: its best label and variance reduction, below the family',
  '    threshold. Partner "b:L1.N2(0.934)": the best partner in model b and its correlation.',
  '  (at least: ...): a table of only some neurons (the paper\'s universal.csv) cannot count below its lowest excess.',
];

const FAMILY_ORDER: readonly string[] = FAMILIES;
const ROLE_ORDER = ['prediction', 'suppression', 'partition', 'entropy', 'attention-deactivation'];

/** Family and role counts per layer (neurons.arrow of a run with families), universal beside all. */
function familySummary(t: NeuronTable, nLayers: number, isU: (i: number) => boolean): string[] {
  const fam = t.text?.get('family');
  const roles = t.text?.get('roles');
  const layer = t.columns.get('layer')!;
  if (!fam) return [];
  const out: string[] = [''];
  const present = FAMILY_ORDER.filter((f) => fam.includes(f)).concat([...new Set(fam)].filter((f) => f && !FAMILY_ORDER.includes(f)));
  const cell = (all: number, u: number): string => `${all} (${u})`;
  const rowsFor = (names: string[], has: (i: number, name: string) => boolean): string[][] => {
    const rows: string[][] = [];
    for (let l = 0; l <= nLayers; l++) {
      const r = [l < nLayers ? String(l) : 'all'];
      for (const name of names) {
        let all = 0;
        let u = 0;
        for (let i = 0; i < t.nRows; i++) {
          if ((l < nLayers && layer[i] !== l) || !has(i, name)) continue;
          all++;
          if (isU(i)) u++;
        }
        r.push(cell(all, u));
      }
      rows.push(r);
    }
    return rows;
  };
  out.push('families per layer: all neurons (universal)');
  out.push(...table(['layer', ...present], rowsFor(present, (i, f) => fam[i] === f)));
  let explained = 0;
  let explainedU = 0;
  let nU = 0;
  for (let i = 0; i < t.nRows; i++) {
    const e = fam[i] !== 'unexplained' && fam[i] !== '';
    if (e) explained++;
    if (isU(i)) {
      nU++;
      if (e) explainedU++;
    }
  }
  out.push(
    `explained by a family: ${pct((100 * explainedU) / Math.max(1, nU))} of universal neurons (${explainedU} of ${nU}), ` +
      `${pct((100 * (explained - explainedU)) / Math.max(1, t.nRows - nU))} of the others (${explained - explainedU} of ${t.nRows - nU})`,
  );
  const absent = FAMILY_ORDER.filter((f) => f !== 'unexplained' && !present.includes(f));
  if (absent.length) out.push(`no neuron in: ${absent.join(', ')}${absent.includes('syntax') ? ' (syntax needs part-of-speech tags: a .jsonl corpus with "tagged" records)' : ''}`);
  if (roles) {
    const has = (i: number, r: string): boolean => roles[i]!.split(',').includes(r);
    out.push('');
    out.push('roles per layer: all neurons (universal)');
    out.push(...table(['layer', ...ROLE_ORDER], rowsFor(ROLE_ORDER, has)));
  }
  return out;
}
