/**
 * The palette commands (category "Universal Neurons"), one module per concern: runs.ts (analyse,
 * open, export, remove run folders), views.ts (open the result panels), prompt.ts (analyse and
 * heat-map the active prompt), intervene.ts (neuron interventions on it); context.ts is what they share. Ids are the `Command` enum
 * (src/view/commandIds.ts), which package.json declares. Each command returns a small result
 * object so that tests and other callers can drive it through `executeCommand` without scraping
 * the UI. Thin adapters: the work is the engine's (run/view, editor, promptRun, pipeline); the
 * views are the webview panels'.
 */
import type * as vscode from 'vscode';
import type { Deps } from './context';
import { registerInterveneCommands } from './intervene';
import { registerPromptCommands } from './prompt';
import { registerRunCommands } from './runs';
import { registerViewCommands } from './views';

export type { AnalyzePromptResult, Deps, Panels, SimpleResult } from './context';

export function registerCommands(d: Deps): vscode.Disposable[] {
  return [...registerRunCommands(d), ...registerPromptCommands(d), ...registerInterveneCommands(d), ...registerViewCommands(d)];
}
