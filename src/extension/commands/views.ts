/**
 * The commands that open a result view (a webview panel): Show Neuron, the table, the overview,
 * and the prompt view of the active heat-map.
 */
import * as vscode from 'vscode';
import { neuronLabel, neuronSeries } from '../../engine/editor';
import { errorLine } from '../../format';
import { Command } from '../../view/commandIds';
import { pickNeuron } from '../neuronPicker';
import { analyzeDoc, fail, needRun, refFromArg, register, type Deps, type SimpleResult } from './context';

async function showNeuron(d: Deps, arg?: unknown): Promise<SimpleResult> {
  const run = await needRun(d, 'Show Neuron');
  if (!run) return { status: 'error', message: 'no run' };
  const dims = { nLayers: run.reference.nLayers, dMlp: run.reference.dMlp };
  let ref = refFromArg(arg);
  if (arg !== undefined && !ref) return fail(`${JSON.stringify(arg)} is not a neuron (write it as L3.N120)`);
  ref ??= await pickNeuron({ title: 'Show Neuron', run });
  if (!ref) return { status: 'dismissed' };
  if (ref.layer >= dims.nLayers || ref.neuron >= dims.dMlp) {
    return fail(`${neuronLabel(ref)} is outside ${run.reference.label} (layers 0–${dims.nLayers - 1}, neurons 0–${dims.dMlp - 1})`);
  }
  try {
    await (await d.panels()).openNeuronPanel(d.ctx, run.dir, ref);
  } catch (e) {
    return fail(errorLine(e));
  }
  return { status: 'ok', neuron: neuronLabel(ref), runDir: run.dir };
}

async function openPanel(d: Deps, which: 'table' | 'overview'): Promise<SimpleResult> {
  const run = await needRun(d, which === 'table' ? 'the universal neuron table' : 'the overview');
  if (!run) return { status: 'error', message: 'no run' };
  try {
    const p = await d.panels();
    await (which === 'table' ? p.openTablePanel(d.ctx, run.dir) : p.openOverviewPanel(d.ctx, run.dir));
  } catch (e) {
    return fail(errorLine(e));
  }
  return { status: 'ok', runDir: run.dir };
}

async function openPromptView(d: Deps, arg?: unknown): Promise<SimpleResult> {
  const ed = vscode.window.activeTextEditor;
  if (!ed) return fail('open a prompt file first');
  const active = d.heat.activeFor(ed.document);
  // No neuron given: an active intervention's Δ loss comes before the heat-map's neuron.
  const delta = arg === undefined ? d.intervention.deltaLossFor(ed.document) : undefined;
  if (delta) {
    try {
      await (await d.panels()).openPromptView(d.ctx, ed.document.uri, delta.tokens, delta.values, delta.label);
    } catch (e) {
      return fail(errorLine(e));
    }
    return { status: 'ok', intervention: delta.label, tokens: delta.tokens.length };
  }
  const ref = refFromArg(arg) ?? active?.ref;
  if (!ref) return fail('heat-map a neuron (Heat-map Neuron…) or intervene on one (Intervene on Neuron…) first, or pass one');
  const o = await analyzeDoc(d, ed.document, 'Universal Neurons: analysing prompt');
  if (o.status !== 'ok') return o.status === 'error' ? fail(o.message) : { status: 'cancelled' };
  const r = o.result;
  const values = Array.from(neuronSeries(r.post, r.tokens.length, ref));
  const tokens = r.tokens.map((t, i) => ({ text: i === 0 ? r.tokenText[0]! : ed.document.getText().slice(t.start, t.end), start: t.start, end: t.end, id: t.id }));
  try {
    await (await d.panels()).openPromptView(d.ctx, ed.document.uri, tokens, values, neuronLabel(ref));
  } catch (e) {
    return fail(errorLine(e));
  }
  return { status: 'ok', neuron: neuronLabel(ref), tokens: tokens.length };
}

export function registerViewCommands(d: Deps): vscode.Disposable[] {
  return [
    register(Command.ShowNeuron, (a) => showNeuron(d, a)),
    register(Command.OpenTable, () => openPanel(d, 'table')),
    register(Command.OpenOverview, () => openPanel(d, 'overview')),
    register(Command.OpenPromptView, (a) => openPromptView(d, a)),
  ];
}
