/**
 * What every command module shares: the extension's parts a command uses (Deps), the result
 * shapes commands return (tests drive them through `executeCommand`), argument parsing, and the
 * two steps several commands start with — the run they work on (needRun) and the analysed prompt
 * (analyzeDoc).
 */
import { basename } from 'node:path';
import * as vscode from 'vscode';
import { parseNeuronRef, type NeuronRef } from '../../engine/editor';
import { Command } from '../../view/commandIds';
import { tokenSignal } from '../cancel';
import type { HeatMap } from '../heatmap';
import type { InterventionView } from '../intervention';
import type { AnalyzeOutcome, PromptAnalyzer } from '../promptAnalyzer';
import { chooseRun, DEMO_RUN_TITLE, runSummary } from '../runChoice';
import type { RunState } from '../runState';

/** The webview panels (src/extension/panels, loaded on first use). */
export interface Panels {
  openOverviewPanel(ctx: vscode.ExtensionContext, runDir: string): unknown;
  openTablePanel(ctx: vscode.ExtensionContext, runDir: string): unknown;
  openNeuronPanel(ctx: vscode.ExtensionContext, runDir: string, ref: NeuronRef): unknown;
  openPromptView(
    ctx: vscode.ExtensionContext,
    docUri: vscode.Uri,
    tokens: { text: string; start: number; end: number; id: number }[],
    values: number[],
    neuronLabel: string,
  ): unknown;
}

export interface Deps {
  ctx: vscode.ExtensionContext;
  log: vscode.OutputChannel;
  runs: RunState;
  analyzer: PromptAnalyzer;
  heat: HeatMap;
  intervention: InterventionView;
  panels: () => Promise<Panels>;
}

export type AnalyzePromptResult =
  | {
      status: 'ok';
      document: string;
      version: number;
      tokens: number;
      model: string;
      modelSource: string;
      runId?: string;
      cached: boolean;
      tokenizeMs: number;
      runMs: number;
    }
  | { status: 'stale' | 'error'; message: string }
  | { status: 'cancelled' };

export type SimpleResult = { status: 'ok'; [k: string]: unknown } | { status: 'error'; message: string } | { status: 'dismissed' } | { status: 'cancelled' };

export const fail = (message: string): { status: 'error'; message: string } => {
  void vscode.window.showErrorMessage(`Universal Neurons: ${message}`);
  return { status: 'error', message };
};

/** A neuron given as an argument: {layer, neuron} (hover links, tree nodes, tests) or "L3.N120". */
export function refFromArg(arg: unknown): NeuronRef | undefined {
  if (typeof arg === 'string') return parseNeuronRef(arg);
  if (arg && typeof arg === 'object') {
    const { layer, neuron } = arg as { layer?: unknown; neuron?: unknown };
    if (Number.isSafeInteger(layer) && Number.isSafeInteger(neuron) && (layer as number) >= 0 && (neuron as number) >= 0) {
      return { layer: layer as number, neuron: neuron as number };
    }
  }
  return undefined;
}

export function dirFromArg(arg: unknown): string | undefined {
  if (typeof arg === 'string') return arg;
  if (arg instanceof vscode.Uri) return arg.fsPath;
  if (arg && typeof arg === 'object' && typeof (arg as { dir?: unknown }).dir === 'string') return (arg as { dir: string }).dir;
  return undefined;
}

/** Registers `fn` under a command id of the enum (package.json declares the same ids). */
export const register = (id: Command, fn: (...args: unknown[]) => unknown): vscode.Disposable => vscode.commands.registerCommand(id, fn);

/**
 * The run a command works on (runChoice.ts): the open run (loading the remembered one); else
 * the workspace's runs, the only complete one opened without asking, several offered in a
 * quick pick; else the shipped demo run; else an offer to make or open one.
 */
export async function needRun({ runs }: Deps, why: string): Promise<NonNullable<RunState['current']> | undefined> {
  await runs.ensureLoaded();
  if (runs.opened) return runs.opened;
  const dir = runs.rememberedDir;
  if (dir) {
    const r = await runs.open(dir); // reports the problem with its Remove button
    if (r.status === 'ok') return runs.opened;
    return undefined;
  }
  const choice = chooseRun({ found: await runs.foundRuns(), demo: runs.demoDir });
  switch (choice.kind) {
    case 'open':
      break;
    case 'only': {
      const r = await runs.open(choice.dir);
      if (r.status !== 'ok') return undefined;
      vscode.window.setStatusBarMessage(`$(pass-filled) Universal Neurons: opened run ${r.id}, the only run in this workspace`, 5000);
      return runs.opened;
    }
    case 'pick': {
      const items: (vscode.QuickPickItem & { dir: string })[] = choice.dirs.map((d) => ({ label: basename(d), description: runSummary(d).models, detail: d, dir: d }));
      if (choice.demo) items.push({ label: DEMO_RUN_TITLE, description: 'ships with the extension', detail: choice.demo, dir: choice.demo });
      const pick = await vscode.window.showQuickPick(items, { title: `${why}: which run?`, placeHolder: 'Runs in this workspace (the one you pick stays open)' });
      if (!pick) return undefined;
      const r = await runs.open(pick.dir);
      return r.status === 'ok' ? runs.opened : undefined;
    }
    case 'demo':
      return runs.loadDemo();
    case 'none':
      break;
  }
  void vscode.window.showInformationMessage(`Universal Neurons: ${why} needs an analysis run.`, 'Analyze Models…', 'Open Run…').then((b) => {
    if (b === 'Analyze Models…') void vscode.commands.executeCommand(Command.AnalyzeModels);
    if (b === 'Open Run…') void vscode.commands.executeCommand(Command.OpenRun);
  });
  return undefined;
}

/** Analyses `doc` (cached per version), with a cancellable notification when it has to run the model. */
export async function analyzeDoc({ runs, analyzer }: Deps, doc: vscode.TextDocument, title: string): Promise<AnalyzeOutcome> {
  await runs.ensureLoaded();
  const cachedOnly = analyzer.fresh(doc);
  if (cachedOnly) return analyzer.analyze(doc, { follow: true });
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title, cancellable: true },
    async (progress, token) => {
      progress.report({ message: `${basename(doc.uri.path)}…` });
      return analyzer.analyze(doc, {
        follow: true,
        signal: tokenSignal(token),
      });
    },
  );
}
