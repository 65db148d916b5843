/**
 * `Universal Neurons: Analyze Models…`: pick models (the shipped tiny family first), a corpus
 * (the shipped held-out corpus first) and a token budget, then run the engine's analysis pipeline
 * under a cancellable progress notification and make the new run current. The analysis runs in a
 * child process of its own (engine/analysis/workerClient.ts, `isolation: 'process'`;
 * dist/analysisWorker.js) with its own onnxruntime sessions: the extension host stays responsive
 * (hovers, the UI) while it runs, a native fault cannot take the host down, and on Linux the child
 * starts with huge pages (engine/hugePages.ts), as the CLI's heavy commands do.
 * Callers (tests) may pass the choices as an argument and skip the pickers.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { Command } from '../view/commandIds';
import { CancelledError } from '../engine/errors';
import { errorLine } from '../format';
import { shippedFamily } from '../locate';
import { readSettings, SECTION } from './config';
import type { RunState } from './runState';


export interface AnalyzeModelsArgs {
  models: string[];
  corpus: string[];
  tokens: number;
  threshold?: number;
  /** Run folder (default: a new id under the workspace's `.universal-neurons/runs`). */
  out?: string;
}

export type AnalyzeModelsResult =
  | { status: 'ok'; runDir: string; id: string; universal: number; neurons: number; seconds: number }
  | { status: 'cancelled'; runDir?: string }
  | { status: 'dismissed' }
  | { status: 'error'; message: string };

// The text form: its records carry source, topic and Brown's POS tags for the family analysis.
export const SHIPPED_CORPUS = join('models', 'corpus', 'heldout.jsonl');

function heldoutTokens(extensionPath: string): number | undefined {
  try {
    const m = JSON.parse(readFileSync(join(extensionPath, 'models', 'corpus', 'manifest.json'), 'utf8')) as { splits?: { heldout?: { tokens?: number } } };
    return m.splits?.heldout?.tokens;
  } catch {
    return undefined;
  }
}

interface Item<T> extends vscode.QuickPickItem {
  value?: T;
}

/**
 * The checkpoints to offer (engine/discover.ts): the shipped family, GPT-2 and GPT-NeoX folders of
 * the workspace (not in Restricted Mode: only what the user picks is read there), and every
 * revision in the Hugging Face hub cache, grouped under separators.
 */
export async function modelItems(extensionPath: string, preselectShipped: boolean): Promise<Item<string>[]> {
  const { discoverModels } = await import('../engine/discover');
  const { architectureLabel } = await import('../engine/arch/index');
  const workspaces = vscode.workspace.isTrusted ? (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath) : [];
  const found = discoverModels({ shipped: shippedFamily(extensionPath).map((m) => m.dir), workspaces });
  const TITLES = { shipped: 'Shipped tiny GPT-2 family', workspace: 'Workspace', hub: 'Hugging Face cache' } as const;
  const items: Item<string>[] = [];
  for (const source of ['shipped', 'workspace', 'hub'] as const) {
    const group = found.filter((m) => m.source === source);
    if (!group.length) continue;
    items.push({ label: TITLES[source], kind: vscode.QuickPickItemKind.Separator });
    for (const m of group) {
      items.push({
        label: m.label,
        description: [architectureLabel(m.modelType), m.step !== undefined ? `step ${m.step.toLocaleString('en-US')}` : undefined].filter(Boolean).join(' · '),
        detail: m.path,
        picked: preselectShipped && source === 'shipped',
        value: m.path,
      });
    }
  }
  return items;
}

export type ChooseModelResult = { status: 'ok'; modelPath: string } | { status: 'dismissed' };

/**
 * `Choose Model…`: the model setting (universalNeurons.modelPath) from the checkpoints found, or
 * the shipped default. A string argument (tests) is written without the picker.
 */
export async function chooseModel(extensionPath: string, arg?: unknown): Promise<ChooseModelResult> {
  let modelPath: string;
  if (typeof arg === 'string') modelPath = arg;
  else {
    const current = readSettings().modelPath;
    const items: Item<string>[] = [
      { label: 'Default: the shipped tiny-gpt2-a', description: current === '' ? 'current' : undefined, value: '' },
      ...(await modelItems(extensionPath, false)).map((i) => (i.value !== undefined && i.value === current ? { ...i, description: `${i.description ?? ''} · current` } : i)),
    ];
    const pick = await vscode.window.showQuickPick(items, {
      title: 'Model for prompts (hover, heat-map, activations, intervention)',
      matchOnDescription: true,
      matchOnDetail: true,
      placeHolder: 'GPT-2 and GPT-NeoX checkpoints in the workspace, the Hugging Face cache and the shipped family',
    });
    if (!pick || pick.value === undefined) return { status: 'dismissed' };
    modelPath = pick.value;
  }
  const target = vscode.workspace.workspaceFolders?.length ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
  await vscode.workspace.getConfiguration(SECTION).update('modelPath', modelPath, target);
  return { status: 'ok', modelPath };
}

async function pickModels(extensionPath: string): Promise<string[] | undefined> {
  const BROWSE = '$(folder-opened) Browse for model folders…';
  const items: Item<string>[] = [
    ...(await modelItems(extensionPath, true)),
    { label: 'Other checkpoints', kind: vscode.QuickPickItemKind.Separator },
    { label: BROWSE, description: 'Hugging Face GPT-2 or GPT-NeoX folders (config.json, model.safetensors, tokenizer.json)', alwaysShow: true },
  ];
  const picked = await vscode.window.showQuickPick(items, {
    title: 'Analyze Models (1/3): models — the first is the reference',
    canPickMany: true,
    ignoreFocusOut: true,
    placeHolder: 'Models trained from different seeds (or checkpoints of one seed), one architecture and tokenizer',
    matchOnDescription: true,
    matchOnDetail: true,
  });
  if (!picked) return undefined;
  const dirs = picked.filter((p) => p.value).map((p) => p.value!);
  if (picked.some((p) => p.label === BROWSE)) {
    const uris = await vscode.window.showOpenDialog({
      title: 'Model folders (config.json + model.safetensors + tokenizer)',
      canSelectFolders: true,
      canSelectFiles: false,
      canSelectMany: true,
      openLabel: 'Use these models',
    });
    if (!uris) return undefined;
    dirs.push(...uris.map((u) => u.fsPath));
  }
  return dirs;
}

async function pickCorpus(extensionPath: string): Promise<string[] | undefined> {
  const shipped = join(extensionPath, SHIPPED_CORPUS);
  const n = heldoutTokens(extensionPath);
  const CHOOSE = '$(files) Choose files or folders…';
  const items: Item<string[]>[] = [];
  if (existsSync(shipped)) {
    items.push({
      label: 'Shipped held-out corpus',
      description: n ? `${n.toLocaleString('en-US')} tokens` : undefined,
      detail: 'SOTU, Moby Dick, Brown, KJV — documents the family never trained on',
      value: [shipped],
    });
  }
  items.push({ label: CHOOSE, description: '.txt, .md, .jsonl ("text" field) or .tokens.bin' });
  const pick = await vscode.window.showQuickPick(items, { title: 'Analyze Models (2/3): corpus', ignoreFocusOut: true });
  if (!pick) return undefined;
  if (pick.value) return pick.value;
  const uris = await vscode.window.showOpenDialog({
    title: 'Corpus files or folders',
    canSelectFiles: true,
    canSelectFolders: true,
    canSelectMany: true,
    openLabel: 'Use as corpus',
    filters: { Corpus: ['txt', 'md', 'jsonl', 'bin'], 'All files': ['*'] },
  });
  return uris?.map((u) => u.fsPath);
}

async function pickTokens(): Promise<number | undefined> {
  const CUSTOM = 'Custom…';
  const items: Item<number>[] = [
    { label: '20,000 tokens', description: 'a first look: seconds on the tiny family', value: 20_000 },
    { label: '100,000 tokens', description: 'tiny family: under a minute', value: 100_000 },
    { label: '400,000 tokens', description: 'about the whole shipped held-out corpus', value: 400_000 },
    { label: CUSTOM },
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'Analyze Models (3/3): token budget', ignoreFocusOut: true });
  if (!pick) return undefined;
  if (pick.value) return pick.value;
  const v = await vscode.window.showInputBox({
    title: 'Token budget',
    prompt: 'Tokens to run (whole rows of the model context; BOS counts)',
    value: '50000',
    ignoreFocusOut: true,
    validateInput: (s) => (/^\s*\d[\d_,]*\s*$/.test(s) && Number(s.replace(/[_,\s]/g, '')) >= 2 ? undefined : 'a whole number of tokens'),
  });
  return v === undefined ? undefined : Number(v.replace(/[_,\s]/g, ''));
}

export async function analyzeModels(
  extensionPath: string,
  runState: RunState,
  log: vscode.OutputChannel,
  args?: AnalyzeModelsArgs,
): Promise<AnalyzeModelsResult> {
  if (!vscode.workspace.isTrusted) {
    void vscode.window.showInformationMessage(
      'Universal Neurons (Restricted Mode): only the models and corpus files you choose here are read; nothing in this workspace is analysed on its own.',
    );
  }
  let choice: AnalyzeModelsArgs;
  if (args) choice = args;
  else {
    const models = await pickModels(extensionPath);
    if (!models) return { status: 'dismissed' };
    if (models.length < 2) {
      const message = `universality compares models trained from different seeds: pick at least two (got ${models.length})`;
      void vscode.window.showErrorMessage(`Universal Neurons: ${message}`);
      return { status: 'error', message };
    }
    const corpus = await pickCorpus(extensionPath);
    if (!corpus?.length) return { status: 'dismissed' };
    const tokens = await pickTokens();
    if (!tokens) return { status: 'dismissed' };
    choice = { models, corpus, tokens };
  }
  const settings = readSettings();
  const threshold = choice.threshold ?? settings.universalThreshold;
  const t0 = performance.now();
  let runDir: string | undefined;
  try {
    const [workers, store] = await Promise.all([import('../engine/analysis/workerClient'), import('../engine/store')]);
    const out = choice.out ?? join(runState.newRunsDir(), store.newRunId());
    runDir = out;
    log.appendLine(`analyze: ${choice.models.join(', ')} on ${choice.corpus.join(', ')}, ${choice.tokens} tokens → ${out}`);
    const res = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Universal Neurons: analysing', cancellable: true },
      async (progress, token) => {
        let lastPct = 0;
        const run = workers.startAnalysisWorker(
          {
            models: choice.models,
            corpus: choice.corpus,
            tokens: choice.tokens,
            out,
            threshold,
            threads: settings.threads,
            executionProvider: settings.executionProvider,
            plan: { families: { enabled: settings.families, thresholds: settings.familyThresholds, roleSettings: settings.roles } },
          },
          {
            isolation: 'process',
            onProgress: (p) => {
              let message = p.message ?? p.phase;
              // Cancellation is checked during the stream (a cancel inside a batch keeps the last
              // periodic checkpoint); the last steps run to the end.
              if (p.phase === 'finish' || p.phase === 'write') message += ' (last step: no longer cancellable)';
              let increment: number | undefined;
              if (p.phase === 'stream' && p.batches) {
                const pct = (100 * (p.batch ?? 0)) / p.batches;
                increment = Math.max(0, pct - lastPct) * 0.9; // the last 10% is finishing and writing
                lastPct = pct;
                message =
                  `batch ${p.batch}/${p.batches}` +
                  (p.tokensPerSec ? ` · ${Math.round(p.tokensPerSec).toLocaleString('en-US')} tok/s` : '') +
                  (p.etaSec !== undefined ? ` · ${Math.ceil(p.etaSec)} s left` : '');
              }
              progress.report({ message, increment });
            },
          },
        );
        const sub = token.onCancellationRequested(() => run.cancel());
        try {
          return await run.result;
        } finally {
          sub.dispose();
        }
      },
    );
    const opened = await runState.open(res.runDir);
    const seconds = (performance.now() - t0) / 1000;
    if (opened.status !== 'ok') return { status: 'error', message: opened.message };
    const pct = opened.neurons ? ((100 * opened.universal) / opened.neurons).toFixed(2) : '0';
    const threads = res.manifest.settings.threadsUsed;
    log.appendLine(
      `analyze: run ${res.id} complete in ${seconds.toFixed(1)} s${threads ? ` on ${threads} thread${threads === 1 ? '' : 's'}` : ''}: ${opened.universal} of ${opened.neurons} universal (${pct}%)`,
    );
    void vscode.window
      .showInformationMessage(
        `Universal Neurons: run ${res.id} — ${opened.universal} of ${opened.neurons} neurons universal (${pct}%).`,
        'Open Table',
        'Open Overview',
      )
      .then((b) => {
        if (b === 'Open Table') void vscode.commands.executeCommand(Command.OpenTable);
        if (b === 'Open Overview') void vscode.commands.executeCommand(Command.OpenOverview);
      });
    return { status: 'ok', runDir: res.runDir, id: res.id, universal: opened.universal, neurons: opened.neurons, seconds };
  } catch (e) {
    if (e instanceof CancelledError) {
      log.appendLine(`analyze: cancelled${runDir && existsSync(runDir) ? `; checkpoint kept in ${runDir}` : ''}`);
      void vscode.window.showInformationMessage(
        `Universal Neurons: analysis cancelled.${runDir && existsSync(runDir) ? ` Its folder keeps a checkpoint (${runDir}); resume with the CLI or remove it from the Runs view.` : ''}`,
      );
      runState.refresh();
      return { status: 'cancelled', runDir };
    }
    const message = errorLine(e);
    log.appendLine(`analyze: error: ${message}`);
    void vscode.window.showErrorMessage(`Universal Neurons: ${message}`);
    runState.refresh();
    return { status: 'error', message };
  }
}
