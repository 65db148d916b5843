/**
 * The entropy-neuron intervention (docs/method-notes.md "Entropy neurons"): fix one neuron's activation at
 * values from −0.17 to 6 and measure the final-LN scale, the next-token entropy −Σ p·log p and
 * the loss on held-out text. The per-token figures come from the scoring graph (`Scorer`), so the
 * [tokens × vocab] logits never leave onnxruntime.
 */
import type { NeuronRef } from '../arch/common';
import { CancellationSignal, EngineError } from '../errors';
import type { ForwardOptions } from '../runtime';
import { openScorer, type TokenScores } from '../scorer';

/** The method's range, −0.17 (GELU's minimum) to 6. */
export const ENTROPY_INTERVENTION_VALUES: readonly number[] = [-0.17, 0, 0.5, 1, 2, 3, 4, 5, 6];

export interface InterventionOptions extends ForwardOptions {
  signal?: CancellationSignal;
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
  const bad = values.find((v) => !Number.isFinite(v));
  if (bad !== undefined) throw new EngineError(`intervention value ${bad} is not a finite number`);
  const { signal, ...forwardOpts } = opts;
  const scorer = await openScorer(modelDir, { ...forwardOpts, intervention: target });
  try {
    const baseline = scoreMeans(await scorer.score(rows, { signal }));
    const points: InterventionPoint[] = [];
    for (const value of values) {
      const m = scoreMeans(await scorer.score(rows, { value, signal }));
      points.push({ value, ...m, dLoss: m.loss - baseline.loss, dEntropy: m.entropy - baseline.entropy });
    }
    return { baseline, points };
  } finally {
    await scorer.close();
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
