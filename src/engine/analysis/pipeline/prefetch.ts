/**
 * The next batch's forwards on a worker thread while this thread accumulates the current one
 * (issue 13: the cores sat partly idle through a stream). onnxruntime-node's run() blocks the
 * thread that calls it, so on one thread a forward and the accumulators' work (GEMMs, also ORT
 * runs, and the kernels) could only take turns. The worker holds the analysis forward's session
 * of each model a pass reads: the same graph and settings as Forward.runKept, so the activations
 * are bit-identical. This thread releases its own sessions of those models, so the weights are
 * not held twice; they load again on next use.
 *
 * A worker that fails or dies fails the batch that waits on it with a clear error: the run stops
 * at its last checkpoint, which resumes with identical results. A cancel waits for the forwards
 * already started (a batch ahead, well under a second: prefetch is on only where a batch is small).
 *
 * A worker terminated while inside onnxruntime's native code aborts the whole process ("terminate
 * called after throwing an instance of 'Napi::Error'"): the extension host with it. Node terminates
 * this worker when the thread that made it ends, so when that thread dies (an uncaught exception,
 * process.exit) its 'exit' handler waits, in shared memory, until the worker is outside native
 * code and will not enter it again. The CI run that found it: the analysis worker's crash test.
 */
import { Worker } from 'node:worker_threads';
import { EngineError } from '../../errors';
import { INPUT_IDS, KEPT_INDEX } from '../../arch/common';
import { KEPT_OUTPUTS, keptSet, type Model } from '../../runtime';

type Kind = keyof typeof KEPT_OUTPUTS;

/** Indices into the worker's guard (shared memory): inside native code; the owner is ending. */
const IN_NATIVE = 0;
const ENDING = 1;
/** How long a dying thread waits for the worker's forward in progress (one batch: well under). */
const EXIT_WAIT_MS = 120_000;
export type KeptForward = Partial<Record<Kind, Float32Array>>;

// Messages are handled one at a time, in order: onnxruntime-node's run() resolves on a later
// tick, and a session must not be released (close) while a run on it is pending.
// Every native call goes through native(): guard[IN_NATIVE] is 1 while one may be under way, and
// none starts once guard[ENDING] is set (Dekker-style on sequentially consistent atomics).
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ort);
const guard = new Int32Array(workerData.guard);
const sessions = new Map();
async function native(f) {
  Atomics.store(guard, ${IN_NATIVE}, 1);
  try {
    if (Atomics.load(guard, ${ENDING}) !== 0) throw new Error('the thread that started this worker is ending');
    return await f();
  } finally {
    Atomics.store(guard, ${IN_NATIVE}, 0);
    Atomics.notify(guard, ${IN_NATIVE});
  }
}
async function handle(m) {
  if (m.op === 'close') {
    for (const s of sessions.values()) await native(() => s.release()).catch(() => {});
    sessions.clear();
    process.exit(0);
  }
  try {
    if (m.op === 'load') {
      const old = sessions.get(m.model);
      sessions.delete(m.model);
      if (old) await native(() => old.release());
      sessions.set(m.model, await native(() => ort.InferenceSession.create(m.source, m.options)));
      parentPort.postMessage({ id: m.id });
    } else if (m.op === 'run') {
      const s = sessions.get(m.model);
      if (!s) throw new Error('model ' + m.model + ' is not loaded');
      const res = await native(() => s.run({ [m.inIds]: new ort.Tensor('int64', m.ids, m.shape), [m.inKept]: new ort.Tensor('int64', m.kept, [m.kept.length]) }, m.names));
      const out = {};
      for (const n of m.names) out[n] = res[n].data;
      parentPort.postMessage({ id: m.id, out }, m.names.map((n) => out[n].buffer));
    }
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String((e && e.message) || e) });
  }
}
let queue = Promise.resolve();
parentPort.on('message', (m) => (queue = queue.then(() => handle(m))));
`;

interface Waiter {
  resolve: (v: Record<string, Float32Array> | undefined) => void;
  reject: (e: Error) => void;
}

export class ForwardPrefetch {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();
  private dead = '';
  /** Models whose session the worker holds, by model index. */
  /** Models loaded on the worker, with the kinds their graphs build (keptSet, joined). */
  private readonly loaded = new Map<number, string>();
  /** Requested forwards by batch key (pipeline/batch.ts forwardKey), not yet taken. */
  private readonly ahead = new Map<string, Promise<KeptForward>>();

  private readonly guard = new Int32Array(new SharedArrayBuffer(8));
  /** process 'exit' handler while the worker lives: see the top of the file. */
  private readonly onExit = (): void => {
    Atomics.store(this.guard, ENDING, 1);
    const end = Date.now() + EXIT_WAIT_MS;
    while (Atomics.load(this.guard, IN_NATIVE) !== 0 && Date.now() < end) Atomics.wait(this.guard, IN_NATIVE, 1, 100);
  };

  constructor(private readonly threads: number) {
    this.worker = new Worker(WORKER, { eval: true, workerData: { ort: require.resolve('onnxruntime-node'), guard: this.guard.buffer } });
    process.on('exit', this.onExit);
    this.worker.on('message', (m: { id: number; out?: Record<string, Float32Array>; error?: string }) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.error !== undefined) w.reject(new EngineError(`the forward worker failed: ${m.error}; the run stops (its last checkpoint can be resumed)`));
      else w.resolve(m.out);
    });
    const fail = (why: string): void => {
      this.dead ||= why;
      for (const w of this.waiting.values()) w.reject(new EngineError(`the forward worker ${this.dead}; the run stops (its last checkpoint can be resumed)`));
      this.waiting.clear();
    };
    this.worker.on('error', (e) => fail(`threw: ${e.message}`));
    this.worker.on('exit', (code) => {
      process.off('exit', this.onExit);
      fail(`exited (code ${code})`);
    });
  }

  private call(msg: Record<string, unknown>): Promise<Record<string, Float32Array> | undefined> {
    if (this.dead) return Promise.reject(new EngineError(`the forward worker ${this.dead}; the run stops (its last checkpoint can be resumed)`));
    const id = this.nextId++;
    const p = new Promise<Record<string, Float32Array> | undefined>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    this.worker.postMessage({ ...msg, id });
    return p;
  }

  /** Whether model `i`'s session is on the worker. */
  has(i: number): boolean {
    return this.loaded.has(i);
  }

  /** Loads model `i`'s analysis forward on the worker and releases this thread's sessions of it. */
  async load(i: number, m: Model, kinds: readonly Kind[]): Promise<void> {
    if (this.loaded.has(i)) return;
    const set = keptSet(kinds);
    const { source, options } = m.forward.keptGraph(set, this.threads);
    await this.call({ op: 'load', model: i, source, options });
    this.loaded.set(i, set.join(','));
    await m.forward.releaseSessions();
  }

  /** Starts model `i`'s forward of one batch (Forward.runKept's inputs), to be taken by `key`. */
  request(key: string, i: number, m: Model, rows: readonly (readonly number[])[], keptIndex: Int32Array, kinds: readonly Kind[]): boolean {
    // The worker's graph of this model builds the kinds it was loaded for, no others.
    if (this.loaded.get(i) !== keptSet(kinds).join(',') || this.ahead.has(key)) return this.ahead.has(key);
    const feeds = m.forward.keptFeeds(rows, keptIndex);
    if (!feeds) return false;
    const names = kinds.map((k) => KEPT_OUTPUTS[k]);
    const p = this.call({ op: 'run', model: i, ids: feeds.ids, shape: feeds.shape, kept: feeds.kept, names, inIds: INPUT_IDS, inKept: KEPT_INDEX }).then((out) => {
      const r: KeptForward = {};
      for (const k of kinds) r[k] = out![KEPT_OUTPUTS[k]]!;
      return r;
    });
    // Awaited by take(); a failure not yet taken must not surface as an unhandled rejection.
    p.catch(() => {});
    this.ahead.set(key, p);
    return true;
  }

  /** The forward requested under `key`, if any (taken once). */
  take(key: string): Promise<KeptForward> | undefined {
    const p = this.ahead.get(key);
    this.ahead.delete(key);
    return p;
  }

  /** Drops requests not taken (their results are garbage once they arrive). */
  forget(): void {
    this.ahead.clear();
  }

  /**
   * Ends the worker once the forwards it has started are done (their results are dropped). Not
   * terminate(): a worker terminated inside onnxruntime's run aborts the whole process.
   */
  async close(): Promise<void> {
    this.ahead.clear();
    if (this.dead) return;
    this.dead = 'was closed';
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage({ op: 'close' });
    await exited;
  }
}
