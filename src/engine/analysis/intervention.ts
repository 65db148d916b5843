/**
 * The entropy-neuron intervention (docs/method-notes.md "Entropy neurons"): fix one neuron's activation at
 * values from −0.17 to 6 and measure the final-LN scale, the next-token entropy −Σ p·log p and
 * the loss on held-out text. The per-token figures come from the sweep (entropySweep.ts: one
 * unfixed forward whose logits give every value of a last-layer neuron, and the layers above an
 * earlier neuron per value) or, with `sweep: false`, from the scoring graph (`Scorer`), one whole
 * fixed forward per value.
 */
import { checkNeuron, type NeuronRef } from '../arch/common';
import type { ArchWeights } from '../arch/index';
import { loadCheckpoint } from '../checkpoint';
import { entropySweep } from '../entropySweep';
import { CancellationSignal, EngineError } from '../errors';
import type { ForwardOptions } from '../runtime';
import { openScorer, Scorer, type TokenScores } from '../scorer';
import { checkpointWeights } from '../validate';

/** The method's range, −0.17 (GELU's minimum) to 6. */
export const ENTROPY_INTERVENTION_VALUES: readonly number[] = [-0.17, 0, 0.5, 1, 2, 3, 4, 5, 6];

export interface InterventionOptions extends ForwardOptions {
  signal?: CancellationSignal;
  /**
   * Score by the sweep (entropySweep.ts: one unfixed forward for every neuron and value, and per
   * value only the layers above an earlier neuron's) rather than one whole fixed forward per neuron
   * and value through the scorer. Default true; false is the reference path (tests, benches).
   */
  sweep?: boolean;
}

/** Means over the positions that have a target (every position but each row's last). */
export interface ScoreMeans {
  lnScale: number;
  entropy: number;
  /** Mean next-token negative log-likelihood, nats. */
  loss: number;
}

export interface InterventionPoint extends ScoreMeans {
  /** The neuron's fixed hook_post value. */
  value: number;
  /** loss − baseline loss. */
  dLoss: number;
  /** entropy − baseline entropy. */
  dEntropy: number;
}

export interface InterventionResult {
  baseline: ScoreMeans;
  points: InterventionPoint[];
}

/**
 * Means of the three scores over every position with a target, in float64. Unlike the paper,
 * no position is dropped by its target token (e.g. BOS or "\n"): every position but each row's
 * last counts, so the loss is the plain held-out loss of the rows.
 */
export function scoreMeans(s: TokenScores): ScoreMeans {
  let lnScale = 0;
  let entropy = 0;
  let loss = 0;
  let n = 0;
  for (let r = 0; r + 1 < s.offsets.length; r++) {
    for (let i = s.offsets[r]!; i < s.offsets[r + 1]! - 1; i++) {
      lnScale += s.lnScale[i]!;
      entropy += s.entropy[i]!;
      loss += s.nll[i]!;
      n++;
    }
  }
  if (n === 0) throw new EngineError('no position has a next token to predict: every row needs at least 2 tokens');
  return { lnScale: lnScale / n, entropy: entropy / n, loss: loss / n };
}

/**
 * Runs `rows` (token ids, BOS first, each at most n_positions long) once as they are and once
 * per value with `target`'s hook_post fixed to that value at every position, and reports the
 * means of `scoreMeans` (every position with a target; no token filter) for each.
 */
export async function entropyIntervention(
  modelDir: string,
  rows: readonly (readonly number[])[],
  target: NeuronRef,
  values: readonly number[] = ENTROPY_INTERVENTION_VALUES,
  opts: InterventionOptions = {},
): Promise<InterventionResult> {
  return (await entropyInterventions(modelDir, rows, [target], values, opts))[0]!;
}

/**
 * `entropyIntervention` for several neurons of one model on the same rows. The checkpoint is read
 * once and the unfixed forward runs once, shared by every neuron: the cost is
 * (1 + targets·values) forwards of the rows, each batched as the scorer batches (several rows per
 * onnxruntime run, a cancel checked between runs) without the sweep; with it (the default), one
 * forward of the rows plus, per value of a neuron below the last layer, the layers above it.
 * `onTarget(i)` is called before neuron i (with the sweep, for all of them as it starts).
 */
export async function entropyInterventions(
  modelDir: string,
  rows: readonly (readonly number[])[],
  targets: readonly NeuronRef[],
  values: readonly number[] = ENTROPY_INTERVENTION_VALUES,
  opts: InterventionOptions & { onTarget?: (i: number) => void } = {},
): Promise<InterventionResult[]> {
  const bad = values.find((v) => !Number.isFinite(v));
  if (bad !== undefined) throw new EngineError(`intervention value ${bad} is not a finite number`);
  const { signal, onTarget, sweep = true, ...forwardOpts } = opts;
  const ck = loadCheckpoint(modelDir);
  try {
    const weights: ArchWeights = checkpointWeights(ck);
    // Each scorer is made and closed in turn: one session pair alive at a time (memory).
    const withScorer = async <T>(intervention: NeuronRef, f: (s: Scorer) => Promise<T>): Promise<T> => {
      const scorer = await Scorer.create(weights, { ...forwardOpts, intervention }, () => {}, ck.dir);
      try {
        return await f(scorer);
      } finally {
        await scorer.close();
      }
    };
    for (const t of targets) checkNeuron(weights.config, t);
    const out: InterventionResult[] = new Array(targets.length);
    let baseline: ScoreMeans | undefined;
    const point = (value: number, m: ScoreMeans, base: ScoreMeans): InterventionPoint => ({ value, ...m, dLoss: m.loss - base.loss, dEntropy: m.entropy - base.entropy });
    if (sweep) {
      // Every neuron and value on one unfixed forward (entropySweep.ts).
      targets.forEach((_, i) => onTarget?.(i));
      const sw = await entropySweep(weights, rows, targets, values, { ...forwardOpts, signal, source: ck.dir });
      const base = scoreMeans(sw.base);
      return sw.byTarget.map((byValue) => ({ baseline: base, points: values.map((v, q) => point(v, scoreMeans(byValue[q]!), base)) }));
    }
    for (let i = 0; i < targets.length; i++) {
      onTarget?.(i);
      out[i] = await withScorer(targets[i]!, async (scorer) => {
        // The first scorer also runs the unfixed forward (its plain session), after its neuron
        // has been checked, so that a bad neuron fails before any forward.
        const base = (baseline ??= scoreMeans(await scorer.score(rows, { signal })));
        const points: InterventionPoint[] = [];
        for (const value of values) points.push(point(value, scoreMeans(await scorer.score(rows, { value, signal })), base));
        return { baseline: base, points };
      });
    }
    return out;
  } finally {
    ck.weights.close();
  }
}

/** Mean next-token loss (nats) of `rows` over every position with a target. */
export async function heldoutLoss(modelDir: string, rows: readonly (readonly number[])[], opts: InterventionOptions = {}): Promise<number> {
  const { signal, ...forwardOpts } = opts;
  const scorer = await openScorer(modelDir, forwardOpts);
  try {
    return scoreMeans(await scorer.score(rows, { signal })).loss;
  } finally {
    await scorer.close();
  }
}
