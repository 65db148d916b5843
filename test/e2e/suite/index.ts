/**
 * Extension-host suite (extensionTestsPath contract: run(): Promise, rejection = failure), run by
 * run.sh inside the real Node extension host with the unpacked VSIX as development extension.
 * Bundled by esbuild to CommonJS; `vscode` comes from the host.
 */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { UniversalNeuronsApi } from '../../../src/extension/extension';
import type { TokenActivationsResult } from '../../../src/extension/tokenActivations';
import { editorTests } from './editor';

const EXT_ID = 'universal-neurons.universal-neurons';
const COMMAND = 'universalNeurons.showTokenActivations';
const BOS = 50256;
// run.sh sets this (inherited through the server) when the VSIX ships no model yet.
const fallbackModel = process.env.E2E_MODEL_PATH;

/** Modules of the native runtime currently loaded in this extension host. */
function ortModules(): string[] {
  return Object.keys(require.cache).filter((k) => /[\\/]onnxruntime-(node|common)[\\/]/.test(k));
}

async function runCommand(): Promise<TokenActivationsResult> {
  const r = await vscode.commands.executeCommand<TokenActivationsResult>(COMMAND);
  assert.ok(r, 'command returned nothing');
  return r;
}

async function openPrompt(): Promise<vscode.TextDocument> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'no workspace folder');
  const doc = await vscode.workspace.openTextDocument(vscode.Uri.joinPath(folder.uri, 'prompt.txt'));
  await vscode.window.showTextDocument(doc);
  return doc;
}

async function setGlobal(key: string, value: unknown): Promise<void> {
  await vscode.workspace.getConfiguration('universalNeurons').update(key, value, vscode.ConfigurationTarget.Global);
}

export async function run(): Promise<void> {
  const results: [string, boolean][] = [];
  async function test(name: string, fn: () => Promise<void>): Promise<void> {
    const t = Date.now();
    try {
      await fn();
      results.push([name, true]);
      console.log(`ok   ${name} (${Date.now() - t} ms)`);
    } catch (e) {
      results.push([name, false]);
      console.log(`FAIL ${name}: ${e instanceof Error ? e.stack : String(e)}`);
    }
  }

  const ext = vscode.extensions.getExtension<UniversalNeuronsApi>(EXT_ID);

  await test('activation is fast and does not load onnxruntime', async () => {
    assert.ok(ext, `${EXT_ID} not found`);
    assert.deepEqual(ortModules(), [], 'onnxruntime loaded before activation');
    // Opening a plaintext file or a workspace with runs activates it (activationEvents) before this runs.
    const wasActive = ext.isActive;
    const t0 = performance.now();
    const api = await ext.activate();
    const wallMs = performance.now() - t0;
    assert.ok(ext.isActive);
    assert.deepEqual(ortModules(), [], 'activate() loaded onnxruntime');
    assert.equal(typeof api.activationMs, 'number');
    console.log(
      `     activate(): ${api.activationMs.toFixed(1)} ms inside; ` +
        (wasActive ? 'already active (activation event)' : `${wallMs.toFixed(1)} ms ext.activate() wall (bundle load + activate)`) +
        ` from ${ext.extensionPath}`,
    );
  });

  await test('no editor: clear error, nothing run', async () => {
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    const r = await runCommand();
    assert.equal(r.status, 'error');
    assert.match(r.status === 'error' ? r.message : '', /open a text file/);
    assert.deepEqual(ortModules(), [], 'onnxruntime loaded without a model run');
  });

  await test('command writes the token table for prompt.txt', async () => {
    const doc = await openPrompt();
    const text = doc.getText();
    const r = await runCommand();
    assert.equal(r.status, 'ok', JSON.stringify(r));
    if (r.status !== 'ok') return;
    assert.equal(r.modelSource, fallbackModel ? 'setting' : 'shipped');
    if (!fallbackModel) assert.match(r.model, /models[\\/]tiny-gpt2-a$/);
    assert.equal(r.document, doc.uri.toString());
    assert.equal(r.topK, 3, 'workspace setting topK=3 not applied');
    const toks = r.tokens;
    assert.ok(toks.length > 10, `only ${toks.length} tokens`);
    assert.deepEqual([toks[0]!.text, toks[0]!.start, toks[0]!.end], ['<|endoftext|>', 0, 0], 'BOS is not token 0');
    if (!fallbackModel) assert.equal(toks[0]!.id, BOS);
    // Ranges tile the document and slice to the token text (the prompt is ASCII).
    for (let i = 1; i < toks.length; i++) {
      const t = toks[i]!;
      assert.equal(t.start, i === 1 ? 0 : toks[i - 1]!.end, `token ${i} range not contiguous`);
      assert.equal(text.slice(t.start, t.end), t.text, `token ${i} range does not match its text`);
    }
    assert.equal(toks.at(-1)!.end, text.length);
    for (const t of toks) {
      assert.equal(t.top.length, 3);
      for (let j = 0; j < t.top.length; j++) {
        const n = t.top[j]!;
        assert.ok(n.layer >= 0 && n.layer < r.nLayers && n.neuron >= 0 && n.neuron < r.dMlp, JSON.stringify(n));
        assert.ok(Number.isFinite(n.value));
        if (j) assert.ok(n.value <= t.top[j - 1]!.value, 'top neurons not sorted by value');
      }
    }
    // The channel lines: a header, then one row per token naming its neurons.
    const rows = r.lines.filter((l) => /^\s*\d+\s+"/.test(l));
    assert.equal(rows.length, toks.length);
    rows.forEach((l, i) => {
      const t = toks[i]!;
      assert.ok(l.includes(JSON.stringify(t.text)) && l.includes(` ${t.id} `) && l.includes(` ${t.start}-${t.end} `), l);
      assert.equal(l.match(/L\d+\.N\d+=-?\d+\.\d{3}/g)?.length, 3, l);
      assert.ok(l.includes(`L${t.top[0]!.layer}.N${t.top[0]!.neuron}=`), l);
    });
    console.log(`     ${toks.length} tokens, load ${r.loadMs.toFixed(0)} ms, run ${r.runMs.toFixed(0)} ms; first rows:`);
    for (const l of r.lines.slice(0, 6)) console.log(`       ${l}`);
    // The runtime was loaded lazily by the command: the activation check above can fail.
    assert.ok(ortModules().length > 0, 'onnxruntime not in require.cache after a run');
  });

  await test('oversized prompt is refused', async () => {
    await setGlobal('maxPromptBytes', 16);
    try {
      await openPrompt();
      const r = await runCommand();
      assert.equal(r.status, 'error');
      assert.match(r.status === 'error' ? r.message : '', /prompt\.txt is \d+ bytes, over universalNeurons\.maxPromptBytes \(16\)/);
    } finally {
      await setGlobal('maxPromptBytes', undefined);
    }
  });

  await test('binary document is refused', async () => {
    const doc = await vscode.workspace.openTextDocument({ content: 'PK\u0003\u0004\u0000\u0000binary\u0000data' });
    await vscode.window.showTextDocument(doc);
    const r = await runCommand();
    assert.equal(r.status, 'error');
    assert.match(r.status === 'error' ? r.message : '', /looks binary/);
    await vscode.commands.executeCommand('workbench.action.revertAndCloseActiveEditor');
  });

  await test('missing model folder: the engine error is shown', async () => {
    const missing = '/nonexistent/universal-neurons-model';
    await setGlobal('modelPath', missing);
    try {
      await openPrompt();
      const r = await runCommand();
      assert.equal(r.status, 'error');
      assert.match(r.status === 'error' ? r.message : '', /nonexistent\/universal-neurons-model/);
    } finally {
      await setGlobal('modelPath', fallbackModel ?? undefined);
    }
  });

  await test('model is reusable after an error', async () => {
    await openPrompt();
    const r = await runCommand();
    assert.equal(r.status, 'ok', JSON.stringify(r));
  });

  await editorTests(test);

  const failed = results.filter((r) => !r[1]).length;
  console.log(`exthost: ${results.length - failed} passed, ${failed} failed`);
  if (failed) throw new Error(`${failed} extension-host test(s) failed`);
}
