// Correlation analysis benchmark (not a test; numbers go in BENCHMARKS.md, "Correlation analysis"):
//
//   node --import tsx bench/analysis.ts [--reps 4] [--no-torch] [--no-real | --real-only] [--real-tokens 131072]
//
// 1. GEMM ceiling: a plain ORT MatMul 2048³ (both inputs dynamic), measured here, in turns with
// 2. the exact accumulation: CrossMoments.add() on synthetic [T × 2048] activations (the tiny
//    family's N = 4 × 512), at T = 1024 (the pipeline's default 8 rows) and 8192 kept tokens per
//    batch. GFLOP/s count the S_xy product only (2·T·N_a·N_m); the Gram blocks of m and the column
//    statistics ride along in the same ORT run and are included in the time.
// 3. The paper's algorithm in torch (bench/torch_paper.py): fp32 matmuls per layer pair into a
//    float64 sum, plus a second pass over rotated activations for the baseline; run in turns with
//    ours, per 1M tokens and 4 pairs (a vs b..e).
// 4. Real activations of the shipped tiny family on the held-out corpus: exact vs fast mode over
//    the same batches (4 pairs), fast mode's screen read as the pipeline reads it (every k-th
//    batch, plan.ts screenEvery, fed to screen() first); time per token and agreement (universal
//    sets at excess 0.3/0.4/0.5, max |Δ max_corr|, max |Δ baseline|).
//
// Everything runs on 2 ORT threads; the machine may be shared, so each figure is the best (and
// median) of several turns.
import { spawnSync } from 'node:child_process';
import { torchEnv } from './torchEnv';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { CrossMoments, CrossMomentsResult } from '../src/engine/analysis/crossmoments';
import { Gemm, loadOrt } from '../src/engine/analysis/gemm';
import { screenEvery } from '../src/engine/analysis/plan';
import { keptBatch } from '../test/helpers/batches';
import { universalityTable } from '../src/engine/analysis/universality';
import { OnnxGraph } from '../src/engine/onnx';
import { HELDOUT_TOKENS, heldoutBatches, ROW } from './heldout';
import { openModel } from '../src/engine/runtime';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const flag = (name: string): boolean => process.argv.includes(`--${name}`);
const REPS = Number(arg('reps') ?? 4);
const THREADS = 2;
const L = 4;
const D = 512;
const N = L * D;
const shape = { nLayers: L, dMlp: D };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const best = (v: number[]): number => Math.min(...v);
const top = (v: number[]): number => Math.max(...v);
const med = (v: number[]): number => [...v].sort((a, b) => a - b)[v.length >> 1]!;
const f1 = (x: number): string => x.toFixed(1);

function synthetic(T: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(T * N);
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const u = (s >>> 0) / 2 ** 32 - 0.5;
    a[i] = u > 0 ? u * 2 : u * 0.1; // GELU-like: mostly small negatives, some positives
  }
  return a;
}

async function ceilingSession() {
  const ort = loadOrt();
  const g = new OnnxGraph('mm', 17);
  g.input('A', 'float', ['m', 'k']);
  g.input('B', 'float', ['k', 'n']);
  g.op('MatMul', ['A', 'B'], {}, 'C');
  g.output('C', 'float', ['m', 'n']);
  const s = await ort.InferenceSession.create(g.toBytes(), { intraOpNumThreads: THREADS, interOpNumThreads: 1 });
  const a = synthetic(2048, 1).subarray(0, 2048 * 2048);
  const b = synthetic(2048, 2).subarray(0, 2048 * 2048);
  const feeds = { A: new ort.Tensor('float32', a, [2048, 2048]), B: new ort.Tensor('float32', b, [2048, 2048]) };
  return async (): Promise<number> => {
    const t0 = performance.now();
    const r = await s.run(feeds);
    const ms = performance.now() - t0;
    r.C!.dispose();
    return (2 * 2048 ** 3) / ms / 1e6;
  };
}

interface TorchPaper {
  per_1M_tokens_s_best: number;
  per_1M_tokens_s_median: number;
  plain_gflops_best: number;
  torch: string;
}

function torchPaper(): TorchPaper | undefined {
  const r = spawnSync('/usr/bin/python3', ['bench/torch_paper.py', '--tokens', '8192', '--chunks', '2', '--pairs', '4', '--threads', String(THREADS)], {
    encoding: 'utf8',
    env: torchEnv('/usr/bin/python3').env,
  });
  if (r.status !== 0) {
    console.log(`(torch baseline unavailable: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()})`);
    return undefined;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as TorchPaper;
}

/**
 * Exact mode on synthetic activations, as the pipeline drives it: one batch (a + 4 other models)
 * handed to 4 CrossMoments in turn, so the shared reference pass is paid once per batch. Fresh
 * arrays per batch (the reference pass is cached per keptPost array). Returns GFLOP/s over the
 * S_xy flops of the 4 pairs, and ms per kept token per pair.
 */
async function exactSynthetic(gemm: Gemm, ceiling: () => Promise<number>, out: Record<string, { gflops: number[]; perTokenMs: number[] }>, ceil: number[], xty: number[]) {
  for (const T of [1024, 8192]) {
    const ys = [4, 5, 6, 7].map((s) => synthetic(T, s));
    const nb = T === 1024 ? 8 : 2; // 1024: 8 batches fill one fp32 partial
    const bs = Array.from({ length: nb + 1 }, (_, b) => keptBatch([synthetic(T, 100 + b), ...ys], T, b));
    const cs = [1, 2, 3, 4].map((m) => new CrossMoments({ model: m, ref: shape, other: shape, seed: m, gemm }));
    for (const c of cs) await c.add(bs[0]!); // warm the sessions
    ceil.push(await ceiling());
    await sleep(30);
    const t0 = performance.now();
    for (const b of bs.slice(1)) for (const c of cs) await c.add(b);
    const ms = (performance.now() - t0) / nb / 4;
    (out[T] ??= { gflops: [], perTokenMs: [] }).gflops.push((2 * T * N * N) / ms / 1e6);
    out[T]!.perTokenMs.push(ms / T);
    await sleep(30);
  }
  const x8 = synthetic(8192, 9);
  const y8 = synthetic(8192, 10);
  const p32 = new Float32Array(N * N);
  await gemm.xty(x8, y8, 8192, N, N);
  await gemm.crossStep({ x: x8, y: y8, t: 8192, a: N, b: N, xy: p32 });
  ceil.push(await ceiling());
  await sleep(30);
  let t0 = performance.now();
  await gemm.xty(x8, y8, 8192, N, N);
  xty.push((2 * 8192 * N * N) / (performance.now() - t0) / 1e6);
  await sleep(30);
  // The S_xy step without m's Gram blocks: GEMM into the fp32 partial in place, plus Σy.
  t0 = performance.now();
  await gemm.crossStep({ x: x8, y: y8, t: 8192, a: N, b: N, xy: p32 });
  (out.noGram ??= { gflops: [], perTokenMs: [] }).gflops.push((2 * 8192 * N * N) / (performance.now() - t0) / 1e6);
  await sleep(30);
}

async function finishTime(gemm: Gemm): Promise<number> {
  const c = new CrossMoments({ model: 1, ref: shape, other: shape, seed: 1, gemm });
  await c.add(keptBatch([synthetic(1024, 1), synthetic(1024, 2)], 1024));
  const t0 = performance.now();
  await c.finish();
  return (performance.now() - t0) / 1000;
}

/** Real activations: 5 shipped models on held-out rows, exact vs fast over the same batches. */
async function real(gemm: Gemm, tokens: number) {
  const dirs = ['a', 'b', 'c', 'd', 'e'].map((s) => `models/tiny-gpt2-${s}`);
  const tokFile = HELDOUT_TOKENS;
  if (!dirs.every((d) => existsSync(d)) || !existsSync(tokFile)) {
    console.log('(real-activation run skipped: models/ or the held-out corpus is missing)');
    return undefined;
  }
  const models = await Promise.all(dirs.map((d) => openModel(d, { threads: THREADS })));
  const { nRows, nBatches, batch } = heldoutBatches(models, tokens);
  const mk = (m: number, mode: 'exact' | 'fast') => new CrossMoments({ model: m, ref: shape, other: shape, seed: 1000 + m, gemm, mode });
  const exact = [1, 2, 3, 4].map((m) => mk(m, 'exact'));
  const fastStrided = [1, 2, 3, 4].map((m) => mk(m, 'fast'));
  const time = { exact: 0, screen: 0, fast: 0, forward: 0, forwardScreen: 0 };
  let kept = 0;
  let screenKept = 0;
  // Fast mode's screen as the pipeline reads it: every k-th batch (plan.ts screenEvery), fed first.
  const every = screenEvery(nRows * ROW);
  const tick = (): number => performance.now();
  for (let b = 0; b < nBatches; b += every) {
    let t0 = tick();
    const B = await batch(b);
    time.forwardScreen += tick() - t0;
    t0 = tick();
    for (const c of fastStrided) await c.screen(B);
    time.screen += tick() - t0;
    screenKept += B.nKept;
  }
  for (let b = 0; b < nBatches; b++) {
    let t0 = tick();
    const B = await batch(b);
    time.forward += tick() - t0;
    kept += B.nKept;
    t0 = tick();
    for (const c of exact) await c.add(B);
    time.exact += tick() - t0;
    await sleep(20);
    t0 = tick();
    for (const c of fastStrided) await c.add(B);
    time.fast += tick() - t0;
  }
  const cand = fastStrided.map((c) => c.candidates());
  let t0 = tick();
  const re: CrossMomentsResult[] = [];
  for (const c of exact) re.push(await c.finish());
  const finishExact = tick() - t0;
  t0 = tick();
  const rf: CrossMomentsResult[] = [];
  for (const c of fastStrided) rf.push(await c.finish());
  const finishFast = tick() - t0;
  for (const m of models) await m.close();
  const table = (rs: CrossMomentsResult[]) => universalityTable(rs.map((r, i) => ({ label: 'bcde'[i]!, dMlp: D, result: r })), shape);
  const te = table(re);
  const compare = (rs: CrossMomentsResult[]) => {
    let dMax = 0;
    let dBase = 0;
    let over = 0;
    for (let i = 0; i < N; i++) {
      for (let p = 0; p < 4; p++) {
        const d = Math.abs(rs[p]!.maxCorr[i]! - re[p]!.maxCorr[i]!);
        dMax = Math.max(dMax, d);
        over += +(d > 1e-3);
        dBase = Math.max(dBase, Math.abs(rs[p]!.baseline[i]! - re[p]!.baseline[i]!));
      }
    }
    // Universal sets at excess thresholds 0.3, 0.4, 0.5: neurons that differ, and the exact count.
    const diffU = [0.3, 0.4, 0.5].map((threshold) => {
      const te = universalityTable(re.map((r, i) => ({ label: 'bcde'[i]!, dMlp: D, result: r })), shape, { threshold });
      const t = universalityTable(rs.map((r, i) => ({ label: 'bcde'[i]!, dMlp: D, result: r })), shape, { threshold });
      return { threshold, differ: t.universal.reduce((a, u, i) => a + +(u !== te.universal[i]), 0), exact: te.total.universal };
    });
    return { dMax, dBase, over, diffU };
  };
  return {
    kept,
    screenKept,
    time,
    finishExact,
    finishFast,
    cand,
    universal: te.total.universal,
    counts: te.counts,
    medianBaseline: te.layers.map((l) => l.medianBaseline),
    every,
    strided: compare(rf),
  };
}

async function main(): Promise<void> {
  const ortVersion = (JSON.parse(readFileSync('node_modules/onnxruntime-node/package.json', 'utf8')) as { version: string }).version;
  console.log(`onnxruntime-node ${ortVersion}, node ${process.version}, ${cpus()[0]?.model ?? '?'} x${cpus().length}, ${THREADS} ORT threads`);
  const gemm = new Gemm({ threads: THREADS });
  if (flag('real-only')) {
    await printReal(gemm);
    await gemm.release();
    return;
  }
  const ceiling = await ceilingSession();
  await ceiling();

  const torchRuns: TorchPaper[] = [];
  const ex = { out: {} as Record<string, { gflops: number[]; perTokenMs: number[] }>, ceil: [] as number[], xty: [] as number[], finishS: 0 };
  // Ours and torch in turns, so that load from elsewhere falls on both.
  for (let r = 0; r < REPS; r++) {
    await exactSynthetic(gemm, ceiling, ex.out, ex.ceil, ex.xty);
    if (!flag('no-torch') && r < 2) {
      const t = torchPaper();
      if (t) torchRuns.push(t);
    }
  }
  ex.finishS = await finishTime(gemm);
  const ceilBest = top(ex.ceil);
  console.log(`\nGEMM ceiling (ORT MatMul 2048³, dynamic inputs): best ${f1(ceilBest)} GFLOP/s, median ${f1(med(ex.ceil))}`);
  const xtyBest = top(ex.xty);
  console.log(`Xᵀ·Y alone (Gemm transA, T = 8192, 2048 × 2048): best ${f1(xtyBest)} GFLOP/s (${f1((100 * xtyBest) / ceilBest)}% of ceiling), median ${f1(med(ex.xty))}`);
  const ng = ex.out.noGram!.gflops;
  console.log(`S_xy step (crossStep without the Gram: in-place fp32 partial + Σy): best ${f1(top(ng))} GFLOP/s (${f1((100 * top(ng)) / ceilBest)}% of ceiling), median ${f1(med(ng))}`);
  // m's Gram blocks (gramSplit 2): 3/4 of 2·L·d² flops per token.
  const gramShare = (0.75 * 2 * L * D * D) / (2 * N * N);
  console.log('\n| kept tokens per batch | CrossMoments.add(), 4 pairs: GFLOP/s (S_xy flops), best | median | % of ceiling (best/best) | with the Gram flops, best | ms per 1k tokens per pair, best |');
  console.log('|---:|---:|---:|---:|---:|---:|');
  for (const T of ['1024', '8192']) {
    const g = ex.out[T]!.gflops;
    const b = top(g);
    console.log(`| ${T} | ${f1(b)} | ${f1(med(g))} | ${f1((100 * b) / ceilBest)}% | ${f1(b * (1 + gramShare))} (${f1((100 * b * (1 + gramShare)) / ceilBest)}%) | ${f1(best(ex.out[T]!.perTokenMs) * 1000)} |`);
  }
  const per1M = (ms: number): number => (4 * ms * 1e6) / 1000 + 4 * ex.finishS;
  const ours8 = per1M(best(ex.out['8192']!.perTokenMs));
  const ours8m = per1M(med(ex.out['8192']!.perTokenMs));
  console.log(`\nexact mode, 1M kept tokens × 4 pairs (8192-token batches, + 4 finish() of ${f1(ex.finishS)} s): best ${f1(ours8)} s, median ${f1(ours8m)} s`);
  if (torchRuns.length) {
    const tb = best(torchRuns.map((t) => t.per_1M_tokens_s_best));
    const tm = med(torchRuns.map((t) => t.per_1M_tokens_s_median));
    console.log(`torch ${torchRuns[0]!.torch} paper algorithm (two passes), 1M tokens × 4 pairs: best ${f1(tb)} s, median ${f1(tm)} s (plain pass ${f1(top(torchRuns.map((t) => t.plain_gflops_best)))} GFLOP/s)`);
    console.log(`speed-up exact vs torch paper: ${(tb / ours8).toFixed(2)}× (best/best), ${(tm / ours8m).toFixed(2)}× (median/median)`);
  }

  if (!flag('no-real')) await printReal(gemm);
  await gemm.release();
}

async function printReal(gemm: Gemm): Promise<void> {
  {
    const r = await real(gemm, Number(arg('real-tokens') ?? 131072));
    if (r) {
      const perM = (ms: number): number => (ms / r.kept) * 1e6 / 1000;
      console.log(`\nreal activations: ${r.kept} kept tokens, 5 tiny models, 4 pairs`);
      console.log(`  forward (5 models): main pass ${f1(r.time.forward / 1000)} s, screen sample ${f1(r.time.forwardScreen / 1000)} s`);
      console.log(`  exact:  ${f1(r.time.exact / 1000)} s accumulate + ${f1(r.finishExact / 1000)} s finish → ${f1(perM(r.time.exact))} s per 1M tokens (+ finish)`);
      console.log(
        `  fast (screen = every ${r.every}th batch, ${r.screenKept} kept tokens, fed first): screen ${f1(r.time.screen / 1000)} s, candidates ${f1(r.time.fast / 1000)} s, finish ${f1(r.finishFast / 1000)} s → candidates ${f1(perM(r.time.fast))} s per 1M tokens`,
      );
      console.log(`    candidates per reference neuron (partners, rotated): ${r.cand.map((c) => c && `${(c.partners / N).toFixed(1)}, ${(c.rotated / N).toFixed(1)}`).join(' | ')}`);
      console.log(
        `    vs exact: universal sets differ in ${r.strided.diffU.map((u) => `${u.differ} (>${u.threshold}, exact ${u.exact})`).join(', ')}; max |Δ max_corr| ${r.strided.dMax.toExponential(2)} (${r.strided.over} of ${4 * N} > 1e-3), max |Δ baseline| ${r.strided.dBase.toExponential(2)}`,
      );
      console.log(`  exact: universal (excess > 0.5) ${r.universal} of ${N}; counts ${r.counts.map((c) => `>${c.threshold}: ${c.count}`).join(', ')}; median baseline per layer ${r.medianBaseline.map((x) => x.toFixed(3)).join(', ')}`);
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
