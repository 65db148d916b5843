// A fuzz worker: a child process that runs cases one at a time for the parent (harness.ts), which
// kills it when a case runs past the per-case limit and starts another.
import { readdirSync } from 'node:fs';
import { mutationFor } from './mutators/index';
import { Runner } from './runner';

export type ToWorker = { type: 'init'; seed: number } | { type: 'case'; index: number } | { type: 'stats' } | { type: 'exit' };
export type FromWorker =
  | { type: 'ready'; ms: number; root: string }
  | { type: 'result'; result: import('./runner').CaseResult }
  | { type: 'stats'; rssMb: number; openFds: number }
  | { type: 'error'; message: string };

let runner: Runner | undefined;
let seed = 0;
const send = (m: FromWorker) => process.send!(m);

function openFds(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return -1;
  }
}

process.on('message', (msg: ToWorker) => {
  void (async () => {
    try {
      if (msg.type === 'init') {
        const t0 = performance.now();
        seed = msg.seed;
        runner = new Runner();
        await runner.init();
        send({ type: 'ready', ms: performance.now() - t0, root: runner.root });
      } else if (msg.type === 'case') {
        const m = mutationFor(seed, msg.index);
        send({ type: 'result', result: await runner!.run(m, msg.index) });
      } else if (msg.type === 'stats') {
        send({ type: 'stats', rssMb: process.memoryUsage().rss / 2 ** 20, openFds: openFds() });
      } else {
        runner?.close();
        process.exit(0);
      }
    } catch (e) {
      send({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    }
  })();
});

process.on('disconnect', () => {
  runner?.close();
  process.exit(0);
});
