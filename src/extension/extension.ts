/**
 * Entry point. Activation only wires things up: no model, no native addon (onnxruntime-node is
 * loaded by EngineHost on the first analysis), no run files read (the remembered run loads in the
 * background once activation has returned), so opening VS Code stays fast.
 */
import * as vscode from 'vscode';
import { registerCommands } from './commands';
import { readSettings, SECTION } from './config';
import { EngineHost } from './engineHost';
import { HeatMap } from './heatmap';
import { InterventionView } from './intervention';
import { registerHover } from './hover';
import { loadPanels, registerSerializers } from './panelsBridge';
import { PromptAnalyzer } from './promptAnalyzer';
import { RunState } from './runState';
import { registerTokenActivations } from './tokenActivations';
import { RunsTree, VIEW_ID } from './tree';

/** Returned from activate(): what `vscode.extensions.getExtension(...).exports` gives. */
export interface UniversalNeuronsApi {
  /** Wall time of activate() itself, ms. */
  activationMs: number;
  /** For the extension-host tests: state that the UI does not expose. */
  testing: {
    /** The run the hover and panels use (the open run, else the shipped demo run). */
    currentRunDir(): string | undefined;
    /** The run the user opened (or the workspace remembers), without the demo fallback. */
    openedRunDir(): string | undefined;
    /** The demo run shipped inside the extension. */
    demoRunDir(): string | undefined;
    heatApplied(doc: vscode.TextDocument): unknown;
    interventionApplied(doc: vscode.TextDocument): unknown;
    isFollowed(doc: vscode.TextDocument): boolean;
    isAnalyzing(doc: vscode.TextDocument): boolean;
    /** A pause after each model run (ms), so a test's edit lands while an analysis is in flight. */
    setAnalysisDelay(ms: number): void;
  };
}

export function activate(context: vscode.ExtensionContext): UniversalNeuronsApi {
  const t0 = performance.now();
  const channel = vscode.window.createOutputChannel('Universal Neurons');
  const host = new EngineHost();
  host.executionProvider = readSettings().executionProvider;
  const runs = new RunState(context, channel);
  const analyzer = new PromptAnalyzer(context.extensionPath, host, runs, channel);
  const heat = new HeatMap(analyzer);
  const intervention = new InterventionView(host, analyzer, channel);
  const tree = new RunsTree(runs);
  context.subscriptions.push(
    channel,
    host,
    runs,
    analyzer,
    heat,
    intervention,
    tree,
    registerTokenActivations(context.extensionPath, channel, host),
    ...registerCommands({ ctx: context, log: channel, runs, analyzer, heat, intervention, panels: loadPanels }),
    registerHover(analyzer, runs, heat),
    vscode.window.createTreeView(VIEW_ID, { treeDataProvider: tree, showCollapseAll: true }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      // A different model or thread count needs a new session; topK etc. apply on the next run.
      if (e.affectsConfiguration(`${SECTION}.executionProvider`)) host.executionProvider = readSettings().executionProvider;
      if (e.affectsConfiguration(`${SECTION}.modelPath`) || e.affectsConfiguration(`${SECTION}.threads`)) host.invalidate();
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => runs.refresh()),
  );
  registerSerializers(context, channel, host);
  // The remembered run (else the shipped demo run), after activation has returned (reading its
  // table takes tens of ms).
  setTimeout(() => void runs.ensureLoaded(), 0);
  const activationMs = performance.now() - t0;
  channel.appendLine(`Universal Neurons activated in ${activationMs.toFixed(1)} ms${vscode.workspace.isTrusted ? '' : ' (Restricted Mode: analysis only on request)'}`);
  return {
    activationMs,
    testing: {
      currentRunDir: () => runs.current?.dir,
      openedRunDir: () => runs.opened?.dir,
      demoRunDir: () => runs.demoDir,
      heatApplied: (doc) => heat.appliedFor(doc),
      interventionApplied: (doc) => intervention.activeFor(doc),
      isFollowed: (doc) => analyzer.isFollowed(doc),
      isAnalyzing: (doc) => analyzer.isAnalyzing(doc),
      setAnalysisDelay: (ms) => void (analyzer.testDelayMs = ms),
    },
  };
}

export function deactivate(): void {
  // Disposables (channel, cached model) are released through context.subscriptions.
}
