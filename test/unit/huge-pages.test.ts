// The CLI's huge-pages environment (engine/hugePages.ts): when it starts itself again, and that a
// heavy command's process really runs with the tunable while a light one does not start again.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { hugePagesEnv, hugePagesOn, HUGEPAGES_TUNABLE } from '../../src/engine/hugePages';

test('hugePagesEnv: only where THP is on, never over a setting of the tunable, off with UN_HUGEPAGES=0', (t) => {
  if (process.platform !== 'linux') {
    assert.equal(hugePagesEnv({}), undefined);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'un-thp-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (mode: string): string => {
    const f = join(dir, mode.replace(/\W/g, ''));
    writeFileSync(f, mode + '\n');
    return f;
  };
  const madvise = file('always [madvise] never');
  const got = hugePagesEnv({ PATH: '/bin' }, madvise);
  // glibc < 2.35 (or musl) has no such tunable: nothing to do there.
  const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime;
  if (!glibc || Number(glibc.split('.')[1]) < 35) {
    assert.equal(got, undefined);
    return;
  }
  assert.deepEqual(got, { PATH: '/bin', GLIBC_TUNABLES: HUGEPAGES_TUNABLE });
  assert.equal(hugePagesOn(got), true);
  assert.equal(hugePagesEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }, madvise)?.GLIBC_TUNABLES, `glibc.malloc.arena_max=2:${HUGEPAGES_TUNABLE}`);
  assert.equal(hugePagesEnv({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }, madvise), undefined, "a user's own setting stays");
  assert.equal(hugePagesEnv({ UN_HUGEPAGES: '0' }, madvise), undefined);
  assert.equal(hugePagesEnv({}, file('always madvise [never]')), undefined);
  assert.ok(hugePagesEnv({}, file('[always] madvise never')));
  assert.equal(hugePagesEnv({}, join(dir, 'missing')), undefined);
});

test('the CLI: a heavy command runs in a child with the tunable (its manifest says so), --version does not start again', () => {
  const root = join(__dirname, '..', '..');
  const cli = join(root, 'src', 'cli', 'main.ts');
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], { cwd: root, encoding: 'utf8', timeout: 300_000, env: { ...process.env, GLIBC_TUNABLES: '', ...env } });
  assert.match(run(['--version']).stdout, /^universal-neurons /);
  const out = mkdtempSync(join(tmpdir(), 'un-thp-run-'));
  try {
    const models = ['a', 'b'].map((s) => join(root, 'models', `tiny-gpt2-${s}`));
    const corpus = join(root, 'models', 'corpus', 'heldout.tokens.bin');
    const analyze = (dir: string, env?: NodeJS.ProcessEnv) => run(['analyze', '--models', ...models, '--corpus', corpus, '--tokens', '256', '--out', join(out, dir)], env);
    const on = analyze('on');
    assert.equal(on.status, 0, on.stderr);
    const software = (dir: string) => (JSON.parse(readFileSync(join(out, dir, 'manifest.json'), 'utf8')) as { software: Record<string, string> }).software;
    assert.equal(software('on')['huge pages'], hugePagesEnv({}) ? HUGEPAGES_TUNABLE : 'off');
    const off = analyze('off', { UN_HUGEPAGES: '0' });
    assert.equal(off.status, 0, off.stderr);
    assert.equal(software('off')['huge pages'], 'off');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
