/** `demo`: the token table of every shipped model on one built-in sentence. */
import type { CancellationSignal } from '../engine/errors';
import { EngineError } from '../engine/errors';
import { fixtureCheckpoint, packageRoot, shippedFamily } from '../locate';
import { runActivations, type Print } from './activations';
import type { DemoCommand } from './args';

export const DEMO_TEXT = 'The cat sat on the mat because it was tired, and then it fell asleep in the sun.';

export async function runDemo(cmd: DemoCommand, print: Print, note: Print, signal: CancellationSignal): Promise<void> {
  // __dirname is dist/ in the bundle (src/cli/ under tsx): the package root is above either.
  const root = packageRoot(__dirname);
  let models = shippedFamily(root);
  if (models.length === 0) {
    const fixture = fixtureCheckpoint(root);
    if (!fixture) {
      throw new EngineError(`no shipped model under ${root}/models (tiny-gpt2-a..e) and no test fixture checkpoint`);
    }
    note(`note: models/tiny-gpt2-{a..e} not found; using the test fixture ${fixture}`);
    models = [{ name: 'fixture', dir: fixture }];
  }
  const text = cmd.text ?? DEMO_TEXT;
  print(`text: ${JSON.stringify(text)}`);
  for (const m of models) {
    print('');
    print(`== ${m.name} ==`);
    await runActivations({ model: m.dir, text, top: cmd.top, threads: cmd.threads }, print, signal);
  }
}
