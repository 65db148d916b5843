// `npm run bench:forward` (the first part of `npm run bench`): tokens/s of the activations-only forward (all layers' hook_pre and hook_post,
// no LM head) at batch 4x128, on random in-memory GPT-2 weights, beside a torch eager baseline
// (bench/torch_forward.py) on the same machine. Not a test: numbers go in BENCHMARKS.md.
//
// The engine and torch take turns in blocks of about a second (torch runs in a child process
// that times its own forwards), so load from other processes on a shared machine falls on both
// alike; the first batch of each block is a warm-up and not counted. The table gives the median
// and the best batch of each.
//
//   npm run bench                           both configs, engine + torch (~1.5 min)
//   npm run bench -- --no-torch             engine only
//   npm run bench -- --configs tiny --threads 2 --seconds 10 --extra --spin
//     --extra: post-only, 16x128 and with-logits rows; --spin: also ORT's spin-waiting threads
import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { torchEnv } from './torchEnv';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { gpt2TensorShapes, Gpt2Weights, parseGpt2Config, resolveGpt2Weights } from '../src/engine/arch/gpt2';
import { Forward, RunOptions } from '../src/engine/runtime';

const CONFIGS = {
  tiny: { n_layer: 4, n_embd: 128, n_head: 4, n_inner: 512 },
  small: { n_layer: 12, n_embd: 768, n_head: 12, n_inner: 3072 },
} as const;
type Name = keyof typeof CONFIGS;
const SECONDS: Record<Name, number> = { tiny: 15, small: 40 };

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const flag = (name: string): boolean => process.argv.includes(`--${name}`);

/** Random weights, std ~0.02 (uniform: fast to draw; speed does not depend on the values). */
function randomWeights(name: Name): Gpt2Weights {
  const cfg = parseGpt2Config({ model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, ...CONFIGS[name] }, `${name} (random)`);
  const shapes = gpt2TensorShapes(cfg);
  let s = 0x9e3779b9;
  const tensors = new Map<string, Float32Array>();
  for (const [n, shape] of shapes) {
    const a = new Float32Array(shape.reduce((x, y) => x * y, 1));
    const gain = n.includes('ln_') && n.endsWith('.weight') ? 1 : 0;
    for (let i = 0; i < a.length; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      a[i] = gain + ((s >>> 0) / 2 ** 32 - 0.5) * 0.0693; // uniform with std 0.02
    }
    tensors.set(n, a);
  }
  return resolveGpt2Weights(cfg, { shape: (n) => (tensors.has(n) ? shapes.get(n) : undefined), read: (n) => tensors.get(n)! }, `${name} (random)`);
}

function randomRows(batch: number, seq: number): number[][] {
  let s = 12345;
  return Array.from({ length: batch }, () =>
    Array.from({ length: seq }, () => {
      s = (s * 1103515245 + 12345) >>> 0;
      return s % 50257;
    }),
  );
}

/** The torch baseline as a child process that runs one forward per request. */
class TorchServer {
  private readonly lines: AsyncIterableIterator<string>;
  version = '';
  private constructor(private readonly proc: ChildProcessWithoutNullStreams) {
    this.lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  }
  static async start(name: Name, threads: number): Promise<TorchServer | undefined> {
    const proc = spawn('/usr/bin/python3', ['bench/torch_forward.py', '--serve', '--configs', name, '--threads', String(threads)], { env: torchEnv('/usr/bin/python3').env });
    let err = '';
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.on('error', (e) => (err += e.message));
    const t = new TorchServer(proc);
    const first = await t.lines.next();
    if (first.done) {
      console.log(`(torch baseline unavailable: ${err.trim().split('\n').pop()})`);
      return undefined;
    }
    t.version = (JSON.parse(first.value) as { torch: string }).torch;
    return t;
  }
  async run(n: number): Promise<number[]> {
    this.proc.stdin.write(`run ${n}\n`);
    const r = await this.lines.next();
    if (r.done) throw new Error('torch baseline exited');
    return (JSON.parse(r.value) as { ms: number[] }).ms;
  }
  stop(): void {
    this.proc.stdin.end();
  }
}

interface Stats {
  median: number;
  best: number;
  runs: number;
}
const stats = (ms: number[], tokens: number): Stats => {
  const s = [...ms].sort((a, b) => a - b);
  return { median: (tokens * 1000) / s[s.length >> 1]!, best: (tokens * 1000) / s[0]!, runs: s.length };
};

/** Something timed in blocks: returns the time of each of n consecutive batches. */
type Side = (n: number) => Promise<number[]>;

function engineSide(fwd: Forward, rows: number[][], opts: RunOptions): Side {
  return async (n) => {
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await fwd.runTokens(rows, opts);
      ms.push(performance.now() - t0);
    }
    return ms;
  };
}

/** The sides take turns in blocks of ~1 s for `seconds`; the first batch of a block is not counted. */
async function race(sides: Side[], tokens: number, seconds: number): Promise<Stats[]> {
  const warm = await sides[0]!(3);
  const n = Math.max(3, Math.round(1000 / Math.min(...warm)));
  for (const side of sides.slice(1)) await side(2);
  const ms: number[][] = sides.map(() => []);
  const start = performance.now();
  while (performance.now() - start < seconds * 1000 || ms[0]!.length < 3) {
    for (let k = 0; k < sides.length; k++) {
      ms[k]!.push(...(await sides[k]!(n)).slice(1));
      // Idle between turns: thread pools spin-wait after their work (ORT's and OpenMP's), which
      // would otherwise steal the next side's cores.
      await sleep(PAUSE_MS);
    }
  }
  return ms.map((m) => stats(m, tokens));
}

const PAUSE_MS = 50;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const fmt = (x: number): string => Math.round(x).toLocaleString('en-US');

async function main(): Promise<void> {
  const names = (arg('configs') ?? 'tiny,small').split(',') as Name[];
  const threads = Number(arg('threads') ?? '2');
  const ortVersion = (JSON.parse(readFileSync('node_modules/onnxruntime-node/package.json', 'utf8')) as { version: string }).version;
  console.log(`onnxruntime-node ${ortVersion}, node ${process.version}, ${cpus()[0]?.model ?? '?'} x${cpus().length}, ${threads} threads`);
  const table: string[] = [];
  let torchVersion = '';
  for (const name of names) {
    const seconds = Number(arg('seconds') ?? SECONDS[name]);
    const t0 = performance.now();
    const fwd = await Forward.create(randomWeights(name), { threads });
    console.log(`${name}: random weights + ORT session in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const torch = flag('no-torch') ? undefined : await TorchServer.start(name, threads);
    if (torch) torchVersion = torch.version;
    const rows = randomRows(4, 128);
    const sides = [engineSide(fwd, rows, {})];
    if (torch) sides.push((n) => torch.run(n));
    // ORT's default thread behaviour, for comparison with ours (threads sleep between operators).
    const spinning = flag('spin') ? await Forward.create(randomWeights(name), { threads, spinWait: true }) : undefined;
    if (spinning) sides.push(engineSide(spinning, rows, {}));
    const [e, t, sp] = await race(sides, 4 * 128, seconds);
    torch?.stop();
    await spinning?.close();
    const row = (label: string, x: Stats): string =>
      `| ${name} | ${label} | ${fmt(x.median)} (best ${fmt(x.best)}) | ${t ? `${fmt(t.median)} (best ${fmt(t.best)})` : '–'} | ${t ? `${(x.median / t.median).toFixed(2)}×` : '–'} | ${x.runs} |`;
    table.push(row('4×128, pre+post', e!));
    if (sp) table.push(row('4×128, pre+post, spinWait', sp));
    if (flag('extra')) {
      for (const [label, r, opts] of [
        ['4×128, post only', randomRows(4, 128), { hooks: ['post'] }],
        ['16×128, pre+post', randomRows(16, 128), {}],
        ['4×128, with logits', randomRows(4, 128), { logits: true }],
      ] as [string, number[][], RunOptions][]) {
        const [x] = await race([engineSide(fwd, r, opts)], r.length * r[0]!.length, seconds / 2);
        table.push(`| ${name} | ${label} | ${fmt(x!.median)} (best ${fmt(x!.best)}) | – | – | ${x!.runs} |`);
      }
    }
    await fwd.close();
  }
  console.log(`\n| config | batch, outputs | engine tok/s, median | torch eager tok/s, median | engine / torch | batches |`);
  console.log(`|---|---|---:|---:|---:|---:|`);
  for (const row of table) console.log(row);
  if (torchVersion) console.log(`\ntorch ${torchVersion} eager (bench/torch_forward.py), ${threads} threads, batches alternating with the engine's`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
