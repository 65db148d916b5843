/**
 * The neuron page's "What it does" payload (src/protocol.ts NeuronEffectData) from the engine's
 * result (src/engine/neuronEffect.ts NeuronEffect, read structurally: the view imports no
 * engine). Token ids become text here; the numbers pass through as computed (NaN as null).
 */
import type { AblationEffectData, EffectToken, NeuronEffectData, Num } from '../protocol';

/** What the engine's neuronEffect returns, as far as the page shows it. */
export interface EffectResult {
  neuron: { layer: number; neuron: number };
  contexts: number;
  predictions: number;
  positions: number;
  topK: number;
  ms: number;
  effects: {
    kind: 'zero' | 'mean';
    hook: 'pre' | 'post';
    mean?: number;
    meanDeltaLoss: number;
    meanCleanLoss: number;
    meanDeltaLossAtMax: number | null;
    up: { id: number; meanDelta: number; positions: number }[];
    down: { id: number; meanDelta: number; positions: number }[];
    bound: number;
  }[];
}

const num = (x: number | null | undefined): Num => (x === null || x === undefined || !Number.isFinite(x) ? null : x);

export function ablationLabel(kind: 'zero' | 'mean', hook: 'pre' | 'post', mean?: number): string {
  return kind === 'zero' ? `zero at hook_${hook}` : `run mean (${mean === undefined ? '?' : mean.toPrecision(3)}) at hook_${hook}`;
}

export function effectPayload(r: EffectResult, model: string, tokenText: ((id: number) => string) | null, notes: string[]): NeuronEffectData {
  const tok = (t: { id: number; meanDelta: number; positions: number }): EffectToken => ({
    id: t.id,
    text: tokenText ? tokenText(t.id) : `#${t.id}`,
    delta: t.meanDelta,
    positions: t.positions,
  });
  const ablations: AblationEffectData[] = r.effects.map((e) => ({
    label: ablationLabel(e.kind, e.hook, e.mean),
    kind: e.kind,
    hook: e.hook,
    ...(e.mean !== undefined && Number.isFinite(e.mean) ? { mean: e.mean } : {}),
    meanDeltaLoss: num(e.meanDeltaLoss),
    meanCleanLoss: num(e.meanCleanLoss),
    meanDeltaLossAtMax: num(e.meanDeltaLossAtMax),
    up: e.up.map(tok),
    down: e.down.map(tok),
    bound: Number.isFinite(e.bound) ? e.bound : 0,
  }));
  return {
    layer: r.neuron.layer,
    neuron: r.neuron.neuron,
    model,
    contexts: r.contexts,
    predictions: r.predictions,
    positions: r.positions,
    topK: r.topK,
    ablations,
    notes,
    ms: r.ms,
  };
}
