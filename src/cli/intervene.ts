/** `intervene`: one checkpoint, one text, some neurons edited → a per-token table of the change, optionally the JSON. */
import { accessSync, constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { EngineError, type CancellationSignal } from '../engine/errors';
import { describeNeuron, meansFromRun, modeText } from '../engine/interventionSpec';
import type { InterventionResult, SideScores } from '../engine/intervene';
import type { InterveneCommand } from './args';
import { writeAtomic } from './jsonOut';

type Print = (line: string) => void;

const signed = (x: number, digits = 3): string => (x >= 0 ? '+' : '') + x.toFixed(digits);
const prob = (p: number): string => (p >= 0.001 ? p.toFixed(3) : p.toExponential(1));

/** The readable table: one line per token, then the means. */
export function interventionTable(r: InterventionResult): string[] {
  const n = r.tokens.length;
  const next = (s: SideScores, i: number): string => `${JSON.stringify(s.top[i]![0]!.text)} ${prob(s.top[i]![0]!.prob)}`;
  const head = ['# ', 'token', 'id', 'loss', "loss'", 'Δloss', 'entropy', "entropy'", 'Δentropy', 'next: clean → intervened'];
  const inRange = (i: number): boolean => i >= r.tokenRange.start && i < r.tokenRange.end;
  const rows = r.tokens.map((t, i) => {
    const has = i < n - 1;
    return [
      `${i}${inRange(i) ? '*' : ' '}`,
      JSON.stringify(t.text),
      String(t.id),
      has ? r.clean.loss[i]!.toFixed(3) : '-',
      has ? r.intervened.loss[i]!.toFixed(3) : '-',
      has ? signed(r.delta.loss[i]!) : '-',
      r.clean.entropy[i]!.toFixed(3),
      r.intervened.entropy[i]!.toFixed(3),
      signed(r.delta.entropy[i]!),
      `${next(r.clean, i)} → ${next(r.intervened, i)}`,
    ];
  });
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  const left = new Set([1, 9]);
  const pad = (row: string[]): string => row.map((cell, c) => (c === row.length - 1 ? cell : left.has(c) ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  const lines = [pad(head), ...rows.map(pad)];
  const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  if (n > 1) {
    const cl = mean(r.clean.loss);
    const il = mean(r.intervened.loss);
    lines.push(`mean loss over the ${n - 1} predicted tokens: clean ${cl.toFixed(4)}, intervened ${il.toFixed(4)} (Δ ${signed(il - cl, 4)} nats)`);
    let worst = 0;
    r.delta.loss.forEach((d, i) => Math.abs(d) > Math.abs(r.delta.loss[worst]!) && (worst = i));
    lines.push(`largest Δloss: token ${worst} ${JSON.stringify(r.tokens[worst]!.text)} → ${JSON.stringify(r.tokens[worst + 1]!.text)}: ${signed(r.delta.loss[worst]!)} nats`);
  }
  return lines;
}

/** The header lines: what was edited, where, and (mode mean) with which values. */
export function interventionHeader(r: InterventionResult, model: string, nLayers: number, dMlp: number): string[] {
  const n = r.tokens.length;
  const range = r.tokenRange.start === 0 && r.tokenRange.end === n ? 'all tokens' : `tokens ${r.tokenRange.start}:${r.tokenRange.end} (marked *)`;
  const lines = [
    `model ${model}: ${nLayers} layers x ${dMlp} neurons, ${n} tokens (BOS first)` +
      (r.windows > 1 ? `, run as ${r.windows} windows of at most ${r.nPositions} tokens (each later window restarts at BOS)` : ''),
    `intervention: ${modeText(r.mode)} on ${r.edits.map(describeNeuron).join(', ')} at hook_${r.hook}, ${range}`,
  ];
  if (r.mode.kind === 'mean') {
    const src = r.meanSource === 'prompt' ? "this prompt's own, over its tokens but BOS; no run statistics given" : "the run's corpus means";
    lines.push(`means (${src}): ${r.edits.map((e) => `${describeNeuron(e)}=${e.add.toFixed(4)}`).join(' ')}`);
  }
  return lines;
}

/** The --json document (see HELP). */
export function interventionJson(r: InterventionResult, model: string): unknown {
  const side = (s: SideScores) => ({
    loss: s.loss,
    entropy: s.entropy,
    ln_scale: s.lnScale,
    top: s.top.map((t) => t.map((x) => ({ id: x.id, text: x.text, p: x.prob }))),
  });
  return {
    model,
    neurons: r.edits.map(describeNeuron),
    mode: modeText(r.mode),
    hook: r.hook,
    range: [r.tokenRange.start, r.tokenRange.end],
    ...(r.mode.kind === 'mean' ? { mean_source: r.meanSource, means: r.edits.map((e) => e.add) } : {}),
    windows: r.windows,
    n_positions: r.nPositions,
    tokens: r.tokens.map((t) => ({ id: t.id, text: t.text, start: t.start, end: t.end })),
    clean: side(r.clean),
    intervened: side(r.intervened),
    delta: { loss: r.delta.loss, entropy: r.delta.entropy, ln_scale: r.delta.lnScale },
    top_change: r.topChange.map((t) => t.map((x) => ({ id: x.id, text: x.text, before: x.before, after: x.after }))),
  };
}

export async function runIntervene(cmd: Omit<InterveneCommand, 'kind'>, print: Print, signal: CancellationSignal): Promise<void> {
  if (cmd.json) {
    // Fail before the model work, not after it.
    const dir = dirname(resolve(cmd.json));
    try {
      accessSync(dir, constants.W_OK);
    } catch {
      throw new EngineError(`cannot write --json ${cmd.json}: folder ${dir} does not exist or is not writable`, cmd.json);
    }
  }
  // Loaded here so that --help and usage errors never load the native onnxruntime addon.
  const text = cmd.text ?? (await import('../engine/tokenizer')).readTextFile(cmd.file!);
  const rt = await import('../engine/runtime');
  const { openIntervener } = await import('../engine/intervene');
  const opts = cmd.threads ? { threads: cmd.threads } : {};
  // The run's statistics first: a wrong run fails before the model is opened.
  const run = cmd.run === undefined ? undefined : await (await import('../engine/run/view')).openRunView((await import('../engine/store')).resolveRunDir(cmd.run));
  const model = await rt.openModel(cmd.model, opts);
  try {
    const means = cmd.mode.kind !== 'mean' ? undefined : run ? meansFromRun(run, cmd.neurons, cmd.hook, model.config) : ('prompt' as const);
    const iv = await openIntervener(model, opts);
    try {
      const r = await iv.run(text, { neurons: cmd.neurons, mode: cmd.mode, hook: cmd.hook, tokens: cmd.tokens, ...(means ? { means } : {}) }, { topK: cmd.top, signal });
      for (const line of interventionHeader(r, model.dir, model.nLayers, model.dMlp)) print(line);
      for (const line of interventionTable(r)) print(line);
      if (cmd.json) {
        const doc = interventionJson(r, model.dir);
        writeAtomic(cmd.json, (put) => put(JSON.stringify(doc) + '\n'));
        print(`wrote ${cmd.json}`);
      }
    } finally {
      await iv.close();
    }
  } finally {
    await model.close();
  }
}
