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
 * module and the memory once per memory, then calls, and report through a shared flag that the
 * caller waits on. A worker that throws, dies or stalls fails the call with a clear error; the
 * accumulator then refuses further use (the run stops at its last checkpoint, which stays
 * resumable).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { EngineError } from '../errors';
import { kernelModule, type KernelMemory, type KernelName } from '.';

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const flag = new Int32Array(workerData.flag);
const text = new Uint8Array(workerData.text);
const mems = new Map();
parentPort.on('message', (m) => {
  if (m.drop) { mems.delete(m.mem); return; }
  let status = 1;
  try {
    let insts = mems.get(m.mem);
    if (!insts) mems.set(m.mem, (insts = { memory: m.memory, byKernel: new Map() }));
    let inst = insts.byKernel.get(m.kernel);
    if (!inst) {
      inst = new WebAssembly.Instance(m.module, { env: { memory: insts.memory } });
      insts.byKernel.set(m.kernel, inst);
    }
    const fn = inst.exports[m.fn];
    if (typeof fn !== 'function') throw new Error('no kernel function ' + m.kernel + '.' + m.fn);
    flag[1] = fn(...m.args) | 0;
  } catch (e) {
    status = 2;
    const msg = new TextEncoder().encode(String((e && e.message) || e)).subarray(0, text.length - 4);
    new DataView(text.buffer).setInt32(0, msg.length);
    text.set(msg, 4);
  }
  Atomics.store(flag, 0, status);
  Atomics.notify(flag, 0);
});
`;

/** How long a part may run before the pool calls its worker stalled. */
const STALL_MS = 10 * 60_000;

class PoolWorker {
  readonly worker: Worker;
  /** [0] 0 running, 1 done, 2 failed (message in `text`); [1] the kernel's return value. */
  readonly flag = new Int32Array(new SharedArrayBuffer(8));
  readonly text = new Uint8Array(new SharedArrayBuffer(4096));
  /** Memories (by KernelMemory id) this worker has been given. */
  readonly known = new Set<number>();
  dead = '';

  constructor(readonly index: number) {
    this.worker = new Worker(WORKER, { eval: true, workerData: { flag: this.flag.buffer, text: this.text.buffer } });
    this.worker.unref();
    this.worker.on('error', (e) => (this.dead = `threw: ${e.message}`));
    this.worker.on('exit', (code) => (this.dead ||= `exited (code ${code})`));
  }

  /** Blocks until the posted part is done; its return value. */
  wait(): number {
    const t0 = Date.now();
    while (Atomics.load(this.flag, 0) === 0) {
      if (Atomics.wait(this.flag, 0, 0, 1000) === 'timed-out' && Date.now() - t0 > STALL_MS) {
        this.dead = `stalled for ${STALL_MS / 1000} s`;
        void this.worker.terminate();
        throw new EngineError(`kernel worker ${this.index} ${this.dead}; the run stops (its last checkpoint can be resumed)`);
      }
    }
    if (this.flag[0] === 2) {
      const n = new DataView(this.text.buffer).getInt32(0);
      throw new EngineError(`kernel worker ${this.index} failed: ${new TextDecoder().decode(this.text.slice(4, 4 + n))}; the run stops (its last checkpoint can be resumed)`);
    }
    return this.flag[1]!;
  }
}

let nextMem = 1;
const memIds = new WeakMap<KernelMemory, number>();
const drops = new FinalizationRegistry<number>((id) => dropEverywhere(id));

function dropEverywhere(id: number): void {
  for (const w of pool?.workers ?? []) if (w.known.delete(id) && !w.dead) w.worker.postMessage({ mem: id, drop: true });
}

/**
 * Lets the workers drop their handles of `mem` now, not when this thread's collector finalizes it:
 * a memory used once (roles.ts unembedMoments: the whole unembedding) would otherwise stay mapped
 * in every worker until then. Use `mem` again only through `run`, which hands it over anew.
 */
export function forgetMemory(mem: KernelMemory): void {
  const id = memIds.get(mem);
  if (id !== undefined) dropEverywhere(id);
}

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
   * Runs `kernel.fn` over `parts` parts (part p's arguments from args(p)): part 0 on this thread,
   * the others on workers at the same time; returns each part's return value once all are done.
   * Synchronous (this thread waits on the workers' flags), so accumulators keep a plain add().
   */
  run(mem: KernelMemory, kernel: KernelName, fn: string, parts: number, args: (p: number) => number[]): number[] {
    if (parts > this.threads) throw new EngineError(`kernel pool: ${parts} parts on ${this.threads} threads`);
    const id = memId(mem);
    const busy: PoolWorker[] = [];
    let failure: unknown;
    for (let p = 1; p < parts; p++) {
      const w = this.workers[p - 1]!;
      if (w.dead) {
        failure = new EngineError(`kernel worker ${w.index} ${w.dead}; the run stops (its last checkpoint can be resumed)`);
        break;
      }
      const first = !w.known.has(id);
      w.known.add(id);
      Atomics.store(w.flag, 0, 0);
      w.worker.postMessage({ mem: id, kernel, fn, args: args(p), module: kernelModule(kernel), ...(first ? { memory: mem.memory } : {}) });
      busy.push(w);
    }
    const out: number[] = [];
    if (!failure) {
      const f = mem.exports<Record<string, (...a: number[]) => number>>(kernel)[fn];
      if (typeof f !== 'function') failure = new EngineError(`no kernel function ${kernel}.${fn}`);
      else out.push(f(...args(0)));
    }
    // Every posted part settles before this returns, even after a failure, so no worker still writes.
    for (const w of busy) {
      try {
        out.push(w.wait());
      } catch (e) {
        failure ??= e;
      }
    }
    if (failure) throw failure;
    return out;
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
