/**
 * The neuron page's "What it does": the neuron ablated on its own top contexts (the host runs the
 * model on request, src/extension/neuronEffect.ts; the numbers are the engine's). States: a button
 * to start, a progress ring with the contexts done and a Cancel button, the result, or the error.
 * The host caches results per run and neuron, so a second request answers at once.
 */
import type { AblationEffectData, EffectToken, NeuronEffectData, ToWebview } from '../src/protocol';
import { section, type ViewContext } from './common';
import { clear, el, fmt, neuronName, visibleToken } from './dom';
import { button, progressRing } from './ui';

type EffectMessage = Extract<ToWebview, { type: 'effect' }>;

const signed = (x: number | null, digits = 3): string => (x === null ? '—' : `${x > 0 ? '+' : ''}${fmt(x, digits)}`);

function movers(title: string, items: EffectToken[]): HTMLElement {
  return el(
    'div',
    {},
    el('h4', { text: title }),
    items.length
      ? el(
          'ol',
          { class: 'vocab' },
          ...items.map((t) => {
            const li = el('li', {}, el('code', { text: visibleToken(t.text) }), ` ${signed(t.delta, 3)}`);
            li.title = `${JSON.stringify(t.text)} · id ${t.id} · mean Δp ${t.delta.toExponential(2)} over all positions · in a top list at ${t.positions}`;
            return li;
          }),
        )
      : el('p', { class: 'muted', text: 'none' }),
  );
}

function ablation(a: AblationEffectData): HTMLElement {
  return el(
    'div',
    { class: 'effect-ablation' },
    el('h3', { text: a.label }),
    el(
      'p',
      {},
      el('strong', { class: 'effect-dloss', text: `mean Δ loss ${signed(a.meanDeltaLoss, 4)} nats` }),
      ` (clean ${fmt(a.meanCleanLoss, 4)}) · after the maximum token ${signed(a.meanDeltaLossAtMax, 4)}`,
    ),
    el('div', { class: 'two-col' }, movers('Probability up', a.up), movers('Probability down', a.down)),
  );
}

function result(d: NeuronEffectData): HTMLElement[] {
  return [
    el(
      'p',
      { class: 'muted' },
      `${neuronName(d.layer, d.neuron)} ablated on its ${d.contexts} top contexts (each run alone, BOS first) on ${d.model}: ` +
        `${d.predictions} next-token predictions, ${d.positions} positions · ${fmt(d.ms / 1000, 3)} s. ` +
        `Δ loss is ablated − clean. Movers: mean Δp over all positions, counting each token where it is in either side’s top ${d.topK} ` +
        `(elsewhere it moves less than ${fmt(Math.max(0, ...d.ablations.map((a) => a.bound)), 2)} per position).`,
    ),
    ...d.ablations.map(ablation),
    ...(d.notes.length ? [el('ul', { class: 'muted' }, ...d.notes.map((n) => el('li', { text: n })))] : []),
  ];
}

/** Appends the section to `root`; it follows the host's effect messages for this neuron. */
export function renderWhatItDoes(root: HTMLElement, layer: number, neuron: number, hasExamples: boolean, ctx: ViewContext): void {
  const body = el('div', { class: 'effect', attrs: { 'aria-live': 'polite' } });
  const ref = { layer, neuron };
  const idle = (extra?: HTMLElement): void => {
    clear(body);
    body.append(
      el('p', { class: 'muted', text: 'Ablate this neuron (zero; and the run’s corpus mean) on its top-activating contexts and see what the model predicts differently. Runs the model.' }),
      el('p', { class: 'actions' }, button('Measure on the top contexts', () => ctx.measureEffect(ref), { appearance: 'primary' })),
    );
    if (extra) body.append(extra);
  };
  if (!hasExamples) {
    body.append(el('p', { class: 'muted', text: 'This run has no stored top contexts, so there is nothing to ablate on.' }));
  } else {
    idle();
  }
  ctx.onEffect((m: EffectMessage) => {
    if (m.layer !== layer || m.neuron !== neuron) return;
    switch (m.state) {
      case 'running': {
        clear(body);
        const p = m.progress;
        body.append(
          el(
            'p',
            { class: 'loading effect-loading' },
            progressRing('Measuring'),
            p ? ` Ablating on the top contexts… ${p.done} of ${p.total} runs` : ' Ablating on the top contexts…',
            ' ',
            button('Cancel', () => ctx.cancelEffect()),
          ),
        );
        return;
      }
      case 'done':
        clear(body);
        if (m.data) body.append(...result(m.data));
        return;
      case 'cancelled':
        return idle(el('p', { class: 'muted', text: 'Cancelled.' }));
      case 'error':
        return idle(el('p', { class: 'error', attrs: { role: 'alert' }, text: m.message ?? 'failed' }));
    }
  });
  root.append(section('What it does', body));
}
