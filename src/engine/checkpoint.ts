// Finds a Hugging Face checkpoint on disk and opens its parts: config.json (kept raw; GPT-2 parsing
// is in arch/gpt2.ts), the safetensors weights (header only) and the tokenizer.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineError, ioReason } from './errors';
import { type DType, isReadableDType, SafetensorsFile } from './safetensors';
import { firstInvalidUtf8, Tokenizer } from './tokenizer';

export interface Checkpoint {
  dir: string;
  configPath: string;
  configJson: Record<string, unknown>;
  weights: SafetensorsFile;
  tokenizer: Tokenizer;
  /** The float dtype holding most weight elements. */
  weightsDtype: DType;
  /** The file(s) the tokenizer came from, for run manifests. */
  tokenizerFiles: string[];
}

// Formats that unpickle on load: loading one runs whatever code its author put in it.
const PICKLE_EXT = ['.bin', '.pt', '.pth', '.ckpt', '.pkl', '.pickle'];

/**
 * The folder holding a checkpoint. Accepts the folder itself, a file inside it, a Hugging Face hub
 * cache entry `models--org--name` (the `refs/main` snapshot, else the newest), its `snapshots`
 * folder, one of its `snapshots/<rev>` folders, or `ENTRY@REV`: the revision REV of a hub cache
 * entry (a ref such as Pythia's `step1000`, or a snapshot's commit id or a prefix of it).
 */
export function resolveModelDir(p: string): string {
  const abs = path.resolve(p);
  const st = statOrUndefined(abs);
  if (!st) {
    const rev = splitRevision(p);
    if (rev) return resolveRevision(rev.dir, rev.revision).dir;
    throw new EngineError(`model path ${abs} does not exist`, abs);
  }
  if (st.isFile()) return resolveModelDir(path.dirname(abs));
  const names = listDir(abs);
  if (names.some(isModelFile)) return abs;

  if (names.includes('snapshots') && statOrUndefined(path.join(abs, 'snapshots'))?.isDirectory()) {
    return hubSnapshot(abs);
  }
  if (path.basename(abs) === 'snapshots' && path.basename(path.dirname(abs)).startsWith('models--')) {
    return hubSnapshot(path.dirname(abs));
  }
  const hubModels = names.filter((n) => n.startsWith('models--'));
  if (hubModels.length > 0) {
    throw new EngineError(
      `${abs} is a Hugging Face hub cache holding ${hubModels.length} model(s); choose one, e.g. ${path.join(abs, hubModels[0]!)}`,
      abs,
    );
  }
  throw new EngineError(
    `${abs} holds no checkpoint: expected config.json and model.safetensors (a Hugging Face model folder), or a hub cache folder models--org--name`,
    abs,
  );
}

/** `DIR@REV` split at its last `@`, when DIR exists and REV is a plausible revision name; else undefined. */
export function splitRevision(p: string): { dir: string; revision: string } | undefined {
  const at = p.lastIndexOf('@');
  if (at <= 0) return undefined;
  const dir = p.slice(0, at);
  const revision = p.slice(at + 1);
  if (!/^[\w.\-]+$/.test(revision) || !statOrUndefined(path.resolve(dir))?.isDirectory()) return undefined;
  return { dir, revision };
}

/** The hub cache entry (`models--org--name`) that `dir` is, or is a snapshot of; undefined if none. */
export function hubEntryOf(dir: string): string | undefined {
  const abs = path.resolve(dir);
  if (statOrUndefined(path.join(abs, 'snapshots'))?.isDirectory()) return abs;
  const up = path.dirname(abs);
  if (path.basename(abs) === 'snapshots') return hubEntryOf(up);
  if (path.basename(up) === 'snapshots') return path.dirname(up);
  return undefined;
}

/** A hub cache entry's refs (`refs/main`, `refs/step1000`, …: name → commit) and snapshot commits. */
export function hubRevisions(entry: string): { refs: Map<string, string>; snapshots: string[] } {
  const refs = new Map<string, string>();
  const refDir = path.join(entry, 'refs');
  const walk = (d: string, prefix: string) => {
    for (const n of statOrUndefined(d)?.isDirectory() ? listDir(d) : []) {
      const f = path.join(d, n);
      // Refs of pull requests live under refs/pr/N: kept with their path as name.
      if (statOrUndefined(f)?.isDirectory()) walk(f, `${prefix}${n}/`);
      else refs.set(`${prefix}${n}`, fs.readFileSync(f, 'utf8').trim());
    }
  };
  walk(refDir, '');
  const snapDir = path.join(entry, 'snapshots');
  const snapshots = (statOrUndefined(snapDir)?.isDirectory() ? listDir(snapDir) : []).filter((n) => statOrUndefined(path.join(snapDir, n))?.isDirectory());
  return { refs, snapshots };
}

/** What `ENTRY@REV` resolved to: the snapshot folder and its commit, and the refs naming that commit. */
export interface ResolvedRevision {
  dir: string;
  revision: string;
  commit: string;
  /** Every ref pointing at the commit (e.g. both `main` and `step143000` for Pythia's last step). */
  refs: string[];
}

/**
 * Resolves revision `revision` of the hub cache entry `entryPath` (refs/REV → snapshots/COMMIT;
 * else a snapshot named REV or starting with it). A revision the cache lacks is refused with the
 * ones it holds: the cache is all this tool reads, it never downloads.
 */
export function resolveRevision(entryPath: string, revision: string): ResolvedRevision {
  const entry = hubEntryOf(entryPath);
  const abs = path.resolve(entryPath);
  if (!entry) {
    throw new EngineError(
      `${abs}@${revision}: ${abs} is not a Hugging Face hub cache entry (models--org--name with refs/ and snapshots/), so it has no revisions; give the folder without @${revision}`,
      abs,
    );
  }
  const { refs, snapshots } = hubRevisions(entry);
  let commit = refs.get(revision);
  if (commit === undefined) {
    const byPrefix = revision.length >= 7 ? snapshots.filter((s) => s.startsWith(revision)) : snapshots.filter((s) => s === revision);
    if (byPrefix.length > 1) throw new EngineError(`${entry}@${revision}: the commit prefix ${revision} matches several snapshots (${byPrefix.join(', ')}); give more of it`, entry);
    commit = byPrefix[0];
  }
  const dir = commit === undefined ? undefined : path.join(entry, 'snapshots', commit);
  if (commit === undefined || !statOrUndefined(dir!)?.isDirectory()) {
    const held = [...refs].filter(([, c]) => snapshots.includes(c)).map(([r]) => r);
    const why = commit === undefined ? 'is not in the cache' : `names commit ${commit}, whose snapshot is not in the cache (snapshots/${commit} is missing)`;
    throw new EngineError(
      `revision ${revision} of ${entry} ${why}; the cache holds ` +
        (held.length || snapshots.length
          ? `${held.length ? `revisions ${sortRevisions(held).join(', ')}` : 'no named revisions'}${snapshots.length ? ` and snapshots ${snapshots.join(', ')}` : ''}`
          : 'no snapshots') +
        `. Download it first, e.g. huggingface-cli download ${hubRepoName(entry)} --revision ${revision}`,
      path.join(entry, 'refs', revision),
    );
  }
  return { dir: dir!, revision, commit, refs: sortRevisions([...refs].filter(([, c]) => c === commit).map(([r]) => r)) };
}

/** `org/name` of a hub cache entry folder `models--org--name`. */
export function hubRepoName(entry: string): string {
  return path.basename(entry).replace(/^models--/, '').split('--').join('/');
}

/** The training step a revision names (`step1000` → 1000, Pythia's scheme), else undefined. */
export function stepOfRevision(rev: string): number | undefined {
  const m = /^step(\d+)$/.exec(rev);
  return m ? Number(m[1]) : undefined;
}

/** Revisions in a reading order: `stepN` by N, then the others by name. */
export function sortRevisions(revs: string[]): string[] {
  return [...revs].sort((a, b) => {
    const [sa, sb] = [stepOfRevision(a), stepOfRevision(b)];
    if (sa !== undefined && sb !== undefined) return sa - sb;
    if (sa !== undefined) return -1;
    if (sb !== undefined) return 1;
    return a < b ? -1 : a > b ? 1 : 0;
  });
}

/**
 * The revision a model path names, for a run's manifest: `DIR@REV` resolved, or a hub snapshot
 * reached otherwise (a plain entry: its `main`); undefined for a plain folder.
 */
export function revisionOf(p: string): ResolvedRevision | undefined {
  const split = statOrUndefined(path.resolve(p)) ? undefined : splitRevision(p);
  if (split) return resolveRevision(split.dir, split.revision);
  const dir = resolveModelDir(p);
  const entry = hubEntryOf(dir);
  if (!entry) return undefined;
  const commit = path.basename(dir);
  const refs = sortRevisions([...hubRevisions(entry).refs].filter(([, c]) => c === commit).map(([r]) => r));
  return { dir, revision: refs.includes('main') ? 'main' : (refs[0] ?? commit), commit, refs };
}

/**
 * What a checkpoint folder says of itself without opening it: its folder, weights file (the same
 * choice loadCheckpoint makes, so every command accepts the same folders) and config.json, for
 * the checks a command makes before any model is opened.
 */
export function peekCheckpoint(p: string): { dir: string; configPath: string; configJson: Record<string, unknown>; weightsPath: string } {
  const dir = resolveModelDir(p);
  const weightsPath = findWeights(dir, listDir(dir));
  const configPath = path.join(dir, 'config.json');
  return { dir, configPath, configJson: readConfig(configPath), weightsPath };
}

/** Opens the checkpoint at `p` (see resolveModelDir). The caller closes `weights`. */
export function loadCheckpoint(p: string): Checkpoint {
  const dir = resolveModelDir(p);
  const names = listDir(dir);
  const weightsPath = findWeights(dir, names);
  const configPath = path.join(dir, 'config.json');
  const configJson = readConfig(configPath);
  const { tokenizer, tokenizerFiles } = loadTokenizer(dir, names);
  const weights = SafetensorsFile.open(weightsPath);
  try {
    return { dir, configPath, configJson, weights, tokenizer, weightsDtype: dominantDtype(weights), tokenizerFiles };
  } catch (e) {
    weights.close();
    throw e;
  }
}

/** SHA-256 of a file, hex, read as a stream (checkpoints are hundreds of MB). */
export function hashFile(p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    fs.createReadStream(p)
      .on('error', (e: NodeJS.ErrnoException) =>
        reject(new EngineError(`cannot hash ${p}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, p)),
      )
      .on('data', (chunk) => hash.update(chunk as Uint8Array))
      .on('end', () => resolve(hash.digest('hex')));
  });
}

function isModelFile(name: string): boolean {
  return (
    name === 'config.json' ||
    name === 'tokenizer.json' ||
    name.endsWith('.safetensors') ||
    name === 'model.safetensors.index.json' ||
    PICKLE_EXT.some((e) => name.endsWith(e))
  );
}

function hubSnapshot(repo: string): string {
  const snapDir = path.join(repo, 'snapshots');
  const refFile = path.join(repo, 'refs', 'main');
  if (fs.existsSync(refFile)) {
    const rev = fs.readFileSync(refFile, 'utf8').trim();
    const snap = path.join(snapDir, rev);
    if (rev && statOrUndefined(snap)?.isDirectory()) return snap;
  }
  // No usable refs/main (e.g. a revision pinned by commit): take the newest snapshot.
  const snaps = listDir(snapDir)
    .map((n) => path.join(snapDir, n))
    .filter((s) => statOrUndefined(s)?.isDirectory());
  if (snaps.length === 0) {
    throw new EngineError(`${repo} is a Hugging Face hub cache folder with no snapshots; the download is incomplete`, repo);
  }
  snaps.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  return snaps[0]!;
}

function findWeights(dir: string, names: string[]): string {
  if (names.includes('model.safetensors')) return path.join(dir, 'model.safetensors');
  if (names.includes('model.safetensors.index.json')) {
    throw new EngineError(
      `${dir} holds a sharded checkpoint (model.safetensors.index.json), which is not supported yet; re-save it as one file: ` +
        `python -c "from transformers import AutoModelForCausalLM; AutoModelForCausalLM.from_pretrained('${dir}').save_pretrained('${dir}', safe_serialization=True, max_shard_size='100GB')"`,
      path.join(dir, 'model.safetensors.index.json'),
    );
  }
  const st = names.filter((n) => n.endsWith('.safetensors'));
  if (st.length === 1) return path.join(dir, st[0]!);
  if (st.length > 1) {
    throw new EngineError(`${dir} has several .safetensors files (${st.join(', ')}) and no model.safetensors; keep or rename the one to use`, dir);
  }
  const pickles = names.filter((n) => PICKLE_EXT.some((e) => n.endsWith(e)));
  if (pickles.length > 0) {
    // Never opened: refusing before reading a byte is the point.
    throw new EngineError(
      `${dir} has only PyTorch pickle weights (${pickles.join(', ')}). Pickle files execute code when loaded, so they are not read; ` +
        `convert the checkpoint to safetensors first: ` +
        `python -c "from transformers import AutoModelForCausalLM; AutoModelForCausalLM.from_pretrained('${dir}').save_pretrained('${dir}', safe_serialization=True)"`,
      path.join(dir, pickles[0]!),
    );
  }
  const other = names.filter((n) => n.endsWith('.h5') || n.endsWith('.msgpack'));
  throw new EngineError(
    `${dir} has no model.safetensors` +
      (other.length ? ` (only ${other.join(', ')}: TensorFlow/Flax weights; load with from_tf=True or from_flax=True and save_pretrained with safe_serialization=True)` : ''),
    dir,
  );
}

function readConfig(configPath: string): Record<string, unknown> {
  let bytes: Uint8Array;
  try {
    const b = fs.readFileSync(configPath);
    bytes = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new EngineError(
      code === 'ENOENT'
        ? `${configPath} is missing; a Hugging Face checkpoint folder needs its config.json`
        : `cannot read ${configPath}: ${ioReason(e)}`,
      configPath,
    );
  }
  // Strict: a bad byte read as U+FFFD inside a key would turn a field into an unknown one, and the
  // field would silently take its default.
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new EngineError(
      `${configPath} is not valid UTF-8 (first bad byte at offset ${firstInvalidUtf8(bytes, 0)}); re-download the file or re-save it as UTF-8`,
      configPath,
    );
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new EngineError(`${configPath} is not valid JSON: ${(e as Error).message}`, configPath);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new EngineError(`${configPath} must contain a JSON object, not ${Array.isArray(v) ? 'an array' : JSON.stringify(v)}`, configPath);
  }
  return v as Record<string, unknown>;
}

function loadTokenizer(dir: string, names: string[]): { tokenizer: Tokenizer; tokenizerFiles: string[] } {
  if (names.includes('tokenizer.json')) {
    const p = path.join(dir, 'tokenizer.json');
    return { tokenizer: Tokenizer.fromTokenizerJson(p), tokenizerFiles: [p] };
  }
  const hasVocab = names.includes('vocab.json');
  const hasMerges = names.includes('merges.txt');
  if (hasVocab && hasMerges) {
    const v = path.join(dir, 'vocab.json');
    const m = path.join(dir, 'merges.txt');
    return { tokenizer: Tokenizer.fromVocabMerges(v, m), tokenizerFiles: [v, m] };
  }
  const half = hasVocab ? ' (vocab.json is there, merges.txt is missing)' : hasMerges ? ' (merges.txt is there, vocab.json is missing)' : '';
  throw new EngineError(
    `${dir} has no tokenizer${half}: it needs tokenizer.json, or vocab.json and merges.txt; ` +
      `for a GPT-2 model copy models/gpt2-tokenizer/tokenizer.json from this extension into the folder`,
    dir,
  );
}

function dominantDtype(w: SafetensorsFile): DType {
  const count = new Map<DType, number>();
  for (const t of w.tensors.values()) {
    if (!isReadableDType(t.dtype)) continue;
    count.set(t.dtype, (count.get(t.dtype) ?? 0) + t.shape.reduce((a, b) => a * b, 1));
  }
  let best: DType | undefined;
  for (const [d, n] of count) if (best === undefined || n > count.get(best)!) best = d;
  if (best === undefined) {
    throw new EngineError(`${w.path} has no F32, F16 or BF16 tensors; it holds no usable weights`, w.path);
  }
  return best;
}

function statOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    return undefined;
  }
}

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch (e) {
    throw new EngineError(`cannot list ${dir}: ${(e as Error).message}`, dir);
  }
}
