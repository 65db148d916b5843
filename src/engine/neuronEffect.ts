/**
 * "What it does" on the neuron page (#16): a neuron ablated on the run's own top-activating
 * contexts (examples.bin, run/examples.ts), each context run as its own prompt through the
 * clean/edited graph (intervene.ts). Per ablation mode it reports
 * - the mean Δ loss over every next-token prediction of the contexts (each prediction weighs the
 *   same), and the mean Δ loss of predicting the token right after the neuron's maximum;
 * - the next tokens whose probability moves most, up and down: per token, Δp summed over every
 *   position of the contexts where it is in either side's top `topK` (both sides' p are exact
 *   there), divided by all positions. Elsewhere its p is below the k-th on both sides, so what
 *   that leaves out is bounded by the k-th probability per position (`bound` says how large).
 *
 * A stored context is a window of a corpus row (12 tokens before the max, 4 after by default);
 * one that does not start the row gets BOS in front, as a prompt does, so the model sees less
 * context than in the corpus. The numbers are the engine's; the view only formats them.
 */
import type { Hook, NeuronRef } from './arch/common';
import { CancellationSignal, EngineError, throwIfCancelled } from './errors';
import type { Intervener, InterventionSpec } from './intervene';
import type { NeuronExamples } from './run/examples';

export type AblationKind = 'zero' | 'mean';

export interface Ablation {
  kind: AblationKind;
  hook: Hook;
  /** Mode mean: the value the hook is set to (the run's corpus mean). */
  mean?: number;
}

export interface TokenShift {
  id: number;
  /** Mean Δp over every position of the contexts (see the header). */
  meanDelta: number;
  /** Positions where the token was in either side's top k. */
  positions: number;
}

export interface AblationEffect extends Ablation {
  /** Mean over every next-token prediction of the contexts, nats. */
  meanDeltaLoss: number;
  /** Mean clean loss over the same predictions (for scale). */
  meanCleanLoss: number;
  /** Mean Δ loss of predicting the token after each context's maximum (contexts where it has one). */
  meanDeltaLossAtMax: number | null;
  /** Per context, mean Δ loss over its predictions. */
  perContext: number[];
  /** Tokens whose probability rises most / falls most, largest move first. */
  up: TokenShift[];
  down: TokenShift[];
  /** The largest k-th probability of any position: |Δp| left out per position is below it. */
  bound: number;
}

export interface NeuronEffect {
  neuron: NeuronRef;
  /** Contexts run, predictions scored (tokens with a next token) and positions seen. */
  contexts: number;
  predictions: number;
  positions: number;
  topK: number;
  effects: AblationEffect[];
  ms: number;
}

/** One stored context as a prompt: its token ids (BOS first) and the index of the neuron's maximum. */
export interface ContextPrompt {
  ids: number[];
  maxIndex: number;
}

/**
 * The valid top contexts of one neuron as prompts. `pos` − `start` is the max's index in the
 * window; a window that starts its row already begins with BOS (corpus rows do), others get one.
 */
export function contextPrompts(ex: NeuronExamples, bosId: number): ContextPrompt[] {
  const out: ContextPrompt[] = [];
  for (let e = 0; e < ex.count; e++) {
    const len = ex.len[e]!;
    const ids: number[] = [];
    for (let i = 0; i < len && i < ex.window; i++) {
      const id = ex.ids[e * ex.window + i]!;
      if (id < 0) break;
      ids.push(id);
    }
    if (!ids.length) continue;
    let maxIndex = ex.pos[e]! - ex.start[e]!;
    if (ids[0] !== bosId) {
      ids.unshift(bosId);
      maxIndex++;
    }
    out.push({ ids, maxIndex: Math.min(Math.max(maxIndex, 0), ids.length - 1) });
  }
  return out;
}

export interface NeuronEffectOptions {
  /** Top next tokens per side and position taken into the movers (default 20). */
  topK?: number;
  /** Movers listed each way (default 8). */
  movers?: number;
  signal?: CancellationSignal;
  /** Called after each context of each ablation (done, total). */
  progress?: (done: number, total: number) => void;
}

/** Ablates `neuron` on each context in every one of `ablations` (a clean and an edited run per context). */
export async function neuronEffect(
  iv: Intervener,
  neuron: NeuronRef,
  contexts: readonly ContextPrompt[],
  ablations: readonly Ablation[],
  opts: NeuronEffectOptions = {},
): Promise<NeuronEffect> {
  const t0 = performance.now();
  if (!contexts.length) throw new EngineError(`L${neuron.layer}.N${neuron.neuron} has no stored top contexts to ablate on`);
  if (!ablations.length) throw new EngineError('no ablation asked for');
  const topK = opts.topK ?? 20;
  const nMovers = opts.movers ?? 8;
  const total = contexts.length * ablations.length;
  let done = 0;
  const effects: AblationEffect[] = [];
  let predictions = 0;
  let positions = 0;
  for (const ab of ablations) {
    const spec: InterventionSpec =
      ab.kind === 'zero'
        ? { neurons: [neuron], mode: { kind: 'zero' }, hook: ab.hook }
        : { neurons: [neuron], mode: { kind: 'mean' }, hook: ab.hook, means: [ab.mean ?? NaN] };
    let sumDelta = 0;
    let sumClean = 0;
    let nPred = 0;
    let sumAtMax = 0;
    let nAtMax = 0;
    let nPos = 0;
    let bound = 0;
    const perContext: number[] = [];
    const shift = new Map<number, { sum: number; positions: number }>();
    for (const c of contexts) {
      throwIfCancelled(opts.signal);
      const r = await iv.runIds(c.ids, spec, { topK, signal: opts.signal });
      let s = 0;
      for (let i = 0; i < r.delta.loss.length; i++) {
        s += r.delta.loss[i]!;
        sumClean += r.clean.loss[i]!;
      }
      sumDelta += s;
      nPred += r.delta.loss.length;
      perContext.push(r.delta.loss.length ? s / r.delta.loss.length : NaN);
      if (c.maxIndex < r.delta.loss.length) {
        sumAtMax += r.delta.loss[c.maxIndex]!;
        nAtMax++;
      }
      r.topChange.forEach((changes, i) => {
        nPos++;
        bound = Math.max(bound, r.clean.top[i]![topK - 1]?.prob ?? 0, r.intervened.top[i]![topK - 1]?.prob ?? 0);
        for (const ch of changes) {
          const e = shift.get(ch.id) ?? { sum: 0, positions: 0 };
          e.sum += ch.after - ch.before;
          e.positions++;
          shift.set(ch.id, e);
        }
      });
      opts.progress?.(++done, total);
    }
    predictions = nPred;
    positions = nPos;
    const all = [...shift.entries()].map(([id, e]) => ({ id, meanDelta: e.sum / nPos, positions: e.positions }));
    const up = all.filter((t) => t.meanDelta > 0).sort((a, b) => b.meanDelta - a.meanDelta || a.id - b.id).slice(0, nMovers);
    const down = all.filter((t) => t.meanDelta < 0).sort((a, b) => a.meanDelta - b.meanDelta || a.id - b.id).slice(0, nMovers);
    effects.push({
      ...ab,
      meanDeltaLoss: nPred ? sumDelta / nPred : NaN,
      meanCleanLoss: nPred ? sumClean / nPred : NaN,
      meanDeltaLossAtMax: nAtMax ? sumAtMax / nAtMax : null,
      perContext,
      up,
      down,
      bound,
    });
  }
  return { neuron, contexts: contexts.length, predictions, positions, topK, effects, ms: performance.now() - t0 };
}
