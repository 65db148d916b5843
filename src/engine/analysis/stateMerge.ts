/**
 * Token shards (issue #17, parts.ts): one accumulator's states over disjoint rows of the corpus,
 * merged into the state one accumulator fed every row would hold. Chosen by the state's `kind`,
 * so that parts merge (and merge in a tree) without the models or the plan.
 *
 * Sums merge by adding (layer covariance, family group sums, the paper's histograms); the
 * others by their own rules: Pébay's merge of moments and summed histograms of one range
 * (actstats.ts), the top-K and the keyed interval samples (examples.ts), the cross moments'
 * float64 totals (crossmoments.ts). States are merged in the order given: callers give them by
 * shard, so that a merge is deterministic.
 */
import { EngineError } from '../errors';
import { mergeActivationStates } from './actstats';
import { mergeCrossStates } from './crossmoments';
import { mergeExampleStates } from './examples';
import { mergePaperHistStates } from './paperhist';
import type { AccumulatorState, StateValue } from './types';

/**
 * States whose every array is a sum over tokens and whose `n` counts them: arrays added element
 * by element, `n` summed, every other number or string equal (the accumulator's shape).
 */
export function sumStates(states: readonly AccumulatorState[], what: string): AccumulatorState {
  const first = states[0]!;
  const out: AccumulatorState = {};
  for (const [k, v] of Object.entries(first)) {
    const all = states.map((s, i) => {
      const x = s[k];
      if (x === undefined) throw new EngineError(`${what}: state ${i} has no "${k}"`);
      return x;
    });
    if (typeof v === 'number' && k === 'n') out[k] = all.reduce((a: number, x) => a + (x as number), 0);
    else if (typeof v === 'number' || typeof v === 'string' || Array.isArray(v)) {
      const same = (x: StateValue): boolean => JSON.stringify(x) === JSON.stringify(v);
      const bad = all.findIndex((x) => !same(x));
      if (bad >= 0) throw new EngineError(`${what}: the states differ in "${k}" (${JSON.stringify(v)} vs ${JSON.stringify(all[bad])}): they are not of one run`);
      out[k] = v;
    } else {
      const sum = v.slice();
      for (const x of all.slice(1)) {
        if (typeof x !== 'object' || Array.isArray(x) || x.constructor !== v.constructor || x.length !== v.length) {
          throw new EngineError(`${what}: the states' "${k}" differ in type or length`);
        }
        for (let e = 0; e < sum.length; e++) sum[e]! += x[e]!;
      }
      out[k] = sum;
    }
  }
  return out;
}

const BY_KIND: Record<string, (states: readonly AccumulatorState[]) => AccumulatorState> = {
  'ActivationStats/1': mergeActivationStates,
  'TopExamples/2': mergeExampleStates,
  'paper-histogram': mergePaperHistStates,
  CrossMoments: mergeCrossStates,
  'layercov/1': (s) => sumStates(s, 'layer covariance'),
  'FamilyStats/1': (s) => sumStates(s, 'family statistics'),
};

/** Accumulator `name`'s states of token shards, merged in the order given (one state: itself). */
export function mergeStates(name: string, states: readonly AccumulatorState[]): AccumulatorState {
  if (states.length === 0) throw new EngineError(`${name}: no states to merge`);
  if (states.length === 1) return states[0]!;
  const kind = String(states[0]!.kind);
  const bad = states.find((s) => String(s.kind) !== kind);
  if (bad) throw new EngineError(`${name}: its states are of two kinds (${kind}, ${String(bad.kind)})`);
  const f = BY_KIND[kind];
  if (!f) throw new EngineError(`${name}: a ${kind} state cannot be merged over token shards`);
  return f(states);
}
