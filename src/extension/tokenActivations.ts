/**
 * Command `universalNeurons.showTokenActivations`: runs the model on the active editor's text and
 * writes the per-token table to the output channel. It also returns a TokenActivationsResult, a
 * stable machine-readable value for executeCommand callers (tests, later the webviews), so nobody
 * has to scrape the channel.
 */
import { basename } from 'node:path';
import * as vscode from 'vscode';
import { Command } from '../view/commandIds';
import { tokenSignal } from './cancel';
import { CancelledError, throwIfCancelled } from '../engine/errors';
import { errorLine, formatTokenTable, type TokenRow } from '../format';
import { chooseModel, readSettings, type ModelChoice } from './config';
import type { EngineHost } from './engineHost';
import { checkDocument } from './prompt';


export type TokenActivationsResult =
  | {
      status: 'ok';
      model: string;
      modelSource: ModelChoice['source'];
      document: string;
      nLayers: number;
      dMlp: number;
      topK: number;
      tokens: TokenRow[];
      /** Exactly the lines written to the output channel. */
      lines: string[];
      loadMs: number;
      runMs: number;
    }
  | { status: 'error'; message: string }
  | { status: 'cancelled' }
  | { status: 'busy' };

export function registerTokenActivations(
  extensionPath: string,
  channel: vscode.OutputChannel,
  host: EngineHost,
): vscode.Disposable {
  let running = false;

  async function run(): Promise<TokenActivationsResult> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      const message = 'open a text file to analyse first';
      void vscode.window.showErrorMessage(`Universal Neurons: ${message}`);
      return { status: 'error', message };
    }
    const doc = editor.document;
    const settings = readSettings();
    try {
      const text = await checkDocument(doc, settings.maxPromptBytes, () => host.loadTokenizer());
      const choice = chooseModel(settings.modelPath, extensionPath);
      return await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: 'Universal Neurons', cancellable: true },
        async (progress, token) => {
          const signal = tokenSignal(token);
          progress.report({ message: `loading ${basename(choice.dir)}…` });
          const t0 = performance.now();
          return await host.use(choice.dir, settings.threads, async (rt, model) => {
            throwIfCancelled(signal);
            const t1 = performance.now();
            progress.report({ message: `running on ${text.length} characters…` });
            const acts = await model.activations(text, { signal });
            const tokens: TokenRow[] = acts.tokens.map((t, i) => ({ ...t, top: rt.topNeurons(acts, i, settings.topK) }));
            const t2 = performance.now();
            const docName = doc.isUntitled ? doc.uri.toString() : vscode.workspace.asRelativePath(doc.uri);
            const lines = [
              `${docName} — model ${model.dir}${choice.source === 'fixture' ? ' (test fixture: shipped model missing)' : ''}`,
              `${model.nLayers} layers x ${model.dMlp} neurons, ${tokens.length} tokens (BOS first), ` +
                `load ${(t1 - t0).toFixed(0)} ms, run ${(t2 - t1).toFixed(0)} ms`,
              '',
              ...formatTokenTable(tokens, settings.topK),
            ];
            channel.clear();
            for (const line of lines) channel.appendLine(line);
            channel.show(true);
            return {
              status: 'ok',
              model: model.dir,
              modelSource: choice.source,
              document: doc.uri.toString(),
              nLayers: model.nLayers,
              dMlp: model.dMlp,
              topK: settings.topK,
              tokens,
              lines,
              loadMs: t1 - t0,
              runMs: t2 - t1,
            } as const;
          });
        },
      );
    } catch (e) {
      if (e instanceof CancelledError) {
        channel.appendLine('cancelled');
        return { status: 'cancelled' };
      }
      const message = errorLine(e);
      channel.appendLine(`error: ${message}`);
      // Not awaited: showErrorMessage resolves only when the notification is dismissed.
      void vscode.window.showErrorMessage(`Universal Neurons: ${message}`);
      return { status: 'error', message };
    }
  }

  return vscode.commands.registerCommand(Command.ShowTokenActivations, async (): Promise<TokenActivationsResult> => {
    // One run at a time: the cached model is shared, and a second click while the first runs is a mistake.
    if (running) {
      void vscode.window.showInformationMessage('Universal Neurons: already running');
      return { status: 'busy' };
    }
    running = true;
    try {
      return await run();
    } finally {
      running = false;
    }
  });
}
