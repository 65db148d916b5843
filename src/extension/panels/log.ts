/** Where panel hosts log (rejected messages, load errors, webview-reported errors). */
import * as vscode from 'vscode';

export interface PanelLog {
  appendLine(line: string): void;
}

let sink: PanelLog | undefined;
let own: vscode.OutputChannel | undefined;

/** Use the extension's output channel (call once in activate()). */
export function setPanelLog(log: PanelLog | undefined): void {
  sink = log;
}

export function panelLog(ctx: vscode.ExtensionContext): PanelLog {
  if (sink) return sink;
  if (!own) {
    own = vscode.window.createOutputChannel('Universal Neurons Panels');
    ctx.subscriptions.push(own);
  }
  return own;
}
