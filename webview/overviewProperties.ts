/**
 * The overview's "properties of universal neurons" (the paper's Fig. 3: for each statistic, the
 * within-layer percentiles of universal neurons against the rest, as boxes) and "is the basis
 * privileged?" (per layer: the rotated baseline's distribution against the neurons' mean_corr,
 * the top-5 principal components' share of activation variance, and a one-line reading).
 *
 * A box is drawn on a scatter chart: a thin line from p10 to p90, a thick one from p25 to p75 and
 * a dash at the median, each group shifted a little left or right of its category.
 */
import type { ChartConfiguration, ChartDataset } from 'chart.js';
import type { OverviewData, QuantilesData } from '../src/protocol';
import { STAT_HELP } from '../src/view/statNames';
import { baseOptions, chartBox, themedChart } from './charts';
import { section, type ViewContext } from './common';
import { el, fmt } from './dom';
import { withAlpha, type ChartTheme } from './theme';

type Pt = { x: number; y: number | null };

/** Whisker, box and median datasets of one group of boxes at positions `xs`. */
function boxDatasets(label: string, colour: string, xs: number[], qs: QuantilesData[]): ChartDataset<'scatter', Pt[]>[] {
  const segs = (lo: keyof QuantilesData, hi: keyof QuantilesData): Pt[] =>
    // A null point between segments breaks the line (spanGaps is off).
    xs.flatMap((x, i) => [{ x, y: qs[i]![lo] }, { x, y: qs[i]![hi] }, { x, y: null }]);
  const line = { showLine: true, pointRadius: 0, pointHitRadius: 0, spanGaps: false, borderColor: colour };
  return [
    { label: `${label} p10–p90`, data: segs('p10', 'p90'), ...line, borderWidth: 1.5 },
    { label: `${label} p25–p75`, data: segs('p25', 'p75'), ...line, borderColor: withAlpha(colour, 0.6), borderWidth: 9 },
    { label, data: xs.map((x, i) => ({ x, y: qs[i]!.p50 })), pointStyle: 'line', pointRadius: 8, pointBorderWidth: 3, borderColor: colour, backgroundColor: colour },
  ];
}

const quartileText = (q: QuantilesData, digits = 3): string => `median ${fmt(q.p50, digits)} (25–75: ${fmt(q.p25, digits)}–${fmt(q.p75, digits)}, 10–90: ${fmt(q.p10, digits)}–${fmt(q.p90, digits)})`;

/** A category x axis on a linear scale: integer ticks labelled by `names`. */
function categoryAxis(names: string[]) {
  return {
    type: 'linear' as const,
    min: -0.5,
    max: names.length - 0.5,
    // A linear scale makes its own "nice" ticks (from min −0.5); one tick per category instead.
    afterBuildTicks: (axis: { ticks: { value: number }[] }) => {
      axis.ticks = names.map((_, i) => ({ value: i }));
    },
    ticks: { autoSkip: false, maxRotation: 60, callback: (v: string | number) => names[Number(v)] ?? '' },
  };
}

/** baseOptions' scales with `x` and `y` merged in (chart.js' scale types do not merge through spreads). */
function withScales(base: NonNullable<ChartConfiguration['options']>, x: object, y: object): NonNullable<ChartConfiguration['options']>['scales'] {
  const s = base.scales as Record<string, object>;
  return { x: { ...s['x'], ...x }, y: { ...s['y'], ...y } } as NonNullable<ChartConfiguration['options']>['scales'];
}

interface BoxGroup {
  label: string;
  colour: (th: ChartTheme) => string;
  boxes: QuantilesData[];
  /** Tooltip line of category i. */
  text: (i: number) => string;
}

/** Two groups of boxes side by side per category (scatter chart; see the file's comment). */
function boxChart(
  canvas: HTMLCanvasElement,
  ctx: ViewContext,
  o: { names: string[]; x: string; y: { title: string; min?: number; max?: number }; groups: [BoxGroup, BoxGroup]; title: (i: number) => string },
): void {
  const xs = (shift: number) => o.names.map((_, i) => i + shift);
  const labels = o.groups.map((g) => g.label);
  // Each group is 3 datasets (whisker, box, median): the medians (2 and 5) carry legend and tooltip.
  const medians = [2, 5];
  const c = themedChart(canvas, (th) => {
    const base = baseOptions(th, { title: o.x }, { title: o.y.title })!;
    const { title: _t, ...yRange } = o.y;
    return {
      type: 'scatter',
      data: { datasets: o.groups.flatMap((g, gi) => boxDatasets(g.label, g.colour(th), xs(gi === 0 ? -0.17 : 0.17), g.boxes)) },
      options: {
        ...base,
        parsing: false,
        scales: withScales(base, categoryAxis(o.names), yRange),
        plugins: {
          ...base.plugins,
          legend: { ...base.plugins!.legend, labels: { ...base.plugins!.legend!.labels, filter: (item) => labels.includes(item.text) } },
          tooltip: {
            ...base.plugins!.tooltip,
            filter: (item) => medians.includes(item.datasetIndex),
            callbacks: {
              title: (items) => o.title(items[0]!.dataIndex),
              label: (item) => o.groups[medians.indexOf(item.datasetIndex)]!.text(item.dataIndex),
            },
          },
        },
      },
    };
  });
  ctx.onDispose(() => c.destroy());
}

function propertiesChart(grid: HTMLElement, d: OverviewData, ctx: ViewContext): void {
  const p = d.properties;
  const names = p.stats.map((s) => s.stat);
  const missing = p.missing.length ? el('p', { class: 'note', text: `Not in this run: ${p.missing.join(', ')}.` }) : null;
  if (!p.stats.length) {
    grid.append(section('Properties of universal neurons', el('p', { text: 'This run has none of the statistics.' }), missing));
    return;
  }
  const description = p.stats.map((s) => `${s.stat}: universal ${quartileText(s.universal, 3)}; rest ${quartileText(s.rest, 3)}`).join('. ');
  const box = chartBox('Properties of universal neurons: within-layer percentiles, universal neurons against the rest', description, 'chart tall');
  grid.append(
    section(
      'Properties of universal neurons',
      el('p', {
        class: 'note',
        text: "Each statistic ranked within the neuron's layer (0–100), universal neurons (orange) against the rest (blue): line 10th–90th percentile, bar 25th–75th, dash the median. Boxes away from 50 mean universal neurons are unusual in that statistic (the paper's Fig. 3).",
      }),
      box.box,
      missing,
    ),
  );
  boxChart(box.canvas, ctx, {
    names,
    x: 'statistic',
    y: { title: 'percentile within layer', min: 0, max: 100 },
    groups: [
      { label: 'universal', colour: (th) => th.accent, boxes: p.stats.map((s) => s.universal), text: (i) => `universal (${p.stats[i]!.nUniversal}): percentile ${quartileText(p.stats[i]!.universal)}; raw median ${fmt(p.stats[i]!.medianUniversal)}` },
      { label: 'rest', colour: (th) => th.primary, boxes: p.stats.map((s) => s.rest), text: (i) => `rest (${p.stats[i]!.nRest}): percentile ${quartileText(p.stats[i]!.rest)}; raw median ${fmt(p.stats[i]!.medianRest)}` },
    ],
    title: (i) => `${p.stats[i]!.stat}: ${STAT_HELP[p.stats[i]!.stat] ?? ''}`,
  });
}

function basisChart(grid: HTMLElement, d: OverviewData, ctx: ViewContext): void {
  const b = d.basis;
  if (!b.length) return;
  const names = b.map((l) => `L${l.layer}`);
  const description = b.map((l) => `L${l.layer}: ${l.reading}; top-5 PCs ${l.pcaTop5 === null ? 'not in this run' : `${fmt(100 * l.pcaTop5, 3)}% of the variance`}`).join('. ');
  const box = chartBox('Is the basis privileged? mean_corr against the rotated baseline per layer', description);
  const list = el(
    'ul',
    { class: 'basis-readings' },
    ...b.map((l) =>
      el(
        'li',
        {},
        el('strong', { text: `L${l.layer}: ` }),
        l.reading,
        `; top-5 principal components: ${l.pcaTop5 === null ? 'not in this run' : `${fmt(100 * l.pcaTop5, 3)}% of the activation variance`}.`,
      ),
    ),
  );
  grid.append(
    section(
      'Is the basis privileged?',
      el('p', {
        class: 'note',
        text: "Per layer, the neurons' mean_corr (orange) against the rotated baseline (grey): what the other models reach when their neurons are randomly rotated. Neurons are more meaningful than random directions when the median neuron beats the baseline's 90th percentile.",
      }),
      box.box,
      list,
    ),
  );
  boxChart(box.canvas, ctx, {
    names,
    x: 'layer',
    y: { title: 'correlation' },
    groups: [
      { label: 'mean_corr', colour: (th) => th.accent, boxes: b.map((l) => l.corr), text: (i) => `mean_corr ${quartileText(b[i]!.corr)}` },
      { label: 'rotated baseline', colour: (th) => th.muted, boxes: b.map((l) => l.baseline), text: (i) => `rotated baseline ${quartileText(b[i]!.baseline)}` },
    ],
    title: (i) => b[i]!.reading,
  });
}

export function renderPropertiesOverview(grid: HTMLElement, d: OverviewData, ctx: ViewContext): void {
  propertiesChart(grid, d, ctx);
  basisChart(grid, d, ctx);
}
