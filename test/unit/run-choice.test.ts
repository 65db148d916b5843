// Which run a feature uses when the user has not said (src/extension/runChoice.ts): the open run,
// then the only complete workspace run, then a quick pick of several (the demo run offered last),
// then the demo run shipped inside the extension; the hover never asks.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chooseRun, demoRunDir, passiveRun, runStatus, runSummary } from '../../src/extension/runChoice';

const status = (map: Record<string, string>) => (d: string) => map[d] ?? 'unreadable';

test('the open run wins over everything', () => {
  assert.deepEqual(chooseRun({ open: '/ws/r1', found: ['/ws/r1', '/ws/r2'], demo: '/ext/models/demo-run', status: status({ '/ws/r1': 'complete', '/ws/r2': 'complete' }) }), {
    kind: 'open',
    dir: '/ws/r1',
  });
});

test('the only complete workspace run is opened without asking; incomplete ones do not count', () => {
  const found = ['/ws/a', '/ws/b', '/ws/c'];
  const st = status({ '/ws/a': 'running', '/ws/b': 'complete', '/ws/c': 'failed' });
  assert.deepEqual(chooseRun({ found, demo: '/ext/models/demo-run', status: st }), { kind: 'only', dir: '/ws/b' });
  assert.deepEqual(chooseRun({ found: ['/ws/b', '/ws/b/'], status: st }), { kind: 'only', dir: '/ws/b' }, 'the same folder twice is one run');
});

test('several complete runs: a quick pick, the demo run offered last', () => {
  const st = status({ '/ws/a': 'complete', '/g/b': 'complete' });
  assert.deepEqual(chooseRun({ found: ['/ws/a', '/g/b'], demo: '/ext/models/demo-run', status: st }), {
    kind: 'pick',
    dirs: ['/ws/a', '/g/b'],
    demo: '/ext/models/demo-run',
  });
  assert.deepEqual(chooseRun({ found: ['/ws/a', '/g/b'], status: st }), { kind: 'pick', dirs: ['/ws/a', '/g/b'] });
});

test('no complete run found: the shipped demo run, else nothing', () => {
  const st = status({ '/ws/a': 'cancelled' });
  assert.deepEqual(chooseRun({ found: ['/ws/a'], demo: '/ext/models/demo-run', status: st }), { kind: 'demo', dir: '/ext/models/demo-run' });
  assert.deepEqual(chooseRun({ found: [], demo: '/ext/models/demo-run' }), { kind: 'demo', dir: '/ext/models/demo-run' });
  assert.deepEqual(chooseRun({ found: ['/ws/a'], status: st }), { kind: 'none' });
  // The demo run listed among the found ones is still the demo, not a workspace run.
  assert.deepEqual(chooseRun({ found: ['/ext/models/demo-run'], demo: '/ext/models/demo-run', status: () => 'complete' }), { kind: 'demo', dir: '/ext/models/demo-run' });
});

test('the hover never asks: the open run, else the demo run unless another model is set', () => {
  assert.equal(passiveRun({ open: '/ws/a', demo: '/d', demoAllowed: true }), '/ws/a');
  assert.equal(passiveRun({ demo: '/d', demoAllowed: true }), '/d');
  assert.equal(passiveRun({ demo: '/d', demoAllowed: false }), undefined);
  assert.equal(passiveRun({ demoAllowed: true }), undefined);
});

test('statuses come from the manifests; a folder without a demo run has none', (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'un-choice-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const mk = (name: string, body: string) => {
    mkdirSync(join(tmp, name), { recursive: true });
    writeFileSync(join(tmp, name, 'manifest.json'), body);
    return join(tmp, name);
  };
  // A manifest as the engine reads it (src/engine/run/manifest.ts checks it against its schema).
  const model = (label: string) => ({ label, dir: `/m/${label}`, nLayers: 4, dMlp: 512 });
  const done = mk('done', JSON.stringify({ format: 'universal-neurons/run@1', status: 'complete', models: [model('tiny-gpt2-a'), model('tiny-gpt2-b')] }));
  const broken = mk('broken', '{"status": "comp');
  assert.equal(runStatus(done), 'complete');
  assert.equal(runSummary(done).models, 'tiny-gpt2-a, tiny-gpt2-b');
  assert.equal(runStatus(broken), 'unreadable');
  assert.equal(runStatus(join(tmp, 'missing')), 'unreadable');
  assert.deepEqual(chooseRun({ found: [done, broken] }), { kind: 'only', dir: done });
  assert.equal(demoRunDir(tmp), undefined);
  mk(join('models', 'demo-run'), JSON.stringify({ status: 'complete' }));
  assert.equal(demoRunDir(tmp), join(tmp, 'models', 'demo-run'));
});
