/**
 * The neuron page's "Family and roles" section: which family the neuron is in and the label that
 * explains it (as prose), how much of its variance the label explains, how many of its top
 * contexts carry the label, and each role with the neuron's own numbers behind it (docs/method-notes.md
 * "Families and roles"). Old runs without these columns get no section.
 */
import type { NeuronData, Role, StatRow } from '../src/protocol';
import { describeLabel, familyName, isExplained, ROLE_MEANINGS, ROLE_TITLES } from '../src/view/familyText';
import { section } from './common';
import { el, fmt } from './dom';
import { badge } from './ui';

/** The method's joining thresholds, where it names one (docs/method-notes.md "Defaults in one place"). */
const VR_THRESHOLD: Record<string, number> = { unigram: 0.5, alphabet: 0.35 };

/** The label in prose, for example marks and the page (null when the run gives none). */
export function labelText(d: NeuronData): string | null {
  const l = d.explanation?.label;
  return l ? describeLabel(l) : null;
}

/** A family badge (the page header says `family: …`, the section just the name). */
export function familyBadge(family: string | null, prefix = 'family: '): HTMLElement {
  const b = badge(family === null ? 'no family' : `${prefix}${familyName(family)}`);
  b.classList.add('family-badge');
  if (family) b.dataset.family = family;
  return b;
}

function stat(d: NeuronData, key: string): StatRow | undefined {
  return d.stats.find((s) => s.key === key);
}

/** `value (percentile p in Lx)` for a statistic, or '—'. */
function statText(d: NeuronData, key: string): string {
  const s = stat(d, key);
  if (!s) return '—';
  return `${fmt(s.value, 3)}${s.percentile === null ? '' : ` (percentile ${fmt(s.percentile, 3)} in L${d.layer})`}`;
}

/** The neuron's own evidence for a role, one sentence. */
function roleEvidence(d: NeuronData, role: Role): string {
  switch (role) {
    case 'prediction':
    case 'suppression': {
      const k = stat(d, 'vocab_kurt')?.value ?? null;
      const s = stat(d, 'vocab_skew')?.value ?? null;
      const sign = s === null ? '' : s > 0 ? '+' : '';
      return `vocab kurtosis ${fmt(k, 3)} (> 10), vocab skew ${sign}${fmt(s, 3)} (${role === 'prediction' ? 'positive: promotes' : 'negative: suppresses'}).`;
    }
    case 'partition':
      return `vocab variance ${statText(d, 'vocab_var')}.`;
    case 'entropy':
      return `l2 penalty ${statText(d, 'l2_penalty')}, vocab variance ${statText(d, 'vocab_var')}${d.entropy ? '; the chart below fixes its activation and measures the effect.' : '.'}`;
    case 'attention-deactivation': {
      const a = d.attention ?? [];
      if (!a.length) return 'no head score in this run.';
      return a
        .slice(0, 4)
        .map((x) => `head ${x.head}: z = ${fmt(x.score, 3)} against random directions${x.raw === null ? '' : ` (score ${fmt(x.raw, 3)})`}`)
        .join('; ')
        .concat(a.length > 4 ? `; ${a.length - 4} more.` : '.');
    }
  }
}

export function familySection(d: NeuronData): HTMLElement | null {
  if (d.family === undefined && d.explanation === undefined && d.roles === undefined) return null;
  const facts = el('dl', { class: 'facts' });
  const fact = (term: string, ...dd: (Node | string | null)[]) => facts.append(el('dt', { text: term }), el('dd', {}, ...dd));
  const label = labelText(d);
  const family = d.family ?? null;
  if (d.family !== undefined) {
    fact(
      'Family',
      familyBadge(family, ''),
      ' ',
      !isExplained(family)
        ? el('span', { class: 'muted', text: label ? `no label explains it well enough (the best: ${label})` : 'no label explains it well enough' })
        : label
          ? el('span', { class: 'family-label', text: label })
          : null,
    );
  } else if (label) fact('Best label', el('span', { class: 'family-label', text: label }));
  const e = d.explanation;
  if (e && e.vr !== null) {
    const bar = el('span', { class: 'vr-bar', attrs: { 'aria-hidden': 'true' } }, el('span'));
    bar.style.setProperty('--vr', String(Math.max(0, Math.min(1, e.vr)))); // CSSOM: allowed by the CSP
    const t = family ? VR_THRESHOLD[family] : undefined;
    fact(
      'Variance reduction',
      bar,
      ` ${fmt(e.vr, 3)} — the label explains ${fmt(100 * e.vr, 3)}% of the activation’s variance` + (t !== undefined ? ` (the ${family} family needs > ${t})` : ''),
    );
  }
  if (e && e.positionMi !== null && (family === 'position' || e.label?.replace(/^prev:/, '').startsWith('position:'))) {
    fact('Position MI', `${fmt(e.positionMi, 3)} nats (mutual information between firing and position)`);
  }
  const marked = d.examples.filter((x) => x.carriesLabel !== undefined);
  if (marked.length && label) {
    const hits = marked.filter((x) => x.carriesLabel).length;
    fact('Top contexts', `${hits} of ${marked.length} have the label at their maximum token (marked ✓ label below)`);
  }

  const roles = d.roles;
  let roleList: HTMLElement | null = null;
  if (roles !== undefined) {
    roleList = roles.length
      ? el(
          'ul',
          { class: 'roles' },
          ...roles.map((r, i) => {
            const b = badge(ROLE_TITLES[r] + (i === 0 && roles.length > 1 ? ' (primary)' : ''));
            b.classList.add('role-badge');
            b.dataset.role = r;
            return el('li', {}, b, ' ', el('span', { text: `${ROLE_MEANINGS[r]}: ` }), el('span', { class: 'muted', text: roleEvidence(d, r) }));
          }),
        )
      : el('p', { class: 'muted', text: 'No role: not a prediction, suppression, partition, entropy or attention-deactivation neuron.' });
  }
  return section('Family and roles', facts.childElementCount ? facts : null, roleList ? el('h3', { text: 'Roles' }) : null, roleList);
}
