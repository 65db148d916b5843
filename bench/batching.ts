// Batching: what one analysis batch costs to forward and lay out, per model, two ways: ORT
// returning the analysis layout (runKept: layers concatenated, kept rows gathered in the graph)
// against per-layer hooks interleaved in JavaScript (runTokens + interleave), for what the
// default plan reads (reference: post, keptPre, keptPost; others: keptPre, keptPost).
// Not a test: figures go in BENCHMARKS.md.
//
//   node --import tsx bench/batching.ts [--batches 20] [--threads 2]
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { interleave } from '../src/engine/analysis/pipeline';
import { openModel } from '../src/engine/runtime';

const arg = (name: string, d: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : d;
};
const B = Number(arg('batches', '20'));
const threads = Number(arg('threads', '0'));

(async () => {
  const dirs = ['a', 'b', 'c', 'd', 'e'].map((s) => join(__dirname, '..', 'models', `tiny-gpt2-${s}`));
  const models = await Promise.all(dirs.map((d) => openModel(d, { memArena: false, ...(threads ? { threads } : {}) })));
  // 8 rows of BOS + 127 tokens; ~1 in 14 tokens dropped, like the held-out corpus.
  const rows = Array.from({ length: 8 }, (_, r) => Array.from({ length: 128 }, (_, t) => (t === 0 ? 50256 : (r * 977 + t * 131) % 50000)));
  const keptIndex = Int32Array.from([...Array(1024).keys()].filter((t) => t % 128 !== 0 && t % 14 !== 5));
  const d = models[0]!.dMlp;
  const kept = async (): Promise<void> => {
    for (const [i, m] of models.entries()) await m.runKept(rows, keptIndex, i === 0 ? ['keptPre', 'keptPost', 'post'] : ['keptPre', 'keptPost']);
  };
  const hooks = async (): Promise<void> => {
    for (const [i, m] of models.entries()) {
      const r = await m.runTokens(rows, { hooks: ['pre', 'post'] });
      interleave(r.hookPre, 1024, d, keptIndex);
      interleave(r.hookPost, 1024, d, keptIndex);
      if (i === 0) interleave(r.hookPost, 1024, d);
    }
  };
  const time = async (what: string, f: () => Promise<void>): Promise<void> => {
    await f();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < B; i++) await f();
    const wall = (performance.now() - t0) / B;
    const c = process.cpuUsage(c0);
    console.log(`| ${what} | ${wall.toFixed(1)} | ${((c.user + c.system) / 1000 / B).toFixed(1)} |`);
  };
  console.log(`5 tiny models, 8 rows × 128 tokens (${keptIndex.length} kept), ${B} batches; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log('| layout | wall ms per batch | CPU ms per batch |');
  console.log('|---|---:|---:|');
  for (let rep = 0; rep < 3; rep++) {
    await time('ORT gathers (runKept)', kept);
    await time('hooks + JS interleave', hooks);
  }
  for (const m of models) await m.close();
})();
