/**
 * What a neuron intervention is (intervene.ts runs it): the modes, the spec, the text forms the CLI
 * and the editor accept (`L3.N120,L1.N5`, `fix=2.5`, `3:10`) and the checks against a model's
 * config. No onnxruntime here, so the CLI parses its arguments without loading the native addon.
 */
import type { Hook, ModelConfig, NeuronRef } from './arch/common';
import { EngineError } from './errors';
import type { RunView } from './run/view';

export type InterventionMode = { kind: 'zero' } | { kind: 'mean' } | { kind: 'fix'; value: number } | { kind: 'scale'; factor: number };

/** Half-open range of token indices, BOS = token 0 (as `activations` numbers them). */
export interface TokenRange {
  start: number;
  end: number;
}

export interface InterventionSpec {
  neurons: readonly NeuronRef[];
  mode: InterventionMode;
  /** Default 'post'. */
  hook?: Hook;
  /** Where the edit applies (a side left out: the prompt's start or end); default every token. */
  tokens?: Partial<TokenRange>;
  /**
   * For mode mean: one value per neuron of `neurons`, in order (e.g. a run's statistics), or
   * 'prompt': each neuron's mean over this prompt's tokens but BOS (the clean run's hook).
   */
  means?: readonly number[] | 'prompt';
}

/** One neuron's edit as applied: hook·scale + add. */
export interface NeuronEdit extends NeuronRef {
  hook: Hook;
  scale: number;
  add: number;
}

export const describeNeuron = (n: NeuronRef): string => `L${n.layer}.N${n.neuron}`;

/** "L3.N120" or "L3.N120,L1.N5" (spaces allowed) into neuron references; no range check. */
export function parseNeuronList(raw: string): NeuronRef[] {
  const parts = raw.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 0) throw new EngineError(`no neuron given in ${JSON.stringify(raw)}: write L{layer}.N{neuron}, e.g. L3.N120`);
  return parts.map((p) => {
    const m = /^L(\d+)\.N(\d+)$/i.exec(p);
    if (!m) throw new EngineError(`${JSON.stringify(p)} is not a neuron: write L{layer}.N{neuron}, e.g. L3.N120`);
    return { layer: Number(m[1]), neuron: Number(m[2]) };
  });
}

/** "zero", "mean", "fix=V" or "scale=K" into a mode; V and K must be finite numbers. */
export function parseMode(raw: string): InterventionMode {
  const s = raw.trim();
  if (s === 'zero' || s === 'mean') return { kind: s };
  const m = /^(fix|scale)=(.*)$/.exec(s);
  if (m) {
    const x = Number(m[2]);
    if (m[2]!.trim() === '' || !Number.isFinite(x)) throw new EngineError(`${m[1]}=${m[2]}: the value must be a finite number`);
    return m[1] === 'fix' ? { kind: 'fix', value: x } : { kind: 'scale', factor: x };
  }
  throw new EngineError(`unknown intervention mode ${JSON.stringify(raw)} (expected zero, mean, fix=V or scale=K)`);
}

/** "A:B" (half-open; either side may be left out) into a token range; bounds are checked at run time. */
export function parseTokenRange(raw: string): { start?: number; end?: number } {
  const m = /^\s*(\d*)\s*:\s*(\d*)\s*$/.exec(raw);
  if (!m) throw new EngineError(`token range ${JSON.stringify(raw)} is not A:B (token indices, BOS = 0, B excluded; e.g. 3:10, 5:, :8)`);
  return { start: m[1] ? Number(m[1]) : undefined, end: m[2] ? Number(m[2]) : undefined };
}

export function modeText(m: InterventionMode): string {
  return m.kind === 'fix' ? `fix=${m.value}` : m.kind === 'scale' ? `scale=${m.factor}` : m.kind;
}

/** Checks a spec against the model (neurons, duplicates, finite values, means). Throws EngineError. */
export function checkSpec(cfg: ModelConfig, spec: InterventionSpec): void {
  const hook = spec.hook ?? 'post';
  if (hook !== 'pre' && hook !== 'post') throw new EngineError(`hook ${JSON.stringify(hook)} is neither pre nor post`);
  if (!spec.neurons || spec.neurons.length === 0) throw new EngineError('an intervention needs at least one neuron');
  const seen = new Set<string>();
  for (const n of spec.neurons) {
    if (!Number.isInteger(n.layer) || n.layer < 0 || n.layer >= cfg.nLayer) {
      throw new EngineError(`neuron ${describeNeuron(n)}: layer ${n.layer} is outside this model's layers 0..${cfg.nLayer - 1}`);
    }
    if (!Number.isInteger(n.neuron) || n.neuron < 0 || n.neuron >= cfg.dMlp) {
      throw new EngineError(`neuron ${describeNeuron(n)} is outside this model's neurons 0..${cfg.dMlp - 1} (d_mlp) of layer ${n.layer}`);
    }
    const key = describeNeuron(n);
    if (seen.has(key)) throw new EngineError(`neuron ${key} is listed twice`);
    seen.add(key);
  }
  const m = spec.mode as InterventionMode | undefined;
  if (!m || typeof m !== 'object') throw new EngineError('an intervention needs a mode (zero, mean, fix=V or scale=K)');
  switch (m.kind) {
    case 'zero':
      break;
    case 'mean':
      if (spec.means === undefined) {
        throw new EngineError(
          "a mean ablation needs each neuron's mean: give the run's statistics (one mean per neuron), or use this prompt's own mean (means: 'prompt'; the CLI's default)",
        );
      }
      if (spec.means !== 'prompt') {
        if (spec.means.length !== spec.neurons.length) throw new EngineError(`${spec.means.length} means for ${spec.neurons.length} neurons: give one mean per neuron`);
        const i = spec.means.findIndex((x) => !Number.isFinite(x));
        if (i >= 0) throw new EngineError(`the mean of ${describeNeuron(spec.neurons[i]!)} is ${spec.means[i]}, not a finite number`);
      }
      break;
    case 'fix':
      if (typeof m.value !== 'number' || !Number.isFinite(m.value)) throw new EngineError(`fix value ${m.value} is not a finite number`);
      break;
    case 'scale':
      if (typeof m.factor !== 'number' || !Number.isFinite(m.factor)) throw new EngineError(`scale factor ${m.factor} is not a finite number`);
      break;
    default:
      throw new EngineError(`unknown intervention mode ${JSON.stringify((m as { kind: unknown }).kind)} (expected zero, mean, fix or scale)`);
  }
}

/** The range a spec covers in a prompt of `n` tokens; throws when it is out of bounds or empty. */
export function resolveRange(range: Partial<TokenRange> | undefined, n: number): TokenRange {
  const start = range?.start ?? 0;
  const end = range?.end ?? n;
  for (const [what, x] of [['start', start], ['end', end]] as const) {
    if (!Number.isInteger(x) || x < 0) throw new EngineError(`token range ${what} ${x} is not a token index (0 = BOS)`);
  }
  if (end > n) throw new EngineError(`token range ${start}:${end} ends past the prompt's ${n} tokens (0..${n - 1}, BOS = 0)`);
  if (start >= end) throw new EngineError(`token range ${start}:${end} is empty (the end is excluded)`);
  return { start, end };
}


/**
 * Mean-ablation values from a run's statistics: the `mean` column of its neuron table, which is
 * each reference neuron's hook_pre mean over the run's kept corpus tokens (actstats.ts). So it
 * serves hook_pre only; hook_post has no run mean (use the prompt's own). The run's reference
 * model must have the prompt model's shape.
 */
export function meansFromRun(
  run: Pick<RunView, 'id' | 'columns' | 'rowIndex' | 'reference'>,
  neurons: readonly NeuronRef[],
  hook: Hook,
  cfg: Pick<ModelConfig, 'nLayer' | 'dMlp'>,
): number[] {
  if (hook !== 'pre') {
    throw new EngineError(
      `run ${run.id} holds each neuron's hook_pre mean only: mean-ablate hook_pre with the run's statistics, or hook_post with this prompt's own mean`,
    );
  }
  if (run.reference.nLayers !== cfg.nLayer || run.reference.dMlp !== cfg.dMlp) {
    throw new EngineError(
      `run ${run.id}'s reference model (${run.reference.label}: ${run.reference.nLayers} layers x ${run.reference.dMlp}) is not this model's shape (${cfg.nLayer} x ${cfg.dMlp}); its means do not apply`,
    );
  }
  // The exact mean over the run's kept tokens (`mean` is the paper's binned, clipped estimate).
  const col = run.columns['mean_exact'];
  if (!col) throw new EngineError(`run ${run.id} has no activation statistics (no "mean_exact" column): use this prompt's own mean`);
  return neurons.map((n) => {
    const r = run.rowIndex.get(n.layer * run.reference.dMlp + n.neuron);
    const x = r === undefined ? NaN : col[r]!;
    if (!Number.isFinite(x)) throw new EngineError(`run ${run.id} has no mean for ${describeNeuron(n)}: use this prompt's own mean`);
    return x;
  });
}
