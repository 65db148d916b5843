// The entropy intervention's cost on the shipped family (BENCHMARKS.md "Entropy intervention"):
// tiny-gpt2-a, the first R rows of 128 tokens of corpus/heldout.tokens.bin, K last-layer neurons,
// the nine values; once with the scorer's own batching (several rows per onnxruntime run, the
// analysis' way) and, with --per-row, one row per run (the previous design).
//
// Last-layer neurons go through the sweep (one forward for every value, src/engine/entropySweep.ts);
// --direct runs the forward per value instead (the path before it, and the one for other layers).
// --layer L picks the neurons' layer (default the last). --model DIR another checkpoint (rows of
// its n_positions tokens, e.g. tools/.cache/random-gpt2-4x768-a for GPT-2-small width).
//
//   node --import tsx bench/entropy.ts [--rows 256] [--neurons 1] [--threads 0] [--per-row] [--direct] [--layer L] [--model DIR]
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { entropyInterventions, ENTROPY_INTERVENTION_VALUES } from '../src/engine/analysis/intervention';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const rowsN = opt('--rows', 256);
const neurons = opt('--neurons', 1);
const threads = opt('--threads', 0);
const perRow = args.includes('--per-row');
const direct = args.includes('--direct');
const root = join(__dirname, '..');
const model = args.includes('--model') ? resolve(args[args.indexOf('--model') + 1]!) : join(root, 'models', 'tiny-gpt2-a');
const config = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8')) as { n_layer: number; n_positions: number };
const layer = opt('--layer', config.n_layer - 1);
const T = config.n_positions;
const ids = new Uint16Array(readFileSync(join(root, 'models', 'corpus', 'heldout.tokens.bin')).buffer.slice(0));
// Rows as the analysis cuts them: BOS, then T − 1 corpus tokens (corpus.ts).
const rows = Array.from({ length: rowsN }, (_, r) => [50256, ...ids.subarray(r * (T - 1), (r + 1) * (T - 1))]);
const targets = Array.from({ length: neurons }, (_, i) => ({ layer, neuron: i }));

(async () => {
  const marks: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await entropyInterventions(model, rows, targets, ENTROPY_INTERVENTION_VALUES, {
    threads,
    memArena: false,
    ...(perRow ? { batchTokens: T } : {}),
    sweep: !direct,
    onTarget: () => marks.push(performance.now()),
  });
  const t1 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  // The sweep: one whole forward, plus per value the layers above a neuron below the last layer.
  const lastLayer = layer === config.n_layer - 1;
  const forwards = !direct && lastLayer ? 1 : 1 + neurons * ENTROPY_INTERVENTION_VALUES.length;
  const s = (t1 - t0) / 1000;
  console.log(
    `${model.split('/').pop()}: ${rowsN} rows × ${T} tokens, ${neurons} neuron(s), ${forwards} forwards of ${(rowsN * T).toLocaleString('en-US')} tokens, ${perRow ? 'one row per run' : 'scorer batching'}, ${direct ? 'a forward per value' : lastLayer ? 'sweep' : `sweep (per value, layers ${layer + 1}.. and the head)`}: ` +
      `${s.toFixed(1)} s (${((1000 * s) / (forwards * rowsN * T)).toFixed(3)} ms per token-forward; per neuron after the first ${neurons > 1 ? ((t1 - marks[1]!) / 1000 / (neurons - 1)).toFixed(1) : '–'} s); ` +
      `CPU ${cpuS.toFixed(1)} s (${((1000 * cpuS) / (forwards * rowsN * T)).toFixed(3)} ms per token-forward)`,
  );
})().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
