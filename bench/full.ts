// The whole analysis of the shipped family as a user runs it: 5 seeds (reference tiny-gpt2-a),
// 1M tokens, the default plan (cross moments, statistics, examples, families, weights, files),
// wall time and peak RSS, in exact and fast mode, each mode in its own process (so each peak RSS
// is its own), then fast compared with exact. Not a test: figures go in BENCHMARKS.md.
//
//   node --import tsx bench/full.ts                         1,048,576 tokens, exact then fast
//   node --import tsx bench/full.ts --tokens 200000 --modes exact
//   node --import tsx bench/full.ts --modes exact,fast --reuse fast   fast's report from the last run
//
// Each accumulator's screen/add/finish is timed in place (bench/timed.ts): the report says where
// the stream went; the rest of the stream is the forwards and batching.
//
// The held-out corpus (models/corpus/heldout.jsonl, ≈ 430k tokens) is read as often as the
// budget needs: the timing does not depend on the text, and a fresh clone has no other corpus.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { runAnalysis, type Progress } from '../src/engine/analysis/pipeline';
import type { CrossMomentsResult } from '../src/engine/analysis/crossmoments';
import { defaultPlan } from '../src/engine/analysis/plan';
import { timedPlan } from './timed';

const ROOT = join(__dirname, '..');
const CACHE = join(ROOT, 'tools', '.cache');
const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const hwm = (): number => Number(readFileSync('/proc/self/status', 'utf8').match(/VmHWM:\s+(\d+) kB/)![1]) * 1024;

interface ModeReport {
  mode: string;
  tokens: number;
  kept: number;
  wall_s: number;
  timings: Record<string, number>;
  /** Seconds per accumulator: screen, add, finish (absent in reports from before it was timed). */
  accumulators?: Record<string, { screen: number; add: number; finish: number }>;
  load_average?: number[];
  stream_tokens_per_s: number;
  peak_rss_gb: number;
  universal: unknown;
  cross: { label: string; maxCorr: number[]; baseline: number[]; partner: number[] }[];
}

/** One mode, in this process. */
async function child(mode: 'exact' | 'fast', tokens: number): Promise<void> {
  const heldout = join(ROOT, 'models', 'corpus', 'heldout.jsonl');
  const corpus = Array.from({ length: Math.ceil(tokens / 400_000) }, () => heldout);
  const models = ['a', 'b', 'c', 'd', 'e'].map((s) => join(ROOT, 'models', `tiny-gpt2-${s}`));
  const out = join(CACHE, `bench-full-${mode}`);
  rmSync(out, { recursive: true, force: true });
  let last = 0;
  const { plan, spent } = timedPlan(defaultPlan());
  const t0 = Date.now();
  const r = await runAnalysis({ models, corpus, tokens, out, mode, plan }, (p: Progress) => {
    if (Date.now() - last > 20_000 || p.phase === 'write' || p.phase === 'finish') {
      last = Date.now();
      process.stderr.write(`[${mode} ${((Date.now() - t0) / 1000).toFixed(0)} s] ${p.phase} ${p.message ?? ''} ${p.batch ?? ''}/${p.batches ?? ''}\n`);
    }
  });
  const wall = (Date.now() - t0) / 1000;
  const m = r.manifest;
  const rep: ModeReport = {
    mode,
    tokens: m.corpus.tokens.used,
    kept: Number(m.results?.kept_tokens ?? 0),
    wall_s: wall,
    timings: m.timings,
    accumulators: Object.fromEntries(
      [...spent.byName].map(([k, t]) => [k, { screen: t.screen / 1000, add: t.add / 1000, finish: t.finish / 1000 }]),
    ),
    load_average: loadavg(),
    stream_tokens_per_s: m.corpus.tokens.used / m.timings.stream_s,
    peak_rss_gb: hwm() / 1e9,
    universal: m.results?.universal,
    cross: m.models.slice(1).map((e) => {
      const c = r.results.get(`cross:${e.label}`) as CrossMomentsResult;
      return { label: e.label, maxCorr: [...c.maxCorr], baseline: [...c.baseline], partner: [...c.partner] };
    }),
  };
  writeFileSync(join(CACHE, `bench-full-${mode}.json`), JSON.stringify(rep));
}

function main(): void {
  const tokens = Number(arg('tokens') ?? 1_048_576);
  const modes = (arg('modes') ?? 'exact,fast').split(',') as ('exact' | 'fast')[];
  const reuse = (arg('reuse') ?? '').split(',').filter(Boolean);
  const reports: ModeReport[] = [];
  for (const mode of modes) {
    const file = join(CACHE, `bench-full-${mode}.json`);
    if (reuse.includes(mode)) {
      const r = JSON.parse(readFileSync(file, 'utf8')) as ModeReport;
      if (r.tokens > tokens || r.tokens < tokens * 0.99) throw new Error(`${file} is a ${r.tokens}-token run, not ${tokens}`);
      console.log(`${mode}: reusing ${file} (${statSync(file).mtime.toISOString()})`);
      reports.push(r);
      continue;
    }
    const c = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--child', mode, '--tokens', String(tokens)], { stdio: 'inherit' });
    if (c.status !== 0) throw new Error(`${mode} run failed (exit ${c.status})`);
    reports.push(JSON.parse(readFileSync(join(CACHE, `bench-full-${mode}.json`), 'utf8')) as ModeReport);
  }
  for (const r of reports) {
    const t = r.timings;
    console.log(
      `${r.mode}: ${r.tokens} tokens (${r.kept} kept), wall ${r.wall_s.toFixed(1)} s ` +
        `(open ${t.open_s!.toFixed(1)}, corpus ${t.corpus_s!.toFixed(1)}, stream ${t.stream_s!.toFixed(1)}, finish ${t.finish_s!.toFixed(1)}, write ${t.write_s!.toFixed(1)}); ` +
        `stream ${Math.round(r.stream_tokens_per_s)} tokens/s; peak RSS ${r.peak_rss_gb.toFixed(2)} GB; universal ${JSON.stringify(r.universal)}`,
    );
    if (r.accumulators) {
      const acc = Object.entries(r.accumulators);
      const inAcc = acc.reduce((s, [, a]) => s + a.screen + a.add, 0);
      console.log(
        `  stream by accumulator (screen + add, s): ${acc.map(([k, a]) => `${k} ${(a.screen + a.add).toFixed(1)}`).join(', ')}; ` +
          `forwards and batching ${(t.stream_s! - inAcc).toFixed(1)}; load average at the end ${r.load_average?.map((x) => x.toFixed(1)).join(' ')}`,
      );
    }
  }
  const exact = reports.find((r) => r.mode === 'exact');
  const fast = reports.find((r) => r.mode === 'fast');
  if (exact && fast) {
    let dMax = 0;
    let dBase = 0;
    let partners = 0;
    const diff: Record<string, number> = {};
    for (const [k, e] of exact.cross.entries()) {
      const f = fast.cross[k]!;
      for (let i = 0; i < e.maxCorr.length; i++) {
        dMax = Math.max(dMax, Math.abs(e.maxCorr[i]! - f.maxCorr[i]!));
        dBase = Math.max(dBase, Math.abs(e.baseline[i]! - f.baseline[i]!));
        if (e.partner[i] !== f.partner[i]) partners++;
      }
    }
    // The universal set at each threshold, from mean excess over the other models (docs/method-notes.md).
    const n = exact.cross[0]!.maxCorr.length;
    const excess = (r: ModeReport, i: number): number => r.cross.reduce((s, c) => s + c.maxCorr[i]! - c.baseline[i]!, 0) / r.cross.length;
    for (const th of [0.3, 0.4, 0.5]) {
      let d = 0;
      for (let i = 0; i < n; i++) if (excess(exact, i) > th !== excess(fast, i) > th) d++;
      diff[String(th)] = d;
    }
    console.log(
      `fast vs exact: max |Δ max_corr| ${dMax.toExponential(2)}, max |Δ baseline| ${dBase.toExponential(2)}, partners differing ${partners}, ` +
        `universal sets differ in ${JSON.stringify(diff)} neurons; fast is ${(exact.wall_s / fast.wall_s).toFixed(2)}× exact's wall time`,
    );
  }
}

const ci = process.argv.indexOf('--child');
if (ci >= 0) {
  child(process.argv[ci + 1] as 'exact' | 'fast', Number(arg('tokens'))).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main();
}
