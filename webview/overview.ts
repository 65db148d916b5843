/**
 * Overview: per-layer universal share, histogram of excess correlation, mean_corr against
 * mean_baseline, then properties of universal neurons and the basis (overviewProperties.ts), families
 * and roles (overviewFamilies.ts). Clicking a scatter point opens
 * that neuron's page.
 */
import type { OverviewData } from '../src/protocol';
import { baseOptions, chartBox, themedChart } from './charts';
import { runHeader, section, type ViewContext } from './common';
import { el, fmt, neuronName } from './dom';
import { renderFamilyOverview } from './overviewFamilies';
import { renderPropertiesOverview } from './overviewProperties';
import { withAlpha } from './theme';
import { button } from './ui';

export function renderOverview(root: HTMLElement, d: OverviewData, ctx: ViewContext): void {
  const t = d.run.threshold;
  root.append(
    el('h1', { text: 'Universal neurons: overview' }),
    runHeader(d.run),
    el(
      'p',
      { class: 'summary' },
      el('strong', { text: `${d.totals.universal.toLocaleString('en-US')} of ${d.totals.neurons.toLocaleString('en-US')}` }),
      ` neurons are universal (${fmt(d.totals.percent, 3)}%). `,
      button('Open neuron table', () => ctx.openView('table'), { appearance: 'primary' }),
    ),
  );
  const grid = el('div', { class: 'cards' });
  root.append(grid);

  // Per-layer share.
  const layers = chartBox('Universal neurons per layer', d.layers.map((l) => `L${l.layer}: ${fmt(l.percent, 3)}%`).join(', '));
  grid.append(section('Universal neurons per layer', layers.box));
  const c1 = themedChart(layers.canvas, (th) => ({
    type: 'bar',
    data: {
      labels: d.layers.map((l) => `L${l.layer}`),
      datasets: [{ label: 'universal %', data: d.layers.map((l) => l.percent), backgroundColor: th.accent, borderColor: th.accent }],
    },
    options: {
      ...baseOptions(th, { title: 'layer' }, { title: '% universal', beginAtZero: true }),
      plugins: {
        ...baseOptions(th, {}, {})!.plugins,
        legend: { display: false },
        tooltip: {
          ...baseOptions(th, {}, {})!.plugins!.tooltip,
          callbacks: {
            label: (item) => {
              const l = d.layers[item.dataIndex]!;
              return `${l.universal} of ${l.neurons} (${fmt(l.percent, 3)}%), median excess ${fmt(l.medianExcess, 3)}`;
            },
          },
        },
      },
    },
  }));
  ctx.onDispose(() => c1.destroy());

  // Excess correlation histogram.
  const h = d.excessHistogram;
  const centers = h.counts.map((_, i) => (h.edges[i]! + h.edges[i + 1]!) / 2);
  const hist = chartBox('Excess correlation histogram', `${h.counts.length} bins from ${fmt(h.edges[0])} to ${fmt(h.edges[h.edges.length - 1])}`);
  grid.append(section('Excess correlation (mean_corr − mean_baseline)', hist.box));
  const c2 = themedChart(hist.canvas, (th) => ({
    type: 'bar',
    data: {
      labels: centers.map((c) => fmt(c, 2)),
      datasets: [
        {
          label: 'neurons',
          data: h.counts,
          backgroundColor: centers.map((c) => (c > t ? th.accent : th.primary)),
          barPercentage: 1,
          categoryPercentage: 1,
        },
      ],
    },
    options: {
      ...baseOptions(th, { title: `excess_corr (orange: > ${t})` }, { title: 'neurons (log scale)', log: true }),
      plugins: {
        legend: { display: false },
        tooltip: {
          ...baseOptions(th, {}, {})!.plugins!.tooltip,
          callbacks: {
            label: (item) => `${item.raw as number} neurons`,
            title: (items) => {
              const i = items[0]!.dataIndex;
              return `${fmt(h.edges[i], 3)} … ${fmt(h.edges[i + 1], 3)}`;
            },
          },
        },
      },
    },
  }));
  // The universal tail is a few % of neurons: the log scale keeps it visible next to the bulk.
  ctx.onDispose(() => c2.destroy());

  // Scatter: mean_corr against mean_baseline.
  const s = d.scatter;
  const pts = { universal: [] as { x: number; y: number; i: number }[], other: [] as { x: number; y: number; i: number }[] };
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < s.meanCorr.length; i++) {
    const x = s.meanBaseline[i];
    const y = s.meanCorr[i];
    if (x === null || y === null || x === undefined || y === undefined) continue;
    (s.universal[i] ? pts.universal : pts.other).push({ x, y, i });
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
  }
  const sc = chartBox('mean_corr against mean_baseline', `${pts.universal.length} universal and ${pts.other.length} other neurons; click a point to open its page`, 'chart tall');
  grid.append(section('mean_corr against mean_baseline', sc.box));
  const line = Number.isFinite(lo) ? [{ x: lo, y: lo + t }, { x: hi, y: hi + t }] : [];
  const c3 = themedChart(sc.canvas, (th) => ({
    type: 'scatter',
    data: {
      datasets: [
        { label: 'other neurons', data: pts.other, backgroundColor: withAlpha(th.primary, 0.35), borderWidth: 0, pointRadius: 1.5 },
        { label: 'universal', data: pts.universal, backgroundColor: th.accent, borderWidth: 0, pointRadius: 2 },
        { label: `excess = ${t}`, data: line, showLine: true, borderColor: th.muted, borderDash: [4, 4], pointRadius: 0, borderWidth: 1 },
      ],
    },
    options: {
      ...baseOptions(th, { title: 'mean_baseline' }, { title: 'mean_corr' }),
      parsing: false,
      normalized: true,
      plugins: {
        legend: baseOptions(th, {}, {})!.plugins!.legend,
        tooltip: {
          ...baseOptions(th, {}, {})!.plugins!.tooltip,
          filter: (item) => item.datasetIndex < 2,
          callbacks: {
            label: (item) => {
              const p = item.raw as { x: number; y: number; i: number };
              return `${neuronName(s.layer[p.i]!, s.neuron[p.i]!)}: mean_corr ${fmt(p.y, 3)}, baseline ${fmt(p.x, 3)}`;
            },
          },
        },
      },
      onClick: (_e, elements) => {
        const hit = elements.find((e) => e.datasetIndex < 2);
        if (!hit) return;
        const p = (hit.datasetIndex === 0 ? pts.other : pts.universal)[hit.index];
        if (p) ctx.openNeuron({ layer: s.layer[p.i]!, neuron: s.neuron[p.i]! });
      },
    },
  }));
  ctx.onDispose(() => c3.destroy());

  renderPropertiesOverview(grid, d, ctx);
  renderFamilyOverview(grid, d, ctx);
}
