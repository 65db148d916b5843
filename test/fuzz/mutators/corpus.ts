// Mutators of an analysis corpus: a folder holding corpus.jsonl (five short documents of the
// held-out set, one with Brown part-of-speech tags) and corpus.tokens.bin (600 held-out ids).
// Each mutated file is judged here, before the engine runs, by a reference reading of the
// format: invalid must be refused; valid with the same documents or ids is harmless; valid with
// other documents or ids is a different corpus.
import { baseCorpus, concat, type CorpusDoc, utf8 } from '../base';
import type { Draft } from '../mutation';
import type { Prng } from '../prng';

export const JSONL = 'corpus.jsonl';
export const TOKENS = 'corpus.tokens.bin';
const VOCAB = 50257;
const EOS = 50256;

const OTHER_TEXT = 'valid JSON Lines with other documents (text, source, topic or tags): a different corpus';
const OTHER_IDS = 'a .tokens.bin has no header or checksum: an even number of bytes of in-range ids is a valid token stream of another text';

interface Doc {
  text: string;
  source?: string;
  topic?: string;
  tagged?: unknown;
}

/** The documents a JSON Lines file holds, read as the format says; undefined when it is invalid. */
export function readJsonl(bytes: Uint8Array): Doc[] | undefined {
  if (bytes.length === 0 || bytes.includes(0)) return undefined;
  let s: string;
  try {
    s = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
  if (s.length === 0) return undefined;
  const docs: Doc[] = [];
  for (const raw of s.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') continue;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch {
      return undefined;
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) return undefined;
    const r = o as Record<string, unknown>;
    if (typeof r.text !== 'string') return undefined;
    for (const k of ['source', 'topic'] as const) if (r[k] !== undefined && r[k] !== null && typeof r[k] !== 'string') return undefined;
    if (r.tagged !== undefined && r.tagged !== null) {
      const ok = Array.isArray(r.tagged) && r.tagged.every((st) => Array.isArray(st) && st.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && typeof p[1] === 'string'));
      if (!ok) return undefined;
    }
    if (r.text === '') continue;
    const d: Doc = { text: r.text };
    if (typeof r.source === 'string' && r.source) d.source = r.source;
    if (typeof r.topic === 'string' && r.topic) d.topic = r.topic;
    if (Array.isArray(r.tagged)) d.tagged = r.tagged;
    docs.push(d);
  }
  return docs.length ? docs : undefined;
}

/** The ids a .tokens.bin holds; undefined when it is invalid (empty, odd, out of range, or text). */
export function readTokens(bytes: Uint8Array): number[] | undefined {
  if (bytes.length === 0 || bytes.length % 2) return undefined;
  if (looksLikeText(bytes)) return undefined;
  const ids: number[] = [];
  for (let i = 0; i < bytes.length; i += 2) {
    const id = bytes[i]! | (bytes[i + 1]! << 8);
    if (id >= VOCAB) return undefined;
    ids.push(id);
  }
  return ids;
}

/** At least 64 bytes, every one printable ASCII or whitespace: a text file, not little-endian uint16 ids (ids < 256 have a zero byte). */
function looksLikeText(b: Uint8Array): boolean {
  if (b.length < 64) return false;
  const n = Math.min(b.length, 4096);
  for (let i = 0; i < n; i++) {
    const c = b[i]!;
    if (!((c >= 0x20 && c < 0x7f) || c === 0x09 || c === 0x0a || c === 0x0d)) return false;
  }
  return true;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function judgeJsonl(bytes: Uint8Array): Pick<Draft, 'legit' | 'harmless'> {
  const docs = readJsonl(bytes);
  if (!docs) return {};
  const base = readJsonl(baseCorpus().jsonl)!;
  return same(docs, base) ? { harmless: 'the same documents (JSON whitespace, key order, escapes, blank lines, line endings, fields the engine does not read)' } : { legit: OTHER_TEXT };
}

function judgeTokens(bytes: Uint8Array): Pick<Draft, 'legit' | 'harmless'> {
  const ids = readTokens(bytes);
  if (!ids) return {};
  return same(ids, readTokens(baseCorpus().tokens)) ? { harmless: 'the same ids' } : { legit: OTHER_IDS };
}

const lines = (docs: readonly unknown[]) => docs.map((d) => JSON.stringify(d));
const join = (ls: string[], nl = '\n') => utf8(ls.join(nl) + nl);

export function corpusJsonl(r: Prng): Draft {
  const base = baseCorpus();
  const docs = base.docs;
  const ls = lines(docs);
  const op = r.weighted([['truncate', 2], ['lines', 3], ['fields', 4], ['text', 2], ['bytes', 3], ['huge', 1], ['empty', 1], ['folder', 1]] as const);
  let c: Uint8Array;
  let detail: string;
  if (op === 'truncate') {
    const p = r.pick([r.int(base.jsonl.length), base.jsonl.indexOf(0x0a) + 1, base.jsonl.length - 1, base.jsonl.length - 2, 1]);
    c = base.jsonl.subarray(0, p);
    detail = `cut to ${p} of ${base.jsonl.length} bytes`;
  } else if (op === 'lines') {
    const how = r.pick(['delete', 'duplicate', 'swap', 'blank', 'whitespace-line', 'crlf', 'no-final-newline', 'extra-newlines', 'bom', 'cr-only', 'two-per-line']);
    const l = [...ls];
    const i = r.int(l.length);
    const k = r.int(l.length);
    let nl = '\n';
    if (how === 'delete') l.splice(i, 1);
    else if (how === 'duplicate') l.splice(i, 0, l[i]!);
    else if (how === 'swap') [l[i], l[k]] = [l[k]!, l[i]!];
    else if (how === 'blank') l.splice(i, 0, '');
    else if (how === 'whitespace-line') l.splice(i, 0, r.pick(['   ', '\t', ' \u00a0 ', '\u2028']));
    else if (how === 'crlf') nl = '\r\n';
    else if (how === 'cr-only') nl = '\r';
    else if (how === 'extra-newlines') nl = '\n\n\n';
    else if (how === 'two-per-line') l.splice(i, 2, (l[i] ?? '') + (l[i + 1] ?? ''));
    c = join(l, nl);
    if (how === 'no-final-newline') c = c.subarray(0, c.length - 1);
    if (how === 'bom') c = concat(0xef, 0xbb, 0xbf, c);
    detail = `line ${i + 1} ${how}${how === 'swap' ? ` with ${k + 1}` : ''}`;
  } else if (op === 'fields') {
    const i = r.int(docs.length);
    const d: Record<string, unknown> = { ...docs[i] };
    const field = r.pick(['text', 'text', 'source', 'topic', 'tagged', 'id', 'new', 'order']);
    const how = r.pick(['number', 'null', 'array', 'object', 'missing', 'empty', 'bool', 'nested-bad']);
    let v: unknown;
    if (field === 'order') {
      c = join(ls.map((s, j) => (j === i ? JSON.stringify(Object.fromEntries(r.shuffle(Object.entries(d)))) : s)));
      detail = `record ${i + 1}: keys reordered`;
    } else {
      v = how === 'number' ? 3 : how === 'null' ? null : how === 'array' ? ['a'] : how === 'object' ? { text: 'x' } : how === 'empty' ? '' : how === 'bool' ? true : field === 'tagged' ? [[['word']], 'x'] : undefined;
      const key = field === 'new' ? 'fuzz' : field;
      if (how === 'missing') delete d[key];
      else d[key] = v;
      c = join(ls.map((s, j) => (j === i ? JSON.stringify(d) : s)));
      detail = `record ${i + 1}: "${key}" -> ${how === 'missing' ? '(removed)' : JSON.stringify(v)}`;
    }
  } else if (op === 'text') {
    const i = r.int(docs.length);
    const d: CorpusDoc = { ...docs[i]! };
    const how = r.pick(['char', 'lone-surrogate', 'nul-escape', 'emoji', 'rtl', 'replace-all', 'escape-ascii', 'endoftext-literal', 'control']);
    const p = r.int(d.text.length);
    const put = (s: string) => d.text.slice(0, p) + s + d.text.slice(p + 1);
    let line: string;
    if (how === 'escape-ascii') line = JSON.stringify(d).replace(/[a-m]/g, (ch) => '\\u00' + ch.charCodeAt(0).toString(16));
    else {
      d.text =
        how === 'char' ? put(String.fromCharCode(33 + r.int(90)))
        : how === 'lone-surrogate' ? put('\ud800')
        : how === 'nul-escape' ? put('\u0000')
        : how === 'emoji' ? put('🙂')
        : how === 'rtl' ? put('\u202e')
        : how === 'replace-all' ? 'x'
        : how === 'endoftext-literal' ? put('<|endoftext|>')
        : put('\u0007');
      line = JSON.stringify(d);
    }
    c = join(ls.map((s, j) => (j === i ? line : s)));
    detail = `record ${i + 1} text: ${how} at ${p}`;
  } else if (op === 'bytes') {
    const src = base.jsonl;
    const how = r.pick(['flip', 'set', 'delete', 'insert', 'bad-utf8', 'nul']);
    const p = r.int(src.length);
    if (how === 'flip') (c = src.slice())[p]! ^= 1 << r.int(8);
    else if (how === 'set') (c = src.slice())[p] = r.int(256);
    else if (how === 'delete') c = concat(src.subarray(0, p), src.subarray(p + 1));
    else if (how === 'insert') c = concat(src.subarray(0, p), r.int(256), src.subarray(p));
    else if (how === 'bad-utf8') (c = src.slice())[p] = r.pick([0xff, 0xc3, 0x80, 0xed]);
    else (c = src.slice())[p] = 0;
    detail = `byte ${p}: ${how}`;
  } else if (op === 'huge') {
    const how = r.pick(['long-text', 'one-word', 'many-lines']);
    const l = [...ls];
    if (how === 'long-text') {
      const n = r.pick([1 << 16, 1 << 18, 1 << 20]);
      let t = '';
      while (t.length < n) t += docs[r.int(docs.length)]!.text + ' ';
      l.splice(r.int(l.length + 1), 0, JSON.stringify({ source: 'huge', text: t }));
      detail = `a record of ${t.length} characters inserted`;
    } else if (how === 'one-word') {
      const n = r.pick([1 << 12, 1 << 16, 1 << 18]);
      l.splice(r.int(l.length + 1), 0, JSON.stringify({ text: 'ab'.repeat(n / 2) }));
      detail = `a record of one ${n}-letter word inserted`;
    } else {
      const n = r.pick([1000, 20000]);
      for (let k = 0; k < n; k++) l.push(JSON.stringify({ text: `line ${k}` }));
      detail = `${n} short records appended`;
    }
    c = join(l);
  } else if (op === 'empty') {
    const how = r.pick(['empty', 'blank-lines', 'all-texts-empty', 'not-jsonl', 'json-array']);
    c =
      how === 'empty' ? new Uint8Array(0)
      : how === 'blank-lines' ? utf8('\n\n  \n')
      : how === 'all-texts-empty' ? join(docs.map((d) => JSON.stringify({ ...d, text: '' })))
      : how === 'not-jsonl' ? utf8(docs.map((d) => d.text).join('\n'))
      : utf8(JSON.stringify(docs));
    detail = how;
  } else {
    const how = r.pick(['csv', 'hidden', 'txt', 'subfolder', 'md-empty']);
    const changes =
      how === 'csv' ? [{ path: 'notes.csv', content: utf8('a,b\n1,2\n') }]
      : how === 'hidden' ? [{ path: '.old.jsonl', content: utf8('not json\n') }]
      : how === 'txt' ? [{ path: 'zz.txt', content: utf8('One more text, read after the others.') }]
      : how === 'subfolder' ? [{ path: 'sub/a.jsonl', content: utf8('{"text":"In a subfolder."}\n') }]
      : [{ path: 'empty.md', content: new Uint8Array(0) }];
    const judge: Pick<Draft, 'legit' | 'harmless'> =
      how === 'csv' || how === 'hidden' ? { harmless: 'a folder contributes only its .txt, .md, .jsonl and .tokens.bin files, hidden entries skipped' } : how === 'md-empty' ? {} : { legit: OTHER_TEXT };
    return { op: `folder-${how}`, detail: `${changes[0]!.path} added to the corpus folder`, changes, ...judge };
  }
  return { op: `jsonl-${op}`, detail, changes: [{ path: JSONL, content: c }], ...judgeJsonl(c) };
}

export function corpusTokens(r: Prng): Draft {
  const src = baseCorpus().tokens;
  const n = src.length / 2;
  const op = r.weighted([['set-id', 4], ['truncate', 2], ['extend', 2], ['byteswap', 1], ['shift', 1], ['eos', 1], ['replace', 2]] as const);
  let c: Uint8Array;
  let detail: string;
  const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (op === 'set-id') {
    const k = r.pick([0, n - 1, r.int(n)]);
    const id = r.pick([VOCAB, VOCAB + 1, 65535, 60000, r.range(VOCAB, 65535), r.int(VOCAB), EOS, 198, 0]);
    dv((c = src.slice())).setUint16(2 * k, id, true);
    detail = `token ${k}: ${dv(src).getUint16(2 * k, true)} -> ${id}`;
  } else if (op === 'truncate') {
    const len = r.pick([0, 1, 2, 3, 2 * r.int(n), 2 * r.int(n) + 1, src.length - 1, 62, 64]);
    c = src.subarray(0, len);
    detail = `cut to ${len} bytes`;
  } else if (op === 'extend') {
    const how = r.pick(['odd', 'zeros', 'random', 'in-range']);
    const tail = how === 'odd' ? new Uint8Array([7]) : how === 'zeros' ? new Uint8Array(2 * r.range(1, 64)) : how === 'random' ? r.bytes(2 * r.range(1, 64)) : src.subarray(0, 2 * r.range(1, 64));
    c = concat(src, tail);
    detail = `${tail.length} ${how} bytes appended`;
  } else if (op === 'byteswap') {
    c = src.slice();
    for (let i = 0; i < c.length; i += 2) [c[i], c[i + 1]] = [c[i + 1]!, c[i]!];
    detail = 'every id byte-swapped (big-endian)';
  } else if (op === 'shift') {
    const how = r.pick(['drop-first-byte', 'drop-first-byte-pad', 'drop-first-id']);
    c = how === 'drop-first-byte' ? src.subarray(1) : how === 'drop-first-byte-pad' ? concat(src.subarray(1), 0) : src.subarray(2);
    detail = how;
  } else if (op === 'eos') {
    const k = r.int(n);
    const how = r.pick(['insert', 'delete-first', 'all-eos']);
    if (how === 'insert') c = concat(src.subarray(0, 2 * k), 0x50, 0xc4, src.subarray(2 * k));
    else if (how === 'all-eos') {
      c = new Uint8Array(src.length);
      for (let i = 0; i < n; i++) dv(c).setUint16(2 * i, EOS, true);
    } else {
      const i = [...Array(n).keys()].find((x) => dv(src).getUint16(2 * x, true) === EOS) ?? 0;
      c = concat(src.subarray(0, 2 * i), src.subarray(2 * i + 2));
    }
    detail = `EOS ${how}${how === 'insert' ? ` at ${k}` : ''}`;
  } else {
    const how = r.pick(['jsonl', 'text', 'random', 'int32', 'zeros']);
    if (how === 'jsonl') c = baseCorpus().jsonl.length % 2 ? concat(baseCorpus().jsonl, 0x0a) : baseCorpus().jsonl;
    else if (how === 'text') c = utf8('The quick brown fox jumps over the lazy dog.\n'.repeat(20));
    else if (how === 'random') c = r.bytes(2 * r.range(16, 600));
    else if (how === 'int32') {
      c = new Uint8Array(2 * src.length);
      for (let i = 0; i < n; i++) dv(c).setUint32(4 * i, dv(src).getUint16(2 * i, true), true);
    } else c = new Uint8Array(src.length);
    detail = `replaced by ${how} (${c.length} bytes)`;
  }
  return { op: `tokens-${op}`, detail, changes: [{ path: TOKENS, content: c }], ...judgeTokens(c) };
}
