/**
 * The commands about run folders: Analyze Models (analyzeModels.ts makes a run), Open Run, Export
 * Table, and the Runs view's Remove, Refresh and Copy Path.
 */
import { copyFileSync, existsSync } from 'node:fs';
import { basename } from 'node:path';
import * as vscode from 'vscode';
import { runFile } from '../../engine/run/files';
import { errorLine } from '../../format';
import { Command } from '../../view/commandIds';
import { analyzeModels, chooseModel, type AnalyzeModelsArgs } from '../analyzeModels';
import { DEMO_RUN_TITLE } from '../runChoice';
import type { OpenRunResult } from '../runState';
import { dirFromArg, fail, needRun, register, type Deps, type SimpleResult } from './context';

async function openRun({ runs }: Deps, arg?: unknown): Promise<OpenRunResult | { status: 'dismissed' }> {
  let dir = dirFromArg(arg);
  if (!dir) {
    const { listRuns } = await runs.runModule();
    const BROWSE = '$(folder-opened) Browse…';
    const items: (vscode.QuickPickItem & { dir?: string })[] = [];
    for (const rd of runs.runsDirs()) for (const r of listRuns(rd)) items.push({ label: basename(r), description: r === runs.current?.dir ? 'current' : undefined, detail: r, dir: r });
    if (runs.demoDir) items.push({ label: DEMO_RUN_TITLE, description: runs.isDemo(runs.current) ? 'current · ships with the extension' : 'ships with the extension', detail: runs.demoDir, dir: runs.demoDir });
    items.push({ label: BROWSE, description: 'a run folder (manifest.json, neurons.arrow, …)' });
    const pick = await vscode.window.showQuickPick(items, { title: 'Open Run', placeHolder: items.length > 1 ? 'Runs in this workspace' : 'No runs in this workspace yet' });
    if (!pick) return { status: 'dismissed' };
    if (pick.dir) dir = pick.dir;
    else {
      const uris = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title: 'Run folder', openLabel: 'Open Run' });
      if (!uris?.[0]) return { status: 'dismissed' };
      dir = uris[0].fsPath;
    }
  }
  return runs.open(dir);
}

type ExportFormat = 'csv-universal' | 'csv-all' | 'arrow';
async function exportTable(d: Deps, args?: { format: ExportFormat; target: string }): Promise<SimpleResult> {
  const run = await needRun(d, 'Export Table');
  if (!run) return { status: 'error', message: 'no run' };
  let format = args?.format;
  if (!format) {
    const items: (vscode.QuickPickItem & { f: ExportFormat })[] = [
      { label: 'Universal neurons — CSV (paper schema)', description: 'universal.csv: the paper’s columns, in order', f: 'csv-universal' },
      { label: 'All neurons — CSV (paper schema)', description: `${run.nRows} rows`, f: 'csv-all' },
      { label: 'All neurons — Arrow IPC', description: 'every column the run wrote (pandas read_feather, polars read_ipc)', f: 'arrow' },
    ];
    const pick = await vscode.window.showQuickPick(items, { title: 'Export Table' });
    if (!pick) return { status: 'dismissed' };
    format = pick.f;
  }
  if (format === 'arrow' && run.source !== 'neurons.arrow') return fail(`run ${run.id} has no neurons.arrow to export`);
  let target = args?.target;
  if (!target) {
    const name = format === 'arrow' ? `${run.id}-neurons.arrow` : format === 'csv-all' ? `${run.id}-neurons.csv` : `${run.id}-universal.csv`;
    const base = vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file(run.dir);
    const uri = await vscode.window.showSaveDialog({
      title: 'Export Table',
      defaultUri: vscode.Uri.joinPath(base, name),
      filters: format === 'arrow' ? { 'Arrow IPC': ['arrow', 'feather'] } : { CSV: ['csv'] },
    });
    if (!uri) return { status: 'dismissed' };
    target = uri.fsPath;
  }
  try {
    if (format === 'arrow') copyFileSync(runFile(run.dir, 'neurons'), target);
    else {
      const { paperCsv } = await d.runs.runModule();
      const { writeFileAtomic } = await import('../../engine/store');
      writeFileAtomic(target, paperCsv(run, format === 'csv-universal'));
    }
  } catch (e) {
    return fail(errorLine(e));
  }
  d.log.appendLine(`exported ${format} of run ${run.id} to ${target}`);
  void vscode.window.showInformationMessage(`Universal Neurons: exported to ${target}`, 'Reveal').then((b) => {
    if (b === 'Reveal') void vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(target!));
  });
  return { status: 'ok', target, format };
}

export function registerRunCommands(d: Deps): vscode.Disposable[] {
  const { ctx, log, runs } = d;
  return [
    register(Command.AnalyzeModels, (a) => analyzeModels(ctx.extensionPath, runs, log, a as AnalyzeModelsArgs | undefined)),
    register(Command.ChooseModel, (a) => chooseModel(ctx.extensionPath, a)),
    register(Command.OpenRun, (a) => openRun(d, a)),
    register(Command.ExportTable, (a) => exportTable(d, a as { format: ExportFormat; target: string } | undefined)),
    register(Command.RemoveRun, async (a) => {
      const dir = dirFromArg(a) ?? runs.current?.dir;
      if (!dir) return { status: 'error', message: 'no run to remove' };
      // From the tree (a node) or the palette: ask first; tests pass {dir, confirm: false}.
      const confirm = !(a && typeof a === 'object' && (a as { confirm?: unknown }).confirm === false);
      return { status: 'ok', outcome: await runs.remove(dir, { confirm }) };
    }),
    register(Command.RefreshRuns, () => runs.refresh()),
    register(Command.CopyRunPath, (a) => {
      const dir = dirFromArg(a);
      if (dir && existsSync(dir)) void vscode.env.clipboard.writeText(dir);
    }),
  ];
}
