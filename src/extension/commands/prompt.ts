/**
 * The prompt commands: Analyze Prompt (the active editor through the prompt analyzer), Heat-map
 * Neuron (shade the document by one neuron) and Clear Heat-map.
 */
import { basename } from 'node:path';
import * as vscode from 'vscode';
import { neuronLabel, tokenAtOffset, topNeuronsAt } from '../../engine/editor';
import { Command } from '../../view/commandIds';
import type { HeatApplied } from '../heatmap';
import { pickNeuron } from '../neuronPicker';
import type { PromptResult } from '../promptAnalyzer';
import { analyzeDoc, fail, refFromArg, register, type AnalyzePromptResult, type Deps } from './context';

async function analyzePrompt(d: Deps): Promise<AnalyzePromptResult> {
  const ed = vscode.window.activeTextEditor;
  if (!ed) return fail('open a prompt file first (Analyze Prompt reads the active editor)');
  const o = await analyzeDoc(d, ed.document, 'Universal Neurons: analysing prompt');
  if (o.status === 'cancelled') return o;
  if (o.status !== 'ok') {
    if (o.status === 'error') return fail(o.message);
    void vscode.window.showWarningMessage(`Universal Neurons: ${o.message}`);
    return o;
  }
  const r = o.result;
  const restricted = vscode.workspace.isTrusted ? '' : ' (Restricted Mode: analysed on request only; edits are not re-analysed automatically)';
  vscode.window.setStatusBarMessage(`$(pulse) ${r.tokens.length - 1} tokens analysed on ${r.model.label}: hover a token${restricted}`, 5000);
  if (!vscode.workspace.isTrusted) {
    void vscode.window.showInformationMessage(
      `Universal Neurons (Restricted Mode): analysed ${basename(ed.document.uri.path)} because you asked; nothing else in this workspace is analysed, and edits are not re-analysed automatically.`,
    );
  }
  return {
    status: 'ok',
    document: r.uri,
    version: r.version,
    tokens: r.tokens.length,
    model: r.model.dir,
    modelSource: r.model.source,
    runId: r.model.runId,
    cached: o.cached,
    tokenizeMs: r.tokenizeMs,
    runMs: r.runMs,
  };
}

async function heatmapNeuron(d: Deps, arg?: unknown): Promise<{ status: 'ok'; applied: HeatApplied } | AnalyzePromptResult | { status: 'dismissed' }> {
  // From the tree or a panel no text editor is active: the visible one is meant.
  const ed = vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors.find((e) => e.document.uri.scheme !== 'output');
  if (!ed) return fail('open a prompt file first (the heat-map shades the active editor)');
  let ref = refFromArg(arg);
  if (arg !== undefined && !ref) return fail(`${JSON.stringify(arg)} is not a neuron (write it as L3.N120)`);
  const o = await analyzeDoc(d, ed.document, 'Universal Neurons: analysing prompt for the heat-map');
  if (o.status !== 'ok') return o.status === 'error' ? fail(o.message) : o;
  const r: PromptResult = o.result;
  if (!ref) {
    const t = tokenAtOffset(r.tokens, ed.document.offsetAt(ed.selection.active));
    const atCursor = t > 0 ? topNeuronsAt(r.post, r.tokens.length, t, 10) : [];
    ref = await pickNeuron({
      title: 'Heat-map Neuron',
      run: d.runs.current && r.model.runDir === d.runs.current.dir ? d.runs.current : undefined,
      dims: { nLayers: r.nLayers, dMlp: r.dMlp },
      extra: atCursor.length
        ? { label: `Most active at the cursor (${JSON.stringify(r.tokenText[t])})`, items: atCursor.map((n) => ({ ref: n, detail: n.value.toFixed(3) })) }
        : undefined,
    });
    if (!ref) return { status: 'dismissed' };
  }
  if (ref.layer >= r.nLayers || ref.neuron >= r.dMlp) {
    return fail(`${neuronLabel(ref)} is outside ${r.model.label} (layers 0–${r.nLayers - 1}, neurons 0–${r.dMlp - 1})`);
  }
  const applied = d.heat.set(ed.document, ref, r);
  return { status: 'ok', applied };
}

export function registerPromptCommands(d: Deps): vscode.Disposable[] {
  const { heat } = d;
  return [
    register(Command.AnalyzePrompt, () => analyzePrompt(d)),
    register(Command.HeatmapNeuron, (a) => heatmapNeuron(d, a)),
    register(Command.ClearHeatmap, () => {
      const ed = vscode.window.activeTextEditor;
      const cleared = ed && heat.activeFor(ed.document) ? heat.clear(ed.document) : heat.clear();
      return { status: 'ok', cleared };
    }),
  ];
}
