/**
 * What the editor says about an active neuron intervention (src/extension/intervention.ts): the
 * status-bar text and tooltip, and the hover section on a token. Text only; the numbers come from
 * the engine (src/engine/intervene.ts).
 */
import { mdLiteral } from './hoverContent';
import { DIVERGING } from './diverging';

export interface InterventionSummary {
  /** "zero", "mean", "fix=2.5", "scale=-1". */
  mode: string;
  /** "L3.N120", … */
  neurons: readonly string[];
  hook: 'pre' | 'post';
  /** [start, end) in tokens, BOS = 0, and the prompt's token count. */
  range: readonly [number, number];
  nTokens: number;
  /** Mean Δ loss (nats) over the tokens with a target. */
  meanDeltaLoss: number;
  /** Mode mean: where the means came from. */
  meanSource?: 'prompt' | 'given';
  /** Windows the prompt ran as (> 1 when longer than the context) and the context length. */
  windows?: number;
  nPositions?: number;
}

export interface TokenProb {
  text: string;
  before: number;
  after: number;
}

/** Input of the hover section for token t. */
export interface InterventionHoverInput {
  summary: InterventionSummary;
  /** The loss of predicting this token (from the token before it), clean and intervened; absent for BOS. */
  loss?: { before: number; after: number };
  /** The next-token candidates after this token with their probabilities, largest change first. */
  next: readonly TokenProb[];
}

const signed = (x: number, digits = 3): string => (x >= 0 ? '+' : '−') + Math.abs(x).toFixed(digits);
const prob = (p: number): string => (p >= 0.001 ? p.toFixed(3) : p.toExponential(1));

export function interventionLabel(s: Pick<InterventionSummary, 'mode' | 'neurons'>): string {
  const first = s.neurons[0] ?? '';
  return `${s.mode} ${first}${s.neurons.length > 1 ? ` +${s.neurons.length - 1}` : ''}`;
}

function rangeText(s: InterventionSummary): string {
  return s.range[0] === 0 && s.range[1] === s.nTokens ? 'every token' : `tokens ${s.range[0]}–${s.range[1] - 1}`;
}

/** The status-bar item: text and Markdown tooltip. */
export function interventionStatus(s: InterventionSummary, otherDocument = false): { text: string; tooltip: string } {
  return {
    text: `$(beaker) ${interventionLabel(s)}  Δloss ${signed(s.meanDeltaLoss, 3)}`,
    tooltip:
      `Universal Neurons intervention: **${s.mode}** on ${s.neurons.join(', ')} at hook_${s.hook}, ${rangeText(s)}` +
      (s.meanSource === 'prompt' ? " (means: this prompt's own; no run statistics given)" : s.meanSource === 'given' ? " (means: the run's statistics)" : '') +
      `${otherDocument ? ' on another document' : ''}.\n\n` +
      (s.windows && s.windows > 1
        ? `The prompt is longer than the model's context: it ran as ${s.windows} windows of at most ${s.nPositions} tokens, each later one restarting at BOS.\n\n`
        : '') +
      `Mean Δ loss over the predicted tokens: ${signed(s.meanDeltaLoss, 4)} nats. Tokens are shaded ${DIVERGING.positive.name} where their loss rose, ${DIVERGING.negative.name} where it fell.\n\nClick to clear.`,
  };
}

/** The hover's intervention section (Markdown; token texts escaped). */
export function interventionHoverMarkdown(h: InterventionHoverInput, k = 5): string {
  const lines = [`**Intervention** ${mdLiteral(interventionLabel(h.summary))} (hook_${h.summary.hook}, ${rangeText(h.summary)})`, ''];
  if (h.loss) {
    lines.push(`Loss of this token: ${h.loss.before.toFixed(3)} → ${h.loss.after.toFixed(3)} nats (Δ ${signed(h.loss.after - h.loss.before)})`, '');
  }
  if (h.next.length) {
    lines.push('| next token | before | after |', '|---|---:|---:|');
    for (const t of h.next.slice(0, k)) lines.push(`| "${mdLiteral(t.text)}" | ${prob(t.before)} | ${prob(t.after)} |`);
  }
  return lines.join('\n');
}
