/**
 * The checkpoints comparison (issue #15): when does a neuron of a trained model form? For each
 * neuron of the final checkpoint, its best partner and correlation in each earlier checkpoint of
 * the same training run. The correlations are the universality analysis's own: a development run
 * is an analysis whose reference is the final checkpoint and whose other models are the earlier
 * ones (the pipeline's partners are then exactly "best partner in each checkpoint"). This module
 * checks the checkpoints before that run starts and reads the steps back from its manifest.
 */
import * as path from 'node:path';
import { parseModelConfig } from './arch/index';
import { hubEntryOf, hubRepoName, peekCheckpoint, revisionOf, stepOfRevision } from './checkpoint';
import { EngineError } from './errors';

/** One checkpoint of a development run, as its manifest records it. */
export interface DevelopmentPoint {
  /** The model's label in the run (its partner columns are named by it). */
  label: string;
  revision?: string;
  /** Training step (a `stepN` ref); null for a final checkpoint whose step no ref names. */
  step: number | null;
}

/** A development run's axis: the final checkpoint and the earlier ones, by step. */
export interface DevelopmentAxis {
  /** The training run, `org/name` of the hub cache entry. */
  repo: string;
  final: DevelopmentPoint;
  /** Earlier checkpoints, ascending step. */
  earlier: DevelopmentPoint[];
}

/** The config fields two checkpoints of one training run must share. */
const SAME_FIELDS = [
  ['modelType', 'model_type'],
  ['nLayer', 'n_layer / num_hidden_layers'],
  ['nEmbd', 'd_model (n_embd / hidden_size)'],
  ['nHead', 'n_head / num_attention_heads'],
  ['dMlp', 'd_mlp (n_inner / intermediate_size)'],
  ['nPositions', 'n_positions / max_position_embeddings'],
  ['vocabSize', 'vocab_size'],
  ['activation', 'activation'],
] as const;

/**
 * Checks the checkpoints of a development run before any model is opened: each resolves (a
 * revision not in the cache is refused with those that are), all have one architecture (a
 * difference is named with both config.json files and the field), and every earlier checkpoint
 * has a training step. Returns the model paths in the analysis's order: the final first.
 */
export function checkDevelopment(final: string, earlier: readonly string[]): string[] {
  if (earlier.length === 0) throw new EngineError('a development run needs at least one earlier checkpoint besides the final one');
  const all = [final, ...earlier];
  const peeks = all.map((p) => {
    const ck = peekCheckpoint(p);
    return { p, ck, cfg: parseModelConfig(ck.configJson, ck.configPath) };
  });
  const ref = peeks[0]!;
  for (const o of peeks.slice(1)) {
    for (const [key, field] of SAME_FIELDS) {
      if (ref.cfg[key] !== o.cfg[key]) {
        throw new EngineError(
          `checkpoints ${final} and ${o.p} have different architectures: ${field} is ${String(ref.cfg[key])} in ${ref.ck.configPath} and ${String(o.cfg[key])} in ${o.ck.configPath}; ` +
            `a development run compares checkpoints of one training run`,
          o.ck.configPath,
        );
      }
    }
    if (path.resolve(o.ck.dir) === path.resolve(ref.ck.dir)) {
      throw new EngineError(`checkpoint ${o.p} is the final checkpoint itself (${o.ck.dir}); list only earlier ones`, o.ck.dir);
    }
  }
  const finalStep = stepOf(final);
  for (const p of earlier) {
    const step = stepOf(p);
    if (step === undefined) {
      throw new EngineError(
        `checkpoint ${p} has no training step: give it as a hub cache revision named stepN (e.g. ${p.split('@')[0]}@step1000), as Pythia's and tools/train_family.py's are`,
        p,
      );
    }
    if (finalStep !== undefined && step >= finalStep) {
      throw new EngineError(`checkpoint ${p} (step ${step}) is not earlier than the final checkpoint ${final} (step ${finalStep})`, p);
    }
  }
  const entries = new Set(peeks.map(({ ck }) => hubEntryOf(ck.dir) ?? ck.dir));
  if (entries.size > 1) {
    throw new EngineError(
      `the checkpoints come from ${entries.size} different folders (${[...entries].join(', ')}); a development run takes the revisions of one hub cache entry (one seed's training run)`,
      [...entries][1],
    );
  }
  return all;
}

/** The training step a model path names through its revision (or any ref of the same commit). */
function stepOf(p: string): number | undefined {
  const r = revisionOf(p);
  if (!r) return undefined;
  return [r.revision, ...r.refs].map(stepOfRevision).find((s) => s !== undefined);
}

interface ManifestModel {
  label: string;
  dir: string;
  revision?: string;
  step?: number;
}

/**
 * The development axis of a run, or why it is not a development run: its models must be revisions
 * of one hub cache entry, every earlier one with a step, the reference (final) last in training.
 */
export function developmentAxis(models: readonly ManifestModel[], runDir: string): { axis: DevelopmentAxis } | { why: string } {
  if (models.length < 2) return { why: `run ${runDir} has one model; a development run compares a final checkpoint with earlier ones` };
  const entries = new Set(models.map((m) => path.dirname(path.dirname(m.dir))));
  const hub = models.every((m) => m.revision !== undefined) && entries.size === 1;
  if (!hub) {
    return {
      why: `run ${runDir} is not a development run: its models are not revisions of one hub cache entry (made by universal-neurons development, or analyze --models DIR@REV …)`,
    };
  }
  const [ref, ...rest] = models;
  const noStep = rest.find((m) => m.step === undefined);
  if (noStep) return { why: `run ${runDir}: model ${noStep.label} (revision ${noStep.revision}) has no training step; its revision is not named stepN` };
  const earlier = rest.map((m) => ({ label: m.label, revision: m.revision, step: m.step! })).sort((a, b) => a.step - b.step);
  if (ref!.step !== undefined && earlier[earlier.length - 1]!.step >= ref!.step) {
    return { why: `run ${runDir}: its reference ${ref!.label} (step ${ref!.step}) is not the final checkpoint (${earlier[earlier.length - 1]!.label} is step ${earlier[earlier.length - 1]!.step})` };
  }
  return {
    axis: {
      repo: hubRepoName([...entries][0]!),
      final: { label: ref!.label, revision: ref!.revision, step: ref!.step ?? null },
      earlier,
    },
  };
}

/** One neuron's development: its best-partner correlation in each earlier checkpoint (NaN: none), then 1 at the final. */
export interface NeuronDevelopment {
  steps: (number | null)[];
  labels: string[];
  corr: number[];
  partner: (string | null)[];
}

/** The series of one reference row from its partners (PartnerRow of run/partners.ts). */
export function neuronDevelopment(
  axis: DevelopmentAxis,
  partners: readonly { model: string; layer: number; neuron: number; corr: number }[],
): NeuronDevelopment {
  const byModel = new Map(partners.map((p) => [p.model, p]));
  const out: NeuronDevelopment = { steps: [], labels: [], corr: [], partner: [] };
  for (const c of axis.earlier) {
    const p = byModel.get(c.label);
    out.steps.push(c.step);
    out.labels.push(c.label);
    out.corr.push(p ? p.corr : NaN);
    out.partner.push(p ? `L${p.layer}.N${p.neuron}` : null);
  }
  // The final checkpoint against itself: the neuron is its own partner, correlation 1 by definition.
  out.steps.push(axis.final.step);
  out.labels.push(axis.final.label);
  out.corr.push(1);
  out.partner.push(null);
  return out;
}

/** Per earlier checkpoint: how many of the final's neurons already have a partner above each level. */
export interface DevelopmentSummaryRow {
  label: string;
  step: number | null;
  neurons: number;
  mean: number;
  median: number;
  /** Fraction of neurons whose best partner correlates above 0.5 and 0.9. */
  above05: number;
  above09: number;
}

export function summarizeDevelopment(axis: DevelopmentAxis, partners: readonly (readonly { model: string; corr: number }[])[]): DevelopmentSummaryRow[] {
  return axis.earlier.map((c) => {
    const v: number[] = [];
    for (const row of partners) {
      const p = row.find((x) => x.model === c.label);
      if (p && Number.isFinite(p.corr)) v.push(p.corr);
    }
    v.sort((a, b) => a - b);
    const n = v.length;
    const mid = n === 0 ? NaN : n % 2 ? v[(n - 1) / 2]! : (v[n / 2 - 1]! + v[n / 2]!) / 2;
    return {
      label: c.label,
      step: c.step,
      neurons: n,
      mean: n ? v.reduce((a, b) => a + b, 0) / n : NaN,
      median: mid,
      above05: n ? v.filter((x) => x > 0.5).length / n : NaN,
      above09: n ? v.filter((x) => x > 0.9).length / n : NaN,
    };
  });
}
