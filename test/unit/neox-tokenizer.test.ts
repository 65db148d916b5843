// The GPT-NeoX (Pythia) tokenizer: tokenizer.json with an NFC normalizer, <|endoftext|> id 0,
// <|padding|> id 1 and added runs of spaces, on the Pythia-like file of the NeoX fixtures
// (tools/torch_reference_neox.py says how it differs from Pythia's own). Ids are checked against
// @huggingface/tokenizers and against the Python reference tokenizer of that script.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import { keptFilter } from '../../src/engine/corpus';
import { encodeSliced } from '../../src/engine/promptRun';
import { encodeWithBos, nfcWithMap, Tokenizer } from '../../src/engine/tokenizer';

const FIXTURES = join(__dirname, '..', 'fixtures');
const PATH = join(FIXTURES, 'neox-14m', 'tokenizer.json');
const tok = Tokenizer.fromTokenizerJson(PATH);
const hf = new HFTokenizer(JSON.parse(readFileSync(PATH, 'utf8')), {});
const hfIds = (s: string) => hf.encode(s, { add_special_tokens: false }).ids;
const golden = JSON.parse(readFileSync(join(FIXTURES, 'golden', 'neox-tokenizer.json'), 'utf8')) as { texts: { text: string; ids: number[] }[] };

const MIXED = [
  'Multilingual: naïve café Zürich, Ελληνικά, русский текст, العربية, हिन्दी, עברית, 日本語のテキスト、中文字符。한국어 🤗 👩‍💻 🇫🇷.',
  'Code:\n\tdef f(x):\n        return {"a": [1, 2,  3]}   # three spaces\n' + ' '.repeat(40) + 'deep()\r\n\r\n}',
  'Whitespace:  two   three    four' + ' '.repeat(24) + '24' + ' '.repeat(25) + '25 \u3000\u00a0\u2009 end  \n\n  ',
  'Decomposed: cafe\u0301 A\u030a \u212b o\u0308\u0304 \u1100\u1161\u11a8 \u0915\u093c; specials <|endoftext|><|padding|> and <|endoftext|> again',
].join('\n');

test('ids equal the Python reference (tools/torch_reference_neox.py) on its texts', () => {
  for (const t of golden.texts) assert.deepEqual(tok.encode(t.text).ids, t.ids, JSON.stringify(t.text.slice(0, 40)));
});

test('ids equal @huggingface/tokenizers on multilingual, code and whitespace text', () => {
  const mine = tok.encode(MIXED).ids;
  assert.ok(mine.length > 300);
  assert.deepEqual(mine, hfIds(MIXED));
  for (const line of MIXED.split('\n')) assert.deepEqual(tok.encode(line).ids, hfIds(line), JSON.stringify(line));
  for (const t of golden.texts) assert.deepEqual(hfIds(t.text), t.ids, `the reference agrees with HF on ${JSON.stringify(t.text.slice(0, 30))}`);
});

test('special and whitespace tokens: <|endoftext|> 0 is BOS and EOS, runs of spaces are added tokens', () => {
  assert.equal(tok.bosId, 0);
  assert.equal(tok.eosId, 0);
  assert.equal(tok.vocabSize, 481);
  assert.deepEqual(encodeWithBos(tok, 'a').ids.slice(0, 1), [0]);
  const spaces = (n: number) => tok.encode(' '.repeat(n)).ids;
  // 24 spaces is the longest added run; 30 = 24 + 6; a single space is ordinary BPE.
  assert.equal(spaces(24).length, 1);
  assert.equal(tok.tokenRaw(spaces(24)[0]!), ' '.repeat(24));
  assert.deepEqual(spaces(30).map((id) => tok.tokenRaw(id)!.length), [24, 6]);
  assert.deepEqual(tok.encode('a  b').ids.map((id) => tok.tokenString(id)), ['a', '  ', 'b']);
  assert.deepEqual(tok.encode('<|padding|>').ids, [1]);
});

test('character ranges tile the ORIGINAL text, also where NFC changes it', () => {
  for (const text of [MIXED, ...golden.texts.map((t) => t.text)]) {
    const e = tok.encode(text);
    let at = 0;
    e.ids.forEach((_, i) => {
      assert.equal(e.starts[i], at, `token ${i} of ${JSON.stringify(text.slice(0, 20))} starts where the previous ended`);
      assert.ok(e.ends[i]! >= e.starts[i]!);
      at = e.ends[i]!;
    });
    assert.equal(at, text.length);
    // Each token's range, normalized, is the token's text (decoded pieces of a split character aside).
    const pieces = e.ids.map((_, i) => text.slice(e.starts[i], e.ends[i]).normalize('NFC'));
    assert.equal(pieces.join(''), text.normalize('NFC'));
  }
  // "cafe\u0301": NFC makes "café"; the token holding é covers both original code units.
  const text = 'x cafe\u0301 y';
  const e = tok.encode(text);
  const k = e.ids.findIndex((_, i) => text.slice(e.starts[i], e.ends[i]).includes('\u0301'));
  assert.ok(k >= 0 && text.slice(e.starts[k], e.ends[k]).endsWith('e\u0301'));
  assert.equal(tok.decode(e.ids), text.normalize('NFC'));
});

test('nfcWithMap: undefined for NFC text; a non-decreasing map from NFC boundaries to original ones', () => {
  assert.equal(nfcWithMap('already NFC: café'), undefined);
  const m = nfcWithMap('ae\u0301b\u212b\u1100\u1161\u11a8c')!;
  assert.equal(m.norm, 'aébÅ각c');
  assert.deepEqual([...m.toOrig], [0, 1, 3, 4, 5, 8, 9]);
  // The one NFC expansion: U+0958 (a composition exclusion) becomes two code units.
  const x = nfcWithMap('a\u0958b')!;
  assert.equal(x.norm, 'a\u0915\u093cb');
  assert.deepEqual([...x.toOrig], [0, 1, 2, 2, 3]);
});

test('the NFC normalizer is part of the tokenizer fingerprint; other normalizers are refused', () => {
  const json = JSON.parse(readFileSync(PATH, 'utf8'));
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'un-neox-tok-'));
  try {
    fs.writeFileSync(join(dir, 'none.json'), JSON.stringify({ ...json, normalizer: null }));
    assert.notEqual(Tokenizer.fromTokenizerJson(join(dir, 'none.json')).fingerprint(), tok.fingerprint());
    fs.writeFileSync(join(dir, 'nfkc.json'), JSON.stringify({ ...json, normalizer: { type: 'NFKC' } }));
    assert.throws(() => Tokenizer.fromTokenizerJson(join(dir, 'nfkc.json')), /nfkc\.json: normalizer "NFKC" is not supported; .*GPT-NeoX's \(Pythia's\) is NFC/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the statistics filter drops this tokenizer\'s <|endoftext|> (0) and "\\n", not GPT-2\'s ids', () => {
  const kept = keptFilter(tok);
  const nl = tok.encode('\n').ids;
  assert.equal(nl.length, 1);
  assert.equal(kept(0), false);
  assert.equal(kept(nl[0]!), false);
  assert.equal(kept(198), true);
  assert.equal(kept(tok.encode('a').ids[0]!), true);
});

test('the editor\'s sliced encoding (promptRun.ts safe split points) equals the whole text\'s, NFC and whitespace tokens included', async () => {
  const text = (MIXED + '\n').repeat(30);
  const whole = encodeWithBos(tok, text);
  const sliced = await encodeSliced(tok, text, { sliceChars: 64, yieldFn: async () => {} });
  assert.deepEqual(sliced, whole);
});

test('whitespace tokens also stored in model.vocab under their byte-level spelling ("ĠĠ") are the same tokens', () => {
  const json = JSON.parse(readFileSync(PATH, 'utf8'));
  const two = (json.added_tokens as { id: number; content: string }[]).find((t) => t.content === '  ')!;
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'un-neox-tok-'));
  try {
    for (const [name, withMerge] of [['orphan.json', false], ['merged.json', true]] as const) {
      const j = JSON.parse(JSON.stringify(json));
      j.model.vocab['ĠĠ'] = two.id;
      if (withMerge) j.model.merges.push('Ġ Ġ');
      fs.writeFileSync(join(dir, name), JSON.stringify(j));
      const t = Tokenizer.fromTokenizerJson(join(dir, name));
      const h = new HFTokenizer(j, {});
      assert.deepEqual(t.encode(MIXED).ids, h.encode(MIXED, { add_special_tokens: false }).ids, name);
      assert.deepEqual(t.encode(MIXED).ids, tok.encode(MIXED).ids, name);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
