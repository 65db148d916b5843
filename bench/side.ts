// Side by side: the project's whole analysis (the CLI `analyze` of the 5 shipped models) and a
// plain PyTorch peer of the paper's whole pipeline (bench/torch_peer.py), on the same tokens, in
// turns, each in its own process. Not a test: figures go in BENCHMARKS.md ("Side by side with a
// PyTorch peer").
//
//   npm run bench:side                                   65,536 tokens, threads 1 and 2
//   npm run bench:side -- --tokens 20480 --threads 2
//   npm run bench:side -- --tokens 131072 --threads 1,2 --rounds 3 --families off
//   npm run bench:side -- --compare RUN_DIR PEER.json    only the correctness check of two results
//   npm run bench:side -- --family gpt2-small --tokens 1024 --threads 2
//
// Options: --modes exact,fast (default both), --families on|off (project; default on, the whole
// analysis), --python PATH (default /usr/bin/python3), --peer-omp passive (OMP_WAIT_POLICY=PASSIVE
// for the peer; default: as a researcher runs it), --peer-blas as-is (leave OpenBLAS on the core it
// detects; default: name the CPU's best core when OpenBLAS fell back to a generic one, bench/torchEnv.ts),
// --peer-hugepages off (default on: the peer starts with the same glibc huge-pages tunable the
// project's CLI gives itself, src/engine/hugePages.ts; without it the GPT-2-small peer's float64
// temporaries faulted in 4 kB at a time and it took 1,892 s instead of 236 s; the tiny peer 0–4%),
// --rounds R (medians), --keep (run folders),
// --family tiny|gpt2-small (default tiny: the shipped family; gpt2-small: five random-weight models
// of GPT-2 small's shape, tools/random_gpt2.ts, as `bench:scale` runs; the peer then runs
// `--pairwise`, one float64 S_xy of 10.9 GB at a time, since four would not fit 24 GB),
// --no-gnu-time (measure from /proc even where /usr/bin/time exists).
//
// Per thread count N (both sides get N: `analyze --threads N`, `torch.set_num_threads(N)`), each
// round runs: project exact, project fast (`--mode fast`, only when T ≥ 40,960: below that the
// engine runs fast mode as exact), the torch peer. Each child is measured from outside: wall
// time, CPU time (user + sys) and peak RSS from GNU time (/usr/bin/time) when present, else from
// this process's cutime/cstime after the child is reaped and its VmHWM sampled every 50 ms.
// Stream time and kept tokens come from the run's manifest (project) or the peer's JSON line.
// The project runs as users run it: the CLI bundled by esbuild as `npm run build` does
// (tools/.cache/side/cli.js), families on unless `--families off`.
//
// Every round also checks the peer against the project's exact run: same corpus hash, max |Δ|
// of max_corr per neuron and other model, partners that differ, the reference's activation
// moments; the baselines differ by construction (different random rotations), so only their
// distributions are set side by side. Temporary run folders are removed at the end (`--keep`
// keeps them).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { readManifest } from '../src/engine/run/manifest';
import { EXACT_OF, readNeuronArrow } from '../src/engine/run/neurons';
import { runFile } from '../src/engine/run/files';
import { GPT2_SMALL, writeRandomGpt2 } from '../tools/random_gpt2';
import { hugePagesEnv, hugePagesOn } from '../src/engine/hugePages';
import { torchEnv } from './torchEnv';

const ROOT = join(__dirname, '..');
const LABELS = ['a', 'b', 'c', 'd', 'e'];
const HELDOUT = join(ROOT, 'models', 'corpus', 'heldout.tokens.bin');
const PEER = join(ROOT, 'bench', 'torch_peer.py');
const FAST_FLOOR = 40_960; // below this the engine runs fast mode as exact (BENCHMARKS.md)

const argv = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const flag = (name: string): boolean => argv.includes(`--${name}`);

interface Measured {
  wall_s: number;
  cpu_s: number;
  peak_rss_bytes: number;
  stdout: string;
  stderr: string;
  code: number | null;
}

interface Row {
  side: 'project exact' | 'project fast' | 'torch peer';
  threads: number;
  round: number;
  wall_s: number;
  stream_s: number;
  kept: number;
  cpu_s: number;
  peak_rss_bytes: number;
  load: number;
  universal?: number;
}

/** The five models both sides read, and their context length (the corpus is cut in rows of it). */
interface Family {
  name: 'tiny' | 'gpt2-small';
  models: string[];
  positions: number;
}

function family(name: string): Family {
  if (name === 'tiny') return { name, models: LABELS.map((s) => join(ROOT, 'models', `tiny-gpt2-${s}`)), positions: 128 };
  if (name === 'gpt2-small') {
    // Written once into tools/.cache (the same folders bench/scale.ts uses).
    const models = LABELS.map((s) => writeRandomGpt2(join(ROOT, 'tools', '.cache', `random-gpt2-${GPT2_SMALL.layers}x768-${s}`), s, GPT2_SMALL));
    return { name, models, positions: GPT2_SMALL.positions };
  }
  throw new Error(`--family ${name}: tiny or gpt2-small`);
}

// ---------------------------------------------------------------------------------------------
// Running one child and measuring it

const GNU_TIME = '/usr/bin/time';
const useGnuTime = !flag('no-gnu-time') && existsSync(GNU_TIME) && spawnSync(GNU_TIME, ['-f', '%e', '-o', '/dev/null', 'true']).status === 0;
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** utime + stime of this process's reaped children, seconds (fields 16 and 17 of /proc/self/stat). */
function childrenCpu(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
  return (Number(f[13]) + Number(f[14])) / CLK_TCK;
}

function vmHwm(pid: number): number {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmHWM:\s+(\d+) kB/);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // already gone
  }
}

function measure(cmd: string, args: string[], work: string, env: NodeJS.ProcessEnv = process.env): Promise<Measured> {
  const timeFile = join(work, 'time.txt');
  const [file, fileArgs] = useGnuTime ? [GNU_TIME, ['-f', '%e %U %S %M', '-o', timeFile, cmd, ...args]] : [cmd, args];
  const cpu0 = childrenCpu();
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, fileArgs, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
    });
    let peak = 0;
    const poll = useGnuTime ? undefined : setInterval(() => (peak = Math.max(peak, vmHwm(child.pid!))), 50);
    child.on('error', reject);
    child.on('close', (code) => {
      const wall = (performance.now() - t0) / 1000;
      if (poll) clearInterval(poll);
      let cpu = childrenCpu() - cpu0;
      if (useGnuTime && existsSync(timeFile)) {
        const t = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
        cpu = t[1]! + t[2]!;
        peak = t[3]! * 1024;
        rmSync(timeFile, { force: true });
      }
      resolve({ wall_s: wall, cpu_s: cpu, peak_rss_bytes: peak, stdout, stderr, code });
    });
  });
}

function failed(what: string, m: Measured): Error {
  const tail = (m.stderr + m.stdout).trim().split('\n').slice(-15).join('\n');
  return new Error(`${what} failed (exit ${m.code}):\n${tail}`);
}

// ---------------------------------------------------------------------------------------------
// The two sides

/** The corpus both sides read: the held-out tokens, repeated as often as the budget needs. */
function corpusFor(tokens: number, positions: number): string[] {
  const stream = statSync(HELDOUT).size / 2;
  const need = Math.floor(tokens / positions) * (positions - 1);
  return Array.from({ length: Math.max(1, Math.ceil((need + 1) / stream)) }, () => HELDOUT);
}

function buildCli(): string {
  const out = join(ROOT, 'tools', '.cache', 'side', 'cli.js');
  mkdirSync(join(ROOT, 'tools', '.cache', 'side'), { recursive: true });
  // As esbuild.config.mjs bundles dist/cli.js (npm run build), into a folder of our own, with the
  // analysis worker the CLI starts from the folder it runs from.
  const r = spawnSync(
    process.execPath,
    [
      '-e',
      `require('esbuild').buildSync({ entryPoints: { cli: 'src/cli/main.ts', analysisWorker: 'src/engine/analysis/workerMain.ts' }, outdir: ${JSON.stringify(dirname(out))}, bundle: true, ` +
        `platform: 'node', format: 'cjs', target: 'node20', external: ['vscode', 'onnxruntime-node'], logLevel: 'warning' })`,
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`bundling the CLI failed:\n${r.stderr}`);
  return out;
}

async function runProject(fam: Family, cli: string, mode: 'exact' | 'fast', tokens: number, threads: number, work: string, families: boolean) {
  const out = join(work, `run-${mode}-${threads}`);
  rmSync(out, { recursive: true, force: true });
  const args = [cli, 'analyze', '--models', ...fam.models, '--corpus', ...corpusFor(tokens, fam.positions), '--tokens', String(tokens), '--out', out, '--threads', String(threads), '--mode', mode];
  if (!families) args.push('--no-families');
  const m = await measure(process.execPath, args, work);
  if (m.code !== 0) throw failed(`project ${mode} (${threads} threads)`, m);
  const manifest = readManifest(out);
  return { m, out, manifest };
}

async function runPeer(fam: Family, python: string, tokens: number, threads: number, work: string, ompPassive: boolean, base: NodeJS.ProcessEnv) {
  const out = join(work, `peer-${threads}.json`);
  const args = [PEER, '--models', ...fam.models, '--corpus', ...corpusFor(tokens, fam.positions), '--tokens', String(tokens), '--threads', String(threads), '--out', out];
  if (fam.name !== 'tiny') args.push('--pairwise');
  // OMP_WAIT_POLICY=PASSIVE: OpenMP threads sleep at the end of a parallel region instead of
  // spinning (GNU OpenMP's default); with other processes on the cores, spinning threads get
  // descheduled mid-region and 2 threads can run slower than 1 (BENCHMARKS.md).
  const env = ompPassive ? { ...base, OMP_WAIT_POLICY: 'PASSIVE' } : base;
  const m = await measure(python, args, work, env);
  if (m.code !== 0) throw failed(`torch peer (${threads} threads)`, m);
  const line = m.stdout.trim().split('\n').pop()!;
  return { m, out, report: JSON.parse(line) as PeerReport };
}

interface PeerReport {
  tokens: number;
  kept: number;
  hash: string;
  wall_s: number;
  stream_s: number;
  cpu_s: number;
  peak_rss_bytes: number;
  phases_s: Record<string, number>;
  universal: Record<string, number>;
  torch: string;
}

interface PeerOut {
  hash: string;
  kept: number;
  others: { label: string; max_corr: number[]; partner: number[]; baseline: number[] }[];
  moments: { mean: number[]; var: number[]; skew: number[]; kurt: number[]; frac_pos: number[] };
}

// ---------------------------------------------------------------------------------------------
// Correctness: the peer against the project's run

const quantile = (v: number[], q: number): number => {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))]!;
};

async function compare(runDir: string, peerFile: string): Promise<string> {
  const manifest = readManifest(runDir);
  const peer = JSON.parse(readFileSync(peerFile, 'utf8')) as PeerOut;
  const lines: string[] = [];
  if (manifest.corpus?.hash !== peer.hash) lines.push(`CORPUS DIFFERS: run hash ${manifest.corpus?.hash}, peer ${peer.hash}`);
  if (manifest.corpus?.tokens?.kept !== peer.kept) lines.push(`KEPT TOKENS DIFFER: run ${manifest.corpus?.tokens?.kept}, peer ${peer.kept}`);
  const t = await readNeuronArrow(runFile(runDir, 'neurons'));
  const col = (name: string): number[] => {
    const c = t.columns.get(name);
    if (!c) throw new Error(`${runDir}/neurons.arrow has no column ${name}`);
    return Array.from(c);
  };
  let dMax = 0;
  let dMaxAt = '';
  let partners = 0;
  let partnersNear = 0;
  const runBase: number[] = [];
  const peerBase: number[] = [];
  const perModel: string[] = [];
  for (const o of peer.others) {
    const corr = col(`corr_${o.label}`);
    const pl = col(`partner_layer_${o.label}`);
    const pn = col(`partner_neuron_${o.label}`);
    const base = col(`baseline_${o.label}`);
    const dMlp = Math.round(o.partner.length / (Math.max(...pl) + 1)) || 1;
    let dm = 0;
    for (let i = 0; i < corr.length; i++) {
      const d = Math.abs(corr[i]! - o.max_corr[i]!);
      if (d > dm) dm = d;
      if (d > dMax) {
        dMax = d;
        dMaxAt = `${o.label} L${Math.floor(i / dMlp)}.N${i % dMlp}`;
      }
      const p = pl[i]! < 0 ? -1 : pl[i]! * dMlp + pn[i]!;
      if (p !== o.partner[i]) {
        partners++;
        // A different argmax between near-tied partners is not an error.
        if (d < 1e-4) partnersNear++;
      }
      runBase.push(base[i]!);
      peerBase.push(o.baseline[i]!);
    }
    perModel.push(`${o.label} ${dm.toExponential(1)}`);
  }
  lines.push(
    `max_corr, peer vs project: max |Δ| ${dMax.toExponential(2)} (${dMaxAt}; per model ${perModel.join(', ')}); ` +
      `partners differing ${partners} of ${runBase.length}${partners ? ` (${partnersNear} of them near-ties, |Δρ| < 1e-4)` : ''}`,
  );
  // The exact streaming moments (mean_exact, …, act_freq): the paper-named columns are read off
  // its fp16 histogram since #14 (run/neurons.ts EXACT_OF), not what the peer computes.
  const momentDiff = (name: keyof typeof EXACT_OF, mine: number[], rel: boolean): string => {
    const theirs = col(EXACT_OF[name]);
    let d = 0;
    for (let i = 0; i < theirs.length; i++) {
      const x = Math.abs(theirs[i]! - mine[i]!) / (rel ? Math.max(1e-12, Math.abs(theirs[i]!)) : 1);
      if (x > d) d = x;
    }
    return `${name} ${d.toExponential(1)}`;
  };
  const mo = peer.moments;
  lines.push(
    `reference moments of hook_pre, max |Δ| (relative for var and kurt): ${[
      momentDiff('mean', mo.mean, false),
      momentDiff('var', mo.var, true),
      momentDiff('skew', mo.skew, false),
      momentDiff('kurt', mo.kurt, true),
      momentDiff('sparsity', mo.frac_pos, false), // act_freq: P(pre > 0) over kept tokens
    ].join(', ')}`,
  );
  const q = (v: number[]): string => [0.1, 0.5, 0.9].map((x) => quantile(v, x).toFixed(3)).join(' / ');
  lines.push(`baseline (different random rotations, so only the distribution compares), 10th / 50th / 90th percentile: project ${q(runBase)}, peer ${q(peerBase)}`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------

const fmt = (x: number, d = 1): string => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const median = (v: number[]): number => quantile(v, 0.5);

async function main(): Promise<void> {
  if (flag('compare')) {
    const i = argv.indexOf('--compare');
    const [run, peer] = [argv[i + 1], argv[i + 2]];
    if (!run || !peer) throw new Error('--compare needs RUN_DIR PEER.json');
    console.log(await compare(run, peer));
    return;
  }
  const tokens = Number((arg('tokens') ?? '65536').replace(/_/g, ''));
  const threadList = (arg('threads') ?? '1,2').split(',').map(Number);
  const rounds = Number(arg('rounds') ?? 1);
  const families = (arg('families') ?? 'on') !== 'off';
  const python = arg('python') ?? '/usr/bin/python3';
  const ompPassive = (arg('peer-omp') ?? 'default') === 'passive';
  const wantModes = (arg('modes') ?? 'exact,fast').split(',');
  if (!Number.isSafeInteger(tokens) || tokens < 128) throw new Error(`--tokens needs an integer ≥ 128, got ${arg('tokens')}`);
  if (threadList.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--threads needs a list of integers ≥ 1, got ${arg('threads')}`);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds needs an integer ≥ 1`);
  const modes = (['exact', 'fast'] as const).filter((m) => wantModes.includes(m) && (m === 'exact' || tokens >= FAST_FLOOR));
  if (wantModes.includes('fast') && tokens < FAST_FLOOR) console.log(`fast mode skipped: below ${FAST_FLOOR.toLocaleString('en-US')} tokens the engine runs it as exact`);

  // The peer needs PyTorch: say so before anything runs.
  const probe = spawnSync(python, ['-c', 'import torch, numpy; print(torch.__version__)'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      `bench:side needs PyTorch (and numpy) for the peer, and ${python} ${probe.error ? `could not be run (${probe.error.message})` : `cannot import them:\n${probe.stderr.trim().split('\n').pop()}`}\n` +
        `Install it (Debian: apt-get install python3-torch libopenblas0-openmp) or name another interpreter with --python PATH.`,
    );
  }
  const torchVersion = probe.stdout.trim();
  const fam = family(arg('family') ?? 'tiny');
  const blas = torchEnv(python, arg('peer-blas') === 'as-is');
  if (arg('peer-hugepages') !== 'off') blas.env = hugePagesEnv(blas.env) ?? blas.env;
  const cli = buildCli();
  const work = mkdtempSync(join(tmpdir(), 'un-side-'));
  const cleanup = (): void => {
    if (!flag('keep')) rmSync(work, { recursive: true, force: true });
  };
  const onSignal = (): void => {
    cleanup();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  console.log(
    `side by side: ${tokens.toLocaleString('en-US')} tokens of ${corpusFor(tokens, fam.positions).length} × models/corpus/heldout.tokens.bin, 5 models (reference ${basename(fam.models[0]!)}${fam.name === 'tiny' ? '' : '; peer pairwise'}), ` +
      `threads ${threadList.join(', ')}, ${rounds} round(s); project: ${modes.join(' + ')}, families ${families ? 'on' : 'off'}; peer: torch ${torchVersion}${ompPassive ? ', OMP_WAIT_POLICY=PASSIVE' : ''}, ${blas.note}, huge pages ${hugePagesOn(blas.env) ? 'on' : 'off'}; ` +
      `${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; measured with ${useGnuTime ? 'GNU time' : '/proc'}`,
  );
  const rows: Row[] = [];
  const checks: string[] = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const threads of threadList) {
        let exactRun: string | undefined;
        for (const mode of modes) {
          const { m, out, manifest } = await runProject(fam, cli, mode, tokens, threads, work, families);
          rows.push({
            side: `project ${mode}`,
            threads,
            round,
            wall_s: m.wall_s,
            stream_s: manifest.timings?.stream_s ?? NaN,
            kept: manifest.corpus?.tokens?.kept ?? NaN,
            cpu_s: m.cpu_s,
            peak_rss_bytes: m.peak_rss_bytes,
            load: loadavg()[0]!,
            universal: manifest.results?.universal as number | undefined,
          });
          const tm = (manifest.timings ?? {}) as Record<string, number>;
          const parts = ['open_s', 'corpus_s', 'stream_s', 'finish_s', 'write_s'].map((k) => `${k.replace('_s', '')} ${fmt(tm[k] ?? 0)}`).join(', ');
          console.log(`  round ${round}, ${threads} thread(s): project ${mode} ${fmt(m.wall_s)} s wall (${parts} s), load ${loadavg()[0]!.toFixed(2)}`);
          if (mode === 'exact') exactRun = out;
          else rmSync(out, { recursive: true, force: true });
        }
        const { m, out, report } = await runPeer(fam, python, tokens, threads, work, ompPassive, blas.env);
        rows.push({
          side: 'torch peer',
          threads,
          round,
          wall_s: m.wall_s,
          stream_s: report.stream_s,
          kept: report.kept,
          cpu_s: m.cpu_s,
          peak_rss_bytes: Math.max(m.peak_rss_bytes, report.peak_rss_bytes),
          load: loadavg()[0]!,
          universal: report.universal['0.5'],
        });
        const pp = Object.entries(report.phases_s).map(([k, v]) => `${k} ${fmt(v)}`).join(', ');
        console.log(`  round ${round}, ${threads} thread(s): torch peer ${fmt(m.wall_s)} s wall (${pp} s), load ${loadavg()[0]!.toFixed(2)}`);
        if (exactRun && round === 1) checks.push(`${threads} thread(s):\n${await compare(exactRun, out)}`);
        if (exactRun) rmSync(exactRun, { recursive: true, force: true });
        rmSync(out, { force: true });
      }
    }
  } finally {
    cleanup();
    rmSync(join(ROOT, 'tools', '.cache', 'side'), { recursive: true, force: true });
  }

  // The table: medians over rounds.
  const sides = ['project exact', 'project fast', 'torch peer'] as const;
  const agg = (side: string, threads: number) => {
    const r = rows.filter((x) => x.side === side && x.threads === threads);
    if (!r.length) return undefined;
    const med = (f: (x: Row) => number) => median(r.map(f));
    return {
      wall: med((x) => x.wall_s),
      stream: med((x) => x.stream_s),
      kept: r[0]!.kept,
      cpu: med((x) => x.cpu_s),
      cpuPct: med((x) => (100 * x.cpu_s) / x.wall_s),
      rss: Math.max(...r.map((x) => x.peak_rss_bytes)),
      load: r.map((x) => x.load),
      universal: r[0]!.universal,
      spread: r.length > 1 ? `${fmt(Math.min(...r.map((x) => x.wall_s)))}–${fmt(Math.max(...r.map((x) => x.wall_s)))}` : '',
    };
  };
  console.log('');
  console.log(`| side | threads | wall s${rounds > 1 ? ' (median; range)' : ''} | stream s | kept tokens | kept tok/s (stream) | kept tok/s (wall) | CPU s | CPU % | peak RSS | universal > 0.5 | load after |`);
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const threads of threadList) {
    for (const side of sides) {
      const a = agg(side, threads);
      if (!a) continue;
      console.log(
        `| ${side} | ${threads} | ${fmt(a.wall)}${a.spread ? ` (${a.spread})` : ''} | ${fmt(a.stream)} | ${a.kept.toLocaleString('en-US')} | ${fmt(a.kept / a.stream, 0)} | ${fmt(a.kept / a.wall, 0)} | ` +
          `${fmt(a.cpu)} | ${fmt(a.cpuPct, 0)}% | ${fmt(a.rss / 1e9, 2)} GB | ${a.universal ?? '–'} | ${a.load.map((x) => x.toFixed(1)).join(', ')} |`,
      );
    }
  }
  console.log('');
  console.log('| ratio | threads | wall | stream | CPU s |');
  console.log('|---|---:|---:|---:|---:|');
  for (const threads of threadList) {
    const peer = agg('torch peer', threads)!;
    for (const side of ['project exact', 'project fast'] as const) {
      const a = agg(side, threads);
      if (!a) continue;
      console.log(`| torch peer / ${side} (higher: project faster) | ${threads} | ${fmt(peer.wall / a.wall, 2)}× | ${fmt(peer.stream / a.stream, 2)}× | ${fmt(peer.cpu / a.cpu, 2)}× |`);
    }
  }
  if (threadList.includes(1) && threadList.includes(2)) {
    for (const side of sides) {
      const one = agg(side, 1);
      const two = agg(side, 2);
      if (one && two) console.log(`| ${side}: 2 threads vs 1 (speed-up) | 2 / 1 | ${fmt(one.wall / two.wall, 2)}× | ${fmt(one.stream / two.stream, 2)}× | ${fmt(one.cpu / two.cpu, 2)}× |`);
    }
  }
  console.log('');
  console.log('Peer vs project exact, same tokens:');
  for (const c of checks) console.log(c);
  console.log(`load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
