/**
 * Finds the checkpoints a user could analyse, for the editor's model pickers (issue #15 item 6):
 * model folders under the workspace, every revision of every entry of the Hugging Face hub cache,
 * and the shipped family. Only what config.json says is read (model_type, a supported
 * architecture); the engine validates a model for real when it opens it. Each item's `path` is
 * what the engine and the CLI take: a folder, or `ENTRY@REV` for a hub revision.
 */
import * as fs from 'node:fs';
import { homedir } from 'node:os';
import * as path from 'node:path';
import { SUPPORTED_MODEL_TYPES } from './arch/index';
import { hubRepoName, hubRevisions, sortRevisions, stepOfRevision } from './checkpoint';

export type ModelSource = 'workspace' | 'hub' | 'shipped';

export interface FoundModel {
  /** What to open: a folder, or `ENTRY@REV`. */
  path: string;
  /** Short name: the folder's, or `org/name@REV`. */
  label: string;
  source: ModelSource;
  /** config.json's model_type (gpt2, gpt_neox). */
  modelType: string;
  /** The folder holding config.json and the weights. */
  dir: string;
  revision?: string;
  commit?: string;
  step?: number;
}

/** Where huggingface_hub keeps its cache: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function defaultHubCache(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return path.join(env.HF_HOME, 'hub');
  return path.join(env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'huggingface', 'hub');
}

// Folders never searched: dependencies, VCS data, this tool's runs, and caches of other tools.
const SKIP = new Set(['node_modules', '.git', '.hg', '.svn', '.universal-neurons', '.vscode-test', '__pycache__', '.venv', 'venv', 'dist', 'out']);

/** config.json's model_type when the folder holds a checkpoint of a supported architecture. */
function modelTypeOf(dir: string): string | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return undefined;
  }
  if (!names.includes('config.json') || !names.some((n) => n.endsWith('.safetensors'))) return undefined;
  try {
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { model_type?: unknown };
    return typeof cfg.model_type === 'string' && SUPPORTED_MODEL_TYPES.includes(cfg.model_type) ? cfg.model_type : undefined;
  } catch {
    return undefined;
  }
}

/** Every revision of one hub cache entry: its refs (main as the entry itself), then snapshots no ref names. */
export function hubEntryModels(entry: string, source: ModelSource = 'hub'): FoundModel[] {
  const { refs, snapshots } = hubRevisions(entry);
  const repo = hubRepoName(entry);
  const out: FoundModel[] = [];
  const named = new Set<string>();
  for (const ref of sortRevisions([...refs.keys()])) {
    const commit = refs.get(ref)!;
    const dir = path.join(entry, 'snapshots', commit);
    const modelType = snapshots.includes(commit) ? modelTypeOf(dir) : undefined;
    if (!modelType) continue;
    named.add(commit);
    const step = stepOfRevision(ref);
    out.push({
      path: ref === 'main' ? entry : `${entry}@${ref}`,
      label: `${repo}@${ref}`,
      source,
      modelType,
      dir,
      revision: ref,
      commit,
      ...(step !== undefined ? { step } : {}),
    });
  }
  for (const commit of snapshots) {
    if (named.has(commit)) continue;
    const dir = path.join(entry, 'snapshots', commit);
    const modelType = modelTypeOf(dir);
    if (modelType) out.push({ path: `${entry}@${commit}`, label: `${repo}@${commit.slice(0, 10)}`, source, modelType, dir, revision: commit, commit });
  }
  return out;
}

/** Every supported checkpoint of a hub cache folder (its `models--*` entries). */
export function hubCacheModels(cache: string): FoundModel[] {
  let names: string[];
  try {
    names = fs.readdirSync(cache).sort();
  } catch {
    return [];
  }
  return names.filter((n) => n.startsWith('models--')).flatMap((n) => hubEntryModels(path.join(cache, n)));
}

/**
 * Checkpoint folders (and hub cache entries) under `root`, `maxDepth` levels down, skipping
 * dependencies and VCS folders; stops after `limit` models so a huge workspace stays quick.
 */
export function folderModels(root: string, source: ModelSource, maxDepth = 4, limit = 200): FoundModel[] {
  const out: FoundModel[] = [];
  const walk = (dir: string, depth: number) => {
    if (out.length >= limit) return;
    const name = path.basename(dir);
    if (name.startsWith('models--') && fs.existsSync(path.join(dir, 'snapshots'))) {
      out.push(...hubEntryModels(dir, source));
      return;
    }
    const modelType = modelTypeOf(dir);
    if (modelType) {
      out.push({ path: dir, label: path.relative(root, dir) || name, source, modelType, dir });
      return;
    }
    if (depth === 0) return;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (e.isDirectory() && !SKIP.has(e.name) && !(e.name.startsWith('.') && e.name !== '.cache')) walk(path.join(dir, e.name), depth - 1);
    }
  };
  walk(root, maxDepth);
  return out;
}

/**
 * The models to offer: the shipped family first, then the workspace's, then the hub cache's, each
 * folder once (a workspace that holds the shipped models or the cache lists them under the first).
 */
export function discoverModels(opts: { workspaces?: readonly string[]; hubCache?: string; shipped?: readonly string[] }): FoundModel[] {
  const found: FoundModel[] = [];
  for (const dir of opts.shipped ?? []) {
    const modelType = modelTypeOf(dir);
    if (modelType) found.push({ path: dir, label: path.basename(dir), source: 'shipped', modelType, dir });
  }
  for (const ws of opts.workspaces ?? []) found.push(...folderModels(ws, 'workspace'));
  found.push(...hubCacheModels(opts.hubCache ?? defaultHubCache()));
  const seen = new Set<string>();
  return found.filter((m) => {
    const key = `${path.resolve(m.dir)}|${m.revision ?? ''}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
