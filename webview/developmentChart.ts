/**
 * A development run's neuron (issue #15): its correlation with its best partner in each training
 * checkpoint against the training step, the final checkpoint (the neuron itself, 1) last. When
 * the curve rises early the neuron formed early; the table under the chart names each partner.
 */
import type { NeuronData } from '../src/protocol';
import { baseOptions, chartBox, themedChart } from './charts';
import { section, type ViewContext } from './common';
import { el, fmt, neuronName } from './dom';

export function renderDevelopment(root: HTMLElement, d: NeuronData, ctx: ViewContext): void {
  const dev = d.development;
  if (!dev || !dev.points.length) return;
  const name = neuronName(d.layer, d.neuron);
  const pts = dev.points;
  // A final checkpoint with no stepN ref: placed one interval after the last step, labelled "final".
  const steps = pts.map((p) => p.step);
  const known = steps.filter((s): s is number => s !== null);
  const finalX = known.length ? Math.max(...known) * 1.25 : pts.length;
  const x = (s: number | null) => (s === null ? finalX : s);
  const stepText = (s: number | null) => (s === null ? 'final' : s.toLocaleString('en-US'));
  const first = pts.find((p) => p.corr !== null && p.corr > 0.5);
  const box = chartBox(
    `Development of ${name}`,
    `max correlation with the final ${name} at ${pts.length} training steps of ${dev.repo}` +
      (first ? `; above 0.5 from step ${stepText(first.step)}` : '; never above 0.5 before the end'),
    'chart development-chart',
  );
  const table = el(
    'table',
    { class: 'plain' },
    el('thead', {}, el('tr', {}, ...['step', 'checkpoint', 'best partner', 'corr'].map((t, i) => el('th', { class: i === 0 || i === 3 ? 'num' : '', text: t, attrs: { scope: 'col' } })))),
    el(
      'tbody',
      {},
      ...pts.map((p) =>
        el(
          'tr',
          {},
          el('th', { class: 'num', text: stepText(p.step), attrs: { scope: 'row' } }),
          el('td', { text: p.label }),
          el('td', { text: p.partner ? neuronName(p.partner.layer, p.partner.neuron) : 'itself' }),
          el('td', { class: 'num', text: p.corr === null ? '—' : p.corr.toFixed(3) }),
        ),
      ),
    ),
  );
  root.append(
    section(
      'Development over training',
      el('p', { class: 'muted', text: `Each checkpoint’s neuron that correlates best with ${name} of the final checkpoint, over the run’s corpus.` }),
      box.box,
      el('details', {}, el('summary', { text: 'Numbers' }), table),
    ),
  );
  const chart = themedChart(box.canvas, (th) => {
    // A short y title: the long one ("… with final L1.N195") was cut at the chart's height (e2e screenshot).
    const base = baseOptions(th, { title: 'training step' }, { title: 'max correlation' })!;
    return {
      type: 'scatter',
      data: {
        datasets: [
          {
            label: 'max correlation',
            data: pts.filter((p) => p.corr !== null).map((p) => ({ x: x(p.step), y: p.corr! })),
            showLine: true,
            borderColor: th.series.blue,
            backgroundColor: th.series.blue,
            borderWidth: 2,
            pointRadius: 4,
            // The final point sits at y = 1, the axis maximum: drawn whole, not cut by the chart area.
            clip: false,
          },
        ],
      },
      options: {
        ...base,
        scales: { ...base.scales, y: { ...base.scales!.y!, min: 0, max: 1 } },
        plugins: {
          ...base.plugins,
          legend: { display: false },
          tooltip: {
            ...base.plugins!.tooltip,
            callbacks: {
              label: (item) => {
                const p = pts.filter((q) => q.corr !== null)[item.dataIndex]!;
                return `${p.label} (step ${stepText(p.step)}): ${fmt(p.corr, 3)}${p.partner ? ` with ${neuronName(p.partner.layer, p.partner.neuron)}` : ''}`;
              },
            },
          },
        },
      },
    };
  });
  ctx.onDispose(() => chart.destroy());
}
