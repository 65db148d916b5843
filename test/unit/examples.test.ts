import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeExampleStates, TopExamples, TopExamplesOptions, TopExamplesResult } from '../../src/engine/analysis/examples';
import { readExamples, serializeExamples } from '../../src/engine/run/examples';
import type { ActivationBatch } from '../../src/engine/analysis/types';
import { EngineError } from '../../src/engine/errors';
import { rng } from '../helpers/synthetic-run';
import { assertSameState } from '../helpers/state';


type Act = (row: number, pos: number, neuron: number) => number;

/**
 * A batch of corpus rows [rowStart, rowStart + rows.length): post = act(row, pos, neuron)
 * (model m gets act + m·1000 so models are told apart); tokens with id 50256 or 198 are dropped.
 */
function makeBatch(rows: number[][], rowStart: number, N: number, act: Act, batchIndex = 0, nModels = 1): ActivationBatch {
  const offsets = [0];
  for (const r of rows) offsets.push(offsets[offsets.length - 1]! + r.length);
  const T = offsets[rows.length]!;
  const keep = new Uint8Array(T);
  const models = Array.from({ length: nModels }, (_, m) => {
    const post = new Float32Array(T * N);
    rows.forEach((row, r) =>
      row.forEach((id, p) => {
        const t = offsets[r]! + p;
        keep[t] = id === 50256 || id === 198 ? 0 : 1;
        for (let j = 0; j < N; j++) post[t * N + j] = act(rowStart + r, p, j) + m * 1000;
      }),
    );
    return post;
  });
  const keptIndex = Int32Array.from([...keep.keys()].filter((t) => keep[t]));
  const compact = (x: Float32Array): Float32Array => {
    const out = new Float32Array(keptIndex.length * N);
    keptIndex.forEach((t, k) => out.set(x.subarray(t * N, (t + 1) * N), k * N));
    return out;
  };
  return {
    batchIndex,
    rows,
    rowStart,
    offsets,
    nTokens: T,
    keep,
    keptIndex,
    nKept: keptIndex.length,
    models: models.map((post) => ({ pre: post, post, keptPre: compact(post), keptPost: compact(post) })),
  };
}

/** Corpus rows: BOS, then ids 1000·row + pos (a "\n" where newlineAt says so). */
function corpus(nRows: number, len: number, newlineAt: (r: number, p: number) => boolean = () => false): number[][] {
  return Array.from({ length: nRows }, (_, r) =>
    Array.from({ length: len }, (_, p) => (p === 0 ? 50256 : newlineAt(r, p) ? 198 : 1000 * r + p)),
  );
}

/** Feeds the corpus in batches whose sizes cycle through `sizes`. */
function feed(acc: TopExamples, rows: number[][], N: number, act: Act, sizes: number[], nModels = 1): void {
  let at = 0;
  let i = 0;
  while (at < rows.length) {
    const n = Math.min(sizes[i % sizes.length]!, rows.length - at);
    acc.add(makeBatch(rows.slice(at, at + n), at, N, act, i, nModels));
    at += n;
    i++;
  }
}

function collect(opts: TopExamplesOptions, rows: number[][], act: Act, sizes: number[] = [7]): TopExamplesResult {
  const acc = new TopExamples(opts);
  feed(acc, rows, opts.nNeurons, act, sizes);
  return acc.finish()[0]!;
}

test('planted data: top contexts, their positions and values, ties keep the earlier row', () => {
  const rows = corpus(50, 16);
  // Neuron 0: one peak per row at pos 1 + r % 15 with value r; elsewhere negative noise.
  // Neuron 1: everything negative, the row's best is −(r+1)/100 at pos 3.
  // Neuron 2: 0.5 everywhere (ties everywhere) except row 30 at 0.9, which must evict the latest tie.
  const noise = rng(3);
  const table = new Map<string, number>();
  const act: Act = (r, p, j) => {
    if (j === 0) {
      if (p === 1 + (r % 15)) return r;
      const key = `${r},${p}`;
      if (!table.has(key)) table.set(key, -1 - noise());
      return table.get(key)!;
    }
    if (j === 1) return p === 3 ? -(r + 1) / 100 : -5;
    return r === 30 ? 0.9 : 0.5;
  };
  const res = collect({ nNeurons: 3, k: 5, before: 2, after: 1 }, rows, act, [4, 9, 1]);
  const n0 = res.neuron(0);
  assert.deepEqual(n0.top.map((e) => e.row), [49, 48, 47, 46, 45]);
  assert.deepEqual(n0.top.map((e) => e.pos), [49, 48, 47, 46, 45].map((r) => 1 + (r % 15)));
  assert.deepEqual(n0.top.map((e) => e.value), [49, 48, 47, 46, 45]);
  const n1 = res.neuron(1);
  assert.deepEqual(n1.top.map((e) => e.row), [0, 1, 2, 3, 4]);
  assert.ok(n1.top.every((e) => e.pos === 3));
  assert.equal(n1.intervals.length, 0, 'a never-positive neuron has no interval samples');
  assert.equal(res.scale[1], 0);
  const n2 = res.neuron(2);
  assert.deepEqual(n2.top.map((e) => e.row), [30, 0, 1, 2, 3], 'ties keep the earliest rows');
  assert.ok(n2.top.every((e) => e.pos === 1), 'and the first kept position (BOS at 0 is dropped)');
});

test('windows are clipped at row edges and carry ids and the neuron’s activations', () => {
  const rows = corpus(3, 8);
  // Row 0 peaks at pos 1, row 1 at the last pos 7, row 2 in the middle (pos 4).
  const peak = [1, 7, 4];
  const act: Act = (r, p) => (p === peak[r] ? 10 + r : p / 100 + r / 10);
  const res = collect({ nNeurons: 1, k: 3, before: 3, after: 2 }, rows, act, [1]);
  const byRow = new Map(res.neuron(0).top.map((e) => [e.row, e]));
  const check = (r: number, start: number, end: number): void => {
    const e = byRow.get(r)!;
    assert.equal(e.pos, peak[r]);
    assert.equal(e.start, start, `row ${r} start`);
    assert.deepEqual(e.tokens, rows[r]!.slice(start, end), `row ${r} ids`);
    assert.deepEqual(e.acts, rows[r]!.slice(start, end).map((_, q) => Math.fround(act(r, start + q, 0))), `row ${r} acts`);
  };
  check(0, 0, 4); // 3 before would start at −2: clipped to the BOS at 0
  check(1, 4, 8); // 2 after would run past the row
  check(2, 1, 7);
  assert.equal(res.window, 6);
  // Unused window slots are padding, not data.
  // Rank 1 is row 1 (value 11): 4 tokens, then 2 padding ids.
  assert.deepEqual(Array.from(res.top.ids.subarray(6, 12)), [...rows[1]!.slice(4, 8), -1, -1]);
});

test('dropped tokens (BOS, "\\n") are never chosen, even when they hold the largest value', () => {
  const rows = corpus(6, 10, (r, p) => p === 5 || r === 5); // row 5: BOS plus only newlines
  const act: Act = (r, p) => (p === 0 || p === 5 || r === 5 ? 100 : p === 2 ? r + 1 : 0.1);
  const res = collect({ nNeurons: 1, k: 6, before: 6, after: 6 }, rows, act, [2]);
  const top = res.neuron(0).top;
  assert.equal(top.length, 5, 'the row without kept tokens offers nothing');
  assert.ok(top.every((e) => e.pos === 2 && e.value === e.row + 1));
  // The window still shows the dropped tokens with their activations, for context.
  assert.equal(top[0]!.tokens[0], 50256);
  assert.equal(top[0]!.acts[0], 100);
  for (const iv of res.neuron(0).intervals) for (const e of iv.examples) assert.equal(e.pos, 2);
});

test('a row appears at most once per neuron', () => {
  const rows = corpus(10, 20);
  const act: Act = (r) => (r === 4 ? 50 : r);
  const res = collect({ nNeurons: 1, k: 4 }, rows, act);
  assert.deepEqual(res.neuron(0).top.map((e) => e.row), [4, 9, 8, 7]);
  assert.equal(res.neuron(0).top[0]!.pos, 1);
});

function randomAct(seed: number): Act {
  // Deterministic per (row, pos, neuron); heavy right tail growing with the row so that the
  // interval scale doubles several times during the stream.
  return (r, p, j) => {
    const x = Math.sin(r * 12.9898 + p * 78.233 + j * 37.719 + seed) * 43758.5453;
    const u = x - Math.floor(x);
    return u < 0.6 ? -u : Math.pow(u, 4) * (1 + r / 8) * (j + 1);
  };
}

function sameResult(a: TopExamplesResult, b: TopExamplesResult, withHist = true): void {
  assert.deepEqual(a.topCount, b.topCount);
  assert.deepEqual(a.top, b.top);
  assert.deepEqual(a.scale, b.scale);
  assert.deepEqual(a.seen, b.seen);
  assert.deepEqual(a.fill, b.fill);
  assert.deepEqual(a.samples, b.samples);
  if (withHist) assert.deepEqual(a.hist, b.hist);
}

test('batch splits do not change top or sampled examples (bit for bit)', () => {
  const rows = corpus(120, 12, (r, p) => (r * p) % 11 === 3);
  const act = randomAct(1);
  const opts = { nNeurons: 5, k: 6, intervals: 6, perInterval: 2, seed: 9 };
  const a = collect(opts, rows, act, [120]);
  const b = collect(opts, rows, act, [1, 5, 17]);
  const c = collect(opts, rows, act, [3]);
  sameResult(a, b, false);
  sameResult(a, c, false);
  const d = collect({ ...opts, seed: 10 }, rows, act, [3]);
  assert.notDeepEqual(d.samples.row, c.samples.row, 'the seed matters');
});

test('state() and restore() continue exactly', () => {
  const rows = corpus(90, 10);
  const act = randomAct(2);
  const opts = { nNeurons: 4, k: 5, intervals: 4, perInterval: 3, seed: 5, models: [1, 0] };
  const full = new TopExamples(opts);
  feed(full, rows, 4, act, [10], 2);
  const half = new TopExamples(opts);
  feed(half, rows.slice(0, 40), 4, act, [10], 2);
  const st = half.state();
  const before = JSON.stringify(Array.from(st['m0.top.value'] as Float32Array));
  half.add(makeBatch(rows.slice(40, 50), 40, 4, act, 4, 2));
  assert.equal(JSON.stringify(Array.from(st['m0.top.value'] as Float32Array)), before, 'state() is a snapshot');
  const resumed = TopExamples.restore(st, opts);
  for (let at = 40; at < 90; at += 10) resumed.add(makeBatch(rows.slice(at, at + 10), at, 4, act, at / 10, 2));
  const [r1, r0] = resumed.finish();
  const [f1, f0] = full.finish();
  sameResult(r1!, f1!);
  sameResult(r0!, f0!);
  assert.equal(r1!.model, 1);
  assert.ok(r1!.neuron(0).top[0]!.value > 900, 'model 1 was read (its acts are +1000)');
  assert.throws(() => TopExamples.restore(st, { ...opts, k: 6 }), EngineError);
  assert.throws(() => TopExamples.restore(st, { ...opts, seed: 6 }), EngineError);
});

test('interval samples: exact bucket edges, counts and capacities after the scale doubles', () => {
  const rows = corpus(300, 9);
  const act = randomAct(3);
  const N = 4;
  const F = 8;
  const R = 3;
  const res = collect({ nNeurons: N, intervals: F, perInterval: R, seed: 1 }, rows, act, [13]);
  for (let j = 0; j < N; j++) {
    // Reference: every row's max over kept tokens.
    const maxes = rows.map((row, r) => Math.max(...row.map((_, p) => (p === 0 ? -Infinity : Math.fround(act(r, p, j))))));
    const positive = maxes.filter((v) => v > 0);
    const top = Math.max(...positive);
    const S = res.scale[j]!;
    assert.ok(top <= S && top > S / 2, `neuron ${j}: max ${top} must lie in (S/2, S], S = ${S}`);
    assert.ok(S > 2 * Math.min(...positive), 'the scale grew during the stream (merges were exercised)');
    const n = res.neuron(j);
    assert.equal(n.intervals.reduce((s, iv) => s + iv.seen, 0), positive.length);
    n.intervals.forEach((iv, b) => {
      const inBucket = positive.filter((v) => v > iv.lo && v <= iv.hi).length;
      assert.equal(iv.seen, inBucket, `neuron ${j} bucket ${b} seen`);
      assert.equal(iv.examples.length, Math.min(R, inBucket));
      const rowsSeen = new Set<number>();
      for (const e of iv.examples) {
        assert.ok(e.value > iv.lo && e.value <= iv.hi, `value ${e.value} outside (${iv.lo}, ${iv.hi}]`);
        assert.equal(e.value, maxes[e.row], 'an example is its row’s max');
        assert.ok(!rowsSeen.has(e.row), 'no duplicates in a bucket');
        rowsSeen.add(e.row);
      }
      for (let q = 1; q < iv.examples.length; q++) assert.ok(iv.examples[q - 1]!.value >= iv.examples[q]!.value);
    });
  }
});

test('reservoirs stay uniform across a merge (inclusion frequency R/seen for every row)', () => {
  // One neuron, 2 buckets of 2. Rows 0–9 peak at 0.3 (S = 0.5, bucket 1), rows 10–19 at 0.1
  // (bucket 0); row 20 at 0.9 doubles S to 1, merging both into bucket 0; rows 21–30 at 0.2 join it.
  const value = (r: number): number => (r < 10 ? 0.3 : r < 20 ? 0.1 : r === 20 ? 0.9 : 0.2);
  const rows = corpus(31, 3);
  const act: Act = (r, p) => (p === 1 ? value(r) : -1);
  const runs = 3000;
  const hits = new Array<number>(31).fill(0);
  for (let seed = 0; seed < runs; seed++) {
    const res = collect({ nNeurons: 1, intervals: 2, perInterval: 2, k: 1, seed }, rows, act, [31]);
    const iv = res.neuron(0).intervals;
    assert.equal(iv[0]!.seen, 30);
    assert.equal(iv[1]!.seen, 1);
    for (const e of iv[0]!.examples) hits[e.row]++;
  }
  const expect = (runs * 2) / 30; // 200
  const sd = Math.sqrt(expect * (1 - 2 / 30));
  hits.forEach((h, r) => {
    if (r === 20) assert.equal(h, 0);
    else assert.ok(Math.abs(h - expect) < 5 * sd, `row ${r} sampled ${h} times, expected ${expect} ± ${sd.toFixed(1)}`);
  });
});

test('histogram counts every kept token of every neuron once', () => {
  const rows = corpus(40, 11, (_r, p) => p % 4 === 0);
  const res = collect({ nNeurons: 3, bins: 16 }, rows, randomAct(4), [6]);
  const kept = rows.reduce((s, row) => s + row.filter((id) => id !== 50256 && id !== 198).length, 0);
  for (let j = 0; j < 3; j++) {
    const h = res.neuron(j).hist;
    assert.equal(h.under + h.over + h.counts.reduce((a, b) => a + b, 0), kept);
    assert.equal(h.counts.length, 16);
    assert.ok(h.min <= h.lo + 1e-12 || h.under === 0);
  }
});

test('serialisation round-trips every neuron, from aligned and unaligned buffers', () => {
  const rows = corpus(60, 10);
  const opts = { nNeurons: 3, k: 4, intervals: 4, perInterval: 2, models: [0, 1] };
  const acc = new TopExamples(opts);
  feed(acc, rows, 3, randomAct(5), [8], 2);
  const results = acc.finish();
  const { json, binary } = serializeExamples(results);
  const text = JSON.stringify(json);
  assert.ok(text.length < 8000, 'the index is small; the data is in the binary');
  const shifted = new Uint8Array(binary.length + 1);
  shifted.set(binary, 1);
  for (const bin of [binary, shifted.subarray(1)]) {
    const back = readExamples(JSON.parse(text), bin);
    assert.equal(back.length, 2);
    back.forEach((r, i) => {
      assert.equal(r.model, results[i]!.model);
      for (let j = 0; j < 3; j++) assert.deepEqual(r.neuron(j), results[i]!.neuron(j));
    });
  }
  assert.throws(() => readExamples({ ...json, format: 'nope' }, binary), EngineError);
  assert.throws(() => readExamples(json, binary.subarray(0, binary.length - 8)), /does not fit/);
});

test('refuses inconsistent batches and bad options', () => {
  const rows = corpus(2, 5);
  const b = makeBatch(rows, 0, 2, () => 1);
  assert.throws(() => new TopExamples({ nNeurons: 3 }).add(b), /post has/);
  assert.throws(() => new TopExamples({ nNeurons: 2, models: [1] }).add(b), /no model 1/);
  assert.throws(() => new TopExamples({ nNeurons: 2 }).add({ ...b, offsets: [0, 5, 9] }), /inconsistent/);
  assert.throws(() => new TopExamples({ nNeurons: 2, intervals: 5 }), /even/);
  assert.throws(() => new TopExamples({ nNeurons: 2, k: 0 }), EngineError);
});

test('the SIMD kernel (default) and the JS loop give bit-identical state: ties, newline-only rows, a column tail', () => {
  const r = rng(5);
  // Rows of 9 tokens where every other row is BOS + "\n" only after the first token (no kept token).
  const rows = Array.from({ length: 23 }, (_, i) => Array.from({ length: 9 }, (_, p) => (p === 0 ? 50256 : i % 5 === 3 ? 198 : 1000 * i + p)));
  // Quantised values, so maxima tie within a row; some negative rows.
  const vals = new Map<string, number>();
  const act: Act = (row, pos, j) => {
    const key = `${row},${pos},${j}`;
    if (!vals.has(key)) vals.set(key, Math.round((r() * 4 - 1.5) * 4) / 4);
    return vals.get(key)!;
  };
  // 37: the kernel's lines of 16 columns, a strip of 4 and a single column; 23 rows of 9 tokens:
  // more kept tokens than its tiles of 64.
  for (const N of [8, 13, 37]) {
    const a = new TopExamples({ nNeurons: N, models: [0, 1], k: 3, intervals: 4, perInterval: 2, bins: 8, kernel: false });
    const b = new TopExamples({ nNeurons: N, models: [0, 1], k: 3, intervals: 4, perInterval: 2, bins: 8 });
    feed(a, rows, N, act, [1, 4, 7], 2);
    feed(b, rows, N, act, [1, 4, 7], 2);
    assertSameState(a.state(), b.state(), `N ${N}`);
  }
});

test('token shards: states over row ranges merge to one stream\'s results, whatever the shards\' order (ties, powers of two)', () => {
  const rows = corpus(90, 9);
  const N = 5;
  // Ties across shards (values repeat every 30 rows), exact powers of two (0.5, 1, 2), a scale
  // that doubles inside some shards and not others.
  const act: Act = (r, p, j) => {
    if (j === 0) return p === 2 ? [0.5, 1, 2, 0.25][r % 4]! : -1;
    if (j === 1) return p === 1 + (r % 7) ? ((r % 30) + 1) / 8 : -0.5;
    return Math.fround(Math.sin(r * 3.1 + p * 1.7 + j) * (1 + r / 20));
  };
  const opts = { nNeurons: N, k: 4, intervals: 8, perInterval: 2, bins: 8, seed: 3 };
  const whole = new TopExamples(opts);
  feed(whole, rows, N, act, [7]);
  const cuts = [0, 21, 22, 60, 90];
  const shards = cuts.slice(0, -1).map((r0, i) => {
    const acc = new TopExamples(opts);
    // Each shard fixes its histogram range from the corpus' first batch, as the pipeline primes it.
    acc.prime(makeBatch(rows.slice(0, 7), 0, N, act));
    for (let at = r0; at < cuts[i + 1]!; at += 7) acc.add(makeBatch(rows.slice(at, Math.min(at + 7, cuts[i + 1]!)), at, N, act));
    return acc.state();
  });
  const want = whole.finish()[0]!;
  for (const order of [shards, [...shards].reverse(), [shards[2]!, shards[0]!, shards[3]!, shards[1]!]]) {
    const merged = TopExamples.restore(mergeExampleStates(order), opts).finish()[0]!;
    for (let j = 0; j < N; j++) assert.deepEqual(merged.neuron(j), want.neuron(j), `neuron ${j}`);
  }
  // A merge of merges (a tree) too.
  const tree = mergeExampleStates([mergeExampleStates(shards.slice(0, 2)), mergeExampleStates(shards.slice(2))]);
  const t = TopExamples.restore(tree, opts).finish()[0]!;
  for (let j = 0; j < N; j++) assert.deepEqual(t.neuron(j), want.neuron(j), `tree, neuron ${j}`);
});
