/**
 * Neuron families (FamilyStats, src/engine/analysis/families.ts; the shipped model family is
 * shipped-models.test.ts) on planted data: the real held-out corpus (real tokens, tags, documents) with
 * synthetic activations whose explanation is known, fed through FamilyStats in batches.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { assignFamilies, corpusClasses, FamilyStats, labelAt, positionCuts, type FamilyStatsOptions } from '../../src/engine/analysis/families';
import type { ActivationBatch } from '../../src/engine/analysis/types';
import { isKept, readCorpus } from '../../src/engine/corpus';
import { normaliseToken, POS_TAGS } from '../../src/engine/labels';
import { Tokenizer } from '../../src/engine/tokenizer';
import { rng } from '../helpers/synthetic-run';
import { assertSameState } from '../helpers/state';

const ROOT = join(__dirname, '..', '..');
const tok = Tokenizer.fromTokenizerJson(join(ROOT, 'models', 'gpt2-tokenizer', 'tokenizer.json'));
const T = 128;
// All of it: every source (SOTU, Moby Dick, Brown with its tags, KJV) is needed.
const corpus = readCorpus({ paths: [join(ROOT, 'models', 'corpus', 'heldout.jsonl')], nPositions: T, tokens: 1e9, encode: (s) => tok.encode(s) });
const ROWS = corpus.nRows;
const classes = corpusClasses(corpus, tok.vocabSize, (id) => tok.tokenString(id));
const norms = new Map<number, string>();
const norm = (id: number): string => {
  let w = norms.get(id);
  if (w === undefined) norms.set(id, (w = normaliseToken(tok.tokenString(id))));
  return w;
};

/** Planted neurons: what each fires on, as a function of corpus token g. */
// As the paper's code: alphabet is "the token is the letter", and only each letter's best neuron
// joins; "starts with b" is a token feature.
const PLANTS: { name: string; family: string; label: string; fires: (g: number) => boolean; noise?: number; minVr?: number }[] = [
  { name: 'the', family: 'unigram', label: 'unigram:the', fires: (g) => norm(corpus.ids[g]!) === 'the' },
  { name: 'starts with b', family: 'token-feature', label: 'feature:starts-b', fires: (g) => norm(corpus.ids[g]!).startsWith('b') },
  { name: 'after of', family: 'previous-token', label: 'prev:unigram:of', fires: (g) => g % T > 0 && norm(corpus.ids[g - 1]!) === 'of' },
  { name: 'second half', family: 'position', label: 'position:<64', fires: (g) => g % T < 64 },
  { name: 'noun', family: 'syntax', label: 'pos:NOUN', fires: (g) => corpus.pos![g] === POS_TAGS.indexOf('NOUN') },
  { name: 'bible', family: 'semantic', label: 'source:kjv', fires: (g) => corpus.doc[g]! >= 0 && corpus.documents[corpus.doc[g]!]!.source === 'kjv' },
  { name: 'letter a', family: 'alphabet', label: 'alphabet:a', fires: (g) => norm(corpus.ids[g]!) === 'a' },
  // The same letter, noisier: above the alphabet bar but not the letter's best neuron, so the
  // letter's unigram label (the same tokens) files it under unigram.
  { name: 'letter a, weaker', family: 'unigram', label: 'unigram:a', fires: (g) => norm(corpus.ids[g]!) === 'a', noise: 0.1, minVr: 0.5 },
];
const N = PLANTS.length + 1; // the last neuron is noise
const NOISE = 0.02;

function batches(batchRows: number): { batches: ActivationBatch[]; post: number[][]; pre: number[][]; kept: number[] } {
  const r = rng(7);
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const out: ActivationBatch[] = [];
  const post: number[][] = [];
  const pre: number[][] = [];
  const kept: number[] = [];
  for (let r0 = 0; r0 < ROWS; r0 += batchRows) {
    const rows: number[][] = [];
    const keptIndex: number[] = [];
    const kPost: number[] = [];
    const kPre: number[] = [];
    for (let q = r0; q < Math.min(ROWS, r0 + batchRows); q++) {
      rows.push(Array.from(corpus.ids.subarray(q * T, (q + 1) * T)));
      for (let t = 0; t < T; t++) {
        const g = q * T + t;
        if (!isKept(corpus.ids[g]!)) continue;
        keptIndex.push((q - r0) * T + t);
        kept.push(g);
        const vp: number[] = [];
        const vq: number[] = [];
        PLANTS.forEach((p, j) => {
          // POS is planted only where tagged; elsewhere the neuron is noise around 0.
          const on = p.fires(g) ? 1 : 0;
          const v = on + (p.noise ?? NOISE) * gauss();
          vp.push(v);
          // Pre-activation: fires (pre > 0) exactly when planted — for the position MI.
          vq.push(j === 3 ? on - 0.5 : v - 0.5);
        });
        vp.push(gauss());
        vq.push(gauss());
        post.push(vp);
        pre.push(vq);
        kPost.push(...vp);
        kPre.push(...vq);
      }
    }
    const nTokens = rows.length * T;
    const keep = new Uint8Array(nTokens);
    for (const i of keptIndex) keep[i] = 1;
    out.push({
      batchIndex: out.length,
      rows,
      rowStart: r0,
      offsets: rows.map((_, i) => i * T).concat([nTokens]),
      nTokens,
      keep,
      keptIndex: Int32Array.from(keptIndex),
      nKept: keptIndex.length,
      models: [{ pre: new Float32Array(0), post: new Float32Array(0), keptPre: Float32Array.from(kPre), keptPost: Float32Array.from(kPost) }],
    });
  }
  return { batches: out, post, pre, kept };
}

const opts: FamilyStatsOptions = { nNeurons: N, nPositions: T, classes, corpus };
const data = batches(64);

function run(): FamilyStats {
  const f = new FamilyStats(opts);
  for (const b of data.batches) f.add(b);
  return f;
}

/** Population kurtosis (non-excess) of one column. */
function kurtosis(xs: number[]): number {
  const n = xs.length;
  const m = xs.reduce((a, b) => a + b, 0) / n;
  let m2 = 0;
  let m4 = 0;
  for (const x of xs) {
    m2 += (x - m) ** 2;
    m4 += (x - m) ** 4;
  }
  m2 /= n;
  m4 /= n;
  return m4 / (m2 * m2);
}

test('planted neurons come out in their family, with their label and VR > 0.9', () => {
  const ex = run().finish().explain();
  const kurt = Float64Array.from({ length: N }, (_, j) => kurtosis(data.pre.map((p) => p[j]!)));
  const a = assignFamilies(ex, kurt);
  PLANTS.forEach((p, j) => {
    assert.equal(a.family[j], p.family, `${p.name}: family ${a.family[j]} (${a.label[j]}, VR ${a.vr[j]})`);
    assert.equal(a.label[j], p.label, p.name);
    assert.ok(a.vr[j]! > (p.minVr ?? 0.9), `${p.name}: VR ${a.vr[j]}`);
  });
  assert.equal(a.family[N - 1], 'unexplained');
  assert.ok(a.vr[N - 1]! < 0.01, `noise VR ${a.vr[N - 1]}`);
  // MI directly: p = P(pre > 0), p_t per position, averaged over positions that hold kept tokens.
  const fired = new Map<number, [number, number]>();
  let all = 0;
  data.kept.forEach((g, i) => {
    const on = data.pre[i]![3]! > 0 ? 1 : 0;
    all += on;
    const c = fired.get(g % T) ?? [0, 0];
    fired.set(g % T, [c[0] + on, c[1] + 1]);
  });
  const p = all / data.kept.length;
  const xlog = (x: number, y: number): number => (x > 0 ? x * Math.log(x / y) : 0);
  let mi = 0;
  for (const [on, n] of fired.values()) mi += xlog(on / n, p) + xlog(1 - on / n, 1 - p);
  mi /= fired.size;
  assert.ok(Math.abs(ex.positionMi[3]! - mi) < 1e-12 && mi > 0.69, `position MI ${ex.positionMi[3]} vs direct ${mi}`);
});

test('VR equals the direct formula 1 − [(1−β)Var(v|0) + βVar(v|1)]/Var(v) on the same tokens', () => {
  const ex = run().finish().explain();
  const varOf = (xs: number[]): number => {
    const m = xs.reduce((a, b) => a + b, 0) / xs.length;
    return xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length;
  };
  // A label the plants do not decide: tokens starting with a space, on the noise neuron and on the unigram neuron.
  const li = ex.labels.indexOf('feature:space');
  assert.ok(li >= 0);
  const k = ex.kinds.indexOf('feature');
  for (const j of [0, N - 1]) {
    const v = data.post.map((p) => p[j]!);
    const y = data.kept.map((g) => labelAt('feature:space', g, corpus, classes));
    const v1 = v.filter((_, i) => y[i]);
    const v0 = v.filter((_, i) => !y[i]);
    const beta = v1.length / v.length;
    const direct = 1 - ((1 - beta) * varOf(v0) + beta * varOf(v1)) / varOf(v);
    // The best feature label may be another one; compute this label's VR through the same route.
    const best = ex.best[k * N + j]!;
    if (ex.labels[best] === 'feature:space') assert.ok(Math.abs(ex.vr[k * N + j]! - direct) < 1e-9, `neuron ${j}: ${ex.vr[k * N + j]} vs ${direct}`);
    else assert.ok(ex.vr[k * N + j]! >= direct - 1e-9, `neuron ${j}: best feature VR ${ex.vr[k * N + j]} below feature:space ${direct}`);
  }
  // The unigram plant's own label, directly.
  const v = data.post.map((p) => p[0]!);
  const y = data.kept.map((g) => labelAt('unigram:the', g, corpus, classes));
  const v1 = v.filter((_, i) => y[i]);
  const v0 = v.filter((_, i) => !y[i]);
  const beta = v1.length / v.length;
  const direct = 1 - ((1 - beta) * varOf(v0) + beta * varOf(v1)) / varOf(v);
  assert.ok(Math.abs(ex.vr[ex.kinds.indexOf('unigram') * N]! - direct) < 1e-9);
});

test('batching and checkpoint/restore do not change the sums', () => {
  const whole = run();
  const f = new FamilyStats(opts);
  const half = Math.floor(data.batches.length / 2);
  for (const b of data.batches.slice(0, half)) f.add(b);
  const g = FamilyStats.restore(f.state(), opts);
  for (const b of data.batches.slice(half)) g.add(b);
  assert.deepEqual(g.state(), whole.state());
  const other = batches(17);
  const h = new FamilyStats(opts);
  for (const b of other.batches) h.add(b);
  const a = whole.finish().explain();
  const b = h.finish().explain();
  for (let i = 0; i < a.vr.length; i++) assert.ok(Math.abs(a.vr[i]! - b.vr[i]!) < 1e-9);
});

test('a neuron constant over the tokens has VR 0 and MI 0, not NaN', () => {
  const zero = data.batches.map((b) => ({
    ...b,
    models: [{ ...b.models[0]!, keptPost: new Float32Array(b.nKept * N).fill(0.25), keptPre: new Float32Array(b.nKept * N).fill(-1) }],
  }));
  const f = new FamilyStats(opts);
  for (const b of zero) f.add(b);
  const ex = f.finish().explain();
  assert.ok(ex.vr.every((x) => x === 0));
  assert.ok(ex.positionMi.every((x) => x === 0));
  const a = assignFamilies(ex, new Float64Array(N).fill(3));
  assert.ok(a.family.every((x) => x === 'unexplained'));
});

test('position cuts and labels', () => {
  assert.deepEqual(positionCuts(16), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  assert.ok(positionCuts(128).includes(64));
  assert.equal(labelAt('position:<64', 5 * T + 10, corpus, classes), true);
  assert.equal(labelAt('position:=10', 5 * T + 10, corpus, classes), true);
  assert.equal(labelAt('prev:unigram:the', 5 * T, corpus, classes), false, 'position 0 has no previous token');
});

test('the SIMD kernel (default) and the JS loop give bit-identical sums, for post and pre', () => {
  for (const activation of ['post', 'pre'] as const) {
    const a = new FamilyStats({ ...opts, activation, kernel: false });
    const b = new FamilyStats({ ...opts, activation });
    for (const x of data.batches) {
      a.add(x);
      b.add(x);
    }
    assertSameState(a.state(), b.state(), activation);
  }
});
