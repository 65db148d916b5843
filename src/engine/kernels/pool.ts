/**
 * The cores for the kernels: a pool of worker threads that run a kernel call over parts of its
 * columns (or rows) at once, on the same shared memory (KernelMemory). The calling thread runs
 * the first part itself, so `threads` = 1 means no worker at all.
 *
 * Each part touches only its own columns' outputs and reads the inputs, so the parts need no
 * locks, and every column gets exactly the operations, in the same order, as in one call: the
 * results are bit-identical whatever the number of threads.
 *
 * Workers are plain `eval` workers (no file to find in a bundle): they receive the compiled
 * module and the memory once per memory, then calls. A worker that throws or dies fails the
 * call with a clear error; the accumulator then refuses further use (the run stops at its last
 * checkpoint, which stays resumable).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { EngineError } from '../errors';
import { kernelModule, type KernelMemory, type KernelName } from '.';

const WORKER = `
const { parentPort } = require('node:worker_threads');
const mems = new Map();
parentPort.on('message', (m) => {
  try {
    let insts = mems.get(m.mem);
    if (!insts) mems.set(m.mem, (insts = { memory: m.memory, byKernel: new Map() }));
    if (m.drop) { mems.delete(m.mem); return; }
    let inst = insts.byKernel.get(m.kernel);
    if (!inst) {
      inst = new WebAssembly.Instance(m.module, { env: { memory: insts.memory } });
      insts.byKernel.set(m.kernel, inst);
    }
    const fn = inst.exports[m.fn];
    if (typeof fn !== 'function') throw new Error('no kernel function ' + m.kernel + '.' + m.fn);
    parentPort.postMessage({ id: m.id, result: fn(...m.args) });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.stack || e) });
  }
});
`;

interface Pending {
  resolve: (v: number) => void;
  reject: (e: Error) => void;
}

class PoolWorker {
  readonly worker: Worker;
  readonly pending = new Map<number, Pending>();
  /** Memories (by KernelMemory id) this worker has been given. */
  readonly known = new Set<number>();
  dead = '';

  constructor(readonly index: number) {
    this.worker = new Worker(WORKER, { eval: true });
    this.worker.unref();
    this.worker.on('message', (m: { id: number; result?: number; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error !== undefined) p.reject(new EngineError(`kernel worker ${index} failed: ${m.error}`));
      else p.resolve(m.result ?? 0);
    });
    const fail = (why: string): void => {
      this.dead = why;
      for (const p of this.pending.values()) p.reject(new EngineError(`kernel worker ${index} ${why}; the run stops (its last checkpoint can be resumed)`));
      this.pending.clear();
    };
    this.worker.on('error', (e) => fail(`threw: ${e.message}`));
    this.worker.on('exit', (code) => fail(`exited (code ${code})`));
  }
}

let nextCall = 1;
let nextMem = 1;
const memIds = new WeakMap<KernelMemory, number>();
const drops = new FinalizationRegistry<number>((id) => {
  for (const w of pool?.workers ?? []) if (w.known.delete(id) && !w.dead) w.worker.postMessage({ mem: id, drop: true });
});

function memId(mem: KernelMemory): number {
  let id = memIds.get(mem);
  if (id === undefined) {
    memIds.set(mem, (id = nextMem++));
    drops.register(mem, id);
  }
  return id;
}

export class KernelPool {
  readonly workers: PoolWorker[];

  constructor(readonly threads: number) {
    this.workers = Array.from({ length: Math.max(0, threads - 1) }, (_, i) => new PoolWorker(i + 1));
  }

  /**
   * Runs `kernel.fn` over `parts` parts (part p's arguments from args(p)), part 0 here and the
   * others on workers, at most `threads` at once; resolves to each part's return value.
   */
  async run(mem: KernelMemory, kernel: KernelName, fn: string, parts: number, args: (p: number) => number[]): Promise<number[]> {
    const id = memId(mem);
    const results: Promise<number>[] = [];
    for (let p = 1; p < parts; p++) {
      const w = this.workers[(p - 1) % this.workers.length]!;
      if (w.dead) throw new EngineError(`kernel worker ${w.index} ${w.dead}; the run stops (its last checkpoint can be resumed)`);
      const first = !w.known.has(id);
      w.known.add(id);
      const call = nextCall++;
      results.push(
        new Promise<number>((resolve, reject) => {
          w.pending.set(call, { resolve, reject });
          w.worker.postMessage({ id: call, mem: id, kernel, fn, args: args(p), module: kernelModule(kernel), ...(first ? { memory: mem.memory } : {}) });
        }),
      );
    }
    const f = mem.exports<Record<string, (...a: number[]) => number>>(kernel)[fn];
    if (typeof f !== 'function') throw new EngineError(`no kernel function ${kernel}.${fn}`);
    const here = f(...args(0));
    // Settle every part before returning (even after a failure), so that no worker still writes.
    const settled = await Promise.allSettled(results);
    const bad = settled.find((s) => s.status === 'rejected');
    if (bad) throw (bad as PromiseRejectedResult).reason;
    return [here, ...settled.map((s) => (s as PromiseFulfilledResult<number>).value)];
  }

  close(): void {
    for (const w of this.workers) void w.worker.terminate();
  }
}

let pool: KernelPool | undefined;
let wanted = 0;

/** Threads for the kernels (0: one per core). Takes effect for the next call. */
export function setKernelThreads(n: number): void {
  wanted = n > 0 ? Math.floor(n) : 0;
  if (pool && pool.threads !== resolvedThreads()) {
    pool.close();
    pool = undefined;
  }
}

export function resolvedThreads(): number {
  return wanted > 0 ? wanted : Math.max(1, availableParallelism());
}

export function kernelPool(): KernelPool {
  if (!pool) pool = new KernelPool(resolvedThreads());
  return pool;
}

/** [j0, j1) of part p of n columns in `parts` parts, on multiples of 4 (the kernels' SIMD width). */
export function columnRange(n: number, parts: number, p: number): [number, number] {
  const q = Math.ceil(n / 4);
  const at = (k: number): number => Math.min(n, 4 * Math.round((q * k) / parts));
  return [at(p), at(p + 1)];
}

/** Parts for a call over `n` columns of `rows` rows: one per thread, none smaller than ~64k values. */
export function partsFor(n: number, rows: number): number {
  const threads = kernelPool().threads;
  return Math.max(1, Math.min(threads, Math.floor((n * rows) / 65536), Math.ceil(n / 4)));
}
