/**
 * An entropy neuron's intervention (roles.json): its activation fixed to each value, and what the
 * model then does — next-token entropy and loss (nats, left axis) and the final LayerNorm scale
 * (right axis), as lines over the fixed value. The numbers are also in a table under the chart.
 */
import type { NeuronData } from '../src/protocol';
import { baseOptions, chartBox, themedChart } from './charts';
import { section, type ViewContext } from './common';
import { el, fmt, neuronName } from './dom';

export function renderEntropyIntervention(root: HTMLElement, d: NeuronData, ctx: ViewContext): void {
  const iv = d.entropy;
  if (!iv || !iv.points.length) return;
  const name = neuronName(d.layer, d.neuron);
  const b = iv.baseline;
  const pts = iv.points;
  const box = chartBox(
    `Entropy intervention on ${name}`,
    `activation fixed from ${fmt(pts[0]!.value)} to ${fmt(pts[pts.length - 1]!.value)}: entropy ${fmt(pts[0]!.entropy, 3)} to ${fmt(pts[pts.length - 1]!.entropy, 3)}, ` +
      `LN scale ${fmt(pts[0]!.lnScale, 3)} to ${fmt(pts[pts.length - 1]!.lnScale, 3)}, loss ${fmt(pts[0]!.loss, 3)} to ${fmt(pts[pts.length - 1]!.loss, 3)}`,
    'chart entropy-chart',
  );
  const cell = (x: number | null, cls = 'num') => el('td', { class: cls, text: fmt(x, 4) });
  const table = el(
    'table',
    { class: 'plain' },
    el(
      'thead',
      {},
      el('tr', {}, ...['fixed activation', 'entropy', 'Δ entropy', 'LN scale', 'loss', 'Δ loss'].map((t) => el('th', { class: 'num', text: t, attrs: { scope: 'col' } }))),
    ),
    el(
      'tbody',
      {},
      el('tr', {}, el('th', { class: 'num', text: 'not fixed', attrs: { scope: 'row' } }), cell(b.entropy), cell(0), cell(b.lnScale), cell(b.loss), cell(0)),
      ...pts.map((p) =>
        el('tr', {}, el('th', { class: 'num', text: fmt(p.value, 4), attrs: { scope: 'row' } }), cell(p.entropy), cell(p.dEntropy), cell(p.lnScale), cell(p.loss), cell(p.dLoss)),
      ),
    ),
  );
  root.append(
    section(
      'Entropy intervention',
      el(
        'p',
        {
          class: 'muted',
          text:
            `${name}’s activation fixed at each value on every position. Without the intervention: entropy ${fmt(b.entropy, 3)}, LN scale ${fmt(b.lnScale, 3)}, loss ${fmt(b.loss, 3)} (nats).` +
            (iv.candidate === false ? ' This neuron does not pass the entropy-neuron rule: the run measured its closest candidate to show the shape.' : ''),
        },
      ),
      box.box,
      el('details', {}, el('summary', { text: 'Numbers' }), table),
    ),
  );
  const series = (key: 'entropy' | 'loss' | 'lnScale') => pts.filter((p) => p[key] !== null).map((p) => ({ x: p.value, y: p[key]! }));
  const chart = themedChart(box.canvas, (th) => {
    const base = baseOptions(th, { title: `fixed activation of ${name}` }, { title: 'nats' })!;
    const right = baseOptions(th, {}, { title: 'final LayerNorm scale' })!.scales!.y!;
    const line = (label: string, data: { x: number; y: number }[], colour: string, yAxisID: string, dash: number[] = []) => ({
      label,
      data,
      yAxisID,
      showLine: true,
      borderColor: colour,
      backgroundColor: colour,
      borderDash: dash,
      borderWidth: 2,
      pointRadius: 3,
    });
    return {
      type: 'scatter',
      data: {
        datasets: [
          line('entropy', series('entropy'), th.series.orange, 'y'),
          line('loss', series('loss'), th.series.red, 'y'),
          line('LN scale (right axis)', series('lnScale'), th.series.blue, 'y1', [6, 3]),
        ],
      },
      options: {
        ...base,
        scales: { ...base.scales, y1: { ...right, position: 'right', grid: { drawOnChartArea: false } } },
        plugins: {
          ...base.plugins,
          tooltip: { ...base.plugins!.tooltip, callbacks: { label: (item) => `${item.dataset.label}: ${fmt(item.parsed.y, 4)} at ${fmt(item.parsed.x, 3)}` } },
        },
      },
    };
  });
  ctx.onDispose(() => chart.destroy());
}
