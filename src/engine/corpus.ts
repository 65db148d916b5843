/**
 * Corpus reader: text files, JSON Lines and pre-tokenized `.tokens.bin` streams → rows of the
 * model's context length, cut as TransformerLens `tokenize_and_concatenate` cuts them: documents
 * joined with EOS into one stream, the stream cut into chunks of n_positions−1 tokens, BOS put in
 * front of each chunk, an incomplete last chunk dropped.
 *
 * The token budget takes the first whole rows of that stream, so the same inputs and budget give
 * the same rows (a resumed run checks this through `hash`).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join, relative } from 'node:path';
import { CancellationSignal, EngineError, throwIfCancelled } from './errors';
import { readTextFile } from './tokenizer';

export const EOS = 50256;
export const NEWLINE = 198;

/** The paper's statistics filter: BOS/EOS/pad (50256) and "\n" (198) are not counted. */
export const isKept = (id: number): boolean => id !== EOS && id !== NEWLINE;

/** Extensions a folder contributes; anything else in a folder is skipped (and listed as skipped). */
const FOLDER_KINDS: readonly [string, CorpusFileKind][] = [
  ['.tokens.bin', 'tokens'],
  ['.jsonl', 'jsonl'],
  ['.txt', 'text'],
  ['.md', 'text'],
];

export type CorpusFileKind = 'text' | 'jsonl' | 'tokens';

export interface CorpusFile {
  path: string;
  kind: CorpusFileKind;
  bytes: number;
  /** sha256 of the whole file; absent for files the budget did not reach (they were not read). */
  sha256?: string;
  /** Documents taken from it (a `.tokens.bin` counts its EOS-separated documents). */
  documents: number;
  /** Whether any of its tokens reached the stream (false: the budget was met before it). */
  read: boolean;
}

export interface CorpusOptions {
  /** Files or folders, in the order given; a folder contributes its files sorted by path. */
  paths: readonly string[];
  /** The model's context length: every row is BOS + nPositions−1 corpus tokens. */
  nPositions: number;
  /** Token budget: rows = floor(tokens / nPositions) (tokens fed to the model, BOS included). */
  tokens: number;
  /** Text → ids without BOS (the reference model's tokenizer). Needed only for text inputs. */
  encode?: (text: string) => number[];
  bos?: number;
  eos?: number;
  /** Largest text/jsonl file read (bytes); default 512 MB. */
  maxFileBytes?: number;
  signal?: CancellationSignal;
}

export interface Corpus {
  nPositions: number;
  nRows: number;
  /** [nRows × nPositions] token ids, row r at r·nPositions. */
  ids: Int32Array;
  files: CorpusFile[];
  /** Files found in folders but skipped for their extension. */
  skipped: string[];
  tokens: {
    /** The budget asked for. */
    requested: number;
    /** Tokens the corpus holds as whole rows (BOS included); null when the budget was met before the end. */
    available: number | null;
    /** nRows · nPositions. */
    used: number;
    /** Tokens of the used rows that pass the filter (`isKept`). */
    kept: number;
  };
  /** sha256 of the rows' ids (uint32 little-endian): identifies exactly what the analysis saw. */
  hash: string;
  warnings: string[];
}

/** A Buffer as a plain Uint8Array view (this @types/node's Buffer does not type-check as one). */
const bytesOf = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

export function row(c: Corpus, r: number): number[] {
  return Array.from(c.ids.subarray(r * c.nPositions, (r + 1) * c.nPositions));
}

/** Expands folders (recursively, sorted by relative path in code-unit order; hidden entries skipped). */
export function listCorpusFiles(paths: readonly string[]): { files: { path: string; kind: CorpusFileKind }[]; skipped: string[] } {
  if (paths.length === 0) throw new EngineError('no corpus given: name at least one file or folder');
  const files: { path: string; kind: CorpusFileKind }[] = [];
  const skipped: string[] = [];
  for (const p of paths) {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new EngineError(`cannot read corpus ${p}: ${code === 'ENOENT' ? 'no such file or folder' : (e as Error).message}`, p);
    }
    if (!st.isDirectory()) {
      files.push({ path: p, kind: kindOf(p) ?? 'text' });
      continue;
    }
    const found: string[] = [];
    const walk = (dir: string): void => {
      let names: string[];
      try {
        names = fs.readdirSync(dir);
      } catch (e) {
        throw new EngineError(`cannot list corpus folder ${dir}: ${(e as Error).message}`, dir);
      }
      for (const name of names) {
        if (name.startsWith('.')) continue;
        const full = join(dir, name);
        if (fs.statSync(full).isDirectory()) walk(full);
        else found.push(full);
      }
    };
    walk(p);
    // Code-unit order, not locale order: the same on every machine.
    found.sort((a, b) => {
      const ra = relative(p, a);
      const rb = relative(p, b);
      return ra < rb ? -1 : ra > rb ? 1 : 0;
    });
    const before = files.length;
    for (const f of found) {
      const kind = kindOf(f);
      if (kind) files.push({ path: f, kind });
      else skipped.push(f);
    }
    if (files.length === before) {
      throw new EngineError(`corpus folder ${p} holds no .txt, .md, .jsonl or .tokens.bin file`, p);
    }
  }
  return { files, skipped };
}

function kindOf(path: string): CorpusFileKind | undefined {
  const lower = path.toLowerCase();
  return FOLDER_KINDS.find(([ext]) => lower.endsWith(ext))?.[1];
}

/** Documents of one text or JSON Lines file. */
function documentsOf(path: string, kind: 'text' | 'jsonl', maxBytes: number): { docs: string[]; sha256: string } {
  const text = readTextFile(path, maxBytes); // names the file on binary / non-UTF-8 / empty / missing
  const sha256 = createHash('sha256').update(bytesOf(fs.readFileSync(path))).digest('hex');
  if (kind === 'text') return { docs: [text], sha256 };
  const docs: string[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      throw new EngineError(`${path}:${i + 1}: not valid JSON (${(e as Error).message})`, path);
    }
    const t = (obj as { text?: unknown } | null)?.text;
    if (typeof t !== 'string') {
      throw new EngineError(`${path}:${i + 1}: each JSON Lines record needs a string "text" field`, path);
    }
    if (t.length > 0) docs.push(t);
  });
  if (docs.length === 0) throw new EngineError(`${path} has no non-empty "text" records`, path);
  return { docs, sha256 };
}

function tokensOf(path: string): { ids: Uint16Array; sha256: string } {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(path);
  } catch (e) {
    throw new EngineError(`cannot read ${path}: ${(e as Error).message}`, path);
  }
  if (buf.byteLength === 0) throw new EngineError(`${path} is empty; there are no tokens to analyse`, path);
  if (buf.byteLength % 2 !== 0) {
    throw new EngineError(`${path} has ${buf.byteLength} bytes, not a whole number of uint16 token ids`, path);
  }
  const sha256 = createHash('sha256').update(bytesOf(buf)).digest('hex');
  // Copy: the Buffer's offset may not be 2-aligned. The format is little-endian uint16.
  const ids = new Uint16Array(buf.byteLength / 2);
  for (let i = 0; i < ids.length; i++) ids[i] = buf.readUInt16LE(2 * i);
  return { ids, sha256 };
}

/** Reads the inputs in order until the budget's rows are full (or the corpus ends). */
export function readCorpus(opts: CorpusOptions): Corpus {
  const ctx = opts.nPositions;
  const bos = opts.bos ?? EOS;
  const eos = opts.eos ?? EOS;
  if (!Number.isInteger(ctx) || ctx < 2) throw new EngineError(`context length ${ctx} cannot hold BOS plus a token`);
  if (!Number.isSafeInteger(opts.tokens) || opts.tokens < ctx) {
    throw new EngineError(`a token budget of ${opts.tokens} is less than one row of ${ctx} tokens (the model's n_positions)`);
  }
  const wantRows = Math.floor(opts.tokens / ctx);
  const chunk = ctx - 1;
  const need = wantRows * chunk;
  const { files: listed, skipped } = listCorpusFiles(opts.paths);
  const maxBytes = opts.maxFileBytes ?? 512 * 1024 * 1024;

  // The stream of corpus tokens (no BOS), only as long as the budget needs.
  const stream = new Int32Array(need);
  let len = 0;
  let last = -1;
  let total = 0; // every stream token seen, including those past the budget
  const push = (id: number): void => {
    if (len < need) stream[len++] = id;
    total++;
    last = id;
  };
  const files: CorpusFile[] = [];
  let exhausted = true;
  for (const f of listed) {
    throwIfCancelled(opts.signal);
    let bytes = 0;
    try {
      bytes = fs.statSync(f.path).size;
    } catch {
      // readTextFile / tokensOf below report it with the file's name.
    }
    if (len >= need) {
      exhausted = false;
      files.push({ path: f.path, kind: f.kind, bytes, documents: 0, read: false });
      continue;
    }
    const entry: CorpusFile = { path: f.path, kind: f.kind, bytes, documents: 0, read: true };
    files.push(entry);
    if (f.kind === 'tokens') {
      const { ids, sha256 } = tokensOf(f.path);
      entry.sha256 = sha256;
      // Already joined with EOS; separate it from what came before.
      if (total > 0 && last !== eos) push(eos);
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!;
        if (id === eos || i === ids.length - 1) entry.documents++;
        push(id);
      }
      continue;
    }
    if (!opts.encode) throw new EngineError(`${f.path} is text; reading it needs a tokenizer`, f.path);
    const { docs, sha256 } = documentsOf(f.path, f.kind, maxBytes);
    entry.sha256 = sha256;
    for (const doc of docs) {
      if (len >= need) {
        exhausted = false;
        break;
      }
      throwIfCancelled(opts.signal);
      if (total > 0 && last !== eos) push(eos);
      for (const id of opts.encode(doc)) push(id);
      entry.documents++;
    }
  }
  if (len >= need && total > need) exhausted = false;

  const haveRows = Math.floor(len / chunk);
  if (haveRows === 0) {
    throw new EngineError(
      `the corpus holds ${total} tokens, fewer than one row of ${ctx} (BOS + ${chunk} tokens; the model's n_positions): give a longer corpus`,
      listed[0]?.path,
    );
  }
  const warnings: string[] = [];
  const nRows = Math.min(wantRows, haveRows);
  const availableRows = exhausted ? Math.floor(total / chunk) : null;
  if (nRows < wantRows) {
    warnings.push(
      `the token budget of ${opts.tokens} is larger than the corpus (${haveRows * ctx} tokens in ${haveRows} whole rows of ${ctx}); using all of it`,
    );
  }
  if (opts.tokens % ctx !== 0 && nRows === wantRows) {
    warnings.push(`the token budget ${opts.tokens} is not a multiple of the row length ${ctx}; using ${nRows * ctx} tokens (${nRows} rows)`);
  }
  const ids = new Int32Array(nRows * ctx);
  let kept = 0;
  for (let r = 0; r < nRows; r++) {
    ids[r * ctx] = bos;
    ids.set(stream.subarray(r * chunk, (r + 1) * chunk), r * ctx + 1);
  }
  for (let i = 0; i < ids.length; i++) if (isKept(ids[i]!)) kept++;
  const hash = createHash('sha256')
    .update(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength))
    .digest('hex');
  return {
    nPositions: ctx,
    nRows,
    ids,
    files,
    skipped,
    tokens: { requested: opts.tokens, available: availableRows === null ? null : availableRows * ctx, used: nRows * ctx, kept },
    hash,
    warnings,
  };
}
