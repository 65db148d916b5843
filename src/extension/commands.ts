/**
 * The palette commands (category "Universal Neurons"). Each returns a small result object so that
 * tests and other callers can drive them through `executeCommand` without scraping the UI.
 * Thin adapters: the work is the engine's (run/view, editor, promptRun, pipeline); the views are
 * the webview panels'.
 */
import { copyFileSync, existsSync } from 'node:fs';
import { basename } from 'node:path';
import * as vscode from 'vscode';
import { neuronLabel, neuronSeries, parseNeuronRef, tokenAtOffset, topNeuronsAt, type NeuronRef } from '../engine/editor';
import { runFile } from '../engine/run/files';
import { errorLine } from '../format';
import { analyzeModels, ANALYZE_MODELS, type AnalyzeModelsArgs } from './analyzeModels';
import { CLEAR_COMMAND, type HeatApplied, type HeatMap } from './heatmap';
import { HEATMAP_NEURON, SHOW_NEURON } from '../view/hoverContent';
import { pickNeuron } from './neuronPicker';
import type { AnalyzeOutcome, PromptAnalyzer, PromptResult } from './promptAnalyzer';
import { chooseRun, DEMO_RUN_TITLE, runSummary } from './runChoice';
import type { OpenRunResult, RunState } from './runState';

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

const fail = (message: string): { status: 'error'; message: string } => {
  void vscode.window.showErrorMessage(`Universal Neurons: ${message}`);
  return { status: 'error', message };
};

/** A neuron given as an argument: {layer, neuron} (hover links, tree nodes, tests) or "L3.N120". */
function refFromArg(arg: unknown): NeuronRef | undefined {
  if (typeof arg === 'string') return parseNeuronRef(arg);
  if (arg && typeof arg === 'object') {
    const { layer, neuron } = arg as { layer?: unknown; neuron?: unknown };
    if (Number.isSafeInteger(layer) && Number.isSafeInteger(neuron) && (layer as number) >= 0 && (neuron as number) >= 0) {
      return { layer: layer as number, neuron: neuron as number };
    }
  }
  return undefined;
}

function dirFromArg(arg: unknown): string | undefined {
  if (typeof arg === 'string') return arg;
  if (arg instanceof vscode.Uri) return arg.fsPath;
  if (arg && typeof arg === 'object' && typeof (arg as { dir?: unknown }).dir === 'string') return (arg as { dir: string }).dir;
  return undefined;
}

export function registerCommands(d: Deps): vscode.Disposable[] {
  const { ctx, log, runs, analyzer, heat } = d;

  /**
   * The run a command works on (runChoice.ts): the open run (loading the remembered one); else
   * the workspace's runs, the only complete one opened without asking, several offered in a
   * quick pick; else the shipped demo run; else an offer to make or open one.
   */
  async function needRun(why: string): Promise<NonNullable<RunState['current']> | undefined> {
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
      if (b === 'Analyze Models…') void vscode.commands.executeCommand(ANALYZE_MODELS);
      if (b === 'Open Run…') void vscode.commands.executeCommand('universalNeurons.openRun');
    });
    return undefined;
  }

  /** Analyses `doc` (cached per version), with a cancellable notification when it has to run the model. */
  async function analyzeDoc(doc: vscode.TextDocument, title: string): Promise<AnalyzeOutcome> {
    await runs.ensureLoaded();
    const cachedOnly = analyzer.fresh(doc);
    if (cachedOnly) return analyzer.analyze(doc, { follow: true });
    return vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title, cancellable: true },
      async (progress, token) => {
        progress.report({ message: `${basename(doc.uri.path)}…` });
        return analyzer.analyze(doc, {
          follow: true,
          signal: {
            get cancelled() {
              return token.isCancellationRequested;
            },
          },
        });
      },
    );
  }

  async function analyzePrompt(): Promise<AnalyzePromptResult> {
    const ed = vscode.window.activeTextEditor;
    if (!ed) return fail('open a prompt file first (Analyze Prompt reads the active editor)');
    const o = await analyzeDoc(ed.document, 'Universal Neurons: analysing prompt');
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

  async function openRun(arg?: unknown): Promise<OpenRunResult | { status: 'dismissed' }> {
    let dir = dirFromArg(arg);
    if (!dir) {
      const { listRuns } = await runs.runModule();
      const BROWSE = '$(folder-opened) Browse…';
      const items: (vscode.QuickPickItem & { dir?: string })[] = [];
      for (const rd of runs.runsDirs()) for (const r of listRuns(rd)) items.push({ label: basename(r), description: r === runs.current?.dir ? 'current' : undefined, detail: r, dir: r });
      if (runs.demoDir) items.push({ label: DEMO_RUN_TITLE, description: runs.isDemo(runs.current) ? 'current · ships with the extension' : 'ships with the extension', detail: runs.demoDir, dir: runs.demoDir });
      items.push({ label: BROWSE, description: 'a run folder (manifest.json, neurons.arrow, …)' });
      const pick = await vscode.window.showQuickPick(items, { title: 'Open Run', placeHolder: items.length > 1 ? 'Runs in this workspace' : 'No runs in this workspace yet' });
      if (!pick) return { status: 'dismissed' };
      if (pick.dir) dir = pick.dir;
      else {
        const uris = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title: 'Run folder', openLabel: 'Open Run' });
        if (!uris?.[0]) return { status: 'dismissed' };
        dir = uris[0].fsPath;
      }
    }
    return runs.open(dir);
  }

  async function showNeuron(arg?: unknown): Promise<SimpleResult> {
    const run = await needRun('Show Neuron');
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
      await (await d.panels()).openNeuronPanel(ctx, run.dir, ref);
    } catch (e) {
      return fail(errorLine(e));
    }
    return { status: 'ok', neuron: neuronLabel(ref), runDir: run.dir };
  }

  async function openPanel(which: 'table' | 'overview'): Promise<SimpleResult> {
    const run = await needRun(which === 'table' ? 'the universal neuron table' : 'the overview');
    if (!run) return { status: 'error', message: 'no run' };
    try {
      const p = await d.panels();
      await (which === 'table' ? p.openTablePanel(ctx, run.dir) : p.openOverviewPanel(ctx, run.dir));
    } catch (e) {
      return fail(errorLine(e));
    }
    return { status: 'ok', runDir: run.dir };
  }

  type ExportFormat = 'csv-universal' | 'csv-all' | 'arrow';
  async function exportTable(args?: { format: ExportFormat; target: string }): Promise<SimpleResult> {
    const run = await needRun('Export Table');
    if (!run) return { status: 'error', message: 'no run' };
    let format = args?.format;
    if (!format) {
      const items: (vscode.QuickPickItem & { f: ExportFormat })[] = [
        { label: 'Universal neurons — CSV (paper schema)', description: 'universal.csv: the paper’s columns, in order', f: 'csv-universal' },
        { label: 'All neurons — CSV (paper schema)', description: `${run.nRows} rows`, f: 'csv-all' },
        { label: 'All neurons — Arrow IPC', description: 'every column the run wrote (pandas read_feather, polars read_ipc)', f: 'arrow' },
      ];
      const pick = await vscode.window.showQuickPick(items, { title: 'Export Table' });
      if (!pick) return { status: 'dismissed' };
      format = pick.f;
    }
    if (format === 'arrow' && run.source !== 'neurons.arrow') return fail(`run ${run.id} has no neurons.arrow to export`);
    let target = args?.target;
    if (!target) {
      const name = format === 'arrow' ? `${run.id}-neurons.arrow` : format === 'csv-all' ? `${run.id}-neurons.csv` : `${run.id}-universal.csv`;
      const base = vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file(run.dir);
      const uri = await vscode.window.showSaveDialog({
        title: 'Export Table',
        defaultUri: vscode.Uri.joinPath(base, name),
        filters: format === 'arrow' ? { 'Arrow IPC': ['arrow', 'feather'] } : { CSV: ['csv'] },
      });
      if (!uri) return { status: 'dismissed' };
      target = uri.fsPath;
    }
    try {
      if (format === 'arrow') copyFileSync(runFile(run.dir, 'neurons'), target);
      else {
        const { paperCsv } = await runs.runModule();
        const { writeFileAtomic } = await import('../engine/store');
        writeFileAtomic(target, paperCsv(run, format === 'csv-universal'));
      }
    } catch (e) {
      return fail(errorLine(e));
    }
    log.appendLine(`exported ${format} of run ${run.id} to ${target}`);
    void vscode.window.showInformationMessage(`Universal Neurons: exported to ${target}`, 'Reveal').then((b) => {
      if (b === 'Reveal') void vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(target!));
    });
    return { status: 'ok', target, format };
  }

  async function heatmapNeuron(arg?: unknown): Promise<{ status: 'ok'; applied: HeatApplied } | AnalyzePromptResult | { status: 'dismissed' }> {
    // From the tree or a panel no text editor is active: the visible one is meant.
    const ed = vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors.find((e) => e.document.uri.scheme !== 'output');
    if (!ed) return fail('open a prompt file first (the heat-map shades the active editor)');
    let ref = refFromArg(arg);
    if (arg !== undefined && !ref) return fail(`${JSON.stringify(arg)} is not a neuron (write it as L3.N120)`);
    const o = await analyzeDoc(ed.document, 'Universal Neurons: analysing prompt for the heat-map');
    if (o.status !== 'ok') return o.status === 'error' ? fail(o.message) : o;
    const r: PromptResult = o.result;
    if (!ref) {
      const t = tokenAtOffset(r.tokens, ed.document.offsetAt(ed.selection.active));
      const atCursor = t > 0 ? topNeuronsAt(r.post, r.tokens.length, t, 10) : [];
      ref = await pickNeuron({
        title: 'Heat-map Neuron',
        run: runs.current && r.model.runDir === runs.current.dir ? runs.current : undefined,
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
    const applied = heat.set(ed.document, ref, r);
    return { status: 'ok', applied };
  }

  async function openPromptView(arg?: unknown): Promise<SimpleResult> {
    const ed = vscode.window.activeTextEditor;
    if (!ed) return fail('open a prompt file first');
    const active = heat.activeFor(ed.document);
    const ref = refFromArg(arg) ?? active?.ref;
    if (!ref) return fail('heat-map a neuron first (Heat-map Neuron…), or pass one');
    const o = await analyzeDoc(ed.document, 'Universal Neurons: analysing prompt');
    if (o.status !== 'ok') return o.status === 'error' ? fail(o.message) : { status: 'cancelled' };
    const r = o.result;
    const values = Array.from(neuronSeries(r.post, r.tokens.length, ref));
    const tokens = r.tokens.map((t, i) => ({ text: i === 0 ? r.tokenText[0]! : ed.document.getText().slice(t.start, t.end), start: t.start, end: t.end, id: t.id }));
    try {
      await (await d.panels()).openPromptView(ctx, ed.document.uri, tokens, values, neuronLabel(ref));
    } catch (e) {
      return fail(errorLine(e));
    }
    return { status: 'ok', neuron: neuronLabel(ref), tokens: tokens.length };
  }

  const reg = (id: string, fn: (...a: unknown[]) => unknown) => vscode.commands.registerCommand(id, fn);
  return [
    reg(ANALYZE_MODELS, (a) => analyzeModels(ctx.extensionPath, runs, log, a as AnalyzeModelsArgs | undefined)),
    reg('universalNeurons.openRun', (a) => openRun(a)),
    reg('universalNeurons.analyzePrompt', () => analyzePrompt()),
    reg(SHOW_NEURON, (a) => showNeuron(a)),
    reg('universalNeurons.openTable', () => openPanel('table')),
    reg('universalNeurons.openOverview', () => openPanel('overview')),
    reg('universalNeurons.exportTable', (a) => exportTable(a as { format: ExportFormat; target: string } | undefined)),
    reg(HEATMAP_NEURON, (a) => heatmapNeuron(a)),
    reg('universalNeurons.openPromptView', (a) => openPromptView(a)),
    reg(CLEAR_COMMAND, () => {
      const ed = vscode.window.activeTextEditor;
      const cleared = ed && heat.activeFor(ed.document) ? heat.clear(ed.document) : heat.clear();
      return { status: 'ok', cleared };
    }),
    reg('universalNeurons.removeRun', async (a) => {
      const dir = dirFromArg(a) ?? runs.current?.dir;
      if (!dir) return { status: 'error', message: 'no run to remove' };
      // From the tree (a node) or the palette: ask first; tests pass {dir, confirm: false}.
      const confirm = !(a && typeof a === 'object' && (a as { confirm?: unknown }).confirm === false);
      return { status: 'ok', outcome: await runs.remove(dir, { confirm }) };
    }),
    reg('universalNeurons.refreshRuns', () => runs.refresh()),
    reg('universalNeurons.copyRunPath', (a) => {
      const dir = dirFromArg(a);
      if (dir && existsSync(dir)) void vscode.env.clipboard.writeText(dir);
    }),
  ];
}
