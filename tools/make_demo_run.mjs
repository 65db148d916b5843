// Makes the demo run that ships inside the extension: `models/demo-run/`, the analysis of the
// shipped family (models/tiny-gpt2-{a..e}) on its held-out corpus that `npm run demo` makes, with
// the same engine, corpus, budget and settings (the CLI's `demo` command; nothing is edited after).
// The extension offers it as "Demo run (shipped family)" and uses it when no other run is open.
//
//   npm run demo:run        (builds dist/ first; about 2 minutes on 2 cores)
//
// Run it again whenever a shipped model, the held-out corpus, the demo's budget or the engine's
// version changes: test/unit/demo-run.test.ts fails until the committed run matches them.
// The run is written to a temporary folder beside it and swapped in only once complete, so an
// interrupted regeneration leaves the committed run as it was.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const TARGET = join(ROOT, 'models', 'demo-run');
const CLI = join(ROOT, 'dist', 'cli.js');
if (!existsSync(CLI)) {
  console.error(`${CLI} is missing: build first (npm run demo:run does)`);
  process.exit(1);
}

// The run's id is its folder's name: make it in <tmp>/demo-run so the id is "demo-run".
const tmp = join(ROOT, 'models', `.demo-run-tmp-${process.pid}`);
rmSync(tmp, { recursive: true, force: true });
mkdirSync(tmp, { recursive: true });
const out = join(tmp, 'demo-run');
const args = [CLI, 'demo', '--out', out, ...process.argv.slice(2)];
console.error(`node ${args.map((a) => a.replace(ROOT + '/', '')).join(' ')}`);
const r = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: ROOT });
if (r.status !== 0 || !existsSync(join(out, 'manifest.json')) || existsSync(join(out, 'checkpoint'))) {
  rmSync(tmp, { recursive: true, force: true }); // never packaged or committed by mistake
  console.error(`the demo analysis failed (exit ${r.status ?? r.signal}); ${TARGET} is unchanged`);
  process.exit(r.status || 1);
}
const old = join(tmp, 'previous');
if (existsSync(TARGET)) renameSync(TARGET, old);
renameSync(out, TARGET);
rmSync(tmp, { recursive: true, force: true });
console.error(`wrote ${TARGET}`);
