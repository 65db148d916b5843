/**
 * The paper-compatible activation columns (src/engine/analysis/paperhist.ts) against the paper's
 * code as torch runs it (tools/paper_hist_golden.py → test/fixtures/golden/paper-hist.json):
 * the same float32 edges, the same 257 counts per neuron (fp16 casts and values on and beside
 * the edges included), the same sparsity and binned moments; batching and checkpoints do not
 * change them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PAPER_BINS, PAPER_EDGES, PAPER_ZERO_BIN, PaperHistogram, paperBin, toHalf } from '../../src/engine/analysis/paperhist';
import type { ActivationBatch } from '../../src/engine/analysis/types';

const golden = JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'golden', 'paper-hist.json'), 'utf8')) as {
  T: number;
  N: number;
  x_f32_base64: string;
  edges: number[];
  zero_bin: number;
  counts: number[][];
  sparsity: number[];
  mean: number[];
  var: number[];
  skew: number[];
  kurt: number[];
};
const buf = Buffer.from(golden.x_f32_base64, 'base64');
const x = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
const { T, N } = golden;

/** A batch of `n` tokens from token `t0` of the golden activations (only `pre` of model 0 is read). */
function batch(t0: number, n: number, i: number): ActivationBatch {
  const empty = new Float32Array(0);
  return {
    batchIndex: i,
    rows: [],
    rowStart: 0,
    offsets: [0, n],
    nTokens: n,
    keep: new Uint8Array(n),
    keptIndex: new Int32Array(0),
    nKept: 0,
    models: [{ pre: x.subarray(t0 * N, (t0 + n) * N), post: empty, keptPre: empty, keptPost: empty }],
  };
}

test("the edges are torch's float32 linspace(-10, 15, 256), and the zero bin is the paper's", () => {
  assert.equal(golden.edges.length, 256);
  for (let i = 0; i < 256; i++) assert.ok(Object.is(PAPER_EDGES[i], golden.edges[i]), `edge ${i}: ${PAPER_EDGES[i]} vs torch ${golden.edges[i]}`);
  assert.equal(PAPER_ZERO_BIN, golden.zero_bin);
  assert.equal(PAPER_ZERO_BIN, 102);
});

test('every count, the sparsity and the binned moments equal the paper code run in torch', () => {
  const h = new PaperHistogram(N);
  // Uneven batches: the counts are sums.
  let t0 = 0;
  for (const [i, n] of [700, 1, 799].entries()) {
    h.add(batch(t0, n, i));
    t0 += n;
  }
  assert.equal(t0, T);
  for (let j = 0; j < N; j++) {
    const got = Array.from(h.counts.subarray(j * PAPER_BINS, (j + 1) * PAPER_BINS));
    assert.deepEqual(got, golden.counts[j], `neuron ${j} counts`);
  }
  const r = h.finish();
  assert.equal(r.n, T);
  for (const k of ['sparsity', 'mean', 'var', 'skew', 'kurt'] as const) {
    for (let j = 0; j < N; j++) {
      const want = golden[k][j]!;
      assert.ok(Math.abs(r[k][j]! - want) <= 1e-9 * Math.max(1, Math.abs(want)), `${k}[${j}]: ${r[k][j]} vs ${want}`);
    }
  }
  // What sets the paper's sparsity apart from P(pre > 0): it counts −0.098 < pre ≤ 0 too.
  assert.ok(r.sparsity[5]! === 1, 'zeros and tiny values all count as active');
});

test('fp16 rounding decides the bin: a value just above an edge that fp16 rounds onto it or below stays in the lower bin', () => {
  const next = (v: number): number => {
    const f = new Float32Array([v]);
    new Uint32Array(f.buffer)[0]! += v >= 0 ? 1 : -1;
    return f[0]!;
  };
  // Edges where the next float32 above rounds back to ≤ the edge in fp16: float32 searchsorted
  // would put it one bin higher than the paper's code does.
  let seen = 0;
  for (let i = 0; i < 256; i++) {
    const e = PAPER_EDGES[i]!;
    const up = next(e);
    if (up <= e || toHalf(up) > e) continue;
    assert.equal(paperBin(up), i, `just above edge ${i}`);
    seen++;
  }
  assert.ok(seen > 100, `${seen} edges exercised`);
  assert.equal(paperBin(-1e6), 0);
  assert.equal(paperBin(1e6), 256);
  assert.equal(paperBin(0), 102);
  assert.equal(paperBin(-0.05), 102);
  assert.equal(paperBin(-0.1), 101);
});

test('checkpoint and restore keep the counts', () => {
  const a = new PaperHistogram(N);
  a.add(batch(0, 900, 0));
  const b = PaperHistogram.restore(a.state(), N);
  b.add(batch(900, T - 900, 1));
  for (let j = 0; j < N; j++) assert.deepEqual(Array.from(b.counts.subarray(j * PAPER_BINS, (j + 1) * PAPER_BINS)), golden.counts[j]);
  assert.throws(() => PaperHistogram.restore(a.state(), N + 1), /neurons/);
});

test('the kernel counts what the JS loop counts: values at, just above and just below every edge, fp16 ties, subnormals, NaN, ±Infinity; 1 and 3 threads', async () => {
  const { setKernelThreads } = await import('../../src/engine/kernels/pool');
  const near = (v: number, k: number): number => {
    const f = new Float32Array([v]);
    const u = new Uint32Array(f.buffer);
    if (v === 0) return k * 1e-45;
    u[0] = u[0]! + (v > 0 ? k : -k);
    return f[0]!;
  };
  const vals: number[] = [NaN, Infinity, -Infinity, 0, -0, 1e-40, -1e-40, 6e-8, 3e-8, -10, 15, 65504, 65520, -7e4, 1e30];
  for (const e of PAPER_EDGES) for (const k of [-3, -1, 0, 1, 3]) vals.push(near(e, k));
  // fp16 ties that straddle an edge: x halfway between the fp16 values h1 ≤ e < h2 around edge e,
  // so rounding to even (or not) decides the bin.
  for (const e of PAPER_EDGES) {
    if (e === 0) continue;
    const ulp = 2 ** (Math.max(Math.floor(Math.log2(Math.abs(e))), -14) - 10);
    const h1 = Math.floor(e / ulp) * ulp;
    vals.push(h1 + ulp / 2, -(h1 + ulp / 2));
  }
  let s = 7;
  while (vals.length % 13 !== 0 || vals.length < 2000) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    vals.push((s / 2 ** 31) * 30 - 12);
  }
  // Tokens × 13 neurons: each neuron sees every value (rotated), so every column meets every case.
  const Nn = 13;
  const Tn = vals.length;
  const pre = new Float32Array(Tn * Nn);
  for (let t = 0; t < Tn; t++) for (let j = 0; j < Nn; j++) pre[t * Nn + j] = vals[(t + 37 * j) % Tn]!;
  const empty = new Float32Array(0);
  const b: ActivationBatch = { batchIndex: 0, rows: [], rowStart: 0, offsets: [0, Tn], nTokens: Tn, keep: new Uint8Array(Tn), keptIndex: new Int32Array(0), nKept: 0, models: [{ pre, post: empty, keptPre: empty, keptPost: empty }] };
  const js = new PaperHistogram(Nn, { kernel: false });
  js.add(b);
  try {
    for (const threads of [1, 3]) {
      setKernelThreads(threads);
      const k = new PaperHistogram(Nn);
      k.add(b);
      assert.deepEqual(Array.from(k.counts), Array.from(js.counts), `${threads} threads`);
      assert.deepEqual(k.state().counts, js.state().counts);
    }
  } finally {
    setKernelThreads(0);
  }
});
