/**
 * `demo`: the universality analysis of the shipped family (models/tiny-gpt2-{a..e}) on its shipped
 * held-out corpus, with a token budget that finishes within three minutes on a busy 2-core machine,
 * then its summary. The run folder goes where `analyze` puts it (./.universal-neurons/runs/<id>).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CancellationSignal } from '../engine/errors';
import { EngineError } from '../engine/errors';
import { packageRoot, shippedFamily } from '../locate';
import { runActivations, type Print } from './activations';
import { runAnalyze } from './analyze';
import type { DemoCommand } from './args';

/**
 * 320 rows of 128. The extension ships the run this budget gives (models/demo-run): after a change
 * here, `npm run demo:run` remakes it (test/unit/demo-run.test.ts fails until then). Measured on the 2-core dev machine while other jobs kept its load near 7.5:
 * 2 min 16 s in all (open, stream, finish, write); 92 s of CPU, so about half that when idle.
 */
export const DEMO_TOKENS = 128 * 320;

const DEMO_SENTENCE = 'The President said to the Congress: "We hold these truths to be self-evident."';

export async function runDemo(cmd: DemoCommand, print: Print, note: Print, signal: CancellationSignal): Promise<void> {
  // __dirname is dist/ in the bundle (src/cli/ under tsx): the package root is above either.
  const root = packageRoot(__dirname);
  const models = shippedFamily(root);
  if (models.length < 2) {
    throw new EngineError(`the demo needs the shipped family under ${root}/models (tiny-gpt2-a..e); found ${models.length} model(s)`);
  }
  // The text form: its records carry each document's source and topic and Brown's POS tags, which
  // the family analysis labels tokens with (the .tokens.bin holds the same ids, without them).
  const corpus = join(root, 'models', 'corpus', 'heldout.jsonl');
  if (!existsSync(corpus)) throw new EngineError(`the demo needs the shipped held-out corpus ${corpus}`, corpus);
  const tokens = cmd.tokens ?? DEMO_TOKENS;
  // First what one model's neurons do on a sentence (the engine spine), then the family analysis.
  print(`demo: token activations of ${models[0]!.name} (top 3 neurons per token by post-activation)`);
  await runActivations({ model: models[0]!.dir, text: DEMO_SENTENCE, top: 3, threads: cmd.threads }, print, signal);
  print('');
  print(`demo: ${models.map((m) => m.name).join(', ')} on ${tokens.toLocaleString('en-US')} tokens of models/corpus/heldout.jsonl`);
  await runAnalyze({ models: models.map((m) => m.dir), corpus: [corpus], tokens, threads: cmd.threads, ...(cmd.executionProvider ? { executionProvider: cmd.executionProvider } : {}), out: cmd.out, topSummary: cmd.top }, print, note, signal);
}
