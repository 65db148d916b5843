/**
 * Entry point. Activation only wires things up: no model, no native addon (onnxruntime-node is
 * loaded by EngineHost on the first command), so opening VS Code stays fast.
 */
import * as vscode from 'vscode';
import { SECTION } from './config';
import { EngineHost } from './engineHost';
import { registerTokenActivations } from './tokenActivations';

/** Returned from activate(): what `vscode.extensions.getExtension(...).exports` gives. */
export interface UniversalNeuronsApi {
  /** Wall time of activate() itself, ms. */
  activationMs: number;
}

export function activate(context: vscode.ExtensionContext): UniversalNeuronsApi {
  const t0 = performance.now();
  const channel = vscode.window.createOutputChannel('Universal Neurons');
  const host = new EngineHost();
  context.subscriptions.push(
    channel,
    host,
    registerTokenActivations(context.extensionPath, channel, host),
    vscode.workspace.onDidChangeConfiguration((e) => {
      // A different model or thread count needs a new session; topK etc. apply on the next run.
      if (e.affectsConfiguration(`${SECTION}.modelPath`) || e.affectsConfiguration(`${SECTION}.threads`)) host.invalidate();
    }),
  );
  const activationMs = performance.now() - t0;
  channel.appendLine(`Universal Neurons activated in ${activationMs.toFixed(1)} ms`);
  return { activationMs };
}

export function deactivate(): void {
  // Disposables (channel, cached model) are released through context.subscriptions.
}
