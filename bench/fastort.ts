// Fast mode's per-step ORT graph, variants timed in turns (issue #13 item 2; BENCHMARKS.md "Fast
// mode's candidate pass"): node --import tsx bench/fastort.ts [--t 1024] [--reps 20]
// a = b = 2,048 (4 layers × 512), random data; CPU seconds of the process (ORT's threads included).
import { performance } from 'node:perf_hooks';
import type * as Ort from 'onnxruntime-node';
import { loadOrt } from '../src/engine/analysis/gemm';
import { OnnxGraph } from '../src/engine/onnx';

const arg = (n: string): string | undefined => (process.argv.includes(`--${n}`) ? process.argv[process.argv.indexOf(`--${n}`) + 1] : undefined);
const T = Number(arg('t') ?? 1024);
const REPS = Number(arg('reps') ?? 20);
const L = 4;
const d = 512;
const N = L * d;
const rnd = (n: number): Float32Array => Float32Array.from({ length: n }, () => Math.random() - 0.5);
const R = Array.from({ length: L }, () => rnd(d * d));

type Build = (g: OnnxGraph) => string[];
/** Yᵀ and R·Yᵀ as one batched MatMul over Yᵀ seen as [L, d, t]. */
function batchedRotation(g: OnnxGraph): string[] {
  g.op('Transpose', ['Y'], { perm: { ints: [1, 0] } }, 'YT');
  const y3 = g.op('Reshape', ['YT', g.constI64([L, d, -1])]);
  const Rs = new Float32Array(L * d * d);
  R.forEach((r, l) => Rs.set(r, l * d * d));
  const r3 = g.op('MatMul', [g.initializer('R', 'float', [L, d, d], Rs), y3]);
  g.op('Reshape', [r3, g.constI64([N, -1])], {}, 'RT');
  return ['YT', 'RT'];
}
const variants: Record<string, Build> = {
  // As before this change: transposes, a Slice of Yᵀ per layer, MatMul per layer.
  current: (g) => {
    g.op('Transpose', ['X'], { perm: { ints: [1, 0] } }, 'XT');
    g.op('Transpose', ['Y'], { perm: { ints: [1, 0] } }, 'YT');
    const axis0 = g.constI64([0]);
    const outs = ['XT', 'YT'];
    for (let l = 0; l < L; l++) {
      const yl = g.op('Slice', ['YT', g.constI64([l * d]), g.constI64([(l + 1) * d]), axis0]);
      g.op('MatMul', [g.initializer(`R${l}`, 'float', [d, d], R[l]!), yl], {}, `RT${l}`);
      outs.push(`RT${l}`);
    }
    return outs;
  },
  // One batched MatMul over Yᵀ seen as [L, d, t]: no slices.
  batched: (g) => {
    g.op('Transpose', ['X'], { perm: { ints: [1, 0] } }, 'XT');
    return ['XT', ...batchedRotation(g)];
  },
  // The same without xᵀ (shared by the pairs of a batch).
  batchedNoX: (g) => batchedRotation(g),
  // Gemm on a column slice of Y with transB: (R_l·Y_lᵀ) straight from the token-major Y.
  gemmT: (g) => {
    g.op('Transpose', ['X'], { perm: { ints: [1, 0] } }, 'XT');
    g.op('Transpose', ['Y'], { perm: { ints: [1, 0] } }, 'YT');
    const axis1 = g.constI64([1]);
    const parts: string[] = [];
    for (let l = 0; l < L; l++) {
      const yl = g.op('Slice', ['Y', g.constI64([l * d]), g.constI64([(l + 1) * d]), axis1]);
      parts.push(g.op('Gemm', [g.initializer(`R${l}`, 'float', [d, d], R[l]!), yl], { transB: { i: 1 } }));
    }
    g.op('Concat', parts, { axis: { i: 0 } }, 'RT');
    return ['XT', 'YT', 'RT'];
  },
  // What fast.ts runs now: only the rotation, Gemm with transB on column slices of the token-major Y
  // (the kernel pool transposes x' and y in the arena).
  rotateStep: (g) => {
    const axis1 = g.constI64([1]);
    const outs: string[] = [];
    for (let l = 0; l < L; l++) {
      const yl = g.op('Slice', ['Y', g.constI64([l * d]), g.constI64([(l + 1) * d]), axis1]);
      g.op('Gemm', [g.initializer(`R${l}`, 'float', [d, d], R[l]!), yl], { transB: { i: 1 } }, `RT${l}`);
      outs.push(`RT${l}`);
    }
    return outs;
  },
  // Floor: the transposes alone, and the rotation alone (batched MatMul on a transposed input).
  transposesOnly: (g) => {
    g.op('Transpose', ['X'], { perm: { ints: [1, 0] } }, 'XT');
    g.op('Transpose', ['Y'], { perm: { ints: [1, 0] } }, 'YT');
    return ['XT', 'YT'];
  },
  rotationOnly: (g) => {
    const y3 = g.op('Reshape', ['Y', g.constI64([L, d, -1])]);
    const Rs = new Float32Array(L * d * d);
    R.forEach((r, l) => Rs.set(r, l * d * d));
    const r3 = g.op('MatMul', [g.initializer('R', 'float', [L, d, d], Rs), y3]);
    g.op('Reshape', [r3, g.constI64([N, -1])], {}, 'RT');
    return ['RT'];
  },
};

async function main(): Promise<void> {
  const ort = loadOrt();
  const x = rnd(T * N);
  const y = rnd(T * N);
  const sessions: [string, Ort.InferenceSession, string[]][] = [];
  for (const [name, build] of Object.entries(variants)) {
    const g = new OnnxGraph(name, 17);
    g.input('X', 'float', ['t', N]);
    g.input('Y', 'float', ['t', N]);
    const outs = build(g);
    for (const o of outs) g.output(o, 'float', ['r', 'c']);
    const s = await ort.InferenceSession.create(g.toBytes(), { intraOpNumThreads: 2, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all', enableCpuMemArena: false, enableMemPattern: false, extra: { session: { intra_op: { allow_spinning: '0' } } } });
    sessions.push([name, s, outs]);
  }
  const tally = new Map<string, { wall: number; cpu: number }>(sessions.map(([n]) => [n, { wall: 0, cpu: 0 }]));
  for (let r = 0; r < REPS; r++) {
    for (let k = 0; k < sessions.length; k++) {
      const [name, s] = sessions[(r + k) % sessions.length]!;
      const feeds = { X: new ort.Tensor('float32', x, [T, N]), Y: new ort.Tensor('float32', y, [T, N]) };
      const w = performance.now();
      const c = process.cpuUsage();
      await s.run(feeds);
      const dc = process.cpuUsage(c);
      if (r === 0) continue; // warm-up
      const e = tally.get(name)!;
      e.wall += performance.now() - w;
      e.cpu += (dc.user + dc.system) / 1000;
    }
  }
  console.log(`t = ${T}, ${REPS - 1} reps each, in turns; load ${(await import('node:os')).loadavg().map((v) => v.toFixed(1)).join(' ')}`);
  for (const [n, e] of tally) console.log(`${n.padEnd(16)} ${(e.wall / (REPS - 1)).toFixed(2)} ms wall, ${(e.cpu / (REPS - 1)).toFixed(2)} CPU-ms per step; ${((e.cpu / (REPS - 1) / T) * 1000).toFixed(1)} CPU-µs per token`);
}

void main();
