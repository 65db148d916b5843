// Over 700 lines, not split: one concern, byte-level BPE with character offsets (GPT-2's, and
// GPT-NeoX's with its NFC normalizer): the loaders (tokenizer.json, vocab.json + merges.txt), their
// checks, encode/decode and the self-check share the vocabulary, merge ranks and byte maps; a
// split would pass those between files without separating concerns. The seam if it grows: the
// loaders and their checks (a tokenizerFiles.ts) apart from encode/decode.
// GPT-2 byte-level BPE, written here because the npm tokenizers return no character offsets and the
// editor needs, for every token, the exact span of the document it came from. GPT-NeoX's
// (Pythia's) tokenizer.json is the same BPE with an NFC normalizer and more added tokens (runs of
// spaces): the text is normalized first and ranges are mapped back to the original (nfcWithMap).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { EngineError } from './errors';

export interface Encoding {
  ids: number[];
  /** UTF-16 code-unit range [starts[i], ends[i]) of token i in the encoded string. */
  starts: number[];
  ends: number[];
}

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

const ENDOFTEXT = '<|endoftext|>';

/** The tokenizer self-check's text: every branch of the pre-tokenizer and multi-byte UTF-8. */
const SELF_CHECK_TEXT = "Hello, world! It's 2024; they'll say: naïve café, Straße — 東京 🙂 x\n\n\t  end  ";

// The GPT-2 pre-tokenizer as Hugging Face runs it (Oniguruma). Oniguruma's \s is
// [\t\n\v\f\r\x85] plus the Z categories, which differs from JavaScript's \s (that adds U+FEFF and
// lacks U+0085), so whitespace is spelled out.
const WS = '\\t\\n\\v\\f\\r\\x85\\p{Z}';
const PRETOKENIZE = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
  'gu',
);

/** GPT-2's bytes_to_unicode: each byte maps to a printable character so BPE works on strings. */
const BYTE_TO_CHAR: string[] = (() => {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const out = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) out[b] = String.fromCharCode(keep.includes(b) ? b : next++);
  return out;
})();
const CHAR_TO_BYTE = new Map<string, number>(BYTE_TO_CHAR.map((c, b) => [c, b]));

/** The text a byte-level vocabulary entry stands for; undefined if it is not byte-level or not UTF-8. */
function byteLevelText(token: string): string | undefined {
  const bytes: number[] = [];
  for (const ch of token) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b === undefined) return undefined;
    bytes.push(b);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    return undefined;
  }
}

export class Tokenizer {
  /** Number of ids (largest id + 1), counting added tokens. */
  readonly vocabSize: number;
  /** `<|endoftext|>`: GPT-2 uses it as BOS, EOS and separator. */
  readonly bosId: number;
  readonly eosId: number;

  private readonly idToToken: (string | undefined)[];
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedSplit: RegExp | undefined;
  private readonly addedOrder: AddedToken[] = [];
  private readonly addedByContent = new Map<string, AddedToken>();
  private readonly cache = new Map<string, number[]>();

  /**
   * Hashes computed once per tokenizer file (~0.1 s for GPT-2's): the object is shared with the
   * copies `built` hands out for byte-identical files, so every model of a family pays once.
   */
  private readonly memo: { fingerprint?: string; vocabHash?: string } = {};

  private constructor(
    readonly source: string,
    private readonly vocab: Map<string, number>,
    /** "a b" -> rank */
    private readonly ranks: Map<string, number>,
    added: AddedToken[],
    private readonly ignoreMerges: boolean,
    /** tokenizer.json's normalizer is NFC (GPT-NeoX); GPT-2 has none. */
    private readonly nfc = false,
  ) {
    let top = -1;
    for (const id of vocab.values()) if (id > top) top = id;
    // Sized first: filled in the file's order, which is not the ids' order, it would go sparse.
    this.idToToken = new Array<string | undefined>(top + 1);
    for (const [tok, id] of vocab) {
      if (this.idToToken[id] !== undefined && this.idToToken[id] !== tok) {
        throw new EngineError(`${source}: id ${id} is used by both "${this.idToToken[id]}" and "${tok}"`, source);
      }
      this.idToToken[id] = tok;
    }
    for (const a of added) {
      const existing = this.idToToken[a.id];
      // An added token may also be in the vocabulary under its byte-level spelling (a run of
      // spaces "  " as "ĠĠ", as tokenizers that add whitespace tokens may store it): same text, same id.
      if (existing !== undefined && existing !== a.content && !vocab.has(a.content) && byteLevelText(existing) !== a.content) {
        throw new EngineError(`${source}: added token "${a.content}" reuses id ${a.id} of "${existing}"`, source);
      }
      this.addedById.set(a.id, a);
      this.addedByContent.set(a.content, a);
    }
    this.vocabSize = Math.max(this.idToToken.length, ...added.map((a) => a.id + 1));
    const eot = this.addedByContent.get(ENDOFTEXT)?.id ?? vocab.get(ENDOFTEXT);
    if (eot === undefined) {
      throw new EngineError(`${source}: no ${ENDOFTEXT} token; GPT-2 tokenizers need it as BOS/EOS`, source);
    }
    this.bosId = eot;
    this.eosId = eot;
    if (added.length > 0) {
      // Longest first, so that of two tokens matching at one place the longer wins (as HF's
      // leftmost-longest matcher does); one capture group per token tells which matched.
      this.addedOrder = [...added].sort((a, b) => b.content.length - a.content.length);
      const alts = this.addedOrder.map(
        (a) => (a.lstrip ? `[${WS}]*` : '') + '(' + escapeRegExp(a.content) + ')' + (a.rstrip ? `[${WS}]*` : ''),
      );
      this.addedSplit = new RegExp(alts.join('|'), 'gu');
    }
    this.selfCheck();
  }

  /**
   * sha256 of everything that decides the ids of a text: the id → token table, the merges in rank
   * order, the added tokens and ignore_merges. Two models read the same tokens iff these match;
   * the vocabulary alone does not say so (same vocabulary, merges truncated or reordered: other
   * ids for the same text).
   */
  fingerprint(): string {
    return (this.memo.fingerprint ??= this.computeFingerprint());
  }

  /** sha256 of the id → token table alone (run manifests' vocab_sha256). */
  vocabHash(): string {
    return (this.memo.vocabHash ??= hashVocab(this));
  }

  private computeFingerprint(): string {
    const parts: string[] = [];
    for (let i = 0; i < this.vocabSize; i++) parts.push(`${i}\u0000${this.idToToken[i] ?? ''}`);
    parts.push('\u0002merges');
    for (const [pair, rank] of this.ranks) parts.push(`${rank}\u0000${pair}`);
    parts.push('\u0002added');
    for (const a of [...this.addedById.values()].sort((x, y) => x.id - y.id)) {
      parts.push(`${a.id}\u0000${a.content}\u0000${+a.special}${+a.lstrip}${+a.rstrip}`);
    }
    parts.push(`\u0002ignore_merges=${this.ignoreMerges}`);
    if (this.nfc) parts.push('\u0002normalizer=NFC'); // absent for GPT-2, so its fingerprints are unchanged
    return createHash('sha256').update(parts.join('\u0001')).digest('hex');
  }

  /**
   * Encodes a fixed text (ASCII, digits, contractions, accents, CJK, an emoji, odd whitespace) and
   * checks that decoding gives it back and that the character ranges tile it: a tokenizer that
   * fails this would give every later text wrong ids or wrong editor positions.
   */
  private selfCheck(): void {
    const text = SELF_CHECK_TEXT;
    const enc = this.encode(text);
    let at = 0;
    for (let i = 0; i < enc.ids.length; i++) {
      if (enc.starts[i] !== at || enc.ends[i]! < enc.starts[i]!) {
        throw new EngineError(`${this.source}: self-check failed: token ${i} of a fixed test text has range [${enc.starts[i]}, ${enc.ends[i]}), expected to start at ${at}; this tokenizer cannot be used`, this.source);
      }
      at = enc.ends[i]!;
    }
    const back = this.decode(enc.ids);
    if (back !== text || at !== text.length) {
      throw new EngineError(
        `${this.source}: self-check failed: a fixed test text does not survive encode then decode (got ${JSON.stringify(back.slice(0, 80))}); ` +
          `the vocabulary is not GPT-2 byte-level BPE or is corrupt. Re-download the tokenizer, or for a GPT-2 model copy models/gpt2-tokenizer/tokenizer.json`,
        this.source,
      );
    }
  }

  /**
   * A tokenizer built earlier from byte-identical file(s), under this caller's path; the tables
   * are shared (they are never mutated; the BPE cache is a pure memo). Every model of a family
   * ships the same 2 MB tokenizer.json, and building GPT-2's takes ~0.3 s.
   */
  private static built(key: string, source: string): Tokenizer | undefined {
    const t = BUILT.get(key);
    if (!t) return undefined;
    BUILT.delete(key); // most recently used last
    BUILT.set(key, t);
    return t.source === source ? t : (Object.assign(Object.create(Tokenizer.prototype), t, { source }) as Tokenizer);
  }

  private static remember(key: string, t: Tokenizer): Tokenizer {
    BUILT.set(key, t);
    while (BUILT.size > BUILT_MAX) BUILT.delete(BUILT.keys().next().value!);
    return t;
  }

  /** Loads a Hugging Face `tokenizer.json` (BPE model, ByteLevel pre-tokenizer). */
  static fromTokenizerJson(path: string): Tokenizer {
    const bytes = readSmallFile(path, 'tokenizer.json');
    const key = 'json\u0000' + sha256(bytes);
    const hit = Tokenizer.built(key, path);
    if (hit) return hit;
    const json = parseJsonObject(decodeUtf8(bytes, path), path);
    const bad = (what: string) => new EngineError(`${path}: ${what}`, path);
    const model = json.model;
    if (!isObject(model)) throw bad('has no "model" object');
    if (model.type !== undefined && model.type !== 'BPE') {
      throw bad(`model type is ${JSON.stringify(model.type)}; only BPE (GPT-2 style) tokenizers are supported`);
    }
    for (const key of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
      if (model[key] !== undefined && model[key] !== null && model[key] !== '') {
        throw bad(`model.${key} ${JSON.stringify(model[key])} is not supported (GPT-2 BPE has none)`);
      }
    }
    if (model.dropout !== undefined && model.dropout !== null && model.dropout !== 0) {
      throw bad(`model.dropout ${JSON.stringify(model.dropout)} is not supported: BPE dropout splits words at random, so one text would not always give the same ids (GPT-2 has none)`);
    }
    const nfc = isObject(json.normalizer) && json.normalizer.type === 'NFC';
    if (json.normalizer !== undefined && json.normalizer !== null && !nfc) {
      throw bad(`normalizer ${describe(json.normalizer)} is not supported; GPT-2 tokenizers have none, GPT-NeoX's (Pythia's) is NFC`);
    }
    checkByteLevel(json.pre_tokenizer, path);
    const vocab = parseVocab(model.vocab, path, 'model.vocab');
    if (!Array.isArray(model.merges)) throw bad('model.merges must be an array');
    const merges: [string, string][] = model.merges.map((m: unknown, i: number) => {
      if (typeof m === 'string') {
        const parts = m.split(' ');
        if (parts.length === 2 && parts[0] && parts[1]) return [parts[0], parts[1]];
      } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
        return [m[0], m[1]];
      }
      throw bad(`model.merges[${i}] is ${JSON.stringify(m)}; expected "a b" or ["a", "b"]`);
    });
    const added: AddedToken[] = [];
    if (json.added_tokens !== undefined) {
      if (!Array.isArray(json.added_tokens)) throw bad('added_tokens must be an array');
      json.added_tokens.forEach((t: unknown, i: number) => {
        if (!isObject(t) || !isId(t.id) || typeof t.content !== 'string' || t.content === '') {
          throw bad(`added_tokens[${i}] needs an integer "id" and a non-empty string "content"`);
        }
        if (t.single_word === true) throw bad(`added token "${t.content}" has single_word, which is not supported`);
        added.push({ id: t.id, content: t.content, special: t.special === true, lstrip: t.lstrip === true, rstrip: t.rstrip === true });
      });
    }
    return Tokenizer.remember(key, new Tokenizer(path, vocab, rankMerges(merges, vocab, path, 'model.merges', added), added, model.ignore_merges === true, nfc));
  }

  /** Loads the original GPT-2 pair `vocab.json` (a.k.a. encoder.json) + `merges.txt` (vocab.bpe). */
  static fromVocabMerges(vocabPath: string, mergesPath: string): Tokenizer {
    const vocabBytes = readSmallFile(vocabPath, 'vocab.json');
    const mergesBytes = readSmallFile(mergesPath, 'merges.txt');
    const key = `pair\u0000${sha256(vocabBytes)}\u0000${sha256(mergesBytes)}`;
    const source = `${vocabPath} + ${mergesPath}`;
    const hit = Tokenizer.built(key, source);
    if (hit) return hit;
    const vocab = parseVocab(parseJsonObject(decodeUtf8(vocabBytes, vocabPath), vocabPath), vocabPath, 'vocabulary');
    const text = decodeUtf8(mergesBytes, mergesPath);
    const merges: [string, string][] = [];
    text.split('\n').forEach((raw, i) => {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line === '' || (i === 0 && line.startsWith('#version'))) return;
      const parts = line.split(' ');
      if (parts.length !== 2 || !parts[0] || !parts[1]) {
        throw new EngineError(`${mergesPath}: line ${i + 1} is ${JSON.stringify(line)}; expected two tokens separated by one space`, mergesPath);
      }
      merges.push([parts[0], parts[1]]);
    });
    // As transformers' GPT2Tokenizer does: <|endoftext|> in the vocabulary is a special token.
    const eot = vocab.get(ENDOFTEXT);
    const added: AddedToken[] = eot === undefined ? [] : [{ id: eot, content: ENDOFTEXT, special: true, lstrip: false, rstrip: false }];
    return Tokenizer.remember(key, new Tokenizer(source, vocab, rankMerges(merges, vocab, mergesPath, 'merges.txt', added), added, false));
  }

  /**
   * Token ids of `text` with their character ranges. With `maxTokens`, stops once that many are
   * made (finishing the word at hand): the result is then exactly the first tokens of the whole
   * text's encoding, since pre-tokens are found left to right and each is encoded alone. A corpus
   * reader that needs 1,000 tokens of a 100 MB document does not tokenize all of it.
   */
  encode(text: string, maxTokens = Infinity): Encoding {
    if (this.nfc) {
      const n = nfcWithMap(text);
      if (n) {
        const enc = this.encodeNormalized(n.norm, maxTokens);
        enc.starts = enc.starts.map((s) => n.toOrig[s]!);
        enc.ends = enc.ends.map((e) => n.toOrig[e]!);
        return enc;
      }
    }
    return this.encodeNormalized(text, maxTokens);
  }

  /** encode() of a text the normalizer leaves unchanged. */
  private encodeNormalized(text: string, maxTokens: number): Encoding {
    const enc: Encoding = { ids: [], starts: [], ends: [] };
    if (!this.addedSplit) {
      this.encodeOrdinary(text, 0, text.length, enc, maxTokens);
      return enc;
    }
    let at = 0;
    for (const m of text.matchAll(this.addedSplit)) {
      const from = m.index;
      const tok = this.addedOrder[m.findIndex((g, i) => i > 0 && g !== undefined) - 1]!;
      this.encodeOrdinary(text, at, from, enc, maxTokens);
      if (enc.ids.length >= maxTokens) return enc;
      enc.ids.push(tok.id);
      enc.starts.push(from);
      enc.ends.push(from + m[0].length);
      at = from + m[0].length;
    }
    this.encodeOrdinary(text, at, text.length, enc, maxTokens);
    return enc;
  }

  decode(ids: readonly number[]): string {
    const bytes: number[] = [];
    let out = '';
    const flush = () => {
      if (bytes.length > 0) out += UTF8_LOSSY.decode(Uint8Array.from(bytes));
      bytes.length = 0;
    };
    for (const id of ids) {
      const added = this.addedById.get(id);
      if (added) {
        flush();
        out += added.content;
        continue;
      }
      const tok = this.idToToken[id];
      if (tok === undefined) {
        throw new EngineError(`token id ${id} is not in the vocabulary of ${this.source} (size ${this.vocabSize})`, this.source);
      }
      for (const ch of tok) {
        const b = CHAR_TO_BYTE.get(ch);
        if (b === undefined) {
          // Non-byte-level vocab entries are rare; decode them as the text they spell.
          flush();
          out += ch;
        } else bytes.push(b);
      }
    }
    flush();
    return out;
  }

  /** The text of one token; a token holding part of a UTF-8 character shows U+FFFD. */
  tokenString(id: number): string {
    return this.decode([id]);
  }

  /**
   * tokenString, or ⟨id⟩ for an id with no vocabulary entry: the rows of a padded unembedding
   * (Pythia: 50,277 tokens in 50,304 rows) have logits, so they can rank among the top tokens.
   */
  tokenLabel(id: number): string {
    return this.tokenRaw(id) === undefined ? `⟨${id}⟩` : this.tokenString(id);
  }

  /** The vocabulary entry (byte-level form, e.g. "Ġworld") of an id. */
  tokenRaw(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.idToToken[id];
  }

  private encodeOrdinary(text: string, from: number, to: number, enc: Encoding, maxTokens = Infinity): void {
    if (from >= to) return;
    const segment = text.slice(from, to);
    for (const m of segment.matchAll(PRETOKENIZE)) {
      if (enc.ids.length >= maxTokens) return;
      this.encodeWord(m[0], from + m.index, enc);
    }
  }

  /**
   * BPE-encodes one pre-token starting at UTF-16 offset `base`, and maps its tokens back to UTF-16
   * ranges. A multi-byte character split across tokens belongs to the token holding its FIRST
   * byte; a token made only of continuation bytes gets the empty range at that character's end.
   * So ranges are contiguous, in order, and each character lies in exactly one token's range.
   */
  private encodeWord(word: string, base: number, enc: Encoding): void {
    // bound[b]: UTF-16 offset (within word) of the first character boundary at or after byte b.
    const bound: number[] = [];
    let symbols = '';
    for (let i = 0; i < word.length; ) {
      let cp = word.codePointAt(i)!;
      const units = cp > 0xffff ? 2 : 1;
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd; // lone surrogate, as TextEncoder encodes it
      const bytes = utf8(cp);
      bound.push(i);
      for (let k = 1; k < bytes.length; k++) bound.push(i + units);
      for (const b of bytes) symbols += BYTE_TO_CHAR[b];
      i += units;
    }
    bound.push(word.length);

    let ids = this.cache.get(symbols);
    if (!ids) {
      ids = this.bpe(symbols);
      if (this.cache.size > 100_000) this.cache.clear();
      this.cache.set(symbols, ids);
    }
    let b = 0;
    for (const id of ids) {
      const len = this.idToToken[id]!.length; // one char per byte
      enc.ids.push(id);
      enc.starts.push(base + bound[b]!);
      enc.ends.push(base + bound[b + len]!);
      b += len;
    }
  }

  /**
   * Applies merges lowest rank first, leftmost first among equal ranks (as HF's BPE does), over a
   * linked list with a heap of candidate pairs: O(n log n), so a long run of letters (a base64
   * blob, a DNA string) does not go quadratic.
   */
  private bpe(symbols: string): number[] {
    const whole = this.vocab.get(symbols);
    if (whole !== undefined && (this.ignoreMerges || symbols.length === 1)) return [whole];
    const n = symbols.length; // byte-level chars are all BMP: one unit per byte
    if (n >= POS) throw new EngineError(`a single word of ${n} bytes is too long to tokenize`, this.source);
    const val = Array.from(symbols);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const dead = new Uint8Array(n);
    const heap = new MinHeap();
    // key = rank * POS + position of the pair's left symbol: orders by rank, then left to right.
    const pushPair = (i: number) => {
      const j = next[i]!;
      if (j < 0) return;
      const r = this.ranks.get(val[i] + ' ' + val[j]);
      if (r !== undefined) heap.push(r * POS + i);
    };
    for (let i = 0; i < n - 1; i++) pushPair(i);
    while (heap.size > 0) {
      const key = heap.pop();
      const r = Math.floor(key / POS);
      const i = key - r * POS;
      const j = next[i]!;
      // Entries go stale when a neighbour merges; the pair at i must still be the one ranked r.
      if (dead[i] || j < 0 || this.ranks.get(val[i] + ' ' + val[j]) !== r) continue;
      val[i] = val[i]! + val[j]!;
      dead[j] = 1;
      next[i] = next[j]!;
      if (next[j]! >= 0) prev[next[j]!] = i;
      if (prev[i]! >= 0) pushPair(prev[i]!);
      pushPair(i);
    }
    const ids: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) {
      const id = this.vocab.get(val[i]!);
      if (id === undefined) {
        // rankMerges checked every merge result is in the vocabulary, and all 256 bytes are.
        throw new EngineError(`${this.source}: BPE produced "${val[i]}", which is not in the vocabulary`, this.source);
      }
      ids.push(id);
    }
    return ids;
  }
}

const POS = 2 ** 27; // > the byte length of any one pre-token we accept

/** Code points that may compose with the character before them: marks, and Hangul medial and final jamo. */
const COMBINES_BACK = /[\p{M}\u1160-\u11ff\ud7b0-\ud7ff]/u;

/**
 * The NFC form of `text` with, for every UTF-16 boundary k of it (0..length), the boundary of the
 * original text it comes from; undefined when `text` is already NFC (the usual case). The text is
 * cut before every character that cannot compose with the one before it, each piece is normalized
 * alone (so that a change stays inside its piece), and a changed piece maps as a whole: its start
 * to the original piece's start, every boundary inside it to the original piece's end. The map is
 * non-decreasing, so token ranges mapped through it still tile the original text in order. Should
 * the pieces not add up to the NFC of the whole (no such text is known), the whole text is one piece.
 */
export function nfcWithMap(text: string): { norm: string; toOrig: Int32Array } | undefined {
  const whole = text.normalize('NFC');
  if (whole === text) return undefined;
  const cuts = [0];
  for (let i = 0; i < text.length; ) {
    const cp = text.codePointAt(i)!;
    if (i > 0 && !COMBINES_BACK.test(String.fromCodePoint(cp))) cuts.push(i);
    i += cp > 0xffff ? 2 : 1;
  }
  cuts.push(text.length);
  let pieces: [number, number, string][] = [];
  for (let k = 0; k + 1 < cuts.length; k++) pieces.push([cuts[k]!, cuts[k + 1]!, text.slice(cuts[k], cuts[k + 1]).normalize('NFC')]);
  if (pieces.map((p) => p[2]).join('') !== whole) pieces = [[0, text.length, whole]];
  const toOrig = new Int32Array(whole.length + 1);
  let at = 0;
  for (const [a, b, n] of pieces) {
    const same = n === text.slice(a, b);
    for (let k = 0; k < n.length; k++) toOrig[at + k] = same ? a + k : k === 0 ? a : b;
    at += n.length;
  }
  toOrig[whole.length] = text.length;
  return { norm: whole, toOrig };
}

/** Binary min-heap of numbers. */
class MinHeap {
  private readonly a: number[] = [];
  get size(): number {
    return this.a.length;
  }
  push(v: number): void {
    const a = this.a;
    let i = a.length;
    a.push(v);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= v) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = v;
  }
  pop(): number {
    const a = this.a;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const c = l + 1 < a.length && a[l + 1]! < a[l]! ? l + 1 : l;
        if (a[c]! >= last) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

/** sha256 of an id → token table: two tokenizers share a vocabulary iff these match. */
export function hashVocab(tok: { vocabSize: number; tokenRaw(id: number): string | undefined }): string {
  const h = createHash('sha256');
  for (let i = 0; i < tok.vocabSize; i++) h.update(`${i}\u0000${tok.tokenRaw(i) ?? ''}\u0001`);
  return h.digest('hex');
}

/** Encodes with `<|endoftext|>` prepended as BOS (as TransformerLens does), with range [0, 0]. */
export function encodeWithBos(tok: Tokenizer, text: string): Encoding {
  const e = tok.encode(text);
  return { ids: [tok.bosId, ...e.ids], starts: [0, ...e.starts], ends: [0, ...e.ends] };
}

/**
 * Reads a prompt file as text. Refuses what would silently give nonsense tokens: empty files,
 * files over `maxBytes`, binary files (NUL bytes) and invalid UTF-8. Strips a UTF-8 BOM.
 */
export function readTextFile(path: string, maxBytes = 1_000_000): string {
  let size: number;
  try {
    const st = fs.statSync(path);
    if (st.isDirectory()) throw new EngineError(`${path} is a folder, not a text file`, path);
    size = st.size;
  } catch (e) {
    if (e instanceof EngineError) throw e;
    throw new EngineError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, path);
  }
  if (size === 0) throw new EngineError(`${path} is empty; there is no text to analyse`, path);
  if (size > maxBytes) {
    throw new EngineError(`${path} is ${size} bytes, over the limit of ${maxBytes} bytes; analyse a shorter excerpt or raise the limit`, path);
  }
  let buf: Uint8Array;
  try {
    const b = fs.readFileSync(path);
    buf = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    throw new EngineError(`cannot read ${path}: ${(e as Error).message}`, path);
  }
  const nul = buf.indexOf(0);
  if (nul >= 0) throw new EngineError(`${path} looks binary (NUL byte at offset ${nul}); only UTF-8 text can be analysed`, path);
  const bom = buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(buf.subarray(bom));
  } catch {
    throw new EngineError(
      `${path} is not valid UTF-8 (first bad byte at offset ${firstInvalidUtf8(buf, bom)}); re-save it as UTF-8`,
      path,
    );
  }
  if (text.length === 0) throw new EngineError(`${path} is empty (only a byte-order mark); there is no text to analyse`, path);
  return text;
}

const UTF8_LOSSY = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

function utf8(cp: number): number[] {
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)];
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
}

/** Offset of the first byte that is not part of a valid UTF-8 sequence (for the error message). */
export function firstInvalidUtf8(buf: Uint8Array, from: number): number {
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  for (let i = from; i < buf.length; ) {
    const b = buf[i]!;
    const n = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (n === 0 || i + n > buf.length) return i;
    try {
      strict.decode(buf.subarray(i, i + n)); // also rejects overlongs and surrogates
    } catch {
      return i;
    }
    i += n;
  }
  return buf.length;
}

function checkByteLevel(pre: unknown, path: string): void {
  const list = isObject(pre) && pre.type === 'Sequence' && Array.isArray(pre.pretokenizers) ? pre.pretokenizers : [pre];
  const ok =
    list.length === 1 &&
    isObject(list[0]) &&
    list[0].type === 'ByteLevel' &&
    list[0].add_prefix_space !== true &&
    list[0].use_regex !== false;
  if (!ok) {
    throw new EngineError(
      `${path}: pre_tokenizer ${describe(pre)} is not supported; expected GPT-2's ByteLevel with add_prefix_space false`,
      path,
    );
  }
}

function parseVocab(v: unknown, path: string, what: string): Map<string, number> {
  if (!isObject(v)) throw new EngineError(`${path}: ${what} must be an object mapping tokens to ids`, path);
  const out = new Map<string, number>();
  for (const tok in v) {
    const id = v[tok];
    if (!isId(id)) {
      throw new EngineError(`${path}: ${what} gives token ${JSON.stringify(tok)} the id ${JSON.stringify(id)}; ids are integers from 0 to ${MAX_ID}`, path);
    }
    out.set(tok, id);
  }
  if (out.size === 0) throw new EngineError(`${path}: ${what} is empty`, path);
  return out;
}

/**
 * Ranks the merges after checking they are the ones the vocabulary was built with. A GPT-2 BPE
 * vocabulary is the 256 byte tokens, then one token per merge in training order, then added
 * tokens; so every merge's parts are bytes or results of EARLIER merges, and every other
 * vocabulary token is some merge's result. A merges list emptied, truncated or shuffled breaks
 * one of these (GPT-2's own 50,000 merges satisfy both), and would silently give other ids.
 */
function rankMerges(
  merges: [string, string][],
  vocab: Map<string, number>,
  path: string,
  what: string,
  added: readonly AddedToken[],
): Map<string, number> {
  // Every byte must have its token, or some text could not be encoded at all.
  for (let b = 0; b < 256; b++) {
    if (!vocab.has(BYTE_TO_CHAR[b]!)) {
      throw new EngineError(
        `${path}: vocabulary lacks the byte-level token for byte 0x${b.toString(16)} ("${BYTE_TO_CHAR[b]}"); not a GPT-2 byte-level BPE vocabulary`,
        path,
      );
    }
  }
  const fix = 'Re-download the tokenizer, or for a GPT-2 model copy models/gpt2-tokenizer/tokenizer.json from this extension';
  // Tokens available so far: single characters, then each merge's result.
  const made = new Set<string>();
  for (const t of vocab.keys()) if (t.length === 1) made.add(t);
  const ranks = new Map<string, number>();
  for (let i = 0; i < merges.length; i++) {
    const [a, b] = merges[i]!;
    const ab = a + b;
    // Everything in `made` is in the vocabulary: one test per part on the usual path.
    if (!made.has(a) || !made.has(b) || !vocab.has(ab)) {
      for (const t of [a, b, ab]) {
        if (!vocab.has(t)) {
          throw new EngineError(`${path}: merge ${i + 1} ("${a} ${b}") uses "${t}", which is not in the vocabulary`, path);
        }
      }
      const t = made.has(a) ? b : a;
      throw new EngineError(
        `${path}: ${what} entry ${i + 1} ("${a} ${b}") uses "${t}", which no earlier merge produces; the merges are out of order ` +
          `(BPE applies them by rank, so a reordered list gives other tokens). ${fix}`,
        path,
      );
    }
    made.add(ab);
    const key = a + ' ' + b;
    if (!ranks.has(key)) ranks.set(key, i);
  }
  for (const a of added) {
    const id = vocab.get(a.content);
    if (id !== undefined && id !== a.id) {
      throw new EngineError(
        `${path}: added token ${JSON.stringify(a.content)} has id ${a.id}, but the vocabulary gives it id ${id}; one of the two was edited. ${fix}`,
        path,
      );
    }
  }
  const addedContent = new Set(added.map((t) => t.content));
  const orphans: string[] = [];
  // An added token stored in the vocabulary under its byte-level spelling is not an orphan either.
  for (const t of vocab.keys()) if (!made.has(t) && !addedContent.has(t) && !addedContent.has(byteLevelText(t) ?? '')) orphans.push(t);
  if (orphans.length > 0) {
    const shown = orphans.slice(0, 3).map((t) => JSON.stringify(t)).join(', ');
    throw new EngineError(
      `${path}: ${orphans.length} vocabulary token${orphans.length === 1 ? ' is' : 's are'} made by no merge (e.g. ${shown}); ` +
        `${what} has ${merges.length} entries for ${vocab.size} vocabulary tokens, so it is truncated or emptied and those tokens could never be produced. ${fix}`,
      path,
    );
  }
  checkIdOrder(merges, vocab, path, what, fix);
  return ranks;
}

/**
 * The ids follow the order the vocabulary was built in: the 256 byte tokens in byte order or in
 * GPT-2's (code-point) order, then each merge's result, in merge order. GPT-2's tokenizer and
 * every byte-level BPE trained by Hugging Face tokenizers are built so. Ids exchanged between two
 * tokens, or two merges exchanged whose parts were both made earlier, pass every other check and
 * still give a text other ids; they break this order.
 */
function checkIdOrder(merges: readonly [string, string][], vocab: Map<string, number>, path: string, what: string, fix: string): void {
  const byteIds = BYTE_TO_CHAR.map((c) => vocab.get(c)!);
  const increasing = (order: number[]) => order.every((b, k) => k === 0 || byteIds[b]! > byteIds[order[k - 1]!]!);
  const byByte = [...Array(256).keys()];
  const byCodePoint = [...byByte].sort((a, b) => BYTE_TO_CHAR[a]!.codePointAt(0)! - BYTE_TO_CHAR[b]!.codePointAt(0)!);
  if (!increasing(byByte) && !increasing(byCodePoint)) {
    const k = byCodePoint.findIndex((b, i) => i > 0 && byteIds[b]! < byteIds[byCodePoint[i - 1]!]!);
    const [x, y] = [BYTE_TO_CHAR[byCodePoint[k - 1]!]!, BYTE_TO_CHAR[byCodePoint[k]!]!];
    throw new EngineError(
      `${path}: the 256 byte tokens' ids are in neither byte order nor GPT-2's order (e.g. ${JSON.stringify(x)} is id ${vocab.get(x)} and ${JSON.stringify(y)} is id ${vocab.get(y)}); ` +
        `ids exchanged between tokens would encode text as other tokens. ${fix}`,
      path,
    );
  }
  const topByte = Math.max(...byteIds);
  const seen = new Set<string>();
  let prev = topByte;
  let prevAt = -1;
  merges.forEach(([a, b], i) => {
    const t = a + b;
    if (seen.has(t)) return;
    seen.add(t);
    const id = vocab.get(t)!;
    if (id <= prev) {
      const before = prevAt < 0 ? `the byte tokens go up to id ${topByte}` : `${what} entry ${prevAt + 1} made ${JSON.stringify(merges[prevAt]![0] + merges[prevAt]![1])}, id ${prev}`;
      throw new EngineError(
        `${path}: ${what} entry ${i + 1} ("${a} ${b}") makes ${JSON.stringify(t)}, id ${id}, but ${before}; a BPE vocabulary numbers merge results in merge order, ` +
          `so the vocabulary's ids were exchanged or the merges reordered (either gives a text other ids). ${fix}`,
        path,
      );
    }
    prev = id;
    prevAt = i;
  });
}

/** Tokenizers built so far, by the sha256 of their file(s), least recently used first (Tokenizer.built). */
const BUILT = new Map<string, Tokenizer>();
const BUILT_MAX = 3;

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function readSmallFile(path: string, what: string): Uint8Array {
  try {
    const b = fs.readFileSync(path);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new EngineError(`cannot read ${what} ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a folder' : (e as Error).message}`, path);
  }
}

/** Strict UTF-8 (a UTF-8 byte-order mark is dropped): a bad byte would silently become U+FFFD inside a token. */
function decodeUtf8(bytes: Uint8Array, path: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new EngineError(`${path} is not valid UTF-8 (first bad byte at offset ${firstInvalidUtf8(bytes, 0)}); re-download the file or re-save it as UTF-8`, path);
  }
}

function parseJsonObject(text: string, path: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new EngineError(`${path} is not valid JSON: ${(e as Error).message}`, path);
  }
  if (!isObject(v)) throw new EngineError(`${path} must contain a JSON object, not ${describe(v)}`, path);
  return v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Far above any real vocabulary (~260k tokens), low enough that an id cannot size a runaway table. */
const MAX_ID = 2 ** 24 - 1;

function isId(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= MAX_ID;
}

function describe(v: unknown): string {
  if (isObject(v) && typeof v.type === 'string') return `"${v.type}"`;
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + '...' : s;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
