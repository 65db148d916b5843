/**
 * Intervene on Neuron… (pick the neurons, the mode and its value; run on the active prompt, at the
 * tokens the selection overlaps or at every token; shade each token by its Δ loss) and Clear
 * Intervention. The work is the engine's (intervene.ts); the
 * shading, hover and status item are InterventionView's (../intervention.ts).
 */
import * as vscode from 'vscode';
import { neuronLabel, tokenAtOffset, topNeuronsAt } from '../../engine/editor';
import { errorLine } from '../../format';
import { describeNeuron, meansFromRun, parseMode, parseNeuronList, type InterventionMode, type InterventionSpec } from '../../engine/interventionSpec';
import type { NeuronRef } from '../../engine/arch/common';
import { Command } from '../../view/commandIds';
import type { InterventionApplied } from '../intervention';
import { pickNeuron } from '../neuronPicker';
import { analyzeDoc, fail, refFromArg, register, type Deps } from './context';

export type InterveneResult =
  | { status: 'ok'; applied: InterventionApplied }
  | { status: 'error'; message: string }
  | { status: 'dismissed' }
  | { status: 'cancelled' }
  | { status: 'stale'; message: string };

/**
 * The argument, when a link, the tree or a test passes one: a neuron ({layer, neuron} or
 * "L3.N120[,…]"), or {neurons, mode, hook?, tokens?} with mode as text ("zero", "fix=2").
 */
function specFromArg(arg: unknown): { neurons?: NeuronRef[]; mode?: InterventionMode; hook?: 'pre' | 'post'; tokens?: { start?: number; end?: number } } | string {
  if (arg === undefined) return {};
  try {
    if (typeof arg === 'string') return { neurons: parseNeuronList(arg) };
    const ref = refFromArg(arg);
    if (ref) return { neurons: [ref] };
    if (arg && typeof arg === 'object') {
      const o = arg as { neurons?: unknown; mode?: unknown; hook?: unknown; tokens?: unknown };
      const neurons =
        typeof o.neurons === 'string' ? parseNeuronList(o.neurons) : Array.isArray(o.neurons) ? o.neurons.map((n) => refFromArg(n) ?? parseNeuronList(String(n))[0]!) : undefined;
      const mode = typeof o.mode === 'string' ? parseMode(o.mode) : undefined;
      const hook = o.hook === 'pre' || o.hook === 'post' ? o.hook : undefined;
      if (o.hook !== undefined && !hook) return `hook ${JSON.stringify(o.hook)} is neither pre nor post`;
      const tokens = o.tokens && typeof o.tokens === 'object' ? (o.tokens as { start?: number; end?: number }) : undefined;
      return { neurons, mode, hook, tokens };
    }
  } catch (e) {
    return errorLine(e);
  }
  return `${JSON.stringify(arg)} is not a neuron or an intervention`;
}

type ModeChoice = { mode: InterventionMode; fromRun?: boolean };

/** The mode; `runMeans`: the open run has statistics for this model (hook_pre means), offered as a mean. */
async function askMode(runMeans: string | undefined): Promise<ModeChoice | undefined> {
  const items: (vscode.QuickPickItem & { kind0: InterventionMode['kind']; fromRun?: boolean })[] = [
    { label: 'zero', description: 'set the activation to 0', kind0: 'zero' },
    { label: 'mean', description: "set it to its mean over this prompt's tokens (BOS excluded)", kind0: 'mean' },
    ...(runMeans
      ? [{ label: 'mean (run statistics)', description: `set hook_pre to its mean over run ${runMeans}'s corpus`, kind0: 'mean' as const, fromRun: true }]
      : []),
    { label: 'fix…', description: 'set it to a value', kind0: 'fix' },
    { label: 'scale…', description: 'multiply it by a factor', kind0: 'scale' },
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'Intervene on Neuron: mode' });
  if (!pick) return undefined;
  if (pick.kind0 === 'zero' || pick.kind0 === 'mean') return { mode: { kind: pick.kind0 }, fromRun: pick.fromRun };
  const raw = await vscode.window.showInputBox({
    title: `Intervene on Neuron: ${pick.kind0 === 'fix' ? 'value' : 'factor'}`,
    value: pick.kind0 === 'fix' ? '5' : '2',
    validateInput: (v) => {
      try {
        parseMode(`${pick.kind0}=${v}`);
        return undefined;
      } catch (e) {
        return errorLine(e);
      }
    },
  });
  return raw === undefined ? undefined : { mode: parseMode(`${pick.kind0}=${raw}`) };
}

async function interveneNeuron(d: Deps, arg?: unknown): Promise<InterveneResult> {
  const ed = vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors.find((e) => e.document.uri.scheme !== 'output');
  if (!ed) return fail('open a prompt file first (the intervention runs on the active editor)');
  const given = specFromArg(arg);
  if (typeof given === 'string') return fail(given);
  const o = await analyzeDoc(d, ed.document, 'Universal Neurons: analysing prompt for the intervention');
  if (o.status !== 'ok') return o.status === 'error' ? fail(o.message) : o;
  const r = o.result;
  let neurons = given.neurons;
  if (!neurons) {
    const t = tokenAtOffset(r.tokens, ed.document.offsetAt(ed.selection.active));
    const atCursor = t > 0 ? topNeuronsAt(r.post, r.tokens.length, t, 10) : [];
    const ref = await pickNeuron({
      title: 'Intervene on Neuron',
      run: d.runs.current && r.model.runDir === d.runs.current.dir ? d.runs.current : undefined,
      dims: { nLayers: r.nLayers, dMlp: r.dMlp },
      extra: atCursor.length
        ? { label: `Most active at the cursor (${JSON.stringify(r.tokenText[t])})`, items: atCursor.map((n) => ({ ref: n, detail: n.value.toFixed(3) })) }
        : undefined,
    });
    if (!ref) return { status: 'dismissed' };
    neurons = [ref];
  }
  const bad = neurons.find((n) => n.layer >= r.nLayers || n.neuron >= r.dMlp);
  if (bad) return fail(`${neuronLabel(bad)} is outside ${r.model.label} (layers 0–${r.nLayers - 1}, neurons 0–${r.dMlp - 1})`);
  // The open run's statistics serve when it was made on this prompt's model.
  const run = d.runs.current && r.model.runDir === d.runs.current.dir && d.runs.current.columns['mean_exact'] ? d.runs.current : undefined;
  const choice: ModeChoice | undefined = given.mode ? { mode: given.mode } : await askMode(run?.id);
  if (!choice) return { status: 'dismissed' };
  const mode = choice.mode;
  const hook = choice.fromRun ? 'pre' : (given.hook ?? 'post');
  let means: InterventionSpec['means'];
  try {
    if (mode.kind === 'mean') means = choice.fromRun && run ? meansFromRun(run, neurons, hook, { nLayer: r.nLayers, dMlp: r.dMlp }) : 'prompt';
  } catch (e) {
    return fail(errorLine(e));
  }
  // A selection limits the edit to the tokens it overlaps (else every token).
  let tokens = given.tokens;
  if (!tokens && !ed.selection.isEmpty) {
    const a = tokenAtOffset(r.tokens, ed.document.offsetAt(ed.selection.start));
    const b = tokenAtOffset(r.tokens, Math.max(0, ed.document.offsetAt(ed.selection.end) - 1));
    if (a > 0 && b >= a) tokens = { start: a, end: b + 1 };
  }
  const spec: InterventionSpec = { neurons, mode, hook, ...(tokens ? { tokens } : {}), ...(means ? { means } : {}) };
  try {
    const applied = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: `Universal Neurons: ${mode.kind} ${neurons.map(describeNeuron).join(', ')}` },
      () => d.intervention.set(ed.document, spec, r),
    );
    return { status: 'ok', applied };
  } catch (e) {
    return fail(errorLine(e));
  }
}

export function registerInterveneCommands(d: Deps): vscode.Disposable[] {
  return [
    register(Command.InterveneNeuron, (a) => interveneNeuron(d, a)),
    register(Command.ClearIntervention, () => {
      const ed = vscode.window.activeTextEditor;
      const cleared = ed && d.intervention.activeFor(ed.document) ? d.intervention.clear(ed.document) : d.intervention.clear();
      return { status: 'ok', cleared };
    }),
  ];
}
