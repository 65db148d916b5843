/**
 * Prompt view: the prompt's tokens shaded by one neuron's value, with a tooltip (token, id,
 * value) on hover or keyboard focus. Arrow keys move between tokens; Enter (or a click) selects
 * the token's range in the editor.
 */
import type { PromptData } from '../src/protocol';
import { DIVERGING } from '../src/view/diverging';
import type { ViewContext } from './common';
import { el, fmt, shade } from './dom';

export function renderPrompt(root: HTMLElement, d: PromptData, ctx: ViewContext, reveal: (start: number, end: number) => void): void {
  // Loops, not Math.max(...xs): a long prompt has more tokens than a call may take arguments.
  let min: number | null = null;
  let max: number | null = null;
  for (const t of d.tokens) {
    if (t.value === null) continue;
    min = min === null ? t.value : Math.min(min, t.value);
    max = max === null ? t.value : Math.max(max, t.value);
  }
  const scale = Math.max(Math.abs(min ?? 0), Math.abs(max ?? 0));
  // The editor's Δ loss decorations use the same scale.
  root.style.setProperty('--diverging-pos', DIVERGING.positive.css);
  root.style.setProperty('--diverging-neg', DIVERGING.negative.css);
  root.append(
    el('h1', { text: `${d.neuronLabel} on ${d.title}` }),
    el(
      'p',
      { class: 'run-meta' },
      `${d.tokens.length} tokens · min ${fmt(min)} · max ${fmt(max)} · `,
      el('span', { class: 'legend pos', text: 'positive' }),
      ' ',
      el('span', { class: 'legend neg', text: 'negative' }),
    ),
  );
  const text = el('div', { class: 'prompt-text', attrs: { tabindex: '0', role: 'group', 'aria-label': `Prompt tokens shaded by ${d.neuronLabel}. Arrow keys move between tokens; Enter selects the token in the editor.` } });
  const tip = el('div', { class: 'tooltip', attrs: { role: 'tooltip', id: 'token-tip', hidden: '' } });
  // What keyboard navigation lands on, for screen readers (the tooltip itself is visual).
  const said = el('div', { class: 'sr-only', attrs: { 'aria-live': 'polite' } });
  const spans: HTMLElement[] = d.tokens.map((t, i) => {
    // A token with an empty range (BOS) is not in the document: shown small and muted.
    const inserted = t.start === t.end;
    const s = el('span', { class: inserted ? 'tok inserted' : 'tok', text: t.text === '' ? '\u200b' : t.text });
    s.dataset.i = String(i);
    if (t.value !== null) shade(s, t.value, scale);
    else s.classList.add('missing');
    return s;
  });
  text.append(...spans);
  root.append(text, tip, said);

  let active = -1;
  const show = (i: number) => {
    const t = d.tokens[i];
    const s = spans[i];
    if (!t || !s) return;
    tip.textContent = `${JSON.stringify(t.text)} · id ${t.id ?? '—'} · ${d.neuronLabel} = ${fmt(t.value)}`;
    tip.hidden = false;
    const r = s.getBoundingClientRect();
    tip.style.left = `${Math.max(4, r.left + window.scrollX)}px`;
    tip.style.top = `${r.bottom + window.scrollY + 4}px`;
  };
  const hide = () => {
    tip.hidden = true;
  };
  const focus = (i: number) => {
    if (active >= 0) spans[active]?.classList.remove('active');
    active = Math.max(0, Math.min(spans.length - 1, i));
    spans[active]?.classList.add('active');
    spans[active]?.scrollIntoView({ block: 'nearest' });
    show(active);
    said.textContent = tip.textContent;
  };
  const idx = (e: Event): number | undefined => {
    const s = (e.target as HTMLElement).closest?.('.tok') as HTMLElement | null;
    return s?.dataset.i !== undefined ? Number(s.dataset.i) : undefined;
  };
  text.addEventListener('mouseover', (e) => {
    const i = idx(e);
    if (i !== undefined) show(i);
  });
  text.addEventListener('mouseleave', hide);
  text.addEventListener('click', (e) => {
    const i = idx(e);
    if (i === undefined) return;
    focus(i);
    reveal(d.tokens[i]!.start, d.tokens[i]!.end);
  });
  text.addEventListener('keydown', (e) => {
    if (!spans.length) return;
    if (e.key === 'ArrowRight' || e.key === 'ArrowDown') focus(active + 1);
    else if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') focus(active - 1);
    else if (e.key === 'Home') focus(0);
    else if (e.key === 'End') focus(spans.length - 1);
    else if (e.key === 'Enter' && active >= 0) reveal(d.tokens[active]!.start, d.tokens[active]!.end);
    else if (e.key === 'Escape') hide();
    else return;
    e.preventDefault();
  });
  text.addEventListener('blur', hide);
  ctx.onDispose(hide);
}
