/**
 * The files of a run folder (docs/analysis-contract.md "Results store"), by name. Every reader and
 * writer of a run folder is in src/engine/run/; everything else refers to its files through these
 * names.
 */
import { join } from 'node:path';

/** Where runs go under a workspace: `<workspace>/.universal-neurons/runs/<id>`. */
export const RUNS_DIR = join('.universal-neurons', 'runs');

export const RUN_FILES = {
  /** Settings, models, corpus, progress and status (manifest.ts). */
  manifest: 'manifest.json',
  /** One row per reference neuron: the paper's columns, `universal`, partner, family and role columns (neurons.ts). */
  neurons: 'neurons.arrow',
  /** The universal neurons in exactly the paper's schema (neurons.ts). */
  universalCsv: 'universal.csv',
  /** Per reference neuron and other model: partner, corr, baseline (partners.ts). */
  partners: 'partners.arrow',
  /** Per reference neuron: the top and bottom tokens of its vocab composition (vocab.ts). */
  vocab: 'vocab.arrow',
  /** Every model's activation statistics (neurons.ts). */
  actstats: 'actstats.arrow',
  /** Index and arrays of the top and sampled examples (examples.ts). */
  examplesIndex: 'examples.json',
  examplesData: 'examples.bin',
  /** Every neuron's best label and VR of each label kind (families.ts). */
  families: 'families.arrow',
  /** The universal neurons' family and role columns (families.ts). */
  universalFamilies: 'universal_families.csv',
  /** Entropy interventions, attention-deactivation pairs (roles.ts). */
  roles: 'roles.json',
  /** Per layer, the top-5 principal components' share of activation variance (basis.ts; optional). */
  basis: 'basis.json',
  /** The process that writes the run (store.acquireRunLock). */
  lock: 'run.lock',
  /** The resumable state (store.writeCheckpoint). */
  checkpointDir: 'checkpoint',
} as const;

export type RunFile = keyof typeof RUN_FILES;

/** The path of one of a run's files. */
export const runFile = (runDir: string, file: RunFile): string => join(runDir, RUN_FILES[file]);
