// `npm run bench:families`: what families and roles add to the universality analysis of the
// shipped family (5 seeds) on the held-out corpus. Not a test: figures go in BENCHMARKS.md.
//
// One run with families on. Every accumulator's add/finish is timed in place, so the stream's
// share of each is measured under the same load (a shared 2-core machine makes two separate runs
// hard to compare); the families' finalize (VR of every label, roles, entropy intervention, files)
// is timed from the run's progress messages. Per-token costs are then extrapolated to 1M tokens:
// streaming costs grow with tokens, the finalize steps do not.
//
//   npm run bench:families                       200k tokens
//   npm run bench:families -- --tokens 1000000   the corpus is read as often as needed
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { defaultPlan } from '../src/engine/analysis/plan';
import { runAnalysis } from '../src/engine/analysis/pipeline';
import { timedPlan } from './timed';

const ROOT = join(__dirname, '..');
const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

async function main(): Promise<void> {
  const tokens = Number(arg('tokens') ?? 200_000);
  const heldout = join(ROOT, 'models', 'corpus', 'heldout.jsonl');
  const corpus = Array.from({ length: Math.ceil(tokens / 430_000) }, () => heldout);
  const models = ['a', 'b', 'c', 'd', 'e'].map((s) => join(ROOT, 'models', `tiny-gpt2-${s}`));
  const out = join(ROOT, 'tools', '.cache', 'bench-families');
  rmSync(out, { recursive: true, force: true });

  const { plan, spent: timings } = timedPlan(defaultPlan());
  const spent = timings.byName;
  const marks: [string, number][] = [];
  const t0 = performance.now();
  const r = await runAnalysis({ models, corpus, tokens, out, plan }, (p) => {
    const m = `${p.phase}: ${p.message ?? ''}`;
    if (p.phase !== 'stream' && marks[marks.length - 1]?.[0] !== m) marks.push([m, performance.now()]);
  });
  const wall = (performance.now() - t0) / 1000;
  const at = (prefix: string): number => marks.find(([m]) => m.startsWith(prefix))?.[1] ?? NaN;
  const famFinal = (at('write: families and roles files') - at('write: families: variance')) / 1000;
  const tm = r.manifest.timings;
  const stream = tm.stream_s;
  const fam = spent.get('families')!;
  const famAdd = fam.add / 1000;
  const other = [...spent].filter(([n]) => n !== 'families').reduce((a, [, t]) => a + t.add, 0) / 1000;
  const used = r.manifest.corpus.tokens.used;
  const rest = tm.total_s - famAdd - famFinal - fam.finish / 1000;
  const perTok = (s: number): number => (s / used) * 1e6;
  const fixed = famFinal + fam.finish / 1000;
  const restStream = stream - famAdd;
  const restFixed = rest - restStream;
  const at1M = (perTok(famAdd) + fixed) / (perTok(restStream) + restFixed);
  const f = (x: number): string => x.toFixed(1);
  console.log(`tokens ${used} (5 models, heldout.jsonl), wall ${f(wall)} s; manifest timings ${JSON.stringify(tm)}`);
  console.log(`stream ${f(stream)} s: families add ${f(famAdd)} s, other accumulators ${f(other)} s, forwards and batching ${f(stream - famAdd - other)} s`);
  console.log(`  add, per accumulator: ${[...spent].map(([n, t]) => `${n} ${f(t.add / 1000)} s`).join(', ')}`);
  console.log(`families finalize (VR, roles, intervention, files) ${f(famFinal)} s; families finish ${f(fam.finish / 1000)} s`);
  console.log(`overhead here: ${(100 * (famAdd + fixed) / rest).toFixed(1)}% of the analysis without families (${f(rest)} s)`);
  console.log(`at 1M tokens (per-token costs scaled, fixed costs kept): families ${f(perTok(famAdd) + fixed)} s on ${f(perTok(restStream) + restFixed)} s = ${(100 * at1M).toFixed(1)}%`);
  console.log(`load average ${require('node:os').loadavg().map((x: number) => x.toFixed(1)).join(' ')}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
