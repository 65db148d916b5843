/** `development`: a final checkpoint's neurons against earlier checkpoints of the same seed. */
import type { CancellationSignal } from '../engine/errors';
import { EngineError } from '../engine/errors';
import type { Print } from './activations';
import { runAnalyze } from './analyze';
import type { DevelopmentCommand } from './args';

const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : '—');
const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : '—');

/** Prints a finished development run: per step, or one neuron's partner per step. */
export async function printDevelopment(runDir: string, print: Print, neuron?: { layer: number; neuron: number }): Promise<void> {
  const { loadRun } = await import('../engine/run/data');
  const { summarizeDevelopment } = await import('../engine/development');
  const run = await loadRun(runDir);
  if (!run.development) throw new EngineError(run.developmentNote ?? `run ${runDir} is not a development run`, runDir);
  const axis = run.development;
  if (!run.partners) throw new EngineError(`run ${runDir} has no partners: ${run.partnerNote ?? 'partners.arrow is missing'}`, runDir);
  const finalStep = axis.final.step === null ? 'final' : `step ${axis.final.step}`;
  print(`development of ${axis.repo}: ${run.layer.length} neurons of ${axis.final.label} (${finalStep}) against ${axis.earlier.length} earlier checkpoints, over ${run.info.tokens.toLocaleString('en-US')} tokens`);
  print('');
  const pad = (s: string, n: number) => s.padEnd(n);
  const w = Math.max(10, ...axis.earlier.map((c) => c.label.length), axis.final.label.length);
  if (neuron) {
    const row = neuron.layer < run.nLayers && neuron.neuron < run.dMlp ? run.rowOf[neuron.layer * run.dMlp + neuron.neuron]! : -1;
    if (row < 0) throw new EngineError(`L${neuron.layer}.N${neuron.neuron} is not in run ${runDir} (${run.nLayers} layers of ${run.dMlp} neurons)`, runDir);
    print(`L${neuron.layer}.N${neuron.neuron}: its best partner and correlation in each checkpoint`);
    print(`${'step'.padStart(8)}  ${pad('checkpoint', w)}  partner      corr`);
    for (const c of axis.earlier) {
      const p = run.partners[row]!.find((x) => x.model === c.label);
      print(`${String(c.step).padStart(8)}  ${pad(c.label, w)}  ${pad(p ? `L${p.layer}.N${p.neuron}` : '—', 11)}  ${p ? f3(p.corr) : '—'}`);
    }
    print(`${(axis.final.step === null ? 'final' : String(axis.final.step)).padStart(8)}  ${pad(axis.final.label, w)}  ${pad('itself', 11)}  1.000`);
    return;
  }
  print('For each neuron of the final checkpoint, its best correlation with any neuron of the checkpoint:');
  print(`${'step'.padStart(8)}  ${pad('checkpoint', w)}  ${'mean'.padStart(6)}  ${'median'.padStart(6)}  ${'> 0.5'.padStart(6)}  ${'> 0.9'.padStart(6)}`);
  for (const r of summarizeDevelopment(axis, run.partners)) {
    print(`${String(r.step).padStart(8)}  ${pad(r.label, w)}  ${f3(r.mean).padStart(6)}  ${f3(r.median).padStart(6)}  ${pct(r.above05).padStart(6)}  ${pct(r.above09).padStart(6)}`);
  }
  print(`${(axis.final.step === null ? 'final' : String(axis.final.step)).padStart(8)}  ${pad(axis.final.label, w)}  ${'1.000'.padStart(6)}  ${'1.000'.padStart(6)}  ${'100%'.padStart(6)}  ${'100%'.padStart(6)}  (itself)`);
}

export async function runDevelopment(cmd: DevelopmentCommand, print: Print, note: Print, signal: CancellationSignal, inThread = false): Promise<string> {
  if ('run' in cmd) {
    const { resolveRunDir } = await import('../engine/store');
    const dir = resolveRunDir(cmd.run);
    await printDevelopment(dir, print, cmd.neuron);
    return dir;
  }
  const { checkDevelopment } = await import('../engine/development');
  // Before any model opens: every revision in the cache, one architecture, steps in order.
  const models = checkDevelopment(cmd.final, cmd.checkpoints);
  return runAnalyze(
    { models, corpus: cmd.corpus, tokens: cmd.tokens, out: cmd.out, threads: cmd.threads, ...(cmd.executionProvider ? { executionProvider: cmd.executionProvider } : {}), families: false, after: (dir) => printDevelopment(dir, print) },
    print,
    note,
    signal,
    process.stderr,
    inThread,
  );
}
