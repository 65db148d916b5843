/**
 * Where the commands get the webview panels (src/extension/panels, H7's). Loaded on first use so
 * that activation stays light.
 */
import type * as vscode from 'vscode';
import type { Panels } from './commands';

export async function loadPanels(): Promise<Panels> {
  throw new Error('the webview panels are not part of this build yet');
}

export function registerSerializers(_ctx: vscode.ExtensionContext): void {
  // The panels register their serializers here once they land.
}
