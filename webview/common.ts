/** Pieces several views share: the run header and view context. */
import type { NeuronRef, RunInfo, ToWebview } from '../src/protocol';
import { el } from './dom';

export interface ViewContext {
  openNeuron(ref: NeuronRef): void;
  openView(view: 'overview' | 'table'): void;
  /** Zero-ablate a neuron on the prompt open in the editor. */
  intervene(ref: NeuronRef): void;
  /** Ask the host for the neuron's "What it does" (ablations on its top contexts) / stop it. */
  measureEffect(ref: NeuronRef): void;
  cancelEffect(): void;
  /** Receives the host's "What it does" messages until the next render. */
  onEffect(fn: (m: Extract<ToWebview, { type: 'effect' }>) => void): void;
  /** Registers a teardown (charts, listeners) run before the next render. */
  onDispose(fn: () => void): void;
}

export function runHeader(run: RunInfo): HTMLElement {
  const others = run.models.slice(1);
  return el(
    'p',
    { class: 'run-meta' },
    `Run ${run.id || run.runDir} · reference ${run.models[0] ?? '?'} vs ${others.length} other seed${others.length === 1 ? '' : 's'}` +
      `${others.length ? ` (${others.join(', ')})` : ''} · ${run.nLayers} layers × ${run.dMlp} neurons · ` +
      `${run.tokens.toLocaleString('en-US')} tokens · universal ⇔ excess_corr > ${run.threshold}`,
  );
}

export function section(title: string, ...children: (Node | null)[]): HTMLElement {
  const id = 'h-' + title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return el('section', { attrs: { 'aria-labelledby': id } }, el('h2', { text: title, attrs: { id } }), ...children);
}
