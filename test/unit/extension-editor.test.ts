// The editor's pure helpers (src/engine/editor.ts, src/engine/promptRun.ts encodeSliced, the hover
// layout in src/view/hoverContent.ts): position → token on multi-byte text (emoji, CJK,
// combining marks), top-K at a token, the shared heat-map scale, neuron names.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import {
  continuationTokens,
  heatLevel,
  heatLevels,
  heatScale,
  neuronLabel,
  neuronSeries,
  parseNeuronRef,
  tokenAtOffset,
  topNeuronsAt,
} from '../../src/engine/editor';
import { encodeSliced, safeSplitPoint } from '../../src/engine/promptRun';
import { encodeWithBos, Tokenizer } from '../../src/engine/tokenizer';
import { commandUri, familyCell, hoverMarkdown, mdLiteral } from '../../src/view/hoverContent';

const ROOT = resolve(__dirname, '..', '..');
const tok = Tokenizer.fromTokenizerJson(join(ROOT, 'models', 'gpt2-tokenizer', 'tokenizer.json'));

function tokens(text: string) {
  const e = encodeWithBos(tok, text);
  return e.ids.map((id, i) => ({ id, start: e.starts[i]!, end: e.ends[i]! }));
}

/** Every character offset maps to the token whose range holds it, and that token's first byte is in it. */
function checkEveryOffset(text: string) {
  const ts = tokens(text);
  for (let o = 0; o < text.length; o++) {
    const t = tokenAtOffset(ts, o);
    assert.ok(t > 0, `offset ${o} of ${JSON.stringify(text)} maps to no text token`);
    assert.ok(ts[t]!.start <= o && o < ts[t]!.end, `offset ${o} → token ${t} [${ts[t]!.start},${ts[t]!.end})`);
  }
  // End of text: the last token with characters.
  const last = ts.map((t, i) => [t, i] as const).filter(([t]) => t.end > t.start).pop()![1];
  assert.equal(tokenAtOffset(ts, text.length), last);
  assert.equal(tokenAtOffset(ts, text.length + 1), -1);
  assert.equal(tokenAtOffset(ts, -1), -1);
  return ts;
}

test('position → token: ASCII, every offset, BOS never chosen', () => {
  const ts = checkEveryOffset('The cat sat on the mat.\n\nIt  was  warm.');
  assert.equal(tokenAtOffset(ts, 0), 1);
});

test('position → token: emoji (surrogate pairs split across byte-level tokens)', () => {
  const text = 'hi 😀 there 👩‍👩‍👧 ok';
  const ts = checkEveryOffset(text);
  // Both UTF-16 halves of 😀 (offsets 3 and 4) belong to the token that holds its first byte.
  const a = tokenAtOffset(ts, 3);
  assert.equal(tokenAtOffset(ts, 4), a);
  // The bytes that follow in other tokens have empty ranges at the character's end: shown together.
  const cont = continuationTokens(ts, a);
  assert.ok(cont.length >= 1, 'expected continuation tokens after the emoji');
  for (const i of cont) assert.equal(ts[i]!.start, ts[i]!.end);
});

test('position → token: CJK (three-byte characters, some split in two tokens)', () => {
  const text = '日本語のテキストと中文文本。';
  const ts = checkEveryOffset(text);
  for (let o = 0; o < text.length; o++) {
    const t = ts[tokenAtOffset(ts, o)]!;
    assert.ok(t.end - t.start >= 1);
  }
});

test('position → token: combining marks and precomposed letters', () => {
  const text = 'cafe\u0301 noe\u0308l — Å Å ñ n\u0303';
  checkEveryOffset(text);
});

test('position → token: empty text and BOS-only', () => {
  assert.equal(tokenAtOffset([], 0), -1);
  assert.equal(tokenAtOffset(tokens(''), 0), -1);
});

test('topNeuronsAt: across layers, ties to lower layer then index, NaN never ranks', () => {
  const T = 2;
  const d = 3;
  // token 1 values: layer0 [1, 5, NaN], layer1 [5, 2, 9]
  const l0 = Float32Array.from([0, 0, 0, 1, 5, NaN]);
  const l1 = Float32Array.from([0, 0, 0, 5, 2, 9]);
  const top = topNeuronsAt([l0, l1], T, 1, 3);
  assert.deepEqual(
    top.map((n) => [n.layer, n.neuron, n.value]),
    [
      [1, 2, 9],
      [0, 1, 5],
      [1, 0, 5],
    ],
  );
  assert.equal(d, 3);
  assert.deepEqual(topNeuronsAt([l0, l1], T, 5, 3), []);
  assert.deepEqual(topNeuronsAt([l0, l1], T, 1, 0), []);
});

test('neuronSeries: one column per token; bad refs give an empty series', () => {
  const l0 = Float32Array.from([1, 2, 3, 4, 5, 6]); // T=3, d=2
  assert.deepEqual([...neuronSeries([l0], 3, { layer: 0, neuron: 1 })], [2, 4, 6]);
  assert.equal(neuronSeries([l0], 3, { layer: 1, neuron: 0 }).length, 0);
  assert.equal(neuronSeries([l0], 3, { layer: 0, neuron: 2 }).length, 0);
});

test('heat scale: shared, symmetric, skips BOS and non-finite values', () => {
  const v = [100, -0.5, 2, 0.05, NaN, -1];
  const s = heatScale(v, 1);
  assert.deepEqual(s, { min: -1, max: 2, absMax: 2, count: 4 });
  assert.equal(heatLevel(2, s, 5), 5);
  assert.equal(heatLevel(-1, s, 5), -3); // 0.5 of absMax → ceil(2.5)
  assert.equal(heatLevel(0.05, s, 5), 0); // inside the 5% dead zone
  assert.equal(heatLevel(0.2, s, 5), 1);
  assert.equal(heatLevel(NaN, s, 5), 0);
  assert.deepEqual([...heatLevels(v, s, 5, 1)], [0, -2, 5, 0, 0, -3]);
  const flat = heatScale([0, 0, 0]);
  assert.equal(flat.absMax, 0);
  assert.deepEqual([...heatLevels([0, 0, 0], flat, 5)], [0, 0, 0]);
  assert.deepEqual(heatScale([]), { min: 0, max: 0, absMax: 0, count: 0 });
});

test('neuron names: L3.N120 and friends, range checks', () => {
  for (const s of ['L3.N120', 'l3.n120', 'L3N120', 'L3 N120', ' 3.120 ', '3:120', '3/120', 'L3:N120']) {
    assert.deepEqual(parseNeuronRef(s), { layer: 3, neuron: 120 }, s);
  }
  for (const s of ['', 'L3', 'N120', 'L3.N', 'x3.120', '3.120.1', 'L-1.N2']) assert.equal(parseNeuronRef(s), undefined, s);
  assert.equal(parseNeuronRef('L4.N0', { nLayers: 4, dMlp: 512 }), undefined);
  assert.equal(parseNeuronRef('L3.N512', { nLayers: 4, dMlp: 512 }), undefined);
  assert.deepEqual(parseNeuronRef('L3.N511', { nLayers: 4, dMlp: 512 }), { layer: 3, neuron: 511 });
  assert.equal(neuronLabel({ layer: 2, neuron: 7 }), 'L2.N7');
});

test('encodeSliced equals encodeWithBos on long mixed text, and yields between slices', async () => {
  const corpus = readFileSync(join(ROOT, 'models', 'corpus', 'heldout.jsonl'), 'utf8')
    .split('\n')
    .slice(0, 12)
    .map((l) => (l ? (JSON.parse(l) as { text: string }).text : ''))
    .join('\n\n');
  const text = corpus.slice(0, 60_000) + ' 😀 日本語 cafe\u0301  two  spaces\n\n\nend';
  let yields = 0;
  const sliced = await encodeSliced(tok, text, { sliceChars: 2000, yieldFn: async () => void yields++ });
  const whole = encodeWithBos(tok, text);
  assert.ok(yields >= 10, `only ${yields} yields`);
  assert.deepEqual(sliced.ids, whole.ids);
  assert.deepEqual(sliced.starts, whole.starts);
  assert.deepEqual(sliced.ends, whole.ends);
});

test('encodeSliced: stops past the token limit; split points are safe', async () => {
  await assert.rejects(encodeSliced(tok, 'word '.repeat(5000), { sliceChars: 500, maxTokens: 1000, yieldFn: async () => {} }), /more than 999 tokens/);
  assert.equal(safeSplitPoint('abc def', 0, 6), 3);
  assert.equal(safeSplitPoint('abc  def', 0, 7), -1); // double space: the pre-tokenizer splits it differently
  assert.equal(safeSplitPoint('abc. def', 0, 7), -1);
  // Texts without safe points (CJK, digits) still encode exactly.
  const cjk = '日本語'.repeat(400);
  const s = await encodeSliced(tok, cjk, { sliceChars: 100, yieldFn: async () => {} });
  assert.deepEqual(s.ids, encodeWithBos(tok, cjk).ids);
});

test('hover Markdown: literal token text, command links with JSON args, universal marks', () => {
  assert.equal(mdLiteral('a*b_[c]\n'), 'a\\*b\\_\\[c\\]\\\\n');
  const uri = commandUri('universalNeurons.showNeuron', [{ layer: 1, neuron: 2 }]);
  assert.equal(uri, 'command:universalNeurons.showNeuron?' + encodeURIComponent('[{"layer":1,"neuron":2}]'));
  const md = hoverMarkdown({
    tokenIndex: 3,
    nTokens: 10,
    text: ' cat',
    id: 3797,
    start: 3,
    end: 7,
    line: 0,
    character: 3,
    top: [
      { layer: 3, neuron: 120, value: 2.5, universal: true, excess: 0.61, family: 'unigram' },
      { layer: 0, neuron: 5, value: 1.25, excess: 0.1 },
    ],
    model: 'tiny-gpt2-a',
    runId: 'r1',
    heat: { label: 'L3.N120', value: 2.5 },
  });
  assert.match(md, /token 3 of 9/);
  assert.match(md, /id 3797/);
  assert.match(md, /\[L3\.N120\]\(command:universalNeurons\.showNeuron\?/);
  assert.match(md, /\| 2\.500 \| ★ excess 0\.610 \| unigram \| /);
  assert.match(md, /\| 1\.250 \| excess 0\.100 \|  \| /);
  assert.match(md, /\[heat-map\]\(command:universalNeurons\.heatmapNeuron\?/);
  assert.match(md, /Heat-map L3\.N120: \*\*2\.500\*\*/);
});

test('hover Markdown: family with its label in words, VR and roles; old runs keep the narrow table', () => {
  const base = { tokenIndex: 1, nTokens: 4, text: ' the', id: 262, start: 0, end: 4, line: 0, character: 0, model: 'm' };
  const md = hoverMarkdown({
    ...base,
    top: [
      { layer: 0, neuron: 1, value: 2, universal: true, excess: 0.7, family: 'unigram', familyLabel: 'unigram:the', familyVr: 0.623, roles: ['prediction'] },
      { layer: 1, neuron: 2, value: 1, excess: 0.1, family: 'previous-token', familyLabel: 'prev:alphabet:t', familyVr: 0.4, roles: [] },
      { layer: 2, neuron: 3, value: 0.5, excess: 0.2, family: 'unexplained', familyLabel: 'pos:NOUN', familyVr: 0.05, roles: ['entropy', 'partition'] },
      { layer: 3, neuron: 4, value: 0.25, excess: 0.2, family: 'position', familyLabel: 'position:<32', familyVr: 0.5 },
    ],
  });
  assert.match(md, /\| neuron \| hook_post \| universal \| family · role \| \|/);
  assert.match(md, /\| ★ excess 0\.700 \| unigram: token is “the” \(VR 0\.62\) · prediction \|/);
  assert.match(md, /\| previous token is the letter t \(VR 0\.40\) \|/);
  // Unexplained: no family text, the roles still shown.
  assert.match(md, /\| excess 0\.200 \| entropy, partition \|/);
  // Markdown-special characters of a label are literal.
  assert.match(md, /\| position \\< 32 \(VR 0\.50\) \|/);
  assert.equal(familyCell({ layer: 0, neuron: 0, value: 0 }), '');
  const old = hoverMarkdown({ ...base, top: [{ layer: 0, neuron: 1, value: 2, universal: true, excess: 0.7 }] });
  assert.match(old, /\| neuron \| hook_post \| universal \| \|\n\|:--\|--:\|:--\|:--\|/);
});
