/**
 * A complete run as the result panels read it: the run view (view.ts: manifest and neuron table)
 * plus the optional files, each through its own reader in this folder:
 * - partners (partners.ts: `partners.arrow`, else neurons.arrow's wide partner columns);
 * - examples (examples.ts: the index only; a neuron's slice of examples.bin is read when its page
 *   opens, never the whole file);
 * - vocab effects (vocab.ts), roles.json (roles.ts), basis.json (basis.ts);
 * - the reference model's tokenizer (manifest.models[0].dir, or the shipped model of that label when
 *   the run was made elsewhere: locate.ts runModelDir), for token text; without it the views show
 *   token ids.
 * A missing optional file is a note on the page, never a failure. No `vscode` import and no maths:
 * the panels' payloads are built from this by src/view/.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { packageRoot, runModelDir } from '../../locate';
import { readExamplesIndex, type ExamplesRef } from './examples';
import type { Role } from './families';
import { developmentAxis, type DevelopmentAxis } from '../development';
import { RUN_FILES } from './files';
import { readPartners, type PartnerRow } from './partners';
import { readRoles, type RolesFile } from './roles';
import { readBasis } from './basis';
import { openRunView } from './view';
import { readVocab, type VocabByRow } from './vocab';

/** What every run-based page shows in its header (the protocol's RunInfo). */
export interface RunHeader {
  runDir: string;
  id: string;
  status: string;
  /** Model labels, the reference first. */
  models: string[];
  nLayers: number;
  dMlp: number;
  /** Universal ⇔ excess_corr > threshold. */
  threshold: number;
  /** Tokens the statistics ran over (manifest progress). */
  tokens: number;
  created: string;
}

/** tokenLabel: tokenString, or ⟨id⟩ for an id past the tokenizer (a padded unembedding's rows). */
export type TokenText = { tokenString(id: number): string; tokenLabel(id: number): string };

export interface RunData {
  dir: string;
  info: RunHeader;
  nLayers: number;
  dMlp: number;
  /** Per row of the neuron table. */
  layer: Int32Array;
  neuron: Int32Array;
  /** Neuron column l·d_mlp+n → row (−1: absent). */
  rowOf: Int32Array;
  /** Rows of each layer. */
  layerRows: number[][];
  /** Numeric (and boolean, as 0/1) columns but layer and neuron, NaN for missing values. */
  columns: Map<string, Float64Array>;
  /** Per row: the run's universal flag (its `universal` column, else excess_corr > threshold). */
  universal: boolean[];
  family: (string | null)[] | null;
  /** Best explaining label per row (`family_label`); null: not in this run. */
  familyLabel: (string | null)[] | null;
  /** Roles per row, the primary (`role`) first; null: roles not in this run. */
  roles: Role[][] | null;
  /** Strongest attention-deactivation head per row (`attn_head`; its z-score is column `attn_score`). */
  attnHead: (string | null)[] | null;
  /** Per row, '1'/'0' per stored top example: does its max token carry the label (`family_hits`). */
  familyHits: (string | null)[] | null;
  /** roles.json, when the run has one. */
  rolesFile: RolesFile | null;
  /** Per layer, the top-5 principal components' share of activation variance (basis.json); null: not in this run. */
  pcaTop5: (number | null)[] | null;
  /** Partners per reference row. */
  partners: PartnerRow[][] | null;
  /** A development run (revisions of one training run, the final as reference): its steps; else null and why. */
  development: DevelopmentAxis | null;
  developmentNote?: string;
  partnerNote?: string;
  /** The reference model's examples index (examples.ts readNeuronExamples reads a neuron's slice). */
  examples: ExamplesRef | null;
  vocab: VocabByRow | null;
  tokenizer: TokenText | null;
  tokenizerNote?: string;
  /** The reference model's folder (manifest.models[0].dir, or the shipped model of that label). */
  modelDir?: string;
}

async function loadTokenizer(dir: string): Promise<{ tok: TokenText | null; note?: string }> {
  try {
    const { Tokenizer } = await import('../tokenizer');
    const { resolveModelDir } = await import('../checkpoint');
    const d = resolveModelDir(dir);
    if (fs.existsSync(join(d, 'tokenizer.json'))) return { tok: Tokenizer.fromTokenizerJson(join(d, 'tokenizer.json')) };
    if (fs.existsSync(join(d, 'vocab.json')) && fs.existsSync(join(d, 'merges.txt'))) {
      return { tok: Tokenizer.fromVocabMerges(join(d, 'vocab.json'), join(d, 'merges.txt')) };
    }
    return { tok: null, note: `no tokenizer in ${d}: tokens are shown as ids` };
  } catch (e) {
    return { tok: null, note: `the reference model's tokenizer could not be loaded (${(e as Error).message}): tokens are shown as ids` };
  }
}

function developmentOf(models: Parameters<typeof developmentAxis>[0], runDir: string): { development: DevelopmentAxis | null; developmentNote?: string } {
  const d = developmentAxis(models, runDir);
  return 'axis' in d ? { development: d.axis } : { development: null, developmentNote: d.why };
}

/** Loads a complete run folder. Throws a RunError (errors.ts) naming the file. */
export async function loadRun(runDir: string): Promise<RunData> {
  const view = await openRunView(runDir);
  const { nLayers, dMlp } = view.reference;
  const m = view.manifest;
  const columns = new Map(view.table.columns);
  columns.delete('layer');
  columns.delete('neuron');
  const f = view.families;
  const labels = view.models.map((x) => x.label);
  const index = { rowOf: view.rowOf, nLayers, dMlp };
  const rolesFile = readRoles(runDir, (l, n) => (l < nLayers && n < dMlp && view.rowOf[l * dMlp + n]! >= 0 ? l * dMlp + n : undefined));
  const pcaTop5 = readBasis(runDir, nLayers)?.topShare ?? null;
  const partners = await readPartners(runDir, { ...index, nRows: view.nRows, columns: Object.fromEntries(columns) }, labels);
  const examples = readExamplesIndex(runDir, nLayers * dMlp).model;
  const vocab = await readVocab(runDir, index);
  // A run made elsewhere (the shipped demo run) names another machine's folder: the shipped family stands in.
  const modelDir = runModelDir(view.models[0]!, packageRoot(__dirname));
  const { tok, note } = await loadTokenizer(modelDir);
  const tokens = m.progress?.tokens_done;
  return {
    dir: runDir,
    info: {
      runDir,
      id: view.id,
      status: m.status,
      models: labels,
      nLayers,
      dMlp,
      threshold: view.threshold,
      tokens: typeof tokens === 'number' ? tokens : 0,
      created: view.created,
    },
    nLayers,
    dMlp,
    layer: view.layer,
    neuron: view.neuron,
    rowOf: view.rowOf,
    layerRows: view.layerRows,
    columns,
    universal: Array.from(view.universal, (u) => u === 1),
    family: f.family,
    familyLabel: f.familyLabel,
    roles: f.roles,
    attnHead: f.attnHead,
    familyHits: f.familyHits,
    rolesFile,
    pcaTop5,
    partners: partners.rows,
    ...developmentOf(m.models, runDir),
    partnerNote: partners.note,
    examples,
    vocab,
    tokenizer: tok,
    tokenizerNote: note,
    modelDir,
  };
}

// ---------------------------------------------------------------------------------------------
// Cache: a run's files do not change once complete, but a re-run into the same folder may.

const cache = new Map<string, { key: string; data: Promise<RunData> }>();
const CACHE_SIZE = 3;

function stamp(runDir: string): string {
  return [RUN_FILES.manifest, RUN_FILES.neurons, RUN_FILES.partners, RUN_FILES.examplesIndex, RUN_FILES.vocab, RUN_FILES.roles, RUN_FILES.basis]
    .map((f) => {
      try {
        return String(fs.statSync(join(runDir, f)).mtimeMs);
      } catch {
        return '-';
      }
    })
    .join('|');
}

/** loadRun, cached per folder until one of its files changes. */
export function getRun(runDir: string): Promise<RunData> {
  const key = stamp(runDir);
  const hit = cache.get(runDir);
  if (hit && hit.key === key) {
    cache.delete(runDir);
    cache.set(runDir, hit); // most recently used last
    return hit.data;
  }
  const data = loadRun(runDir);
  cache.set(runDir, { key, data });
  data.catch(() => {
    if (cache.get(runDir)?.data === data) cache.delete(runDir);
  });
  while (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value!);
  return data;
}
