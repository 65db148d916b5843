/**
 * The current analysis run: which run folder the hover, tree, neuron picker and panels read.
 * Remembered per workspace (workspaceState). A missing, incomplete or corrupt folder is reported
 * with what is wrong and a "Remove" button (forget it; delete the folder after confirmation).
 * With no run open, the demo run shipped inside the extension (runChoice.ts) is current, unless
 * `universalNeurons.modelPath` names another model (its prompts could not be marked from it).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as vscode from 'vscode';
import { RunError } from '../engine/errors';
import { RUN_FILES, RUNS_DIR } from '../engine/run/files';
import type { RunView } from '../engine/run/view';
import { errorLine } from '../format';
import { readSettings, SECTION } from './config';
import { demoRunDir, passiveRun } from './runChoice';

const KEY = 'universalNeurons.currentRun';
/** What workspaceState keeps when the demo run was opened: its folder moves with each extension version. */
const DEMO_REMEMBERED = 'shipped:demo-run';
export const RUNS_SUBDIR = RUNS_DIR;

export type RunModule = typeof import('../engine/run/view');

export type OpenRunResult =
  | { status: 'ok'; runDir: string; id: string; universal: number; neurons: number }
  | { status: 'error'; message: string; problem?: 'missing' | 'incomplete' | 'corrupt'; runDir: string };

export class RunState implements vscode.Disposable {
  /** The run opened by the user (or remembered for the workspace). */
  private view?: RunView;
  private loading?: Promise<RunView | undefined>;
  /** The shipped demo run, loaded on first need. */
  private demoView?: RunView;
  private demoLoading?: Promise<RunView | undefined>;
  /** The demo run stands in for "no run" only while prompts run on the shipped model. */
  private demoAllowed: boolean;
  /** The shipped demo run's folder (undefined when the extension ships none). */
  readonly demoDir: string | undefined;
  private readonly changed = new vscode.EventEmitter<RunView | undefined>();
  readonly onDidChange = this.changed.event;
  private readonly cfg: vscode.Disposable;

  constructor(
    private readonly ctx: vscode.ExtensionContext,
    private readonly log: vscode.OutputChannel,
  ) {
    const demo = demoRunDir(ctx.extensionPath);
    this.demoDir = demo ? resolve(demo) : undefined;
    this.demoAllowed = readSettings().modelPath === '';
    this.cfg = vscode.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration(`${SECTION}.modelPath`)) return;
      const allowed = readSettings().modelPath === '';
      if (allowed === this.demoAllowed) return;
      this.demoAllowed = allowed;
      if (!this.view) this.changed.fire(this.current);
    });
  }

  /** The engine's run reader, loaded on first use (it pulls apache-arrow in). */
  runModule(): Promise<RunModule> {
    return import('../engine/run/view');
  }

  /** The run the hover, tree and panels use: the open run, else the demo run (once loaded). */
  get current(): RunView | undefined {
    if (this.view) return this.view;
    return passiveRun({ demo: this.demoView?.dir, demoAllowed: this.demoAllowed }) ? this.demoView : undefined;
  }

  /** The run the user opened (or the workspace remembers), without the demo fallback. */
  get opened(): RunView | undefined {
    return this.view;
  }

  /** Is this the shipped demo run? */
  isDemo(run: { dir: string } | undefined): boolean {
    return !!run && !!this.demoDir && resolve(run.dir) === this.demoDir;
  }

  /** The remembered run folder (may not be loaded yet). */
  get rememberedDir(): string | undefined {
    const dir = this.ctx.workspaceState.get<string>(KEY);
    return dir === DEMO_REMEMBERED ? this.demoDir : dir;
  }

  /** Run folders found in the workspace and the global store (any status; the demo run is not one). */
  async foundRuns(): Promise<string[]> {
    const { listRuns } = await this.runModule();
    const out = new Set<string>();
    for (const d of this.runsDirs()) for (const r of listRuns(d)) if (!this.isDemo({ dir: r })) out.add(r);
    return [...out];
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
   * Loads the remembered run if there is one and none is loaded, else (or when it fails) the demo
   * run; returns the current run. Quiet on failure (the problem is reported when a command needs
   * the run).
   */
  async ensureLoaded(): Promise<RunView | undefined> {
    if (this.view) return this.view;
    const dir = this.rememberedDir;
    if (dir) {
      const v = await this.loadRemembered(dir);
      if (v) return v;
    }
    await this.loadDemo();
    return this.current;
  }

  /** The shipped demo run, loaded once (undefined when none ships or it cannot be read). */
  loadDemo(): Promise<RunView | undefined> {
    if (this.demoView) return Promise.resolve(this.demoView);
    const dir = this.demoDir;
    if (!dir) return Promise.resolve(undefined);
    this.demoLoading ??= (async () => {
      try {
        const v = await (await this.runModule()).openRunView(dir);
        this.demoView = v;
        if (!this.view && this.demoAllowed) this.changed.fire(v);
        return v;
      } catch (e) {
        this.log.appendLine(`demo run ${dir}: ${errorLine(e)}`);
        return undefined;
      } finally {
        this.demoLoading = undefined;
      }
    })();
    return this.demoLoading;
  }

  private loadRemembered(dir: string): Promise<RunView | undefined> {
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
      if (this.isDemo({ dir: abs })) this.demoView ??= v;
      this.set(v);
      await this.ctx.workspaceState.update(KEY, this.isDemo({ dir: abs }) ? DEMO_REMEMBERED : abs);
      let universal = 0;
      for (const u of v.universal) universal += u;
      this.log.appendLine(`run ${v.id} (${abs}): ${v.nRows} neurons, ${universal} universal, table from ${v.source}`);
      return { status: 'ok', runDir: abs, id: v.id, universal, neurons: v.nRows };
    } catch (e) {
      const message = errorLine(e);
      const problem = e instanceof RunError ? e.problem : undefined;
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
    if (this.isDemo({ dir: abs })) {
      void vscode.window.showInformationMessage('Universal Neurons: the demo run ships with the extension; it is not deleted.');
      return 'kept';
    }
    const exists = existsSync(abs);
    if (exists) {
      const looksLikeRun = existsSync(join(abs, RUN_FILES.manifest)) || existsSync(join(abs, RUN_FILES.checkpointDir));
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
    this.cfg.dispose();
    this.changed.dispose();
  }
}
