/**
 * Which run a feature uses when the user has not said (no `vscode` import: unit-tested without VS
 * Code). The order:
 *  1. the open run (opened with Open Run…, made by Analyze Models…, or remembered for the workspace);
 *  2. for commands that need a run (table, overview, neuron page, export): the workspace's runs —
 *     the only complete one is opened without asking, several are offered in a quick pick (the
 *     demo run last);
 *  3. the demo run shipped inside the extension (`models/demo-run`, the analysis `npm run demo`
 *     makes of the shipped family on its held-out corpus), so a fresh install marks universal
 *     neurons in the hover and shows the table and neuron pages at once.
 * The hover and Analyze Prompt never ask: they use the open run, else the demo run.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runFile } from '../engine/run/files';
import { runStatus as manifestStatus } from '../engine/run/view';

/** Where the demo run lives inside the extension (and a checkout). */
export const DEMO_RUN = join('models', 'demo-run');
/** Its name in the Runs view and the quick pick. */
export const DEMO_RUN_TITLE = 'Demo run (shipped family)';
/** How the hover names it after the model ("tiny-gpt2-a · run demo (shipped family)"). */
export const DEMO_RUN_HOVER = 'demo (shipped family)';

/** The shipped demo run's folder under `extensionPath`, when it has one. */
export function demoRunDir(extensionPath: string): string | undefined {
  const dir = join(extensionPath, DEMO_RUN);
  return existsSync(runFile(dir, 'manifest')) ? dir : undefined;
}

/** What a run folder's manifest says of it: status ('unreadable' when it cannot be read) and model labels. */
export function runSummary(dir: string): { status: string; models: string } {
  const { status, models } = manifestStatus(dir);
  return { status, models };
}

/** A run folder's manifest status ('complete', 'running', …; 'unreadable' when it cannot be read). */
export function runStatus(dir: string): string {
  return runSummary(dir).status;
}

export type RunChoice =
  /** The open run. */
  | { kind: 'open'; dir: string }
  /** The only complete run found: open it without asking. */
  | { kind: 'only'; dir: string }
  /** Several: ask (the demo run, when shipped, is offered last). */
  | { kind: 'pick'; dirs: string[]; demo?: string }
  /** No run open or found: the shipped demo run. */
  | { kind: 'demo'; dir: string }
  /** Nothing at all: offer Analyze Models… / Open Run…. */
  | { kind: 'none' };

export interface RunChoiceInput {
  /** The open run's folder, if any. */
  open?: string;
  /** Run folders found in the workspace (and the global store), any status. */
  found: readonly string[];
  /** The shipped demo run's folder, if shipped. */
  demo?: string;
  /** Status of a found run (default: its manifest's). Only 'complete' runs are candidates. */
  status?: (dir: string) => string;
}

/** The run a command that needs one should use (see the order above). */
export function chooseRun(x: RunChoiceInput): RunChoice {
  if (x.open) return { kind: 'open', dir: x.open };
  const status = x.status ?? runStatus;
  const demo = x.demo ? resolve(x.demo) : undefined;
  const seen = new Set<string>();
  const complete: string[] = [];
  for (const d of x.found) {
    const abs = resolve(d);
    if (abs === demo || seen.has(abs)) continue;
    seen.add(abs);
    if (status(abs) === 'complete') complete.push(abs);
  }
  if (complete.length === 1) return { kind: 'only', dir: complete[0]! };
  if (complete.length > 1) return { kind: 'pick', dirs: complete, ...(demo ? { demo } : {}) };
  return demo ? { kind: 'demo', dir: demo } : { kind: 'none' };
}

/** The run the hover and Analyze Prompt use: the open run, else the demo run (never asks). */
export function passiveRun(x: { open?: string; demo?: string; demoAllowed: boolean }): string | undefined {
  return x.open ?? (x.demoAllowed ? x.demo : undefined);
}
