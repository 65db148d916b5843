/**
 * The commands' view of the webview panels (src/extension/panels): one place that adapts their
 * API, so the commands can be exercised with stand-ins and the panels can change behind it.
 */
import type * as vscode from 'vscode';
import type { Panels } from './commands';
import { openNeuronPanel, openOverviewPanel, openPromptView, openTablePanel, registerPanelSerializers, setPanelLog } from './panels';

export function loadPanels(): Promise<Panels> {
  return Promise.resolve({ openOverviewPanel, openTablePanel, openNeuronPanel, openPromptView });
}

/** At activation: panel logs go to our output channel; panels come back after a window reload. */
export function registerSerializers(ctx: vscode.ExtensionContext, log: vscode.OutputChannel): void {
  setPanelLog(log);
  ctx.subscriptions.push(registerPanelSerializers(ctx));
}
