// The forward worker (src/engine/analysis/pipeline/prefetch.ts) on and off, in turns: the whole
// analysis of the shipped family (5 seeds, the default plan) over the same tokens, each run in
// its own process, with wall time, the stream's time, CPU seconds (user + system, every thread)
// and CPU use; then the result files compared byte for byte between the two settings.
//
//   node --import tsx bench/overlap.ts [--tokens 65536] [--reps 2] [--threads 2] [--mode exact]
//
// Not a test: the figures go in BENCHMARKS.md. Measure on an idle machine.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { runAnalysis } from '../src/engine/analysis/pipeline';

const ROOT = join(__dirname, '..');
const CACHE = join(ROOT, 'tools', '.cache');
const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
};

interface Report {
  overlap: boolean;
  wall_s: number;
  stream_s: number;
  cpu_s: number;
  load: number;
}

async function child(overlap: boolean, tokens: number, threads: number, mode: 'exact' | 'fast'): Promise<void> {
  const heldout = join(ROOT, 'models', 'corpus', 'heldout.jsonl');
  const corpus = Array.from({ length: Math.ceil(tokens / 400_000) }, () => heldout);
  const models = ['a', 'b', 'c', 'd', 'e'].map((s) => join(ROOT, 'models', `tiny-gpt2-${s}`));
  const out = join(CACHE, `bench-overlap-${overlap ? 'on' : 'off'}`);
  rmSync(out, { recursive: true, force: true });
  const c0 = process.cpuUsage();
  const t0 = Date.now();
  const r = await runAnalysis({ models, corpus, tokens, out, mode, threads, overlap });
  const wall = (Date.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const rep: Report = { overlap, wall_s: wall, stream_s: r.manifest.timings.stream_s ?? NaN, cpu_s: (c.user + c.system) / 1e6, load: loadavg()[0]! };
  process.stdout.write(`${JSON.stringify(rep)}\n`);
}

/** Every file of a run folder but the manifest and logs (they hold times and settings). */
function files(dir: string): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  const walk = (d: string, rel: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p, `${rel}${n}/`);
      else if (!/manifest|\.log$|checkpoint/.test(n)) m.set(`${rel}${n}`, readFileSync(p));
    }
  };
  walk(dir, '');
  return m;
}

async function main(): Promise<void> {
  const tokens = Number(arg('tokens', '65536'));
  const reps = Number(arg('reps', '2'));
  const threads = Number(arg('threads', '2'));
  const mode = arg('mode', 'exact') as 'exact' | 'fast';
  if (process.argv.includes('--child')) return child(arg('overlap', 'on') === 'on', tokens, threads, mode);
  const rows: Report[] = [];
  for (let r = 0; r < reps; r++) {
    for (const o of r % 2 === 0 ? ['off', 'on'] : ['on', 'off']) {
      const p = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--child', '--overlap', o, '--tokens', String(tokens), '--threads', String(threads), '--mode', mode], {
        cwd: ROOT,
        encoding: 'utf8',
        env: process.env,
        maxBuffer: 1 << 26,
      });
      if (p.status !== 0) throw new Error(`child (overlap ${o}) failed: ${p.stderr}`);
      const rep = JSON.parse(p.stdout.trim().split('\n').pop()!) as Report;
      rows.push(rep);
      console.log(
        `overlap ${o.padEnd(3)}  wall ${rep.wall_s.toFixed(1)} s  stream ${rep.stream_s.toFixed(1)} s  CPU ${rep.cpu_s.toFixed(1)} s (${((100 * rep.cpu_s) / rep.wall_s).toFixed(0)}%)  load ${rep.load.toFixed(1)}`,
      );
    }
  }
  const a = files(join(CACHE, 'bench-overlap-off'));
  const b = files(join(CACHE, 'bench-overlap-on'));
  const differ = [...a.keys()].filter((k) => !b.get(k)?.equals(a.get(k)!));
  console.log(`result files: ${a.size} vs ${b.size}; ${differ.length === 0 && a.size === b.size ? 'identical' : `different: ${differ.join(', ')}`}`);
}

void main().catch((e) => {
  console.error(e);
  process.exit(1);
});
