// Intervention cost (not a test; figures go in BENCHMARKS.md, "Neuron interventions"):
//
//   node --import tsx bench/intervene.ts [--model models/tiny-gpt2-a] [--tokens 1000] [--repeats 9] [--threads N] [--ort-profile DIR]
//
// On a prompt of about --tokens tokens (windowed at the model's context, as the editor runs it):
//   1. one plain forward with the per-token scores (the entropy intervention's Scorer: loss,
//      entropy, final-LN scale; logits stay inside ORT): the "one forward" yardstick;
//   2. the same Scorer with its single-neuron intervention graph (one neuron fixed); 2b. the plain
//      Scorer on every window twice (the work of a clean and an intervened forward);
//   3. Intervener.run, zero-ablating three neurons in three layers, with top-5 tokens and their
//      changes (tokenising included), three ways, interleaved run by run so that all three see
//      the same load and their ratios mean something on a busy box:
//      3a. the same text again (a new neuron or mode): every window's clean side is kept, only the
//          intervened side runs;
//      3b. the text edited at its end: the last window's clean side runs again;
//      3c. every window's clean side recomputed (an edit at the start; the work of the first run);
//   4. the same as 3c with mode mean = the prompt's own mean (an extra activations forward first).
// Each figure is the median (and best) of --repeats runs after one warm-up.
//
// --ort-profile DIR: instead, onnxruntime's own profile of --repeats same-text re-runs (3a.),
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

/** Like `timed` for several variants, run in turn within each repeat; returns the medians. */
async function interleaved(variants: [string, () => Promise<unknown>][]): Promise<number[]> {
  for (const [, fn] of variants) await fn();
  const ms: number[][] = variants.map(() => []);
  for (let i = 0; i < REPEATS; i++) {
    for (const [v, [, fn]] of variants.entries()) {
      const t = performance.now();
      await fn();
      ms[v]!.push(performance.now() - t);
    }
  }
  return variants.map(([label], v) => {
    const xs = ms[v]!.sort((a, b) => a - b);
    const med = xs[Math.floor(xs.length / 2)]!;
    console.log(`${label.padEnd(64)} median ${med.toFixed(1).padStart(7)} ms   best ${xs[0]!.toFixed(1).padStart(7)} ms`);
    return med;
  });
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
    await timed(`3a. intervene, same text: zero ${neurons.length} neurons, top-5, profiled`, () => iv.run(text, { neurons, mode: { kind: 'zero' } }));
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
    const spec = { neurons, mode: { kind: 'zero' as const } };
    // 3b alternates two endings, so each of its runs follows a run on the other ending; 3a runs
    // the text 3b left behind.
    let edits = 0;
    const edited = (): string => text + (edits++ % 2 ? ' why' : ' seeds');
    let last = text;
    const [same, end, all] = await interleaved([
      [`3a. intervene, same text: zero ${neurons.length} neurons, top-5`, () => iv.run(last, spec)],
      ['3b. intervene, text edited at its end (last window recomputed)', () => iv.run((last = edited()), spec)],
      ['3c. intervene, every window recomputed (an edit at the start)', () => iv.run(last, spec, { reuseClean: false })],
    ]);
    const check = await iv.run(last, spec);
    if (check.cleanWindowsReused !== check.windows) throw new Error(`3a reused ${check.cleanWindowsReused} of ${check.windows} windows`);
    await timed("4. intervene, every window recomputed, mean = the prompt's own", () => iv.run(text, { neurons, mode: { kind: 'mean' }, means: 'prompt' }, { reuseClean: false }));
    console.log(`same text / every window recomputed: ${(same / all).toFixed(2)}x; edited at the end / every window: ${(end / all).toFixed(2)}x`);
    console.log(`every window recomputed / one plain forward: ${(all / plain).toFixed(2)}x; / two plain forwards: ${(all / two).toFixed(2)}x; same text / one plain forward: ${(same / plain).toFixed(2)}x`);
    console.log(`load at the end ${loadavg()[0]!.toFixed(1)}`);
  } finally {
    await iv.close();
    await scorer.close();
    await model.close();
  }
}

void main();
