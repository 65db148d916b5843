/** `activations`: one checkpoint, one text → token table on stdout, optionally the full JSON dump. */
import { accessSync, constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { EngineError, throwIfCancelled, type CancellationSignal } from '../engine/errors';
import { formatTokenTable, type TokenRow } from '../format';
import type { ActivationsCommand } from './args';
import { putLayersAsync, writeAtomicAsync } from './jsonOut';

// Loaded on first use so that --help and usage errors never load the native onnxruntime addon.
type Runtime = typeof import('../engine/runtime');
type TokenizerModule = typeof import('../engine/tokenizer');
export const loadRuntime = (): Promise<Runtime> => import('../engine/runtime');
const loadTokenizer = (): Promise<TokenizerModule> => import('../engine/tokenizer');

export type Print = (line: string) => void;

export async function runActivations(
  cmd: Pick<ActivationsCommand, 'model' | 'text' | 'file' | 'top' | 'json' | 'threads'>,
  print: Print,
  signal: CancellationSignal,
): Promise<void> {
  if (cmd.json) {
    // Fail before the model work, not after it.
    const dir = dirname(resolve(cmd.json));
    try {
      accessSync(dir, constants.W_OK);
    } catch {
      throw new EngineError(`cannot write --json ${cmd.json}: folder ${dir} does not exist or is not writable`, cmd.json);
    }
  }
  const text = cmd.text ?? (await loadTokenizer()).readTextFile(cmd.file!);
  const rt = await loadRuntime();
  // threads 0 = "engine default" (one per core): leave it unset rather than guess its meaning.
  const model = await rt.openModel(cmd.model, cmd.threads ? { threads: cmd.threads } : {});
  try {
    const acts = await model.activations(text, { signal });
    // After the forward, the work is plain JS over every token (the top-K, the table, the JSON):
    // `tick` lets the event loop turn (Ctrl-C's handler runs there) and checks the signal.
    const tick = async (): Promise<void> => {
      await new Promise((r) => setImmediate(r));
      throwIfCancelled(signal);
    };
    await tick();
    const rows: TokenRow[] = [];
    for (const [i, t] of acts.tokens.entries()) {
      if (i % 1024 === 0) await tick();
      rows.push({ ...t, top: rt.topNeurons(acts, i, cmd.top) });
    }
    await tick();
    print(`model ${model.dir}: ${model.nLayers} layers x ${model.dMlp} neurons, ${rows.length} tokens (BOS first)`);
    for (const line of formatTokenTable(rows, cmd.top)) print(line);
    if (cmd.json) {
      const T = acts.tokens.length;
      await writeAtomicAsync(cmd.json, async (put) => {
        put(`{"model":${JSON.stringify(model.dir)},"tokens":[`);
        put(acts.tokens.map((t) => JSON.stringify({ id: t.id, text: t.text, start: t.start, end: t.end })).join(','));
        put('],"hook_pre":');
        await putLayersAsync(put, acts.hookPre, T, model.dMlp, tick);
        put(',"hook_post":');
        await putLayersAsync(put, acts.hookPost, T, model.dMlp, tick);
        put('}\n');
      });
      print(`wrote ${cmd.json}`);
    }
  } finally {
    await model.close();
  }
}
