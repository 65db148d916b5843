// The parent of a fuzz run: hands cases to worker processes, gives each case a time limit (past
// it the worker is killed, the case counted as a hang, and a fresh worker started), counts a
// worker that dies mid-case as a crash, and totals the outcomes.
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './base';
import { mutationFor } from './mutators/index';
import { type CaseResult, FAILURES, type Outcome } from './runner';
import type { FromWorker, ToWorker } from './worker';

export interface FuzzOptions {
  seed: number;
  /** Case indices 0..count-1. */
  count: number;
  /** Worker processes (default: min(2, cores)). */
  jobs?: number;
  /** Per-case limit in ms (default 30 s): past it the case is a hang. */
  caseLimitMs?: number;
  onResult?: (r: CaseResult, done: number) => void;
}

export interface FuzzSummary {
  seed: number;
  count: number;
  jobs: number;
  caseLimitMs: number;
  wallMs: number;
  startupMs: number[];
  results: CaseResult[];
  failures: CaseResult[];
  workerStats: { rssMb: number; openFds: number; cases: number }[];
  /** /tmp/mat-debug-<pid>.log files the workers left (onnxruntime telemetry). */
  matDebug: string[];
  /** The workers' temp folders that still exist (each removes its own, and the parent a killed one's). */
  leftovers: string[];
}

const WORKER = join(__dirname, 'worker.ts');

interface Worker {
  child: ChildProcess;
  root?: string;
  cases: number;
  stderr: string;
  onMessage?: (m: FromWorker) => void;
  onExit?: (why: string) => void;
}

function start(seed: number, startupMs: number[]): Promise<Worker> {
  const child = fork(WORKER, [], { cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  const w: Worker = { child, cases: 0, stderr: '' };
  child.stderr!.on('data', (d: Buffer) => (w.stderr = (w.stderr + d.toString()).slice(-4000)));
  child.on('message', (m: FromWorker) => w.onMessage?.(m));
  child.on('exit', (code, signal) => w.onExit?.(`worker exited (${signal ?? `code ${code}`})${w.stderr ? `; stderr: ${w.stderr.slice(-1500)}` : ''}`));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`fuzz worker did not start within 180 s; stderr: ${w.stderr}`));
    }, 180_000);
    w.onExit = (why) => {
      clearTimeout(timer);
      reject(new Error(`fuzz worker failed to start: ${why}`));
    };
    w.onMessage = (m) => {
      clearTimeout(timer);
      if (m.type === 'ready') {
        w.root = m.root;
        startupMs.push(m.ms);
        resolve(w);
      } else reject(new Error(`fuzz worker failed to start: ${m.type === 'error' ? m.message : m.type}`));
    };
    child.send({ type: 'init', seed } satisfies ToWorker);
  });
}

function kill(w: Worker): void {
  w.onExit = undefined;
  w.onMessage = undefined;
  w.child.kill('SIGKILL');
  if (w.root) rmSync(w.root, { recursive: true, force: true });
}

function matDebugFiles(pids: number[]): string[] {
  return pids.map((p) => join(tmpdir(), `mat-debug-${p}.log`)).filter((f) => existsSync(f));
}

/** A case that never returned: its outcome from the mutation alone. */
function lost(seed: number, index: number, outcome: Outcome, message: string, ms: number): CaseResult {
  const m = mutationFor(seed, index);
  return { index, family: m.family, op: m.op, detail: m.detail, base: m.base, outcome, paths: { activations: { outcome, message, ms } }, ms };
}

export async function runFuzz(opts: FuzzOptions): Promise<FuzzSummary> {
  const t0 = performance.now();
  const jobs = Math.max(1, opts.jobs ?? Math.min(2, availableParallelism()));
  const limit = opts.caseLimitMs ?? 30_000;
  const startupMs: number[] = [];
  const results: CaseResult[] = [];
  const workerStats: FuzzSummary['workerStats'] = [];
  const pids: number[] = [];
  const roots: string[] = [];
  let next = 0;

  const lane = async (): Promise<void> => {
    let w = await start(opts.seed, startupMs);
    pids.push(w.child.pid!);
    roots.push(w.root!);
    while (next < opts.count) {
      const index = next++;
      const t = performance.now();
      const r = await new Promise<CaseResult | { dead: CaseResult }>((resolve) => {
        const timer = setTimeout(() => resolve({ dead: lost(opts.seed, index, 'hang', `no answer within ${limit} ms; the worker was killed`, limit) }), limit);
        w.onExit = (why) => {
          clearTimeout(timer);
          resolve({ dead: lost(opts.seed, index, 'crash', why, performance.now() - t) });
        };
        w.onMessage = (m) => {
          clearTimeout(timer);
          if (m.type === 'result') resolve(m.result);
          else resolve({ dead: lost(opts.seed, index, 'crash', m.type === 'error' ? `the worker failed outside the engine: ${m.message}` : m.type, performance.now() - t) });
        };
        w.child.send({ type: 'case', index } satisfies ToWorker);
      });
      let result: CaseResult;
      if ('dead' in r) {
        result = r.dead;
        kill(w);
        w = await start(opts.seed, startupMs);
        pids.push(w.child.pid!);
        roots.push(w.root!);
      } else {
        result = r;
        w.cases++;
      }
      results.push(result);
      opts.onResult?.(result, results.length);
    }
    const stats = await new Promise<FromWorker>((resolve) => {
      w.onMessage = resolve;
      w.child.send({ type: 'stats' } satisfies ToWorker);
    });
    if (stats.type === 'stats') workerStats.push({ rssMb: stats.rssMb, openFds: stats.openFds, cases: w.cases });
    await new Promise<void>((resolve) => {
      w.onExit = () => resolve();
      w.child.send({ type: 'exit' } satisfies ToWorker);
    });
    if (w.root && existsSync(w.root)) rmSync(w.root, { recursive: true, force: true });
  };

  await Promise.all(Array.from({ length: Math.min(jobs, opts.count) }, lane));
  results.sort((a, b) => a.index - b.index);
  return {
    seed: opts.seed,
    count: opts.count,
    jobs,
    caseLimitMs: limit,
    wallMs: performance.now() - t0,
    startupMs,
    results,
    failures: results.filter((r) => FAILURES.includes(r.outcome)),
    workerStats,
    matDebug: matDebugFiles(pids),
    leftovers: roots.filter((r) => existsSync(r)),
  };
}
