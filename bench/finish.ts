/**
 * The exact baseline's finish at GPT-2-small size, one pair in isolation (issue 13 item 3): the
 * end of a block of `--rows` reference neurons against all 12 × 3,072 neurons of the other model,
 * after one batch of `--tokens` tokens, with each way of computing Cov_l·R_lᵀ, interleaved in one
 * process (A/B under the same load). Synthetic activations (GELU of a shared low-rank latent plus
 * noise) stand in for the models': the finish's cost does not depend on the values, only the
 * number of float64 refinements does a little.
 *
 *   node --import tsx bench/finish.ts [--rows 2730] [--tokens 1024] [--reps 2] [--threads 2]
 *        [--layers 12] [--d 3072] [--skip-stream] [--skip-split] [--fake-y]
 *        [--variants float64,screen,lowrank]
 *   node --import tsx bench/finish.ts --tiny [--tokens 8192]
 *
 * Reports, per variant, the finish of a block without its own Gram (the pair's blocks after the
 * first) and what it extrapolates to for the pair's 36,864 reference neurons; the first block's
 * extra (m's Gram moments: R_l·Σ_l in float64); max |Δ baseline| between the variants and whether
 * max_corr, partners and baseline partners are identical; and, for design (b) (rotate in the
 * stream), the extra cost per pass of R_l·V_l and a second S_xy product.
 */
import { performance } from 'node:perf_hooks';
import { loadavg } from 'node:os';
import { CrossMoments, rotationMatrix, type CrossMomentsResult, type YMoments } from '../src/engine/analysis/crossmoments';
import { Gemm } from '../src/engine/analysis/gemm';
import { OnnxGraph } from '../src/engine/onnx';
import { loadOrt } from '../src/engine/analysis/gemm';
import { mulberry32 } from '../src/engine/rng';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAnalysis, type AnalysisPlan } from '../src/engine/analysis/pipeline';
import { crossSpecs } from '../src/engine/analysis/plan';
import { keptBatch } from '../test/helpers/batches';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}
const flag = (name: string): boolean => process.argv.includes(`--${name}`);

const rows = Number(arg('rows', '2730'));
const T = Number(arg('tokens', '1024'));
const reps = Number(arg('reps', '2'));
const threads = Number(arg('threads', '2'));
const L = Number(arg('layers', '12'));
const d = Number(arg('d', '3072'));
const Nm = L * d;
const NA = 36864; // the pair's reference neurons at GPT-2-small size

const load = (): string => loadavg().map((v) => v.toFixed(2)).join(' ');
const s1 = (ms: number): string => (ms / 1000).toFixed(1);

function gelu(v: number): number {
  return 0.5 * v * (1 + Math.tanh(0.7978845608 * (v + 0.044715 * v * v * v)));
}

/** [T × N] post-activations: GELU(w_j·z_t + noise), z_t a 32-dim latent shared by both models. */
function activations(z: Float64Array, K: number, N: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  const g = (): number => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const W = new Float64Array(N * K);
  for (let i = 0; i < W.length; i++) W[i] = (r() < 0.25 ? g() : 0) / Math.sqrt(K / 4);
  const bias = Float64Array.from({ length: N }, () => g() - 0.5);
  const out = new Float32Array(T * N);
  for (let t = 0; t < T; t++) {
    const zt = z.subarray(t * K, (t + 1) * K);
    for (let j = 0; j < N; j++) {
      let s = bias[j]!;
      for (let k = 0; k < K; k++) s += W[j * K + k]! * zt[k]!;
      out[t * N + j] = gelu(s + 0.7 * g());
    }
  }
  return out;
}

/**
 * `--tiny`: the shipped tiny family (a against b…e, 4 × 512 neurons) through runAnalysis at
 * `--tokens` (default here 8,192), each pair with both finishes in one run: max |Δ baseline|, and
 * whether max_corr, partners and baseline partners are identical.
 */
async function tiny(): Promise<void> {
  const ROOT = join(__dirname, '..');
  const models = ['a', 'b', 'c', 'd', 'e'].map((s) => join(ROOT, 'models', `tiny-gpt2-${s}`));
  const tokens = Number(arg('tokens', '8192'));
  const out = mkdtempSync(join(tmpdir(), 'un-finish-'));
  const plan: AnalysisPlan = {
    accumulators: (ctx) => [
      ...crossSpecs(ctx),
      ...crossSpecs(ctx).map((s) => ({
        ...s,
        name: s.name.replace('cross:', 'f64:'),
        create: () => new CrossMoments({ ...(s.create(new Map()) as CrossMoments).opts, baselineFinish: 'float64' }),
      })),
    ],
    finalize: async () => ({}),
  };
  try {
    const r = await runAnalysis({ models, corpus: [join(ROOT, 'models', 'corpus', 'heldout.tokens.bin')], tokens, threads, out: join(out, 'run'), plan });
    let dmax = 0;
    let diff = 0;
    for (const m of ['b', 'c', 'd', 'e']) {
      const a = r.results.get(`f64:tiny-gpt2-${m}`) as CrossMomentsResult;
      const b = r.results.get(`cross:tiny-gpt2-${m}`) as CrossMomentsResult;
      for (let i = 0; i < a.baseline.length; i++) {
        dmax = Math.max(dmax, Math.abs(a.baseline[i]! - b.baseline[i]!));
        if (a.baselinePartner[i] !== b.baselinePartner[i] || a.partner[i] !== b.partner[i] || !Object.is(a.maxCorr[i], b.maxCorr[i])) diff++;
      }
    }
    console.log(`tiny family, ${tokens} tokens, 4 pairs × 2,048 neurons: max |Δ baseline| ${dmax.toExponential(2)} (screen vs float64 finish); ${diff} neurons with another max_corr, partner or baseline partner`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (flag('tiny')) return tiny();
  console.log(`finish bench: block ${rows} × ${Nm} (${L} × ${d}), ${T} tokens, ${threads} ORT threads, load ${load()}`);
  const K = 32;
  const rz = mulberry32(1);
  const z = Float64Array.from({ length: T * K }, () => Math.sqrt(-2 * Math.log(1 - rz())) * Math.cos(2 * Math.PI * rz()));
  const t0 = performance.now();
  const x = activations(z, K, rows, 2);
  const y = activations(z, K, Nm, 3);
  console.log(`  data ${s1(performance.now() - t0)} s`);
  const batch = keptBatch([x, y], T);
  const gemm = new Gemm({ threads });
  const base = { model: 1, ref: { nLayers: 1, dMlp: rows }, other: { nLayers: L, dMlp: d }, seed: 7, gemm, threads };

  // The pair's first block: m's Gram and its moments (R_l·Σ_l·R_lᵀ diagonals, float64 GEMMs).
  // `--fake-y` (profiling the finish only): Σy² from the data and each rotated neuron's variance
  // set to its layer's mean variance — the timings are the same, the numbers are not the method's.
  let y64: YMoments;
  if (flag('fake-y')) {
    const syy = new Float64Array(Nm);
    const sy = new Float64Array(Nm);
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < Nm; j++) {
        const v = y[t * Nm + j]!;
        sy[j]! += v;
        syy[j]! += v * v;
      }
    }
    const rotVar = new Float64Array(Nm);
    for (let l = 0; l < L; l++) {
      let m = 0;
      for (let b = 0; b < d; b++) m += syy[l * d + b]! - sy[l * d + b]! ** 2 / T;
      rotVar.fill(m / d, l * d, (l + 1) * d);
    }
    y64 = { n: T, seed: 7, syy, rotVar };
  } else {
    const c = new CrossMoments({ ...base, exportY: true, baselineFinish: 'screen' });
    let t = performance.now();
    await c.add(batch);
    const add = performance.now() - t;
    t = performance.now();
    const cpu0 = process.cpuUsage();
    const r = await c.finish();
    const cu = process.cpuUsage(cpu0);
    console.log(`  first block (with Gram): add ${s1(add)} s, finish ${s1(performance.now() - t)} s (CPU ${s1((cu.user + cu.system) / 1000)} s; screen, includes m's moments), load ${load()}`);
    y64 = r.y!;
  }

  // 'lowrank': the screen from the activations (cross/lowrank.ts), which a run uses when one
  // batch holds fewer tokens than the covariance screen costs.
  const variants = arg('variants', 'float64,screen').split(',') as ('float64' | 'screen' | 'lowrank')[];
  const results = new Map<string, CrossMomentsResult[]>();
  const times = new Map<string, number[]>();
  const cpuTimes = new Map<string, number[]>();
  const refinedCounts = new Map<string, number[]>();
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order) {
      const c = new CrossMoments({ ...base, yMoments: () => y64, baselineFinish: v === 'float64' ? 'float64' : 'screen', ...(v === 'lowrank' ? { keepActivations: true } : {}) });
      await c.add(batch);
      const t = performance.now();
      const cpu0 = process.cpuUsage();
      const r = await c.finish();
      const ms = performance.now() - t;
      const cu = process.cpuUsage(cpu0);
      const cpu = (cu.user + cu.system) / 1000;
      (cpuTimes.get(v) ?? cpuTimes.set(v, []).get(v)!).push(cpu);
      if (v !== 'float64') (refinedCounts.get(v) ?? refinedCounts.set(v, []).get(v)!).push(c.refined);
      (times.get(v) ?? times.set(v, []).get(v)!).push(ms);
      (results.get(v) ?? results.set(v, []).get(v)!).push(r);
      if (v === 'lowrank' && !c.lowRank) throw new Error('the low-rank screen did not apply (T·(B + d) ≥ B·d?)');
      console.log(`  rep ${rep} ${v}: finish ${s1(ms)} s (CPU ${s1(cpu)} s)${v !== 'float64' ? `, ${c.refined} float64 refinements (${(c.refined / rows / L).toFixed(2)} per row and layer)` : ''}, load ${load()}`);
    }
  }
  const med = (v: number[]): number => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)]!;
  const flops = 2 * rows * Nm * d;
  const a = results.get(variants[0]!)![0]!;
  for (const v of variants) {
    const b = results.get(v)![0]!;
    let dmax = 0;
    let bp = 0;
    let mc = 0;
    let pp = 0;
    for (let i = 0; i < rows; i++) {
      dmax = Math.max(dmax, Math.abs(a.baseline[i]! - b.baseline[i]!));
      if (a.baselinePartner[i] !== b.baselinePartner[i]) bp++;
      if (!Object.is(a.maxCorr[i], b.maxCorr[i])) mc++;
      if (a.partner[i] !== b.partner[i]) pp++;
    }
    const w = med(times.get(v)!);
    console.log(`  ${v}: finish median ${s1(w)} s, CPU ${s1(med(cpuTimes.get(v)!))} s (${(flops / w / 1e6).toFixed(1)} GFLOP/s of Cov·Rᵀ equivalent) → ${s1((w * NA) / rows)} s per pair`);
    if (v !== variants[0]) console.log(`    against ${variants[0]}: baseline max |Δ| ${dmax.toExponential(2)}, ${bp} baseline partners differ; max_corr different ${mc}, partners ${pp}; mean baseline ${(b.baseline.reduce((p, q) => p + q, 0) / rows).toFixed(4)}`);
    if (refinedCounts.has(v)) console.log(`    refinements per row and layer: ${refinedCounts.get(v)!.map((c) => (c / rows / L).toFixed(2)).join(', ')}`);
  }

  if (!flag('skip-split')) await splitVariants(gemm);
  if (!flag('skip-stream')) await streamDesign(gemm, x, y);
  await gemm.release();
}

/**
 * Design (a) as the issue sketches it, on one layer's chunk of real covariances: the float64
 * operand split into fp32 hi + lo, 1, 2 or 3 fp32 GEMMs summed in float64, against the float64
 * GEMM; time and max |Δ ρ-numerator| relative to the row's ‖c‖·‖R_k‖ scale.
 */
async function splitVariants(gemm: Gemm): Promise<void> {
  const m = Math.min(rows, Math.floor((8 * 1024 * 1024) / d));
  const r = mulberry32(9);
  const g = (): number => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  // A covariance-like chunk: a common mean direction plus noise, with a spread of row scales.
  const C = new Float64Array(m * d);
  for (let i = 0; i < m; i++) {
    const s = Math.exp(2 * g());
    for (let b = 0; b < d; b++) C[i * d + b] = s * (0.3 + g());
  }
  const R = rotationMatrix(7, 0, d);
  const split = (v: Float64Array): [Float32Array, Float32Array] => {
    const hi = Float32Array.from(v);
    const lo = new Float32Array(v.length);
    for (let i = 0; i < v.length; i++) lo[i] = v[i]! - hi[i]!;
    return [hi, lo];
  };
  const [Ch, Cl] = split(C);
  const [Rh, Rl] = split(R);
  const out = new Float32Array(m * d);
  const time = async (f: () => Promise<Float64Array>): Promise<[number, Float64Array]> => {
    await f(); // warm the session
    const t = performance.now();
    const v = await f();
    return [performance.now() - t, v];
  };
  const acc = async (pairs: [Float32Array, Float32Array][]): Promise<Float64Array> => {
    const s = new Float64Array(m * d);
    for (const [p, q] of pairs) {
      const o = await gemm.abt32(p, q, m, d, d, out);
      for (let i = 0; i < s.length; i++) s[i]! += o[i]!;
    }
    return s;
  };
  const [t64, ref] = await time(() => gemm.abt64(C, R, m, d, d));
  const norms = Float64Array.from({ length: m }, (_, i) => Math.hypot(...C.subarray(i * d, (i + 1) * d)));
  const err = (v: Float64Array): number => {
    let e = 0;
    for (let i = 0; i < m; i++) for (let k = 0; k < d; k++) e = Math.max(e, Math.abs(v[i * d + k]! - ref[i * d + k]!) / norms[i]!);
    return e;
  };
  console.log(`  one chunk ${m} × ${d} · (${d} × ${d})ᵀ, load ${load()}:`);
  console.log(`    float64 GEMM            ${(t64 / 1000).toFixed(2)} s  (${((2 * m * d * d) / t64 / 1e6).toFixed(1)} GFLOP/s)`);
  for (const [name, pairs] of [
    ['fp32 ×1 (hi·hi)', [[Ch, Rh]]],
    ['fp32 ×2 (hi+lo)·hi', [[Ch, Rh], [Cl, Rh]]],
    ['fp32 ×3 hi·hi+lo·hi+hi·lo', [[Ch, Rh], [Cl, Rh], [Ch, Rl]]],
  ] as [string, [Float32Array, Float32Array][]][]) {
    const [t, v] = await time(() => acc(pairs));
    console.log(`    ${name.padEnd(28)}${(t / 1000).toFixed(2)} s  max |Δ|/‖c‖ ${err(v).toExponential(2)}`);
  }
}

/**
 * Design (b): rotate in the stream. Per pass, m's rotated activations R_l·V_l (one fp32 GEMM per
 * layer, [T × d]·[d × d]ᵀ) and a second Xᵀ·(RV) into its own partial, next to the S_xy step that
 * exists already.
 */
async function streamDesign(gemm: Gemm, x: Float32Array, y: Float32Array): Promise<void> {
  const ort = loadOrt();
  const graph = new OnnxGraph('rotate', 17);
  graph.input('Y', 'float', ['t', Nm]);
  const axis1 = graph.constI64([1]);
  const parts: string[] = [];
  for (let l = 0; l < L; l++) {
    graph.input(`R${l}`, 'float', [d, d]);
    const yl = graph.op('Slice', ['Y', graph.constI64([l * d]), graph.constI64([(l + 1) * d]), axis1]);
    parts.push(graph.op('Gemm', [yl, `R${l}`], { transB: { i: 1 } }));
  }
  graph.op('Concat', parts, { axis: { i: 1 } }, 'RV');
  graph.output('RV', 'float', ['t', Nm]);
  const sess = await ort.InferenceSession.create(graph.toBytes(), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    enableCpuMemArena: false,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  const feeds: Record<string, InstanceType<typeof ort.Tensor>> = { Y: new ort.Tensor('float32', y, [T, Nm]) };
  for (let l = 0; l < L; l++) feeds[`R${l}`] = new ort.Tensor('float32', Float32Array.from(rotationMatrix(7, l, d)), [d, d]);
  const xy = new Float32Array(rows * Nm);
  const step = (yy: Float32Array): Promise<Float32Array> => gemm.crossStep({ x, y: yy, t: T, a: rows, b: Nm, xy });
  await step(y);
  let rv = (await sess.run(feeds)).RV!.data as Float32Array;
  const tm: Record<string, number[]> = { sxy: [], rotate: [], second: [] };
  for (let rep = 0; rep < 2; rep++) {
    let t = performance.now();
    await step(y);
    tm.sxy!.push(performance.now() - t);
    t = performance.now();
    rv = (await sess.run(feeds)).RV!.data as Float32Array;
    tm.rotate!.push(performance.now() - t);
    t = performance.now();
    await step(rv);
    tm.second!.push(performance.now() - t);
  }
  await sess.release();
  const min = (v: number[]): number => Math.min(...v);
  const fS = 2 * T * rows * Nm;
  const fR = 2 * T * Nm * d;
  console.log(`  design (b), one pass of a ${rows}-column block at ${T} tokens, load ${load()}:`);
  console.log(`    S_xy step (exists)  ${s1(min(tm.sxy!))} s (${(fS / min(tm.sxy!) / 1e6).toFixed(0)} GFLOP/s)`);
  console.log(`    rotate R_l·V_l      ${s1(min(tm.rotate!))} s (${(fR / min(tm.rotate!) / 1e6).toFixed(0)} GFLOP/s), once per pass`);
  console.log(`    second Xᵀ·(RV)      ${s1(min(tm.second!))} s`);
  const passes = Math.ceil(NA / rows);
  const perPair = passes * min(tm.rotate!) + (NA / rows) * min(tm.second!);
  console.log(`    → per pair (${passes} passes of ${rows}): ${s1(perPair)} s extra in the stream at ${T} tokens, ×${T > 0 ? 'T/1024' : ''} linear in tokens, before the 2× memory of a second B × N_m total halves the block`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
