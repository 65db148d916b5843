/**
 * The result views as panels beside the editor: overview, neuron table, neuron page, prompt view.
 * H8's commands call the open* functions; activate() calls registerPanelSerializers (and
 * setPanelLog with the extension's output channel). Data is loaded by src/engine/run/data.ts; these hosts only
 * route messages.
 *
 * One panel per run for the overview and for the table, one neuron page per run (reused: a click
 * on another neuron re-targets it, like a preview), one prompt view per document.
 */
import { basename } from 'node:path';
import * as vscode from 'vscode';
import { isPanelState, VIEW_TYPES, type NeuronRef, type PromptData, type ToWebview, type ViewKind, type ViewPayload } from '../../protocol';
import { getRun } from '../../engine/run/data';
import { neuronData, overviewData, tableData } from '../runData';
import { Command } from '../../view/commandIds';
import { promptData } from '../../view/payloads';
import type { EffectRunner } from '../neuronEffect';
import { panelLog, setPanelLog, type PanelLog } from './log';
import { PanelHost, webviewOptions, type MessageHandler } from './panelHost';

export { setPanelLog, VIEW_TYPES };
export type { PanelLog };

const open = new Map<string, PanelHost>();

let effects: EffectRunner | undefined;
/** At activation: the runner of the neuron pages' "What it does" (it needs the engine host). */
export function setEffectRunner(r: EffectRunner): void {
  effects = r;
}
/** The "What it does" run in flight per panel (one at a time; a new request cancels the old). */
const effectJobs = new Map<PanelHost, { cancelled: boolean }>();

function measureEffect(ctx: vscode.ExtensionContext, runDir: string, ref: NeuronRef, host: PanelHost): void {
  const post = (m: Omit<Extract<ToWebview, { type: 'effect' }>, 'type' | 'layer' | 'neuron'>) => host.post({ type: 'effect', layer: ref.layer, neuron: ref.neuron, ...m });
  const prev = effectJobs.get(host);
  if (prev) prev.cancelled = true;
  if (!effects) {
    post({ state: 'error', message: 'the engine is not available in this window' });
    return;
  }
  const runner = effects;
  const job = { cancelled: false };
  effectJobs.set(host, job);
  post({ state: 'running' });
  void (async () => {
    try {
      const run = await getRun(runDir);
      const data = await runner.measure(run, ref, job, (done, total) => {
        if (!job.cancelled) post({ state: 'running', progress: { done, total } });
      });
      post({ state: 'done', data });
    } catch (e) {
      if (e instanceof Error && e.name === 'CancelledError') post({ state: 'cancelled' });
      else {
        const message = e instanceof Error ? e.message : String(e);
        panelLog(ctx).appendLine(`[neuron panel] What it does for ${nName(ref)} failed: ${message}`);
        post({ state: 'error', message: message.slice(0, 4000) });
      }
    } finally {
      if (effectJobs.get(host) === job) effectJobs.delete(host);
    }
  })();
}

const runName = (runDir: string) => basename(runDir);
const nName = (r: NeuronRef) => `L${r.layer}.N${r.neuron}`;

function title(view: ViewKind, runDir: string, extra = ''): string {
  switch (view) {
    case 'overview':
      return `Universality · ${runName(runDir)}`;
    case 'table':
      return `Neurons · ${runName(runDir)}`;
    case 'neuron':
      return `${extra} · ${runName(runDir)}`;
    case 'prompt':
      return extra;
  }
}

/** Creates (or reuses) the panel for `key` and gives it its content. */
function show(
  ctx: vscode.ExtensionContext,
  view: ViewKind,
  key: string,
  panelTitle: string,
  load: () => Promise<ViewPayload>,
  onMessage: MessageHandler,
  existingPanel?: vscode.WebviewPanel,
): PanelHost {
  let host = open.get(key);
  if (host && !host.isDisposed && !existingPanel) {
    host.setContent(panelTitle, load);
    host.reveal();
    return host;
  }
  const panel =
    existingPanel ??
    vscode.window.createWebviewPanel(VIEW_TYPES[view], panelTitle, { viewColumn: vscode.ViewColumn.Beside, preserveFocus: false }, webviewOptions(ctx.extensionUri));
  panel.title = panelTitle;
  panel.iconPath = vscode.Uri.joinPath(ctx.extensionUri, 'media', 'icon.png');
  host = new PanelHost(panel, view, ctx.extensionUri, panelLog(ctx), onMessage, () => {
    if (open.get(key) === host) open.delete(key);
  });
  open.set(key, host);
  host.setContent(panelTitle, load);
  return host;
}

/** Messages any run-based view may send. */
function runMessages(ctx: vscode.ExtensionContext, runDir: string): MessageHandler {
  return (m, host) => {
    switch (m.type) {
      case 'openNeuron': {
        // Checked against the run before a panel opens: a webview's numbers are not trusted.
        const ref = { layer: m.layer, neuron: m.neuron };
        void getRun(runDir).then(
          (run) => {
            if (ref.layer < run.nLayers && ref.neuron < run.dMlp && run.rowOf[ref.layer * run.dMlp + ref.neuron]! >= 0) openNeuronPanel(ctx, runDir, ref);
            else panelLog(ctx).appendLine(`[${host.view} panel] ignored openNeuron ${nName(ref)}: not a neuron of ${runDir}`);
          },
          (e: unknown) => panelLog(ctx).appendLine(`[${host.view} panel] cannot open ${nName(ref)}: ${e instanceof Error ? e.message : String(e)}`),
        );
        return;
      }
      case 'openView':
        return m.view === 'table' ? openTablePanel(ctx, runDir) : openOverviewPanel(ctx, runDir);
      case 'intervene': {
        // Checked against the run, as openNeuron: then the command runs on the open prompt.
        const ref = { layer: m.layer, neuron: m.neuron };
        void getRun(runDir).then(
          (run) => {
            if (ref.layer < run.nLayers && ref.neuron < run.dMlp) void vscode.commands.executeCommand(Command.InterveneNeuron, { neurons: nName(ref), mode: 'zero' });
            else panelLog(ctx).appendLine(`[${host.view} panel] ignored intervene ${nName(ref)}: not a neuron of ${runDir}`);
          },
          (e: unknown) => panelLog(ctx).appendLine(`[${host.view} panel] cannot intervene on ${nName(ref)}: ${e instanceof Error ? e.message : String(e)}`),
        );
        return;
      }
      case 'measureEffect':
        if (host.view === 'neuron') return measureEffect(ctx, runDir, { layer: m.layer, neuron: m.neuron }, host);
        break;
      case 'cancelEffect': {
        const job = effectJobs.get(host);
        if (job) job.cancelled = true;
        return;
      }
    }
    panelLog(ctx).appendLine(`[${host.view} panel] ignored ${m.type}: not a message this view sends`);
  };
}

async function loadPayload<V extends 'overview' | 'table'>(view: V, runDir: string): Promise<ViewPayload> {
  const run = await getRun(runDir);
  return view === 'overview' ? { view: 'overview', data: overviewData(run) } : { view: 'table', data: tableData(run) };
}

function overview(ctx: vscode.ExtensionContext, runDir: string, panel?: vscode.WebviewPanel): void {
  show(ctx, 'overview', `overview\0${runDir}`, title('overview', runDir), () => loadPayload('overview', runDir), runMessages(ctx, runDir), panel);
}

function table(ctx: vscode.ExtensionContext, runDir: string, panel?: vscode.WebviewPanel): void {
  show(ctx, 'table', `table\0${runDir}`, title('table', runDir), () => loadPayload('table', runDir), runMessages(ctx, runDir), panel);
}

function neuronPage(ctx: vscode.ExtensionContext, runDir: string, ref: NeuronRef, panel?: vscode.WebviewPanel): void {
  // A re-targeted page no longer shows the neuron whose "What it does" may be running: stop it.
  const shown = open.get(`neuron\0${runDir}`);
  const job = shown && effectJobs.get(shown);
  if (job) job.cancelled = true;
  const load = async (): Promise<ViewPayload> => ({ view: 'neuron', data: neuronData(await getRun(runDir), ref) });
  show(ctx, 'neuron', `neuron\0${runDir}`, title('neuron', runDir, nName(ref)), load, runMessages(ctx, runDir), panel);
}

function promptMessages(ctx: vscode.ExtensionContext, doc: vscode.Uri): MessageHandler {
  return (m, host) => {
    if (m.type !== 'revealRange') {
      panelLog(ctx).appendLine(`[${host.view} panel] ignored ${m.type}: not a message this view sends`);
      return;
    }
    void (async () => {
      const d = await vscode.workspace.openTextDocument(doc);
      const len = d.getText().length;
      if (m.end > len) {
        panelLog(ctx).appendLine(`[prompt panel] ignored revealRange ${m.start}-${m.end}: the document has ${len} characters now`);
        return;
      }
      const range = new vscode.Range(d.positionAt(m.start), d.positionAt(m.end));
      const visible = vscode.window.visibleTextEditors.find((e) => e.document.uri.toString() === doc.toString());
      await vscode.window.showTextDocument(d, { viewColumn: visible?.viewColumn ?? vscode.ViewColumn.One, selection: range, preserveFocus: false });
    })().catch((e: unknown) => panelLog(ctx).appendLine(`[prompt panel] cannot reveal the range: ${e instanceof Error ? e.message : String(e)}`));
  };
}

function promptPanel(ctx: vscode.ExtensionContext, data: PromptData, panel?: vscode.WebviewPanel): void {
  let uri: vscode.Uri;
  try {
    uri = vscode.Uri.parse(data.document, true);
  } catch {
    uri = vscode.Uri.file(data.document);
  }
  show(ctx, 'prompt', `prompt\0${uri.toString()}`, title('prompt', '', `${data.neuronLabel} · ${data.title}`), async () => ({ view: 'prompt', data }), promptMessages(ctx, uri), panel);
}

// ---------------------------------------------------------------------------------------------
// The API H8's commands call.

export function openOverviewPanel(ctx: vscode.ExtensionContext, runDir: string): void {
  overview(ctx, runDir);
}

export function openTablePanel(ctx: vscode.ExtensionContext, runDir: string): void {
  table(ctx, runDir);
}

export function openNeuronPanel(ctx: vscode.ExtensionContext, runDir: string, neuron: { layer: number; neuron: number }): void {
  neuronPage(ctx, runDir, { layer: neuron.layer, neuron: neuron.neuron });
}

/**
 * Shades `doc`'s tokens by one neuron's `values` (one per token; a missing or non-finite value is
 * shown unshaded). Tokens may carry their id (`TokenRow` from format.ts does); it shows in tooltips.
 */
export function openPromptView(
  ctx: vscode.ExtensionContext,
  doc: vscode.Uri,
  tokens: { text: string; start: number; end: number; id?: number }[],
  values: number[],
  neuronLabel: string,
): void {
  promptPanel(ctx, promptData(doc.toString(), basename(doc.path) || doc.toString(), neuronLabel, tokens, values));
}

/**
 * Restores the panels after a window reload from the state their webviews saved. Register at
 * activation; package.json needs `onWebviewPanel:<viewType>` for each of VIEW_TYPES.
 */
export function registerPanelSerializers(ctx: vscode.ExtensionContext): vscode.Disposable {
  const subs: vscode.Disposable[] = [];
  for (const view of Object.keys(VIEW_TYPES) as ViewKind[]) {
    subs.push(
      vscode.window.registerWebviewPanelSerializer(VIEW_TYPES[view], {
        deserializeWebviewPanel: async (panel: vscode.WebviewPanel, state: unknown) => {
          const log = panelLog(ctx);
          const s = isPanelState(state) && state.view === view ? state : undefined;
          if (state !== undefined && state !== null && !s) log.appendLine(`[${view} panel] ignored restored state of the wrong shape`);
          if (view === 'prompt' && s?.prompt) return promptPanel(ctx, s.prompt, panel);
          if (view !== 'prompt' && s?.runDir) {
            if (view === 'overview') return overview(ctx, s.runDir, panel);
            if (view === 'table') return table(ctx, s.runDir, panel);
            if (s.neuron) return neuronPage(ctx, s.runDir, s.neuron, panel);
          }
          // Nothing to restore from: say so in the panel rather than leave it blank.
          const host = new PanelHost(panel, view, ctx.extensionUri, log, () => undefined, () => undefined);
          host.setError(panel.title || 'Universal Neurons', 'This view could not be restored after the reload; open it again from its command.');
        },
      }),
    );
  }
  // Open panels are not disposed here: on a window reload VS Code serializes them for restoring.
  return vscode.Disposable.from(...subs);
}
