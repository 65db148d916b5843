/**
 * Extension-host tests of the editor features, on the run that run.sh made with the CLI
 * (E2E_RUN_DIR): Open Run, Analyze Models (small budget), Analyze Prompt (cached per version),
 * the hover (through the real hover pipeline, executeHoverProvider), stale results on edit, the
 * heat-map following edits, panels, export, broken runs with Remove, the token limit.
 */
import * as assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { AnalyzePromptResult } from '../../../src/extension/commands';
import type { UniversalNeuronsApi } from '../../../src/extension/extension';
import type { HeatApplied } from '../../../src/extension/heatmap';
import type { InterventionApplied } from '../../../src/extension/intervention';
import type { OpenRunResult } from '../../../src/extension/runState';
import type { TokenActivationsResult } from '../../../src/extension/tokenActivations';

type Test = (name: string, fn: () => Promise<void>) => Promise<void>;

const EXT_ID = 'universal-neurons.universal-neurons';
const PAPER_HEADER =
  'layer,neuron,max_corr,mean_corr,min_corr,max_baseline,min_baseline,mean_baseline,w_in_norm,input_bias,w_out_norm,in_out_sim,l2_penalty,mean,var,skew,kurt,vocab_mean,vocab_var,vocab_skew,vocab_kurt,sparsity,excess_corr';

const exec = <T>(cmd: string, ...args: unknown[]) => vscode.commands.executeCommand<T>(cmd, ...args);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function wsFile(name: string): vscode.Uri {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'no workspace folder');
  return vscode.Uri.joinPath(folder.uri, name);
}

async function show(name: string): Promise<vscode.TextEditor> {
  const doc = await vscode.workspace.openTextDocument(wsFile(name));
  return vscode.window.showTextDocument(doc);
}

async function hoverText(doc: vscode.TextDocument, pos: vscode.Position): Promise<{ text: string; range?: vscode.Range; trusted: unknown }[]> {
  const hovers = (await exec<vscode.Hover[]>('vscode.executeHoverProvider', doc.uri, pos)) ?? [];
  const out: { text: string; range?: vscode.Range; trusted: unknown }[] = [];
  for (const h of hovers) {
    for (const c of h.contents) {
      const text = typeof c === 'string' ? c : 'value' in c ? c.value : '';
      if (text.includes('Universal Neurons')) out.push({ text, range: h.range, trusted: typeof c === 'object' && 'isTrusted' in c ? c.isTrusted : undefined });
    }
  }
  return out;
}

async function waitFor<T>(what: string, fn: () => T | undefined | false, ms = 15000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function revertAll(): Promise<void> {
  for (const ed of vscode.window.visibleTextEditors) {
    if (ed.document.isDirty) {
      await vscode.window.showTextDocument(ed.document);
      await exec('workbench.action.files.revert');
    }
  }
}

export async function editorTests(test: Test): Promise<void> {
  const runDir = process.env.E2E_RUN_DIR;
  const ext = vscode.extensions.getExtension<UniversalNeuronsApi>(EXT_ID)!;
  const api = ext.exports;

  // A fresh install: no run opened yet (the workspace holds the CLI's run, unopened).
  await test('first run: the shipped demo run is current; Analyze Prompt and the hover use it (★ universal marks)', async () => {
    const demo = api.testing.demoRunDir();
    assert.equal(demo, join(ext.extensionPath, 'models', 'demo-run'), 'the VSIX ships no demo run');
    assert.equal(api.testing.openedRunDir(), undefined, 'a run is open before any was opened');
    // " a" fires L1.N263, a universal unigram neuron of the demo run, in the top 3.
    const doc = await vscode.workspace.openTextDocument({ language: 'plaintext', content: 'It is a truth (a plain one) that a man -- in a word -- wants a wife.' });
    await vscode.window.showTextDocument(doc);
    const r = await exec<AnalyzePromptResult>('universalNeurons.analyzePrompt');
    assert.equal(r.status, 'ok', JSON.stringify(r));
    if (r.status !== 'ok') return;
    assert.equal(r.modelSource, 'run');
    assert.equal(r.runId, 'demo-run');
    assert.match(r.model, /tiny-gpt2-a$/);
    assert.equal(api.testing.currentRunDir(), demo);
    const hs = await hoverText(doc, doc.positionAt(doc.getText().indexOf(' a man') + 1));
    assert.equal(hs.length, 1);
    const h = hs[0]!.text;
    assert.match(h, /" a"/);
    assert.match(h, /\| \[L1\.N263\]\(command:[^)]*\) \| -?\d+\.\d{3} \| ★ excess \d\.\d{3} \|/, 'no ★ on L1.N263: ' + h);
    assert.match(h, /run demo \\?\(shipped family\\?\)/); // markdown-escaped
    assert.doesNotMatch(h, /no run open/);
    console.log(`     ${h.split('\n').filter((l) => l.includes('★'))[0]}`);
    await exec('workbench.action.revertAndCloseActiveEditor');
  });

  await test('first run: a command that needs a run opens the only run in the workspace without asking', async () => {
    assert.ok(runDir);
    assert.equal(api.testing.openedRunDir(), undefined);
    const t = await exec<{ status: string; runDir?: string }>('universalNeurons.openTable');
    assert.equal(t.status, 'ok', JSON.stringify(t));
    assert.equal(t.runDir, runDir);
    assert.equal(api.testing.openedRunDir(), runDir);
    assert.equal(api.testing.currentRunDir(), runDir);
    await exec('workbench.action.closeAllEditors');
  });

  await test('run made by the CLI: Open Run makes it current', async () => {
    assert.ok(runDir && existsSync(join(runDir, 'manifest.json')), `E2E_RUN_DIR ${runDir} holds no run`);
    const r = await exec<OpenRunResult>('universalNeurons.openRun', runDir);
    assert.equal(r.status, 'ok', JSON.stringify(r));
    if (r.status !== 'ok') return;
    assert.equal(api.testing.currentRunDir(), runDir);
    assert.ok(r.neurons > 0);
    console.log(`     run ${r.id}: ${r.universal} of ${r.neurons} neurons universal`);
  });

  await test('Analyze Models (command arguments, 4k tokens) writes a run and makes it current; the CLI run is reopened', async () => {
    const models = ['a', 'b'].map((s) => join(ext.extensionPath, 'models', `tiny-gpt2-${s}`));
    const out = join(vscode.workspace.workspaceFolders![0]!.uri.fsPath, '.universal-neurons', 'runs', 'from-command');
    const t0 = Date.now();
    const r = await exec<{ status: string; runDir?: string; universal?: number; neurons?: number; message?: string }>('universalNeurons.analyzeModels', {
      models,
      corpus: [join(ext.extensionPath, 'models', 'corpus', 'heldout.tokens.bin')],
      tokens: 4096,
      out,
    });
    assert.equal(r.status, 'ok', JSON.stringify(r));
    assert.equal(api.testing.currentRunDir(), out);
    assert.ok(existsSync(join(out, 'universal.csv')));
    // It ran in a child process of its own (workerClient.ts, isolation 'process'), not in this extension host.
    const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { pid: number; software: Record<string, string> };
    assert.ok(Number.isInteger(m.pid) && m.pid !== process.pid, `the run's pid ${m.pid} is the extension host's`);
    console.log(`     Analyze Models: ${r.universal}/${r.neurons} universal in ${Date.now() - t0} ms (child process ${m.pid}, huge pages ${m.software['huge pages']})`);
    const back = await exec<OpenRunResult>('universalNeurons.openRun', runDir);
    assert.equal(back.status, 'ok');
  });

  let promptResult: AnalyzePromptResult | undefined;
  await test('Analyze Prompt: the run’s reference model, cached per document version', async () => {
    await show('prompt.txt');
    const r = await exec<AnalyzePromptResult>('universalNeurons.analyzePrompt');
    assert.equal(r.status, 'ok', JSON.stringify(r));
    if (r.status !== 'ok') return;
    assert.equal(r.modelSource, 'run');
    assert.match(r.model, /tiny-gpt2-a$/);
    assert.equal(r.cached, false);
    const again = await exec<AnalyzePromptResult>('universalNeurons.analyzePrompt');
    assert.equal(again.status === 'ok' && again.cached, true, 'second run on the same version was not cached');
    promptResult = r;
    console.log(`     ${r.tokens} tokens, tokenize ${r.tokenizeMs.toFixed(1)} ms, run ${r.runMs.toFixed(1)} ms`);
  });

  let topNeuron: { layer: number; neuron: number } | undefined;
  await test('hover: the token under the mouse, its top-K neurons with values (same as the engine), command links', async () => {
    const ed = await show('prompt.txt');
    const doc = ed.document;
    const off = doc.getText().indexOf(' cat') + 2; // inside "cat"
    const hs = await hoverText(doc, doc.positionAt(off));
    assert.equal(hs.length, 1, `expected one Universal Neurons hover, got ${hs.length}`);
    const h = hs[0]!;
    assert.match(h.text, /token 2 of \d+ · " cat"/);
    assert.match(h.text, /id 3797/);
    assert.equal(doc.getText(h.range!), ' cat');
    const rows = [...h.text.matchAll(/\| \[L(\d+)\.N(\d+)\]\(command:universalNeurons\.showNeuron\?[^)]*\) \| (-?\d+\.\d{3}) \|/g)];
    assert.equal(rows.length, 3, 'workspace topK=3 not applied: ' + h.text);
    assert.match(h.text, /command:universalNeurons\.heatmapNeuron\?/);
    assert.deepEqual(h.trusted, { enabledCommands: ['universalNeurons.showNeuron', 'universalNeurons.heatmapNeuron', 'universalNeurons.interveneNeuron'] });
    // The same neurons and values as the engine's own ranking (Show Token Activations).
    const t = await exec<TokenActivationsResult>('universalNeurons.showTokenActivations');
    assert.equal(t.status, 'ok');
    if (t.status !== 'ok') return;
    const top = t.tokens[2]!.top;
    assert.deepEqual(
      rows.map((m) => [Number(m[1]), Number(m[2]), m[3]]),
      top.map((n) => [n.layer, n.neuron, n.value.toFixed(3)]),
    );
    topNeuron = { layer: top[0]!.layer, neuron: top[0]!.neuron };
    // A run with families (roles.json beside neurons.arrow) adds the family · role column.
    if (runDir && existsSync(join(runDir, 'roles.json'))) assert.match(h.text, /\| neuron \| hook_post \| universal \| family · role \| \|/);
    else assert.doesNotMatch(h.text, /family · role/);
    // Latency of the whole hover round trip through VS Code (the provider alone: bench/editor.ts).
    const times: number[] = [];
    for (let i = 0; i < 40; i++) {
      const t0 = performance.now();
      await hoverText(doc, doc.positionAt((off + i * 7) % doc.getText().length));
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    console.log(`     hover round trip (executeHoverProvider) p50 ${times[20]!.toFixed(1)} ms, p95 ${times[38]!.toFixed(1)} ms`);
    console.log(`     ${h.text.split('\n').slice(0, 3).join(' / ')}`);
  });

  await test('hover on multi-byte text: emoji halves, CJK, combining marks map to the token holding the character', async () => {
    const ed = await show('multibyte.prompt');
    const doc = ed.document;
    assert.equal(doc.languageId, 'plaintext');
    const r = await exec<AnalyzePromptResult>('universalNeurons.analyzePrompt');
    assert.equal(r.status, 'ok', JSON.stringify(r));
    const text = doc.getText();
    for (const [needle, delta] of [
      ['😀', 0],
      ['😀', 1],
      ['語', 0],
      ['e\u0301', 1],
    ] as const) {
      const off = text.indexOf(needle) + delta;
      const hs = await hoverText(doc, doc.positionAt(off));
      assert.equal(hs.length, 1, `no hover at ${needle}+${delta}`);
      const range = hs[0]!.range!;
      const [s, e] = [doc.offsetAt(range.start), doc.offsetAt(range.end)];
      assert.ok(s <= off && off < e, `hover range ${s}-${e} does not hold offset ${off} (${needle}+${delta})`);
      assert.match(hs[0]!.text, /\| \[L\d+\.N\d+\]/);
    }
  });

  await test('edit during an analysis: the result for the old version is discarded, the new version analysed', async () => {
    const words = 'Universal neurons fire on the same tokens in models trained from different seeds. ';
    const doc = await vscode.workspace.openTextDocument({ language: 'plaintext', content: words.repeat(480) }); // ~7.2k tokens
    await vscode.window.showTextDocument(doc);
    const v0 = doc.version;
    api.testing.setAnalysisDelay(1500); // the model run ends, then waits: the edit lands in between
    let r: AnalyzePromptResult;
    try {
      const pending = exec<AnalyzePromptResult>('universalNeurons.analyzePrompt');
      await waitFor('the analysis to start', () => api.testing.isAnalyzing(doc), 10000);
      const edit = new vscode.WorkspaceEdit();
      edit.insert(doc.uri, doc.positionAt(0), 'Edited. ');
      assert.ok(await vscode.workspace.applyEdit(edit));
      r = await pending;
    } finally {
      api.testing.setAnalysisDelay(0);
    }
    assert.notEqual(doc.version, v0);
    assert.equal(r.status, 'stale', JSON.stringify(r));
    assert.match(r.status === 'stale' ? r.message : '', new RegExp(`changed during the analysis \\(version ${v0} → \\d+\\); result discarded`));
    // The document is followed: the edited version is analysed on its own, and the hover shows it.
    const hs = await hoverText(doc, doc.positionAt(2));
    assert.equal(hs.length, 1, 'no hover for the edited document');
    assert.match(hs[0]!.text, /" Edited"|"Edited"/);
    await exec('workbench.action.revertAndCloseActiveEditor');
  });

  await test('heat-map: decorations on the tokens, redrawn after an edit (debounced re-analysis)', async () => {
    assert.ok(topNeuron, 'hover test did not give a neuron');
    const ed = await show('prompt.txt');
    const doc = ed.document;
    const r = await exec<{ status: string; applied: HeatApplied }>('universalNeurons.heatmapNeuron', topNeuron);
    assert.equal(r.status, 'ok', JSON.stringify(r));
    const a = r.applied;
    assert.equal(a.editors, 1);
    const shaded = [...a.positive, ...a.negative].reduce((x, y) => x + y, 0);
    assert.ok(shaded > 0, 'no token shaded');
    assert.ok(a.positive[4]! >= 1, 'the neuron’s maximum is not at full strength');
    const hs = await hoverText(doc, doc.positionAt(doc.getText().indexOf(' cat') + 2));
    assert.match(hs[0]!.text, new RegExp(`Heat-map L${topNeuron.layer}\\.N${topNeuron.neuron}: \\*\\*-?\\d+\\.\\d{3}\\*\\*`));
    const edit = new vscode.WorkspaceEdit();
    edit.insert(doc.uri, doc.positionAt(doc.getText().length), ' The dog sat too.');
    await vscode.workspace.applyEdit(edit);
    const v = doc.version;
    const after = await waitFor('the heat-map redrawn for the edited version', () => {
      const x = api.testing.heatApplied(doc) as HeatApplied | undefined;
      return x && x.version === v ? x : undefined;
    });
    assert.ok(after.version > a.version);
    await revertAll();
    await waitFor('the heat-map redrawn after the revert', () => (api.testing.heatApplied(doc) as HeatApplied | undefined)?.version === doc.version);
  });

  await test('intervention: the hover’s ablate link zeroes the neuron, tokens shaded by Δ loss, hover before/after, prompt view, cleared', async () => {
    assert.ok(topNeuron, 'hover test did not give a neuron');
    const ed = await show('prompt.txt');
    const doc = ed.document;
    const at = doc.positionAt(doc.getText().indexOf(' cat') + 2);
    const link = /\[ablate\]\(command:universalNeurons\.interveneNeuron\?([^ )]+)/.exec((await hoverText(doc, at))[0]!.text);
    assert.ok(link, 'no ablate link in the hover');
    const args = JSON.parse(decodeURIComponent(link[1]!)) as unknown[];
    const t0 = Date.now();
    const r = await exec<{ status: string; applied: InterventionApplied }>('universalNeurons.interveneNeuron', ...args);
    assert.equal(r.status, 'ok', JSON.stringify(r));
    const a = r.applied;
    assert.equal(a.summary.mode, 'zero');
    assert.equal(a.editors, 1);
    assert.ok([...a.up, ...a.down].reduce((x, y) => x + y, 0) > 0, 'no token shaded by its Δ loss');
    console.log(`     ablation ${a.summary.neurons.join(', ')}: ${Date.now() - t0} ms (model run ${a.runMs.toFixed(0)} ms), mean Δloss ${a.summary.meanDeltaLoss.toFixed(4)}`);
    const hovers = (await exec<vscode.Hover[]>('vscode.executeHoverProvider', doc.uri, at)) ?? [];
    const texts = hovers.flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : 'value' in c ? c.value : '')));
    assert.ok(
      texts.some((x) => /\*\*Intervention\*\* zero/.test(x) && /Loss of this token: \d+\.\d{3} → \d+\.\d{3}/.test(x) && /\| next token \| before \| after \|/.test(x)),
      texts.join('\n---\n'),
    );
    const pv = await exec<{ status: string; intervention?: string }>('universalNeurons.openPromptView');
    assert.equal(pv.status, 'ok', JSON.stringify(pv));
    assert.match(pv.intervention ?? '', /^Δ loss \(zero L\d+\.N\d+\)$/);
    const labels = () => vscode.window.tabGroups.all.flatMap((g) => g.tabs.map((x) => x.label));
    await waitFor(`a Δ loss prompt view tab (tabs: ${labels().join(' | ')})`, () => labels().some((l) => l.includes('Δ loss')), 10000);
    await show('prompt.txt');
    const c = await exec<{ status: string; cleared: number }>('universalNeurons.clearIntervention');
    assert.equal(c.cleared, 1);
    assert.equal(api.testing.interventionApplied(doc), undefined);
  });

  await test('panels: Show Neuron, the table and the overview open for the run', async () => {
    assert.ok(topNeuron);
    const n = await exec<{ status: string; neuron?: string }>('universalNeurons.showNeuron', topNeuron);
    assert.equal(n.status, 'ok', JSON.stringify(n));
    const t = await exec<{ status: string }>('universalNeurons.openTable');
    assert.equal(t.status, 'ok', JSON.stringify(t));
    const o = await exec<{ status: string }>('universalNeurons.openOverview');
    assert.equal(o.status, 'ok', JSON.stringify(o));
    const labels = () => vscode.window.tabGroups.all.flatMap((g) => g.tabs.map((x) => x.label));
    for (const want of [`L${topNeuron.layer}.N${topNeuron.neuron}`, 'Neurons ·', 'Universality ·']) {
      await waitFor(`a tab like ${want} (tabs: ${labels().join(' | ')})`, () => labels().some((l) => l.includes(want)), 10000);
    }
    const bad = await exec<{ status: string; message?: string }>('universalNeurons.showNeuron', 'L99.N0');
    assert.equal(bad.status, 'error');
    assert.match(bad.message ?? '', /outside tiny-gpt2-a/);
  });

  await test('Export Table: paper CSV schema and Arrow', async () => {
    const csv = join(tmpdir(), `un-e2e-${process.pid}.csv`);
    const r = await exec<{ status: string }>('universalNeurons.exportTable', { format: 'csv-all', target: csv });
    assert.equal(r.status, 'ok', JSON.stringify(r));
    const lines = readFileSync(csv, 'utf8').trim().split('\n');
    assert.equal(lines[0], PAPER_HEADER);
    assert.ok(lines.length > 1000, `${lines.length} lines`);
    const arrow = join(tmpdir(), `un-e2e-${process.pid}.arrow`);
    const a = await exec<{ status: string }>('universalNeurons.exportTable', { format: 'arrow', target: arrow });
    assert.equal(a.status, 'ok');
    assert.equal(readFileSync(arrow).subarray(0, 6).toString('latin1'), 'ARROW1');
  });

  await test('broken runs: missing and corrupt folders give clear errors; Remove deletes; the current run stays', async () => {
    const missing = await exec<OpenRunResult>('universalNeurons.openRun', '/nonexistent/un-run');
    assert.equal(missing.status, 'error');
    if (missing.status === 'error') {
      assert.equal(missing.problem, 'missing');
      assert.match(missing.message, /does not exist/);
    }
    const broken = join(vscode.workspace.workspaceFolders![0]!.uri.fsPath, '.universal-neurons', 'runs', 'broken');
    mkdirSync(broken, { recursive: true });
    writeFileSync(join(broken, 'manifest.json'), '{"format": "universal-neurons/run@1", "status": "comp');
    const corrupt = await exec<OpenRunResult>('universalNeurons.openRun', broken);
    assert.equal(corrupt.status, 'error');
    if (corrupt.status === 'error') {
      assert.equal(corrupt.problem, 'corrupt');
      assert.match(corrupt.message, /manifest\.json is unreadable or not valid JSON/);
    }
    assert.equal(api.testing.currentRunDir(), runDir, 'a failed open replaced the current run');
    const rm = await exec<{ status: string; outcome: string }>('universalNeurons.removeRun', { dir: broken, confirm: false });
    assert.equal(rm.outcome, 'removed');
    assert.equal(existsSync(broken), false);
  });

  await test('a prompt over the token limit is refused with a message', async () => {
    await vscode.workspace.getConfiguration('universalNeurons').update('maxPromptTokens', 8, vscode.ConfigurationTarget.Global);
    try {
      const doc = await vscode.workspace.openTextDocument({ language: 'plaintext', content: 'one two three four five six seven eight nine ten' });
      await vscode.window.showTextDocument(doc);
      const r = await exec<AnalyzePromptResult>('universalNeurons.analyzePrompt');
      assert.equal(r.status, 'error');
      assert.match(r.status === 'error' ? r.message : '', /over the prompt token limit/);
      await exec('workbench.action.revertAndCloseActiveEditor');
    } finally {
      await vscode.workspace.getConfiguration('universalNeurons').update('maxPromptTokens', undefined, vscode.ConfigurationTarget.Global);
    }
  });

  assert.ok(promptResult === undefined || promptResult.status === 'ok');
  await exec('workbench.action.closeAllEditors');
}
