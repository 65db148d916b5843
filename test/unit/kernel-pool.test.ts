// The kernels' worker pool: the same state whatever the number of threads (each column's sums
// are taken in the same order), clear errors from a failing worker, exact column ranges.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ActivationStats } from '../../src/engine/analysis/actstats';
import { TopExamples } from '../../src/engine/analysis/examples';
import type { AccumulatorState, ActivationBatch } from '../../src/engine/analysis/types';
import { KernelMemory } from '../../src/engine/kernels';
import { columnRange, kernelPool, partsFor, setKernelThreads } from '../../src/engine/kernels/pool';
import { assertSameState } from '../helpers/state';
import { rng } from '../helpers/synthetic-run';

const N = 301; // a SIMD tail in the last part
const ROWS = 8;
const LEN = 128;

function batches(): ActivationBatch[] {
  const r = rng(3);
  return Array.from({ length: 3 }, (_, b) => {
    const T = ROWS * LEN;
    const rows = Array.from({ length: ROWS }, (_, i) => Array.from({ length: LEN }, (_, p) => (p === 0 ? 50256 : p % 31 === 0 ? 198 : 1000 * i + p)));
    const keep = new Uint8Array(T).map((_, t) => (t % LEN === 0 || (t % LEN) % 31 === 0 ? 0 : 1));
    const keptIndex = Int32Array.from([...keep.keys()].filter((t) => keep[t]));
    const post = new Float32Array(T * N).map(() => Math.round((r() * 3 - 1) * 8) / 8);
    const kept = new Float32Array(keptIndex.length * N);
    keptIndex.forEach((t, k) => kept.set(post.subarray(t * N, (t + 1) * N), k * N));
    return {
      batchIndex: b,
      rows,
      rowStart: b * ROWS,
      offsets: rows.map((_, i) => i * LEN).concat([T]),
      nTokens: T,
      keep,
      keptIndex,
      nKept: keptIndex.length,
      models: [{ pre: post, post, keptPre: kept, keptPost: kept }],
    };
  });
}

test('statistics and examples are bit-identical on 1, 2 and 3 threads', () => {
  const data = batches();
  const states: AccumulatorState[][] = [];
  try {
    for (const threads of [1, 2, 3]) {
      setKernelThreads(threads);
      assert.equal(kernelPool().threads, threads);
      assert.equal(partsFor(N, data[0]!.nKept), threads);
      const s = new ActivationStats({ nNeurons: N });
      const e = new TopExamples({ nNeurons: N, k: 4 });
      for (const b of data) {
        s.add(b);
        e.add(b);
      }
      states.push([s.state(), e.state()]);
    }
  } finally {
    setKernelThreads(0);
  }
  for (const i of [1, 2]) {
    assertSameState(states[0]![0]!, states[i]![0]!, `stats, ${i + 1} threads`);
    assertSameState(states[0]![1]!, states[i]![1]!, `examples, ${i + 1} threads`);
  }
});

test('a worker that fails ends the call with a clear error, and the pool stays usable', () => {
  setKernelThreads(2);
  try {
    const mem = new KernelMemory();
    assert.throws(() => kernelPool().run(mem, 'stats', 'noSuchKernel', 2, () => []), /no kernel function stats\.noSuchKernel/);
    const data = batches();
    const s = new ActivationStats({ nNeurons: N });
    s.add(data[0]!);
    assert.equal(s.finish()[0]!.count, data[0]!.nKept);
  } finally {
    setKernelThreads(0);
  }
});

test('column ranges tile [0, n) on multiples of 4', () => {
  for (const n of [1, 4, 5, 301, 2048]) {
    for (const parts of [1, 2, 3, 7]) {
      let at = 0;
      for (let p = 0; p < parts; p++) {
        const [j0, j1] = columnRange(n, parts, p);
        assert.equal(j0, at, `n ${n}, ${parts} parts, part ${p}`);
        assert.ok((j0 % 4 === 0 || j0 === n) && j1 >= j0);
        at = j1;
      }
      assert.equal(at, n);
    }
  }
});

test('fast mode SDDMM over row ranges on 2 threads equals 1 thread bit for bit', async () => {
  const { SddmmArena } = await import('../../src/engine/analysis/gemm');
  const t = 1024;
  const rowsX = 200;
  const rowsY = 50;
  const r = rng(21);
  const x0 = new Float32Array(rowsX * t).map(() => r() - 0.5);
  const y0 = new Float32Array(rowsY * t).map(() => r() - 0.5);
  const rowptr = Int32Array.from({ length: rowsX + 1 }, (_, i) => 3 * i);
  const cols = Int32Array.from({ length: 3 * rowsX }, (_, c) => (c * 7) % rowsY);
  const outs: Float64Array[] = [];
  try {
    for (const threads of [1, 2]) {
      setKernelThreads(threads);
      const a = new SddmmArena();
      const x = a.alloc(4 * x0.length);
      const y = a.alloc(4 * y0.length);
      const rp = a.alloc(4 * rowptr.length);
      const cl = a.alloc(4 * cols.length);
      const o = a.alloc(8 * cols.length);
      a.seal();
      a.f32(x, x0.length).set(x0);
      a.f32(y, y0.length).set(y0);
      a.i32(rp, rowptr.length).set(rowptr);
      a.i32(cl, cols.length).set(cols);
      a.sddmm(x, y, t, rp, cl, rowsX, o);
      outs.push(a.f64(o, cols.length).slice());
    }
  } finally {
    setKernelThreads(0);
  }
  assert.equal(partsFor(t, rowsX), Math.min(2, kernelPool().threads));
  for (let c = 0; c < cols.length; c++) assert.ok(Object.is(outs[0]![c], outs[1]![c]) && outs[0]![c] !== 0, `candidate ${c}`);
});
