// Fast mode's candidate pass alone (issue #13 item 2; numbers in BENCHMARKS.md, "Fast mode's
// candidate pass"):
//
//   node --import tsx bench/fastpass.ts [--tokens 131072] [--pairs 1] [--copies 1] [--exact] [--threads 2]
//
// The shipped tiny models a (reference) and b..e on held-out rows, as bench/analysis.ts section 4
// reads them: fast mode's screen is every k-th batch (plan.ts screenEvery) fed to screen() first,
// then every batch goes through add(). Only the accumulators' calls are timed (the forwards are
// not): wall and CPU seconds of the whole process (ORT's and the kernel pool's threads included),
// the candidate pass split into its parts, the candidate counts and how many distinct rotated
// neurons the candidates name per layer. `--copies N` runs N identical sets of accumulators over
// the same batches, in turns batch by batch: their spread is the noise of the machine's load. `--exact` also runs exact mode over the same batches (in
// turns, batch by batch) and compares the results (max |Δ max_corr|, |Δ baseline|).
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { CrossMoments, type CrossMomentsResult } from '../src/engine/analysis/crossmoments';
import { FastState } from '../src/engine/analysis/cross/fast';
import { Gemm, SddmmArena } from '../src/engine/analysis/gemm';
import { screenEvery } from '../src/engine/analysis/plan';
import { openModel } from '../src/engine/runtime';
import { HELDOUT_TOKENS, heldoutBatches, ROW } from './heldout';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const flag = (name: string): boolean => process.argv.includes(`--${name}`);
const TOKENS = Number(arg('tokens') ?? 131072);
const PAIRS = Number(arg('pairs') ?? 1);
const COPIES = Number(arg('copies') ?? 1);
const VARIANTS = Array.from({ length: COPIES }, (_, k) => `copy ${k + 1}`);
const THREADS = Number(arg('threads') ?? 2);
const shape = { nLayers: 4, dMlp: 512 };

/** Wall and CPU (user + system, every thread of the process) seconds of what `f` runs. */
class Clock {
  wall = 0;
  cpu = 0;
  async time<T>(f: () => Promise<T>): Promise<T> {
    const w = performance.now();
    const c = process.cpuUsage();
    try {
      return await f();
    } finally {
      const d = process.cpuUsage(c);
      this.cpu += (d.user + d.system) / 1e6;
      this.wall += (performance.now() - w) / 1000;
    }
  }
  timeSync<T>(f: () => T): T {
    const w = performance.now();
    const c = process.cpuUsage();
    try {
      return f();
    } finally {
      const d = process.cpuUsage(c);
      this.cpu += (d.user + d.system) / 1e6;
      this.wall += (performance.now() - w) / 1000;
    }
  }
  toString(): string {
    return `${this.wall.toFixed(2)} s wall, ${this.cpu.toFixed(2)} CPU-s`;
  }
}

/** Distinct rotated neurons named by the candidates, per layer of m (CSR columns are l·d + k). */
function distinctRotated(c: CrossMoments): number[] {
  const cols = (c as unknown as { fast: { clR: Int32Array } }).fast.clR;
  const seen = Array.from({ length: shape.nLayers }, () => new Set<number>());
  for (const j of cols) seen[Math.floor(j / shape.dMlp)]!.add(j);
  return seen.map((s) => s.size);
}

async function main(): Promise<void> {
  const dirs = ['a', 'b', 'c', 'd', 'e'].slice(0, PAIRS + 1).map((s) => `models/tiny-gpt2-${s}`);
  if (!dirs.every((d) => existsSync(d)) || !existsSync(HELDOUT_TOKENS)) throw new Error('models/ or the held-out corpus is missing');
  console.log(`fastpass: ${TOKENS} tokens, ${PAIRS} pair(s), ${cpus()[0]?.model ?? '?'} x${cpus().length}, load ${(await import('node:os')).loadavg().map((v) => v.toFixed(1)).join(' ')}`);
  const gemm = new Gemm({ threads: THREADS });
  const models = await Promise.all(dirs.map((d) => openModel(d, { threads: THREADS })));
  const { nRows, nBatches, batch } = heldoutBatches(models, TOKENS);
  const mk = (m: number, mode: 'exact' | 'fast'): CrossMoments => new CrossMoments({ model: m, ref: shape, other: shape, seed: 1000 + m, gemm, mode, threads: THREADS });
  const pairs = Array.from({ length: PAIRS }, (_, p) => p + 1);
  const variants = VARIANTS.map((name) => ({ name, tr: new Clock(), fast: pairs.map((m) => mk(m, 'fast')), start: new Clock(), cand: new Clock(), ort: new Clock(), sums: new Clock() }));
  const fast = variants[0]!.fast;
  const exact = flag('exact') ? pairs.map((m) => mk(m, 'exact')) : [];
  const every = screenEvery(nRows * ROW);
  // The candidate pass's parts: ORT's step (transposes, rotation) and the kernel's sums.
  let ortStep = new Clock();
  let sums = new Clock();
  let tr = new Clock();
  let counting = false;
  const rotateStep = Gemm.prototype.rotateStep;
  Gemm.prototype.rotateStep = function (this: Gemm, a: Parameters<Gemm['rotateStep']>[0]) {
    return counting ? ortStep.time(() => rotateStep.call(this, a)) : rotateStep.call(this, a);
  };
  const transpose = SddmmArena.prototype.transpose;
  SddmmArena.prototype.transpose = function (this: SddmmArena, ...a: Parameters<SddmmArena['transpose']>) {
    if (!counting) return transpose.apply(this, a);
    tr.timeSync(() => transpose.apply(this, a));
  };
  const step = FastState.prototype.step;
  FastState.prototype.step = function (this: FastState, n: number) {
    if (!counting) return step.call(this, n);
    sums.timeSync(() => step.call(this, n));
  };
  const screen = new Clock();
  const ex = new Clock();
  let screenKept = 0;
  for (let b = 0; b < nBatches; b += every) {
    const B = await batch(b);
    screenKept += B.nKept;
    await screen.time(async () => {
      for (const v of variants) for (const c of v.fast) await c.screen(B);
    });
  }
  let kept = 0;
  for (let b = 0; b < nBatches; b++) {
    const B = await batch(b);
    kept += B.nKept;
    // The first add() picks the candidates (startFast): timed apart from the pass itself.
    // Variants in turns, the order rotating from batch to batch.
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(b + k) % variants.length]!;
      [ortStep, sums, tr] = [v.ort, v.sums, v.tr];
      counting = b > 0;
      await (b === 0 ? v.start : v.cand).time(async () => {
        for (const c of v.fast) await c.add(B);
      });
      counting = false;
    }
    if (exact.length) {
      await ex.time(async () => {
        for (const c of exact) await c.add(B);
      });
    }
  }
  const counts = fast.map((c) => c.candidates()!);
  console.log(`screen: ${screenKept} tokens (every ${every}), ${screen} (all ${variants.length} variants)`);
  const results: CrossMomentsResult[][] = [];
  for (const v of variants) {
    const { start, cand, ort, sums, tr } = v;
    const rf: CrossMomentsResult[] = [];
    for (const c of v.fast) rf.push(await c.finish());
    results.push(rf);
    console.log(`${v.name}: candidates picked (startFast + the first batch): ${start}`);
    console.log(`  candidate pass, ${kept} tokens less the first batch: ${cand}`);
    console.log(`  per 1M tokens and pair: ${((cand.wall / kept / PAIRS) * 1e6).toFixed(1)} s wall, ${((cand.cpu / kept / PAIRS) * 1e6).toFixed(1)} CPU-s`);
    console.log(`  ORT step: ${ort}; kernel sums: ${sums}; kernel transposes: ${tr}; the rest (copies, reference step): ${(cand.wall - ort.wall - sums.wall - tr.wall).toFixed(2)} s wall, ${(cand.cpu - ort.cpu - sums.cpu - tr.cpu).toFixed(2)} CPU-s`);
  }
  const rf = results[0]!;
  for (const [k, r] of results.entries()) {
    let d = 0;
    for (const [p, f] of r.entries()) for (let i = 0; i < f.maxCorr.length; i++) d = Math.max(d, Math.abs(f.maxCorr[i]! - rf[p]!.maxCorr[i]!), Math.abs(f.baseline[i]! - rf[p]!.baseline[i]!));
    if (k > 0) console.log(`${variants[k]!.name} vs ${variants[0]!.name}: max |Δ| of max_corr and baseline ${d.toExponential(2)}`);
  }
  counts.forEach((k, p) => console.log(`  pair ${p + 1}: ${(k.partners / 2048).toFixed(1)} partner and ${(k.rotated / 2048).toFixed(1)} rotated candidates per neuron; distinct rotated per layer ${distinctRotated(fast[p]!).join(' ')}`));
  if (exact.length) {
    console.log(`exact, same batches: ${ex}; per 1M tokens and pair ${((ex.wall / kept / PAIRS) * 1e6).toFixed(1)} s wall, ${((ex.cpu / kept / PAIRS) * 1e6).toFixed(1)} CPU-s`);
    let dMax = 0;
    let dBase = 0;
    let diff = 0;
    for (const [p, c] of exact.entries()) {
      const e = await c.finish();
      const f = rf[p]!;
      for (let i = 0; i < e.maxCorr.length; i++) {
        dMax = Math.max(dMax, Math.abs(e.maxCorr[i]! - f.maxCorr[i]!));
        dBase = Math.max(dBase, Math.abs(e.baseline[i]! - f.baseline[i]!));
        diff += +(e.partner[i] !== f.partner[i]);
      }
    }
    console.log(`fast vs exact: max |Δ max_corr| ${dMax.toExponential(2)}, max |Δ baseline| ${dBase.toExponential(2)}, partners different ${diff}`);
  }
  for (const m of models) await m.close();
  await gemm.release();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
