// Universality diagnostics of the shipped family for the model card: each seed in turn as the
// reference against the other four, on the demo's budget of the held-out corpus.
//
//   node esbuild.config.mjs && node --import tsx tools/family_universality.ts [--tokens 40960] [--runs DIR]
//       [--corpus models/corpus/heldout.tokens.bin] [--seeds a,b,c,d,e] [--threads N]
//
// Runs `dist/cli.js analyze --no-families` once per reference seed (or reuses finished runs under
// --runs; the baseline does not depend on the families) and prints the per-seed, per-layer table
// (median rotated baseline; universal fraction at excess 0.3/0.4/0.5), then per seed the medians
// over all neurons and over the universal ones (excess > 0.5), the paper's unit of comparison
// (its GPT2-small: mean_corr ≈ 0.75, mean_baseline ≈ 0.155 over universal neurons).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readNeuronArrow } from '../src/engine/run/neurons';
import { runFile } from '../src/engine/run/files';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => (args.includes(name) ? args[args.indexOf(name) + 1]! : dflt);
const tokens = opt('--tokens', '40960');
const runs = resolve(opt('--runs', '.universal-neurons/family-card'));
const root = resolve(__dirname, '..');
const corpus = resolve(opt('--corpus', join(root, 'models', 'corpus', 'heldout.tokens.bin')));
const threads = opt('--threads', '0');
const all = ['a', 'b', 'c', 'd', 'e'];
const seeds = opt('--seeds', all.join(',')).split(',');

const median = (xs: number[]): number => {
  const s = [...xs].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const medians: string[] = [];

(async () => {
  console.log('| reference | layer | median rotated baseline | excess > 0.3 | excess > 0.4 | excess > 0.5 |');
  console.log('|---|---|---|---|---|---|');
  for (const s of seeds) {
    const out = join(runs, `ref-${s}`);
    if (!existsSync(runFile(out, 'neurons'))) {
      const models = [s, ...all.filter((o) => o !== s)].map((o) => join(root, 'models', `tiny-gpt2-${o}`));
      execFileSync('node', [join(root, 'dist', 'cli.js'), 'analyze', '--models', ...models, '--corpus', corpus, '--tokens', tokens, '--no-families', '--threads', threads, '--out', out], { stdio: ['ignore', 'ignore', 'inherit'] });
    }
    const t = await readNeuronArrow(runFile(out, 'neurons'));
    const layer = t.columns.get('layer')!;
    const excess = t.columns.get('excess_corr')!;
    const baseline = t.columns.get('mean_baseline')!;
    const layers = [...new Set(layer)].sort((p, q) => p - q);
    for (const l of layers) {
      const idx = [...layer.keys()].filter((i) => layer[i] === l);
      const frac = (th: number): string => `${((100 * idx.filter((i) => excess[i]! > th).length) / idx.length).toFixed(2)}%`;
      console.log(`| ${s} | ${l} | ${median(idx.map((i) => baseline[i]!)).toFixed(3)} | ${frac(0.3)} | ${frac(0.4)} | ${frac(0.5)} |`);
    }
    const corr = t.columns.get('mean_corr')!;
    const uni = [...excess.keys()].filter((i) => excess[i]! > 0.5);
    const med = (c: ArrayLike<number>, idx: number[]): string => (idx.length ? median(idx.map((i) => c[i]!)).toFixed(3) : '–');
    const every = [...excess.keys()];
    medians.push(
      `| ${s} | ${med(baseline, every)} | ${med(corr, every)} | ${uni.length} | ${med(corr, uni)} | ${med(baseline, uni)} | ${med(excess, uni)} |`,
    );
  }
  console.log('');
  console.log(`${tokens} tokens of ${corpus}`);
  console.log('');
  console.log('| reference | all: median mean_baseline | all: median mean_corr | universal (excess > 0.5) | universal: median mean_corr | universal: median mean_baseline | universal: median excess |');
  console.log('|---|---|---|---|---|---|---|');
  for (const m of medians) console.log(m);
})().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
