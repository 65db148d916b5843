/**
 * Where the shipped models are. Shared by the CLI (`demo`) and the extension (default model), so
 * both agree on the family layout `models/tiny-gpt2-{a..e}` and on the test-fixture fallback that
 * keeps a development checkout usable before the family is trained.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const FAMILY_SEEDS = ['a', 'b', 'c', 'd', 'e'] as const;
export const DEFAULT_MODEL = 'models/tiny-gpt2-a';

/** A folder that looks like an HF GPT-2 checkpoint (the engine does the real validation). */
export function isCheckpointDir(dir: string): boolean {
  return existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'model.safetensors'));
}

/** The nearest folder at or above `from` with a package.json: dist/ and src/cli/ both work. */
export function packageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return from;
  }
}

/** The members of the shipped family that exist, in seed order. */
export function shippedFamily(root: string): { name: string; dir: string }[] {
  return FAMILY_SEEDS.map((s) => ({ name: `tiny-gpt2-${s}`, dir: join(root, 'models', `tiny-gpt2-${s}`) })).filter((m) =>
    isCheckpointDir(m.dir),
  );
}

/**
 * The folder of a model a run names (manifest `models[i]`): its recorded `dir` when that is a
 * checkpoint on this machine; else the shipped family member of the same label under `root`
 * (a run made elsewhere, such as the demo run shipped inside the extension, records the folders
 * of the machine that made it); else the recorded `dir` (the caller reports it missing).
 */
export function runModelDir(model: { dir: string; label: string }, root: string): string {
  if (isCheckpointDir(model.dir)) return model.dir;
  if (model.label && !/[\\/]/.test(model.label) && model.label !== '.' && model.label !== '..') {
    const shipped = join(root, 'models', model.label);
    if (isCheckpointDir(shipped)) return shipped;
  }
  return model.dir;
}

/** First checkpoint folder under test/fixtures (two levels deep, sorted), if the checkout has one. */
export function fixtureCheckpoint(root: string): string | undefined {
  const base = join(root, 'test', 'fixtures');
  const walk = (dir: string, depth: number): string | undefined => {
    if (isCheckpointDir(dir)) return dir;
    if (depth === 0) return undefined;
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return undefined;
    }
    for (const name of names) {
      const p = join(dir, name);
      try {
        if (!statSync(p).isDirectory()) continue;
      } catch {
        continue;
      }
      const hit = walk(p, depth - 1);
      if (hit) return hit;
    }
    return undefined;
  };
  return walk(base, 2);
}
