/**
 * The commands' view of the webview panels (src/extension/panels): one place that adapts their
 * API, so the commands can be exercised with stand-ins and the panels can change behind it.
 */
import type * as vscode from 'vscode';
import type { Panels } from './commands';
import type { EngineHost } from './engineHost';
import { readSettings } from './config';
import { EffectRunner } from './neuronEffect';
import { openNeuronPanel, openOverviewPanel, openPromptView, openTablePanel, registerPanelSerializers, setEffectRunner, setPanelLog } from './panels';

export function loadPanels(): Promise<Panels> {
  return Promise.resolve({ openOverviewPanel, openTablePanel, openNeuronPanel, openPromptView });
}

/**
 * At activation: panel logs go to our output channel; panels come back after a window reload; the
 * neuron pages' "What it does" runs on the engine host.
 */
export function registerSerializers(ctx: vscode.ExtensionContext, log: vscode.OutputChannel, host: EngineHost): void {
  setPanelLog(log);
  const runner = new EffectRunner(host, () => readSettings().threads);
  setEffectRunner(runner);
  ctx.subscriptions.push({ dispose: () => runner.dispose() });
  ctx.subscriptions.push(registerPanelSerializers(ctx));
}
