// Corpus reader: EOS joins, TransformerLens rows, the token budget, the keep filter, file kinds,
// deterministic folder order and the errors for bad input.
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { EOS, isKept, listCorpusFiles, NEWLINE, readCorpus, row } from '../../src/engine/corpus';
import { EngineError } from '../../src/engine/errors';
import { Tokenizer } from '../../src/engine/tokenizer';

const ROOT = join(__dirname, '..', '..');
const HELDOUT_BIN = join(ROOT, 'models', 'corpus', 'heldout.tokens.bin');
const tmp = mkdtempSync(join(tmpdir(), 'un-corpus-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// A stand-in tokenizer: each character becomes its code point (+1000 so no id collides with EOS
// or "\n"), except "\n" → 198. Enough to check joins and cuts exactly.
const encode = (t: string): number[] => [...t].map((c) => (c === '\n' ? NEWLINE : 1000 + c.codePointAt(0)!));

function file(name: string, content: string | Uint8Array): string {
  const p = join(tmp, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, content);
  return p;
}

function u16(ids: number[]): Uint8Array {
  const b = Buffer.alloc(ids.length * 2);
  ids.forEach((id, i) => b.writeUInt16LE(id, 2 * i));
  return new Uint8Array(b);
}

describe('rows', () => {
  test('documents joined with EOS, rows of BOS + ctx−1 tokens, the tail dropped', () => {
    const a = file('rows/a.txt', 'abcde');
    const b = file('rows/b.txt', 'fgh\nij');
    const c = readCorpus({ paths: [a, b], nPositions: 4, tokens: 1000, encode });
    const stream = [...encode('abcde'), EOS, ...encode('fgh\nij')]; // 12 tokens → 4 rows of 3
    assert.equal(c.nRows, Math.floor(stream.length / 3));
    for (let r = 0; r < c.nRows; r++) assert.deepEqual(row(c, r), [EOS, ...stream.slice(3 * r, 3 * r + 3)]);
    assert.equal(c.tokens.used, c.nRows * 4);
    assert.equal(c.tokens.available, c.nRows * 4);
    // Kept: everything but BOS/EOS and "\n".
    const all = Array.from(c.ids);
    assert.equal(c.tokens.kept, all.filter((id) => id !== EOS && id !== NEWLINE).length);
    assert.ok(c.warnings.some((w) => /larger than the corpus/.test(w)), 'budget beyond the corpus warns');
    assert.equal(c.files.length, 2);
    assert.match(c.files[0]!.sha256!, /^[0-9a-f]{64}$/);
    assert.match(c.hash, /^[0-9a-f]{64}$/);
  });

  test('the budget takes the first whole rows and stops reading', () => {
    const a = file('budget/a.txt', 'abcdefghijklmnopqrstuvwxyz');
    const b = file('budget/b.txt', 'zyx');
    const c = readCorpus({ paths: [a, b], nPositions: 5, tokens: 11, encode });
    assert.equal(c.nRows, 2);
    assert.deepEqual(row(c, 1), [EOS, ...encode('efgh')]);
    assert.equal(c.tokens.requested, 11);
    assert.equal(c.tokens.used, 10);
    assert.equal(c.tokens.available, null, 'not read to the end');
    assert.equal(c.files[1]!.read, false);
    assert.equal(c.files[1]!.sha256, undefined);
    assert.ok(c.warnings.some((w) => /not a multiple/.test(w)));
    // Same inputs, same budget: the same rows and hash; another budget: another hash.
    assert.equal(readCorpus({ paths: [a, b], nPositions: 5, tokens: 11, encode }).hash, c.hash);
    assert.notEqual(readCorpus({ paths: [a, b], nPositions: 5, tokens: 15, encode }).hash, c.hash);
  });

  test('isKept drops exactly 50256 and 198', () => {
    assert.equal(isKept(EOS), false);
    assert.equal(isKept(NEWLINE), false);
    assert.equal(isKept(0), true);
    assert.equal(isKept(197), true);
  });
});

describe('file kinds', () => {
  test('jsonl: one document per "text" field; blank lines skipped', () => {
    const p = file('j/docs.jsonl', '{"text":"ab","source":"x"}\n\n{"text":"cd"}\r\n{"text":"efg"}\n');
    const c = readCorpus({ paths: [p], nPositions: 3, tokens: 300, encode });
    const stream = [...encode('ab'), EOS, ...encode('cd'), EOS, ...encode('efg')];
    assert.deepEqual(Array.from(c.ids), [EOS, ...stream.slice(0, 2), EOS, ...stream.slice(2, 4), EOS, ...stream.slice(4, 6), EOS, ...stream.slice(6, 8)]);
    assert.equal(c.files[0]!.documents, 3);
  });

  test('jsonl without a text field names file and line', () => {
    const p = file('j/bad.jsonl', '{"text":"ab"}\n{"body":"cd"}\n');
    assert.throws(() => readCorpus({ paths: [p], nPositions: 3, tokens: 30, encode }), (e: Error) => e instanceof EngineError && e.message.includes(`${p}:2`));
    const q = file('j/broken.jsonl', '{"text":"ab"}\n{"text":\n');
    assert.throws(() => readCorpus({ paths: [q], nPositions: 3, tokens: 30, encode }), (e: Error) => e instanceof EngineError && e.message.includes(`${q}:2`));
  });

  test('.tokens.bin is read as uint16 ids, joined to other inputs with one EOS', () => {
    const bin = file('t/x.tokens.bin', u16([5, 6, EOS, 7, 8, 9]));
    const txt = file('t/y.txt', 'ab');
    const c = readCorpus({ paths: [txt, bin], nPositions: 4, tokens: 400, encode });
    const stream = [...encode('ab'), EOS, 5, 6, EOS, 7, 8, 9];
    assert.deepEqual(row(c, 0), [EOS, ...stream.slice(0, 3)]);
    assert.deepEqual(row(c, 2), [EOS, ...stream.slice(6, 9)]);
    assert.equal(c.files[1]!.documents, 2);
    const odd = file('t/odd.tokens.bin', new Uint8Array([1, 2, 3]));
    assert.throws(() => readCorpus({ paths: [odd], nPositions: 2, tokens: 2 }), /whole number of uint16/);
  });

  test('the shipped held-out tokens: rows are the file cut as TransformerLens cuts it', () => {
    const c = readCorpus({ paths: [HELDOUT_BIN], nPositions: 128, tokens: 128 * 3 });
    const buf = require('node:fs').readFileSync(HELDOUT_BIN) as Buffer;
    const ids = (i: number) => buf.readUInt16LE(2 * i);
    assert.equal(c.nRows, 3);
    for (let t = 1; t < 128; t++) assert.equal(c.ids[2 * 128 + t], ids(2 * 127 + t - 1));
  });

  test('folders: files sorted by relative path, other extensions skipped', () => {
    file('f/b.txt', 'b');
    file('f/a/z.md', 'z');
    file('f/A.jsonl', '{"text":"A"}\n');
    file('f/notes.csv', 'x,y');
    file('f/.hidden.txt', 'h');
    const { files, skipped } = listCorpusFiles([join(tmp, 'f')]);
    assert.deepEqual(
      files.map((f) => f.path.slice(tmp.length + 3)),
      ['A.jsonl', 'a/z.md', 'b.txt'],
    );
    assert.deepEqual(skipped.map((s) => s.slice(tmp.length + 3)), ['notes.csv']);
    const empty = join(tmp, 'emptyfolder');
    mkdirSync(empty);
    assert.throws(() => listCorpusFiles([empty]), /holds no \.txt/);
  });

  test('real tokenizer: a text file tokenizes as the model would', () => {
    const tok = Tokenizer.fromTokenizerJson(join(ROOT, 'models', 'tiny-gpt2-a', 'tokenizer.json'));
    const text = 'The whale surfaced.\nCall me Ishmael. '.repeat(20);
    const p = file('real.txt', text);
    const c = readCorpus({ paths: [p], nPositions: 16, tokens: 32, encode: (t) => tok.encode(t).ids });
    assert.deepEqual(row(c, 0).slice(1), tok.encode(text).ids.slice(0, 15));
  });
});

describe('bad input', () => {
  test('a corpus shorter than one row is a clear error', () => {
    const p = file('short.txt', 'abc');
    assert.throws(
      () => readCorpus({ paths: [p], nPositions: 128, tokens: 10_000, encode }),
      (e: Error) => e instanceof EngineError && /fewer than one row of 128/.test(e.message),
    );
  });

  test('a budget under one row is refused', () => {
    const p = file('ok.txt', 'abcdefgh');
    assert.throws(() => readCorpus({ paths: [p], nPositions: 4, tokens: 3, encode }), /less than one row/);
  });

  test('binary, non-UTF-8 and missing files are named', () => {
    const bin = file('bad/bin.txt', new Uint8Array([0x61, 0x00, 0x62]));
    const latin = file('bad/latin1.txt', new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x20, 0x61]));
    for (const p of [bin, latin, join(tmp, 'bad', 'missing.txt')]) {
      assert.throws(
        () => readCorpus({ paths: [p], nPositions: 2, tokens: 2, encode }),
        (e: Error) => e instanceof EngineError && e.message.includes(p),
        p,
      );
    }
    assert.throws(() => readCorpus({ paths: [bin], nPositions: 2, tokens: 2, encode }), /binary/);
    assert.throws(() => readCorpus({ paths: [latin], nPositions: 2, tokens: 2, encode }), /UTF-8/);
  });
});

describe('document labels and POS tags', () => {
  const tok = Tokenizer.fromTokenizerJson(join(ROOT, 'models', 'gpt2-tokenizer', 'tokenizer.json'));

  test('jsonl records give each token its document (source, topic) and Brown tags their universal POS', () => {
    const p = file(
      'labels/a.jsonl',
      [
        JSON.stringify({ source: 'news', topic: 'news/sport', text: 'The cat sat.', tagged: [[['The', 'at'], ['cat', 'nn'], ['sat', 'vbd'], ['.', '.']]] }),
        JSON.stringify({ text: 'The text here' }),
      ].join('\n'),
    );
    const c = readCorpus({ paths: [p], nPositions: 9, tokens: 9, encode: (s) => tok.encode(s) }); // one row: BOS + all 8 tokens
    assert.deepEqual(c.documents, [{ source: 'news', topic: 'news/sport' }, { source: 'a' }]);
    const text = Array.from(c.ids, (id) => tok.tokenString(id));
    assert.deepEqual(text, ['<|endoftext|>', 'The', ' cat', ' sat', '.', '<|endoftext|>', 'The', ' text', ' here']);
    assert.deepEqual(Array.from(c.doc.subarray(0, 9)), [-1, 0, 0, 0, 0, -1, 1, 1, 1]);
    // NOUN=0, VERB=1, DET=5, '.'=10 in labels.POS_TAGS; untagged documents −1.
    assert.deepEqual(Array.from(c.pos!.subarray(0, 9)), [-1, 5, 0, 1, 10, -1, -1, -1, -1]);
  });

  test('a .tokens.bin is one source named after its file; no tags, no POS array', () => {
    const p = file('labels/bible.tokens.bin', u16([1000, 1001, EOS, 1002, 1003, 1004]));
    const c = readCorpus({ paths: [p], nPositions: 6, tokens: 6 });
    assert.deepEqual(c.documents, [{ source: 'bible' }, { source: 'bible' }]);
    assert.deepEqual(Array.from(c.doc), [-1, 0, 0, -1, 1, 1]);
    assert.equal(c.pos, undefined);
  });

  test('the shipped held-out jsonl tokenizes to the ids of heldout.tokens.bin, document for document', () => {
    const jsonl = readCorpus({ paths: [join(ROOT, 'models', 'corpus', 'heldout.jsonl')], nPositions: 128, tokens: 1e9, encode: (s) => tok.encode(s) });
    const bin = readCorpus({ paths: [HELDOUT_BIN], nPositions: 128, tokens: 1e9 });
    assert.equal(jsonl.tokens.used, bin.tokens.used);
    assert.equal(jsonl.documents.length, 206);
    const sources = new Set(jsonl.documents.map((d) => d.source));
    assert.deepEqual([...sources].sort(), ['brown', 'kjv', 'moby-dick', 'sotu']);
    // The jsonl alternates sources: the first 40,960 tokens (the demo) hold all four and Brown's tags.
    const demo = new Set<string>();
    let tagged = 0;
    for (let g = 0; g < 40960; g++) {
      if (jsonl.doc[g]! >= 0) demo.add(jsonl.documents[jsonl.doc[g]!]!.source);
      if (jsonl.pos![g]! >= 0) tagged++;
    }
    assert.equal(demo.size, 4);
    assert.ok(tagged > 2000, `${tagged} tagged tokens in the demo's budget`);
  });
});
