// The one test command: typecheck (the whole project, then each layer with only the types it may
// use), the layer boundaries (dependency-cruiser, rules in .dependency-cruiser.cjs), build, then
// every test file under node's built-in runner (one summary for CI). TypeScript tests run
// through tsx. docs/architecture.md says what the layers are.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function step(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const only = process.argv.slice(2);
step('npx', ['tsc', '--noEmit', '-p', '.']);
step('node', ['tools/typecheck-layers.mjs']);
step('npx', ['depcruise', '--config', '.dependency-cruiser.cjs', 'src', 'webview', 'bench', 'tools']);
step('node', ['esbuild.config.mjs']);
const files = only.length ? only : find('test');
step('node', ['--import', 'tsx', '--test', '--test-reporter=spec', ...files]);
