// Intervention cost (not a test; figures go in BENCHMARKS.md, "Neuron interventions"):
//
//   node --import tsx bench/intervene.ts [--model models/tiny-gpt2-a] [--tokens 1000] [--repeats 9] [--threads N] [--ort-profile DIR]
//
// On a prompt of about --tokens tokens (windowed at the model's context, as the editor runs it):
//   1. one plain forward with the per-token scores (the entropy intervention's Scorer: loss,
//      entropy, final-LN scale; logits stay inside ORT): the "one forward" yardstick;
//   2. the same Scorer with its single-neuron intervention graph (one neuron fixed); 2b. the plain
//      Scorer on every window twice (the work of a clean and an intervened forward);
//   3. Intervener.run: the paired clean + intervened graph of intervene.ts, zero-ablating three
//      neurons in three layers, with top-5 tokens and their changes (tokenising included);
//   4. the same with mode mean = the prompt's own mean (an extra activations forward first).
// Each figure is the median (and best) of --repeats runs after one warm-up.
//
// --ort-profile DIR: instead, onnxruntime's own profile of --repeats intervention runs (3.),
// summed per operator type: where the graph's time goes, as shares (meaningful under load too).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadavg } from 'node:os';
import * as ort from 'onnxruntime-node';
import { openIntervener } from '../src/engine/intervene';
import { openModel, windows } from '../src/engine/runtime';
import { openScorer } from '../src/engine/scorer';
import { encodeWithBos } from '../src/engine/tokenizer';

const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
};
const MODEL = arg('model', 'models/tiny-gpt2-a');
const TOKENS = Number(arg('tokens', '1000'));
const REPEATS = Number(arg('repeats', '9'));
const THREADS = Number(arg('threads', '0'));
const ORT_PROFILE = arg('ort-profile', '');

/** Every session created from here on writes an ORT profile into `dir` (flushed when it is released). */
function profileSessions(dir: string): void {
  const create = ort.InferenceSession.create.bind(ort.InferenceSession) as (m: Uint8Array, o: ort.InferenceSession.SessionOptions) => Promise<ort.InferenceSession>;
  (ort.InferenceSession as unknown as { create: typeof create }).create = (m, o) => create(m, { ...o, enableProfiling: true, profileFilePrefix: join(dir, 'ort') });
}

/** Kernel time per operator type in the largest profile of `dir`, largest first. */
function operatorShares(dir: string): void {
  const files = readdirSync(dir).filter((f) => f.startsWith('ort') && f.endsWith('.json'));
  const biggest = files.map((f) => join(dir, f)).sort((a, b) => readFileSync(b).length - readFileSync(a).length)[0];
  if (!biggest) throw new Error(`no ORT profile in ${dir}`);
  const events = JSON.parse(readFileSync(biggest, 'utf8')) as { cat: string; name: string; dur: number; args: { op_name?: string } }[];
  const by = new Map<string, number>();
  let total = 0;
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    by.set(e.args.op_name ?? '?', (by.get(e.args.op_name ?? '?') ?? 0) + e.dur);
    total += e.dur;
  }
  console.log(`ORT kernel time per operator type (${biggest}):`);
  for (const [op, us] of [...by].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`  ${((100 * us) / total).toFixed(1).padStart(5)}%  ${op}`);
}

function promptOf(n: number): string {
  const words = 'the universal neurons of models trained from different seeds fire on the same tokens while others do not and we ask why'.split(' ');
  let s = '';
  for (let i = 0; s.length < n * 5.15; i++) s += (i % 37 === 0 ? '\n' : ' ') + words[(i * 7) % words.length] + (i % 53 === 0 ? ' café 😀' : '');
  return s;
}

async function timed(label: string, fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const ms: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  const med = ms[Math.floor(ms.length / 2)]!;
  console.log(`${label.padEnd(64)} median ${med.toFixed(1).padStart(7)} ms   best ${ms[0]!.toFixed(1).padStart(7)} ms`);
  return med;
}

async function main(): Promise<void> {
  const opts = THREADS ? { threads: THREADS } : {};
  if (ORT_PROFILE) profileSessions(ORT_PROFILE);
  const model = await openModel(MODEL, opts);
  const text = promptOf(TOKENS);
  const ids = encodeWithBos(model.tokenizer, text).ids;
  const w = windows(ids, model.config.nPositions, model.tokenizer.bosId);
  console.log(`${MODEL}: ${model.nLayers} layers x ${model.dMlp}, ${ids.length} tokens in ${w.rows.length} windows, load ${loadavg()[0]!.toFixed(1)}`);
  const neurons = [{ layer: 0, neuron: 5 }, { layer: 1, neuron: 100 }, { layer: 3, neuron: 400 }].filter((n) => n.layer < model.nLayers && n.neuron < model.dMlp);
  if (ORT_PROFILE) {
    const iv = await openIntervener(model, opts);
    await timed(`3. intervene: clean + zero ${neurons.length} neurons, top-5 (one graph), profiled`, () => iv.run(text, { neurons, mode: { kind: 'zero' } }));
    await iv.close();
    await model.close();
    return operatorShares(ORT_PROFILE);
  }
  const scorer = await openScorer(MODEL, { ...opts, intervention: neurons[0] });
  const iv = await openIntervener(model, opts);
  try {
    const plain = await timed('1. one forward with scores (Scorer, plain)', () => scorer.score(w.rows));
    await timed('2. Scorer, one neuron fixed (its own graph)', () => scorer.score(w.rows, { value: 1 }));
    const two = await timed('2b. Scorer, plain, every window twice (two forwards)', () => scorer.score([...w.rows, ...w.rows]));
    const pair = await timed(`3. intervene: clean + zero ${neurons.length} neurons, top-5 (one graph)`, () =>
      iv.run(text, { neurons, mode: { kind: 'zero' } }),
    );
    await timed("4. intervene: mean = the prompt's own (+ activations forward)", () => iv.run(text, { neurons, mode: { kind: 'mean' }, means: 'prompt' }));
    console.log(`intervene (clean and intervened sides) / one plain forward: ${(pair / plain).toFixed(2)}x; / two plain forwards: ${(pair / two).toFixed(2)}x`);
  } finally {
    await iv.close();
    await scorer.close();
    await model.close();
  }
}

void main();
