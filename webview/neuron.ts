/**
 * A neuron's page: its family and roles (when the run has them), what it does when ablated on its
 * top contexts (whatItDoes.ts, on request), statistics with percentiles
 * within its layer, post-activation histogram, top-activating contexts shaded by activation (those
 * whose maximum carries the family label marked), an entropy neuron's intervention, vocab effect
 * (when the run has it), and its best partner in each other seed.
 *
 * Partners: the run only holds pages for the reference model, so a partner (a neuron of another
 * seed) is shown as text. Its "best reference match" — the reference neuron that correlates best
 * with it among those whose best partner it is — is a link to that reference neuron's page (often
 * this very neuron; then it says so). That answers the question a click on a partner would ask
 * ("which reference neuron is this partner's counterpart?") without inventing a page for a model
 * the run did not analyse.
 */
import { STAT_HELP } from '../src/view/statNames';
import type { NeuronData, StatGroup } from '../src/protocol';
import { baseOptions, chartBox, themedChart } from './charts';
import { runHeader, section, type ViewContext } from './common';
import { el, fmt, neuronName, shade, visibleToken } from './dom';
import { renderDevelopment } from './developmentChart';
import { renderEntropyIntervention } from './entropyChart';
import { familyBadge, familySection, labelText } from './family';
import { actionLink, badge, button } from './ui';
import { renderWhatItDoes } from './whatItDoes';

const GROUP_TITLES: Record<StatGroup, string> = {
  universality: 'Universality',
  weights: 'Weights (processed, TransformerLens)',
  activations: 'Activations (pre-activation: *_exact and act_freq over kept tokens; the paper’s columns from its histogram over all tokens)',
  vocab: 'Vocabulary composition',
};

export function renderNeuron(root: HTMLElement, d: NeuronData, ctx: ViewContext): void {
  const name = neuronName(d.layer, d.neuron);
  root.append(
    el(
      'h1',
      {},
      name + ' ',
      badge(d.universal ? 'universal' : 'not universal'),
      d.family === undefined ? null : ' ',
      d.family === undefined ? null : familyBadge(d.family),
    ),
    runHeader(d.run),
    el(
      'p',
      { class: 'actions' },
      button('Neuron table', () => ctx.openView('table')),
      ' ',
      button('Overview', () => ctx.openView('overview')),
      ' ',
      button('Ablate on the open prompt', () => ctx.intervene({ layer: d.layer, neuron: d.neuron })),
    ),
  );
  // First: what the neuron does is what a reader opens the page for.
  const fam = familySection(d);
  if (fam) root.append(fam);
  renderWhatItDoes(root, d.layer, d.neuron, d.examples.length > 0, ctx);

  // Statistics.
  const tbody = el('tbody');
  for (const g of ['universality', 'weights', 'activations', 'vocab'] as StatGroup[]) {
    const rows = d.stats.filter((s) => s.group === g);
    if (!rows.length) continue;
    tbody.append(el('tr', { class: 'group' }, el('th', { text: GROUP_TITLES[g], attrs: { colspan: '3', scope: 'colgroup' } })));
    for (const s of rows) {
      tbody.append(
        el(
          'tr',
          {},
          el('th', { text: s.key, attrs: { scope: 'row', ...(STAT_HELP[s.key] ? { title: STAT_HELP[s.key]! } : {}) } }),
          el('td', { class: 'num', text: fmt(s.value) }),
          el('td', { class: 'num', text: s.percentile === null ? '—' : fmt(s.percentile, 3) }),
        ),
      );
    }
  }
  const ranked = d.stats.filter((s) => s.percentile !== null);
  const pct = chartBox(
    `Percentiles of ${name} within layer ${d.layer}`,
    ranked.map((s) => `${s.key} ${fmt(s.percentile, 3)}`).join(', '),
    'chart pct-chart',
  );
  pct.box.style.setProperty('--rows', String(Math.max(ranked.length, 4)));
  root.append(
    section(
      'Statistics',
      d.stats.length
        ? el(
            'div',
            { class: 'stats-layout' },
            el(
              'table',
              { class: 'plain stats' },
              el('thead', {}, el('tr', {}, el('th', { text: 'statistic', attrs: { scope: 'col' } }), el('th', { class: 'num', text: 'value', attrs: { scope: 'col' } }), el('th', { class: 'num', text: `percentile in L${d.layer}`, attrs: { scope: 'col' } }))),
              tbody,
            ),
            ranked.length ? pct.box : null,
          )
        : el('p', { class: 'muted', text: 'No statistics in this run.' }),
    ),
  );
  // Paper Fig. 3 style: where this neuron sits within its layer on every statistic.
  if (ranked.length) {
    const chart = themedChart(pct.canvas, (th) => ({
      type: 'bar',
      data: {
        labels: ranked.map((s) => s.key),
        datasets: [
          {
            label: `percentile within L${d.layer}`,
            data: ranked.map((s) => s.percentile!),
            backgroundColor: ranked.map((s) => (s.group === 'universality' ? th.accent : th.primary)),
            barPercentage: 0.8,
          },
        ],
      },
      options: {
        ...baseOptions(th, { title: `percentile within layer ${d.layer}` }, {}),
        indexAxis: 'y',
        scales: {
          x: { ...baseOptions(th, { title: `percentile within layer ${d.layer}` }, {})!.scales!.x, min: 0, max: 100 },
          y: { ...baseOptions(th, {}, {})!.scales!.y, ticks: { color: th.foreground, autoSkip: false, font: { family: th.fontFamily, size: th.fontSize - 1 } } },
        },
        plugins: {
          legend: { display: false },
          tooltip: { ...baseOptions(th, {}, {})!.plugins!.tooltip, callbacks: { label: (item) => `${fmt(item.raw as number, 3)} (value ${fmt(ranked[item.dataIndex]!.value)})` } },
        },
      },
    }));
    ctx.onDispose(() => chart.destroy());
  }

  // Activation histogram.
  const h = d.histogram;
  if (h) {
    const centers = h.counts.map((_, i) => (h.edges[i]! + h.edges[i + 1]!) / 2);
    const box = chartBox(`Post-activation histogram of ${name}`, `min ${fmt(h.min)}, max ${fmt(h.max)}, ${h.counts.length} bins`);
    root.append(
      section(
        'Activation histogram',
        box.box,
        el('p', { class: 'muted', text: `post-activation over the corpus · min ${fmt(h.min)} · max ${fmt(h.max)} · below range ${h.under} · above range ${h.over}` }),
      ),
    );
    const chart = themedChart(box.canvas, (th) => ({
      type: 'bar',
      data: {
        labels: centers.map((c) => fmt(c, 3)),
        datasets: [{ label: 'tokens', data: h.counts, backgroundColor: centers.map((c) => (c > 0 ? th.positive : th.negative)), barPercentage: 1, categoryPercentage: 1 }],
      },
      options: {
        ...baseOptions(th, { title: 'post-activation' }, { title: 'tokens', beginAtZero: true }),
        plugins: { legend: { display: false }, tooltip: baseOptions(th, {}, {})!.plugins!.tooltip },
      },
    }));
    ctx.onDispose(() => chart.destroy());
  }

  // Top contexts.
  if (d.examples.length) {
    const list = el('ol', { class: 'contexts' });
    const scale = Math.max(...d.examples.map((e) => Math.abs(e.value)), 1e-9);
    const label = labelText(d);
    const marks = !!label && d.examples.some((e) => e.carriesLabel !== undefined);
    for (const ex of d.examples) {
      const line = el('div', { class: 'tokens' });
      ex.tokens.forEach((t, i) => {
        const span = el('span', { class: 'tok', text: visibleToken(t.text) });
        span.title = `${JSON.stringify(t.text)} · id ${t.id} · ${fmt(t.act)}`;
        shade(span, t.act, scale);
        if (i === ex.maxIndex) span.classList.add('max');
        line.append(span);
      });
      // The mark is text (and a title for the label itself), not colour alone.
      let mark: HTMLElement | null = null;
      if (marks && ex.carriesLabel) {
        mark = badge('✓ label');
        mark.classList.add('hit-badge');
        mark.title = `The maximum token carries the label: ${label}`;
        mark.setAttribute('aria-label', `carries the label ${label}`);
      }
      const li = el('li', { class: ex.carriesLabel ? 'hit' : '' }, el('span', { class: 'ctx-value', text: fmt(ex.value, 3) }), line, mark ? ' ' : null, mark);
      list.append(li);
    }
    const intro = 'Tokens shaded by this neuron’s post-activation; the outlined token is the maximum. Hover a token for its id and value.';
    root.append(
      section(
        'Top-activating contexts',
        el('p', { class: 'muted', text: marks ? `${intro} “✓ label”: the maximum token carries the family label (${label}).` : intro }),
        list,
      ),
    );
  }

  renderEntropyIntervention(root, d, ctx);
  renderDevelopment(root, d, ctx);

  // Vocab effect.
  if (d.vocab) {
    const col = (title: string, items: { id: number; text: string; value: number }[]) =>
      el('div', {}, el('h3', { text: title }), el('ol', { class: 'vocab' }, ...items.map((t) => el('li', {}, el('code', { text: visibleToken(t.text) }), ` ${fmt(t.value, 3)}`))));
    root.append(section('Vocabulary effect (W_out · W_U)', el('div', { class: 'two-col' }, col('Promoted', d.vocab.top), col('Suppressed', d.vocab.bottom))));
  }

  // Partners.
  if (d.partners.length) {
    const rows = d.partners.map((p) => {
      const b = p.bestReference;
      const match =
        b === null
          ? el('span', { class: 'muted', text: '—' })
          : b.layer === d.layer && b.neuron === d.neuron
            ? el('span', { text: 'this neuron' })
            : actionLink(`${neuronName(b.layer, b.neuron)} (ρ ${fmt(b.corr, 3)})`, () => ctx.openNeuron({ layer: b.layer, neuron: b.neuron }), 'Open this reference neuron’s page');
      return el(
        'tr',
        {},
        el('th', { text: p.model, attrs: { scope: 'row' } }),
        el('td', { text: neuronName(p.layer, p.neuron) }),
        el('td', { class: 'num', text: fmt(p.corr, 3) }),
        el('td', { class: 'num', text: fmt(p.baseline, 3) }),
        el('td', {}, match),
      );
    });
    root.append(
      section(
        'Partners in the other seeds',
        el('p', { class: 'muted', text: 'Each other model’s neuron with the highest correlation to this one. Only the reference model has pages; the last column links to the reference neuron that is the partner’s own best match.' }),
        el(
          'table',
          { class: 'plain' },
          el(
            'thead',
            {},
            el(
              'tr',
              {},
              ...['model', 'partner', 'corr', 'baseline', 'best reference match'].map((t, i) => el('th', { text: t, class: i === 2 || i === 3 ? 'num' : '', attrs: { scope: 'col' } })),
            ),
          ),
          el('tbody', {}, ...rows),
        ),
      ),
    );
  }

  if (d.notes.length) root.append(section('Notes', el('ul', { class: 'muted' }, ...d.notes.map((n) => el('li', { text: n })))));
}
