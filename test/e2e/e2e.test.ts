// The real-VS-Code e2e run as part of `npm test`: installs its tools when missing (setup.sh is
// idempotent: ~0 s warm, 3-4 min cold) and runs run.sh (package + install the VSIX, extension-host
// suite, UI tests). Never skipped: a machine without the tools gets them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { test } from 'node:test';

const HERE = resolve(__dirname);

function bash(script: string, timeoutMs: number): { code: number | null; out: string } {
  const r = spawnSync('bash', [join(HERE, script)], {
    cwd: resolve(HERE, '..', '..'),
    env: { ...process.env, E2E_BUILD: '0' }, // test/run.mjs built dist/ before any test file
    encoding: 'utf8',
    timeout: timeoutMs,
    killSignal: 'SIGTERM', // run.sh's EXIT trap then kills the server's process group
    maxBuffer: 64 << 20,
  });
  const out = (r.stdout ?? '') + (r.stderr ?? '');
  // Indented so the inner "N passed, N failed" lines are not mistaken for the run's summary.
  process.stdout.write(out.replace(/^/gm, `  [${script}] `) + '\n');
  return { code: r.status, out };
}

test('e2e: setup tools', { timeout: 20 * 60_000 }, () => {
  const r = bash('setup.sh', 20 * 60_000);
  assert.equal(r.code, 0, 'setup.sh failed');
});

test('e2e: VSIX installs and works in real VS Code (extension host + UI)', { timeout: 10 * 60_000 }, () => {
  const r = bash('run.sh', 10 * 60_000);
  assert.match(r.out, /exthost: \d+ passed, 0 failed/);
  assert.match(r.out, /ui: \d+ passed, 0 failed/);
  assert.equal(r.code, 0, 'run.sh failed');
});
