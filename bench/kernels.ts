// The analysis' per-value loops (activation statistics, top examples, the paper histogram), JS against the WebAssembly SIMD kernels on 1 thread and on every
// core (kernels/pool.ts), on batches of the tiny family's shape (2,048 neurons × 1,024 kept
// tokens). Not a test: figures go in BENCHMARKS.md ("Per-value kernels").
//
//   node --import tsx bench/kernels.ts [--neurons 2048] [--rows 1024] [--batches 12] [--threads 1,2]
//
// ns/value is per value of one model's batch (rows × neurons); "cpu" is process CPU time over
// the same values, so wall/cpu shows how many cores were used.
import { cpus, loadavg } from 'node:os';
import { ActivationStats } from '../src/engine/analysis/actstats';
import { TopExamples } from '../src/engine/analysis/examples';
import { PaperHistogram } from '../src/engine/analysis/paperhist';
import type { ActivationBatch } from '../src/engine/analysis/types';
import { setKernelThreads } from '../src/engine/kernels/pool';

const arg = (name: string, d: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : d;
};
const N = Number(arg('neurons', '2048'));
const ROWS = Number(arg('rows', '1024'));
const B = Number(arg('batches', '12'));
const THREADS = arg('threads', `1,${cpus().length}`).split(',').map(Number);

let seed = 1;
const rnd = (): number => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return (seed + 0.5) / 4294967296;
};
const gauss = (): number => Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd());

// Rows of 128 tokens, the first of each a dropped BOS, as the pipeline cuts them.
function batch(i: number): ActivationBatch {
  const len = 128;
  const nRows = Math.ceil(ROWS / (len - 1));
  const T = nRows * len;
  const keep = new Uint8Array(T).map((_, t) => (t % len === 0 ? 0 : 1));
  const keptIndex = Int32Array.from([...keep.keys()].filter((t) => keep[t])).subarray(0, ROWS);
  const post = new Float32Array(T * N).map(() => gauss() - 0.3);
  const kept = new Float32Array(keptIndex.length * N);
  keptIndex.forEach((t, k) => kept.set(post.subarray(t * N, (t + 1) * N), k * N));
  const rows = Array.from({ length: nRows }, (_, r) => Array.from({ length: len }, (_, p) => (p === 0 ? 50256 : 1000 * r + p)));
  return {
    batchIndex: i,
    rows,
    rowStart: i * nRows,
    offsets: rows.map((_, r) => r * len).concat([T]),
    nTokens: T,
    keep,
    keptIndex,
    nKept: keptIndex.length,
    models: [{ pre: post, post, keptPre: kept, keptPost: kept }],
  };
}

const data = Array.from({ length: B }, (_, i) => batch(i));
const values = data.reduce((s, b) => s + b.nKept, 0) * N;

/** The paper histogram counts every token's pre, not only the kept ones. */
const allValues = data.reduce((s, b) => s + b.nTokens, 0) * N;

function time(what: string, make: () => { add(b: ActivationBatch): void }, n = values): void {
  const acc = make();
  acc.add(data[0]!); // warm-up (and the histogram's range)
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (const b of data) acc.add(b);
  const wall = performance.now() - t0;
  const cu = process.cpuUsage(c0);
  const cpu = (cu.user + cu.system) / 1000;
  console.log(`| ${what} | ${((wall * 1e6) / n).toFixed(2)} | ${((cpu * 1e6) / n).toFixed(2)} | ${(cpu / wall).toFixed(2)} |`);
}

console.log(`${N} neurons × ${ROWS} kept tokens × ${B} batches; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
console.log('| loop | wall ns/value | CPU ns/value | cores used |');
console.log('|---|---:|---:|---:|');
for (let rep = 0; rep < 2; rep++) {
  time('activation statistics, JS', () => new ActivationStats({ nNeurons: N, kernel: false }));
  time('top examples, JS', () => new TopExamples({ nNeurons: N, kernel: false }));
  time('paper histogram, JS', () => new PaperHistogram(N, { kernel: false }), allValues);
  for (const t of THREADS) {
    setKernelThreads(t);
    time(`activation statistics, kernel, ${t} thread${t > 1 ? 's' : ''}`, () => new ActivationStats({ nNeurons: N }));
    time(`top examples, kernel, ${t} thread${t > 1 ? 's' : ''}`, () => new TopExamples({ nNeurons: N }));
    time(`paper histogram, kernel, ${t} thread${t > 1 ? 's' : ''}`, () => new PaperHistogram(N), allValues);
  }
}
setKernelThreads(0);
process.exit(0);
