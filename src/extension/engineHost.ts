/**
 * The engine as the extension sees it: the runtime module (and with it the native
 * onnxruntime-node addon) is imported on first use, never at activation, and one opened model is
 * kept for the next command, because opening builds an ONNX session (seconds for GPT-2 small).
 */
import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type * as vscode from 'vscode';
import type { ExecutionProvider } from '../engine/provider';
import type { Model } from '../engine/runtime';

/** A missing CUDA provider fails before the model is read, with how to install it (provider.ts). */
async function openOn(provider: ExecutionProvider, open: () => Promise<Model>): Promise<Model> {
  const { checkExecutionProvider, setExecutionProvider } = await import('../engine/provider');
  await checkExecutionProvider(provider);
  setExecutionProvider(provider);
  return open();
}

export type Runtime = typeof import('../engine/runtime');
export type TokenizerModule = typeof import('../engine/tokenizer');

/**
 * The weights file the engine reads (checkpoint.ts findWeights): model.safetensors, else a folder's
 * only .safetensors under another name, so that a change to it reopens the model too.
 */
function weightsFile(dir: string): string {
  const main = join(dir, 'model.safetensors');
  try {
    if (statSync(main).isFile()) return main;
    const st = readdirSync(dir).filter((n) => n.endsWith('.safetensors'));
    return st.length === 1 ? join(dir, st[0]!) : main;
  } catch {
    return main;
  }
}

function mtime(p: string): number {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}

interface Entry {
  key: string;
  model: Promise<Model>;
  /** Runs in flight on this model; a stale entry is closed when the last one ends. */
  users: number;
  stale: boolean;
}

export class EngineHost implements vscode.Disposable {
  private runtime?: Promise<Runtime>;
  private cached?: Entry;
  /** The `executionProvider` setting (extension.ts keeps it current); checked before a model opens. */
  executionProvider: ExecutionProvider = 'cpu';

  /** esbuild turns this import() into a lazily initialised module inside dist/extension.js. */
  loadRuntime(): Promise<Runtime> {
    this.runtime ??= import('../engine/runtime').catch((e: unknown) => {
      this.runtime = undefined;
      throw e;
    });
    return this.runtime;
  }

  loadTokenizer(): Promise<TokenizerModule> {
    return import('../engine/tokenizer');
  }

  /**
   * Runs `fn` on the model of `dir`: the cached one when folder, threads and weight files are
   * unchanged, else a freshly opened one. The model stays open while `fn` runs, even if the
   * settings change meanwhile.
   */
  async use<T>(dir: string, threads: number, fn: (rt: Runtime, model: Model) => Promise<T>): Promise<T> {
    const abs = resolve(dir);
    const provider = this.executionProvider;
    const key = [abs, threads, provider, mtime(join(abs, 'config.json')), mtime(weightsFile(abs))].join('\0');
    const rt = await this.loadRuntime();
    if (this.cached?.key !== key) {
      this.invalidate();
      const entry: Entry = { key, model: openOn(provider, () => rt.openModel(abs, threads ? { threads } : {})), users: 0, stale: false };
      this.cached = entry;
      // A failed open must not stick: the next command retries (the user may have fixed the folder).
      entry.model.catch(() => {
        if (this.cached === entry) this.cached = undefined;
      });
    }
    const entry = this.cached!;
    entry.users++;
    try {
      return await fn(rt, await entry.model);
    } finally {
      entry.users--;
      this.release(entry);
    }
  }

  /** Forget the cached model (settings changed); it is closed once no run uses it. */
  invalidate(): void {
    const entry = this.cached;
    this.cached = undefined;
    if (entry) {
      entry.stale = true;
      this.release(entry);
    }
  }

  private release(entry: Entry): void {
    if (entry.stale && entry.users === 0) entry.model.then((m) => m.close()).catch(() => undefined);
  }

  dispose(): void {
    this.invalidate();
  }
}
