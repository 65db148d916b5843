// The command ids: one enum (src/view/commandIds.ts), the same set package.json contributes, each
// registered once under src/extension/, and no id written out as a string anywhere else in src/.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { Command, COMMANDS } from '../../src/view/commandIds';

const ROOT = join(__dirname, '..', '..');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('package.json contributes exactly the enum’s commands', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const declared = (pkg.contributes.commands as { command: string }[]).map((c) => c.command).sort();
  assert.deepEqual(declared, [...COMMANDS].sort());
});

test('each command is registered exactly once, through the enum', () => {
  const text = sources(join(ROOT, 'src', 'extension')).map((f) => readFileSync(f, 'utf8')).join('\n');
  for (const [key] of Object.entries(Command)) {
    const n = text.match(new RegExp(`(?:register|registerCommand)\\(Command\\.${key}\\b`, 'g'))?.length ?? 0;
    assert.equal(n, 1, `Command.${key} is registered ${n} times`);
  }
});

test('no command id is spelled out as a string outside the enum', () => {
  const ids = new RegExp(`['"](${COMMANDS.map((c) => c.replace('.', '\\.')).join('|')})['"]`);
  for (const f of [...sources(join(ROOT, 'src')), ...sources(join(ROOT, 'webview'))]) {
    if (f.endsWith(join('view', 'commandIds.ts'))) continue;
    const m = ids.exec(readFileSync(f, 'utf8'));
    assert.equal(m, null, `${relative(ROOT, f)} writes ${m?.[1]} as a string`);
  }
});
