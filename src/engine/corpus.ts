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
import { basename, join, relative } from 'node:path';
import { CancellationSignal, EngineError, throwIfCancelled } from './errors';
import { brownToUniversal } from './labels';
import { readTextFile, type Encoding } from './tokenizer';

export const EOS = 50256;
export const NEWLINE = 198;

/** The paper's statistics filter: BOS/EOS/pad (50256) and "\n" (198) are not counted. */
export const isKept = (id: number): boolean => id !== EOS && id !== NEWLINE;

/**
 * The same filter for the tokenizer a run reads with: its <|endoftext|> (BOS/EOS/pad) and its
 * "\n" token (GPT-2: 50256 and 198, as isKept; Pythia's tokenizer: 0 and 187).
 */
export function keptFilter(tok: { eosId: number; encode(text: string): { ids: number[] } }): (id: number) => boolean {
  const nl = tok.encode('\n').ids;
  const newline = nl.length === 1 ? nl[0]! : -1;
  const eos = tok.eosId;
  return (id) => id !== eos && id !== newline;
}

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
  /**
   * Text → ids without BOS (the reference model's tokenizer). Needed only for text inputs. With
   * character ranges, Brown-style `tagged` records give their tokens a part of speech. Given
   * `maxTokens` it may stop once that many are made, returning exactly the first tokens of the
   * whole text's encoding (Tokenizer.encode does): the rows need no more of the document.
   */
  encode?: (text: string, maxTokens?: number) => number[] | Encoding;
  bos?: number;
  eos?: number;
  /** The statistics filter (default isKept, GPT-2's ids; the pipeline passes keptFilter of its tokenizer). */
  isKept?: (id: number) => boolean;
  /**
   * The models' vocabulary size: a `.tokens.bin` id at or above it is refused naming the file
   * (it was tokenized for another vocabulary), before any forward pass.
   */
  vocabSize?: number;
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
    /** Tokens of the used rows that pass the filter (`isKept`, or the options' filter). */
    kept: number;
  };
  /** sha256 of the rows' ids (uint32 little-endian): identifies exactly what the analysis saw. */
  hash: string;
  warnings: string[];
  /** Documents that reached the rows, in order. */
  documents: CorpusDocument[];
  /** [nRows × nPositions] index into `documents` of each token; −1 for BOS and EOS. */
  doc: Int32Array;
  /** [nRows × nPositions] universal POS tag (index into labels.POS_TAGS), −1 where untagged; absent when no record is tagged. */
  pos?: Int8Array;
}

/** Where a document came from: its record's `source` (else the file's name) and optional `topic`. */
export interface CorpusDocument {
  source: string;
  topic?: string;
}

interface Doc {
  text: string;
  source?: string;
  topic?: string;
  /** Sentences of [word, Brown tag] pairs, in text order. */
  tagged?: [string, string][][];
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
function documentsOf(path: string, kind: 'text' | 'jsonl', maxBytes: number): { docs: Doc[]; sha256: string } {
  const text = readTextFile(path, maxBytes); // names the file on binary / non-UTF-8 / empty / missing
  const sha256 = createHash('sha256').update(bytesOf(fs.readFileSync(path))).digest('hex');
  if (kind === 'text') return { docs: [{ text }], sha256 };
  const docs: Doc[] = [];
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
    const rec = obj as { source?: unknown; topic?: unknown; tagged?: unknown };
    // A field of the wrong type would silently become "absent": the file's name as the document's
    // source, no topic, no part-of-speech tags (the semantic and syntax families would change).
    for (const k of ['source', 'topic'] as const) {
      const v = rec[k];
      if (v !== undefined && v !== null && typeof v !== 'string') {
        throw new EngineError(`${path}:${i + 1}: "${k}" must be a string, got ${JSON.stringify(v)?.slice(0, 60)}; fix or remove the field`, path);
      }
    }
    if (rec.tagged !== undefined && rec.tagged !== null && !isTagged(rec.tagged)) {
      throw new EngineError(
        `${path}:${i + 1}: "tagged" must be a list of sentences, each a list of [word, tag] string pairs (Brown corpus tags); fix or remove the field`,
        path,
      );
    }
    if (t.length === 0) return;
    const doc: Doc = { text: t };
    if (typeof rec.source === 'string' && rec.source) doc.source = rec.source;
    if (typeof rec.topic === 'string' && rec.topic) doc.topic = rec.topic;
    if (Array.isArray(rec.tagged)) doc.tagged = rec.tagged as [string, string][][];
    docs.push(doc);
  });
  if (docs.length === 0) throw new EngineError(`${path} has no non-empty "text" records`, path);
  return { docs, sha256 };
}

function isTagged(v: unknown): boolean {
  return (
    Array.isArray(v) &&
    v.every((s) => Array.isArray(s) && s.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && typeof p[1] === 'string'))
  );
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
  if (looksLikeText(bytesOf(buf))) {
    throw new EngineError(
      `${path} looks like a text file, not token ids: its first ${Math.min(buf.byteLength, TEXT_SNIFF)} bytes are all printable ASCII, ` +
        'and little-endian uint16 ids of real text are not (every id below 256, such as "," or ".", has a zero byte). ' +
        'Give text as .txt or .jsonl, or tokenize it into .tokens.bin with the models\' tokenizer',
      path,
    );
  }
  const sha256 = createHash('sha256').update(bytesOf(buf)).digest('hex');
  // Copy: the Buffer's offset may not be 2-aligned. The format is little-endian uint16.
  const ids = new Uint16Array(buf.byteLength / 2);
  for (let i = 0; i < ids.length; i++) ids[i] = buf.readUInt16LE(2 * i);
  return { ids, sha256 };
}

const TEXT_SNIFF = 4096;

/**
 * Whether a .tokens.bin is text saved under that name: 64 bytes or more, every one of the first
 * 4 KiB printable ASCII or whitespace. No real token stream passes (ids of common tokens such as
 * "," (11), "." (13) and "\n" (198) put a zero byte in the file), and any text file does, which
 * would otherwise be read as in-range ids: a silent stream of nonsense tokens.
 */
function looksLikeText(b: Uint8Array): boolean {
  if (b.length < 64) return false;
  const n = Math.min(b.length, TEXT_SNIFF);
  for (let i = 0; i < n; i++) {
    const c = b[i]!;
    if (!((c >= 0x20 && c < 0x7f) || c === 0x09 || c === 0x0a || c === 0x0d)) return false;
  }
  return true;
}

function checkTokenIds(ids: Uint16Array, vocabSize: number, path: string): void {
  let max = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i]! > max) max = ids[i]!;
  if (max < vocabSize) return;
  const at = ids.findIndex((id) => id >= vocabSize);
  throw new EngineError(
    `${path}: token ${at} (byte offset ${2 * at}) is id ${ids[at]}, but the models' vocabulary has ${vocabSize} ids (vocab_size in config.json); ` +
      `this file was tokenized for another tokenizer: re-tokenize the text with the models' tokenizer.json`,
    path,
  );
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
  const streamDoc = new Int32Array(need);
  let streamPos: Int8Array | undefined;
  let len = 0;
  let last = -1;
  let total = 0; // every stream token seen, including those past the budget
  const documents: CorpusDocument[] = [];
  const push = (id: number, doc = -1, pos = -1): void => {
    if (len < need) {
      streamDoc[len] = id === eos ? -1 : doc;
      if (pos >= 0) (streamPos ??= new Int8Array(need).fill(-1))[len] = pos;
      stream[len++] = id;
    }
    total++;
    last = id;
  };
  const label = (path: string): string => basename(path).replace(/(\.tokens\.bin|\.jsonl|\.txt|\.md)$/i, '');
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
      if (opts.vocabSize !== undefined) checkTokenIds(ids, opts.vocabSize, f.path);
      // Already joined with EOS; separate it from what came before.
      if (total > 0 && last !== eos) push(eos);
      const source = label(f.path);
      let doc = -1;
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!;
        if (id === eos || i === ids.length - 1) entry.documents++;
        if (id !== eos && doc < 0 && len < need) {
          doc = documents.length;
          documents.push({ source });
        }
        push(id, doc);
        if (id === eos) doc = -1;
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
      // One token more than the rows still need: the budget is met, and the stream shown to go on.
      const enc = opts.encode(doc.text, need - len + 1);
      const ids = Array.isArray(enc) ? enc : enc.ids;
      const tags = doc.tagged && !Array.isArray(enc) ? tokenTags(doc.text, doc.tagged, enc) : undefined;
      const d = documents.length;
      documents.push({ source: doc.source ?? label(f.path), ...(doc.topic ? { topic: doc.topic } : {}) });
      for (let i = 0; i < ids.length; i++) push(ids[i]!, d, tags ? tags[i]! : -1);
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
  const docOf = new Int32Array(nRows * ctx);
  const pos = streamPos ? new Int8Array(nRows * ctx) : undefined;
  let kept = 0;
  for (let r = 0; r < nRows; r++) {
    ids[r * ctx] = bos;
    ids.set(stream.subarray(r * chunk, (r + 1) * chunk), r * ctx + 1);
    docOf[r * ctx] = -1;
    docOf.set(streamDoc.subarray(r * chunk, (r + 1) * chunk), r * ctx + 1);
    if (pos && streamPos) {
      pos[r * ctx] = -1;
      pos.set(streamPos.subarray(r * chunk, (r + 1) * chunk), r * ctx + 1);
    }
  }
  const lastDoc = docOf.length ? Math.max(-1, ...docOf.subarray(docOf.length - ctx)) : -1;
  documents.length = lastDoc + 1;
  const keepId = opts.isKept ?? isKept;
  for (let i = 0; i < ids.length; i++) if (keepId(ids[i]!)) kept++;
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
    documents,
    doc: docOf,
    ...(pos ? { pos } : {}),
  };
}

/**
 * Universal POS tag per token of a tagged document. The tagged words are found in the text in
 * order (Brown's `` and '' are the text's "), and a token takes the tag of the word under its
 * first non-space character; tokens outside every word (or of words not found) get −1.
 */
function tokenTags(text: string, sentences: [string, string][][], enc: Encoding): Int8Array {
  const charTag = new Int8Array(text.length).fill(-1);
  let at = 0;
  for (const sentence of sentences) {
    if (!Array.isArray(sentence)) continue;
    for (const pair of sentence) {
      if (!Array.isArray(pair) || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') continue;
      const word = pair[0] === '``' || pair[0] === "''" ? '"' : pair[0];
      const k = text.indexOf(word, at);
      // A word far ahead means the text differs here: skip it rather than jump over real words.
      if (k < 0 || k - at > 64) continue;
      charTag.fill(brownToUniversal(pair[1]), k, k + word.length);
      at = k + word.length;
    }
  }
  const out = new Int8Array(enc.ids.length).fill(-1);
  for (let i = 0; i < enc.ids.length; i++) {
    let c = enc.starts[i]!;
    while (c < enc.ends[i]! && /\s/.test(text[c]!)) c++;
    if (c < enc.ends[i]!) out[i] = charTag[c]!;
  }
  return out;
}
