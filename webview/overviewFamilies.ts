/**
 * The overview's family and role pictures: per layer, the share of neurons each family explains,
 * all neurons next to the universal ones (do universal neurons have simpler explanations?); role
 * counts per layer (prediction after mid-depth, suppression in the last layers); the counts as
 * tables; the strongest attention-deactivation pairs, each a link to its neuron.
 */
import type { OverviewData } from '../src/protocol';
import { compareFamilies, familyName, isExplained, ROLE_TITLES } from '../src/view/familyText';
import { baseOptions, chartBox, themedChart } from './charts';
import { section, type ViewContext } from './common';
import { el, fmt, neuronName } from './dom';
import { familyColour, roleColour } from './familyColours';
import { withAlpha } from './theme';
import { actionLink } from './ui';

const pct = (n: number, of: number): number => (of > 0 ? (100 * n) / of : 0);

function familiesPerLayer(grid: HTMLElement, d: OverviewData, ctx: ViewContext): void {
  const fl = (d.familyLayers ?? []).filter((f) => isExplained(f.family));
  if (!fl.length) return;
  const layers = d.layers;
  const groups = [
    { key: 'all' as const, title: 'all neurons', total: (l: (typeof layers)[number]) => l.neurons },
    { key: 'universal' as const, title: 'universal neurons', total: (l: (typeof layers)[number]) => l.universal },
  ];
  const share = (f: (typeof fl)[number], g: (typeof groups)[number], l: (typeof layers)[number]) => {
    const n = f[g.key][l.layer] ?? 0;
    return { n, p: pct(n, g.total(l)) };
  };
  const description = layers
    .map(
      (l) =>
        `L${l.layer}: ` +
        groups
          .map((g) => `${g.title} ${fl.filter((f) => share(f, g, l).n > 0).map((f) => `${familyName(f.family)} ${fmt(share(f, g, l).p, 3)}%`).join(', ') || 'none'}`)
          .join('; '),
    )
    .join('. ');
  const box = chartBox('Families per layer, all neurons and universal neurons', description, 'chart tall');
  grid.append(
    section(
      'Families per layer',
      box.box,
      el('p', {
        class: 'muted',
        text: 'Share of each layer’s neurons that a family explains. Per layer, the left (pale) bar is all neurons, the right (solid) bar the universal ones; the rest of each bar up to 100% is unexplained.',
      }),
    ),
  );
  const chart = themedChart(box.canvas, (th) => {
    const base = baseOptions(th, { title: 'layer (left: all neurons, right: universal)' }, { title: '% of the neurons explained', beginAtZero: true })!;
    // One dataset per family and group; chart.js puts the two stacks of a layer side by side.
    const datasets = groups.flatMap((g) =>
      fl.map((f) => ({
        label: familyName(f.family),
        stack: g.key,
        data: layers.map((l) => share(f, g, l).p),
        backgroundColor: g.key === 'all' ? withAlpha(familyColour(th, f.family), 0.45) : familyColour(th, f.family),
        borderColor: th.background,
        borderWidth: 1,
      })),
    );
    return {
      type: 'bar',
      // The universal count under each layer: a tall right bar over 2 neurons says little.
      data: { labels: layers.map((l) => [`L${l.layer}`, `${l.universal} univ.`]), datasets },
      options: {
        ...base,
        scales: { x: { ...base.scales!.x, stacked: true }, y: { ...base.scales!.y, stacked: true } },
        plugins: {
          ...base.plugins,
          // Each family once in the legend (its solid colour); the pale twin is the same family.
          legend: { ...base.plugins!.legend, labels: { ...base.plugins!.legend!.labels, filter: (item) => (item.datasetIndex ?? 0) >= fl.length } },
          tooltip: {
            ...base.plugins!.tooltip,
            callbacks: {
              title: (items) => {
                const l = layers[items[0]!.dataIndex]!;
                const g = groups[Math.floor(items[0]!.datasetIndex / fl.length)]!;
                return `L${l.layer}, ${g.title} (${g.total(l)})`;
              },
              label: (item) => {
                const g = groups[Math.floor(item.datasetIndex / fl.length)]!;
                const s = share(fl[item.datasetIndex % fl.length]!, g, layers[item.dataIndex]!);
                return `${item.dataset.label}: ${s.n} (${fmt(s.p, 3)}%)`;
              },
            },
          },
        },
      },
    };
  });
  ctx.onDispose(() => chart.destroy());
}

function familyTable(grid: HTMLElement, d: OverviewData): void {
  const families = [...(d.families ?? [])].sort((a, b) => compareFamilies(a.family, b.family));
  const head = ['family', 'neurons', 'universal', '% of them universal'];
  const table = el(
    'table',
    { class: 'plain' },
    el('thead', {}, el('tr', {}, ...head.map((t, i) => el('th', { class: i ? 'num' : '', text: t, attrs: { scope: 'col' } })))),
    el(
      'tbody',
      {},
      ...families.map((f) => {
        const name = el('th', { attrs: { scope: 'row' } }, el('span', { class: 'family-badge', attrs: { 'data-family': f.family } }), familyName(f.family));
        return el('tr', {}, name, el('td', { class: 'num', text: String(f.neurons) }), el('td', { class: 'num', text: String(f.universal) }), el('td', { class: 'num', text: fmt(pct(f.universal, f.neurons), 3) }));
      }),
    ),
  );
  grid.append(section('Families', table));
}

function rolesPerLayer(grid: HTMLElement, d: OverviewData, ctx: ViewContext): void {
  const roles = d.roles!;
  const present = roles.filter((r) => r.neurons > 0);
  const table = el(
    'table',
    { class: 'plain' },
    el('thead', {}, el('tr', {}, ...['role', 'neurons', 'universal'].map((t, i) => el('th', { class: i ? 'num' : '', text: t, attrs: { scope: 'col' } })))),
    el(
      'tbody',
      {},
      ...roles.map((r) =>
        el(
          'tr',
          {},
          el('th', { attrs: { scope: 'row' } }, el('span', { class: 'role-badge', attrs: { 'data-role': r.role } }), ROLE_TITLES[r.role]),
          el('td', { class: 'num', text: String(r.neurons) }),
          el('td', { class: 'num', text: String(r.universal) }),
        ),
      ),
    ),
  );
  if (!present.length) {
    grid.append(section('Roles', el('p', { class: 'muted', text: 'No neuron of this run has a role.' }), table));
    return;
  }
  const box = chartBox(
    'Neurons with each role per layer',
    d.layers.map((l) => `L${l.layer}: ${present.map((r) => `${ROLE_TITLES[r.role]} ${r.byLayer[l.layer] ?? 0}`).join(', ')}`).join('. '),
  );
  grid.append(section('Roles per layer', box.box, el('p', { class: 'muted', text: 'A neuron with several roles counts under each.' }), table));
  const chart = themedChart(box.canvas, (th) => {
    const base = baseOptions(th, { title: 'layer' }, { title: 'neurons', beginAtZero: true })!;
    return {
      type: 'bar',
      data: {
        labels: d.layers.map((l) => `L${l.layer}`),
        datasets: present.map((r) => ({ label: ROLE_TITLES[r.role], data: d.layers.map((l) => r.byLayer[l.layer] ?? 0), backgroundColor: roleColour(th, r.role), borderColor: th.background, borderWidth: 1 })),
      },
      options: { ...base, scales: { x: { ...base.scales!.x, stacked: true }, y: { ...base.scales!.y, stacked: true } } },
    };
  });
  ctx.onDispose(() => chart.destroy());
}

function attentionPairs(grid: HTMLElement, d: OverviewData, ctx: ViewContext): void {
  const pairs = d.attention;
  if (!pairs?.length) return;
  const table = el(
    'table',
    { class: 'plain' },
    el('thead', {}, el('tr', {}, ...['neuron', 'head', 'z-score', 'score'].map((t, i) => el('th', { class: i > 1 ? 'num' : '', text: t, attrs: { scope: 'col' } })))),
    el(
      'tbody',
      {},
      ...pairs.map((p) =>
        el(
          'tr',
          {},
          el('th', { attrs: { scope: 'row' } }, actionLink(neuronName(p.layer, p.neuron), () => ctx.openNeuron({ layer: p.layer, neuron: p.neuron }), 'Open this neuron’s page')),
          el('td', { text: p.head }),
          el('td', { class: 'num', text: fmt(p.score, 3) }),
          el('td', { class: 'num', text: fmt(p.raw, 3) }),
        ),
      ),
    ),
  );
  grid.append(
    section(
      'Attention deactivation: strongest pairs',
      el('p', { class: 'muted', text: 'Neurons whose output moves a later head’s attention onto BOS (switching the head off); z-score against random directions.' }),
      table,
    ),
  );
}

export function renderFamilyOverview(grid: HTMLElement, d: OverviewData, ctx: ViewContext): void {
  if (d.families === null) {
    grid.append(section('Families', el('p', { class: 'muted', text: 'Families: not computed yet for this run.' })));
  } else if (d.families.length === 0) {
    grid.append(section('Families', el('p', { class: 'muted', text: 'No neuron of this run belongs to a family.' })));
  } else {
    familiesPerLayer(grid, d, ctx);
    familyTable(grid, d);
  }
  if (d.roles !== null) rolesPerLayer(grid, d, ctx);
  attentionPairs(grid, d, ctx);
}
