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
