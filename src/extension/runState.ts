/**
 * The current analysis run: which run folder the hover, tree, neuron picker and panels read.
 * Remembered per workspace (workspaceState). A missing, incomplete or corrupt folder is reported
 * with what is wrong and a "Remove" button (forget it; delete the folder after confirmation).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as vscode from 'vscode';
import type { RunView } from '../engine/runView';
import { errorLine } from '../format';

const KEY = 'universalNeurons.currentRun';
export const RUNS_SUBDIR = join('.universal-neurons', 'runs');

export type RunModule = typeof import('../engine/runView');

export type OpenRunResult =
  | { status: 'ok'; runDir: string; id: string; universal: number; neurons: number }
  | { status: 'error'; message: string; problem?: 'missing' | 'incomplete' | 'corrupt'; runDir: string };

export class RunState implements vscode.Disposable {
  private view?: RunView;
  private loading?: Promise<RunView | undefined>;
  private readonly changed = new vscode.EventEmitter<RunView | undefined>();
  readonly onDidChange = this.changed.event;

  constructor(
    private readonly ctx: vscode.ExtensionContext,
    private readonly log: vscode.OutputChannel,
  ) {}

  /** The engine's run reader, loaded on first use (it pulls apache-arrow in). */
  runModule(): Promise<RunModule> {
    return import('../engine/runView');
  }

  get current(): RunView | undefined {
    return this.view;
  }

  /** The remembered run folder (may not be loaded yet). */
  get rememberedDir(): string | undefined {
    return this.ctx.workspaceState.get<string>(KEY);
  }

  /** Folders that hold runs: the workspace's `.universal-neurons/runs` and the global store. */
  runsDirs(): string[] {
    const dirs: string[] = [];
    for (const f of vscode.workspace.workspaceFolders ?? []) if (f.uri.scheme === 'file') dirs.push(join(f.uri.fsPath, RUNS_SUBDIR));
    dirs.push(join(this.ctx.globalStorageUri.fsPath, 'runs'));
    return dirs;
  }

  /** Where a new run goes: the first workspace folder, else the extension's global storage. */
  newRunsDir(): string {
    const f = vscode.workspace.workspaceFolders?.find((w) => w.uri.scheme === 'file');
    return f ? join(f.uri.fsPath, RUNS_SUBDIR) : join(this.ctx.globalStorageUri.fsPath, 'runs');
  }

  /**
   * Loads the remembered run if there is one and none is loaded; quiet on failure (the problem
   * is reported when a command needs the run).
   */
  async ensureLoaded(): Promise<RunView | undefined> {
    if (this.view) return this.view;
    const dir = this.rememberedDir;
    if (!dir) return undefined;
    this.loading ??= (async () => {
      try {
        const mod = await this.runModule();
        const v = await mod.openRunView(dir);
        if (this.rememberedDir === dir) this.set(v);
        return v;
      } catch (e) {
        this.log.appendLine(`current run ${dir}: ${errorLine(e)}`);
        return undefined;
      } finally {
        this.loading = undefined;
      }
    })();
    return this.loading;
  }

  /**
   * Opens `dir` and makes it current. Problems are shown as an error with a Remove button unless
   * `quiet`; the result says what happened either way (for tests and callers).
   */
  async open(dir: string, opts: { quiet?: boolean } = {}): Promise<OpenRunResult> {
    const abs = resolve(dir);
    const mod = await this.runModule();
    try {
      const v = await mod.openRunView(abs);
      this.set(v);
      await this.ctx.workspaceState.update(KEY, abs);
      let universal = 0;
      for (const u of v.universal) universal += u;
      this.log.appendLine(`run ${v.id} (${abs}): ${v.nRows} neurons, ${universal} universal, table from ${v.source}`);
      return { status: 'ok', runDir: abs, id: v.id, universal, neurons: v.nRows };
    } catch (e) {
      const message = errorLine(e);
      const problem = e instanceof mod.RunError ? e.problem : undefined;
      this.log.appendLine(`open run ${abs}: ${message}`);
      if (!opts.quiet) void this.reportProblem(abs, message, problem);
      return { status: 'error', message, problem, runDir: abs };
    }
  }

  /** The error message with its Remove button. */
  async reportProblem(dir: string, message: string, problem: 'missing' | 'incomplete' | 'corrupt' | undefined): Promise<void> {
    // Missing: Remove forgets it. Incomplete or corrupt: Remove deletes the folder, after a confirmation.
    const pick = await vscode.window.showErrorMessage(`Universal Neurons: ${message}`, 'Remove');
    if (pick === 'Remove') await this.remove(dir, { confirm: problem !== 'missing' });
  }

  /**
   * Forgets `dir` (if it was current) and deletes the folder when it still exists. With `confirm`
   * a modal dialog asks first. Only folders that look like runs (a manifest.json or a checkpoint/,
   * or an empty folder) are deleted.
   */
  async remove(dir: string, opts: { confirm?: boolean } = {}): Promise<'removed' | 'forgotten' | 'kept'> {
    const abs = resolve(dir);
    const exists = existsSync(abs);
    if (exists) {
      const looksLikeRun = existsSync(join(abs, 'manifest.json')) || existsSync(join(abs, 'checkpoint'));
      if (!looksLikeRun) {
        const entries = await vscode.workspace.fs.readDirectory(vscode.Uri.file(abs)).then(
          (x) => x.length,
          () => 1,
        );
        if (entries > 0) {
          void vscode.window.showWarningMessage(`Universal Neurons: ${abs} does not look like a run folder; not deleting it.`);
          this.forget(abs);
          return 'forgotten';
        }
      }
      if (opts.confirm) {
        const ok = await vscode.window.showWarningMessage(`Delete the run folder ${abs}?`, { modal: true }, 'Delete');
        if (ok !== 'Delete') return 'kept';
      }
      const uri = vscode.Uri.file(abs);
      try {
        await vscode.workspace.fs.delete(uri, { recursive: true, useTrash: true });
      } catch {
        await vscode.workspace.fs.delete(uri, { recursive: true, useTrash: false });
      }
      this.log.appendLine(`removed run folder ${abs}`);
    }
    this.forget(abs);
    return exists ? 'removed' : 'forgotten';
  }

  private forget(abs: string): void {
    if (this.rememberedDir && resolve(this.rememberedDir) === abs) void this.ctx.workspaceState.update(KEY, undefined);
    if (this.view && resolve(this.view.dir) === abs) this.set(undefined);
    else this.changed.fire(this.view);
  }

  /** Tells listeners (the tree) that run folders changed on disk. */
  refresh(): void {
    this.changed.fire(this.view);
  }

  private set(v: RunView | undefined): void {
    this.view = v;
    this.changed.fire(v);
  }

  dispose(): void {
    this.changed.dispose();
  }
}
