// The run folder's one reader and writer (src/engine/run/): the manifest is checked against its
// schema (a field of the wrong type is refused with the field named), defaults and the universal
// rule come from one place, and the editor's setting declares the engine's range.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { RunError } from '../../src/engine/errors';
import { DEFAULT_THRESHOLD, isUniversal, isUsableThreshold, THRESHOLD_RANGE } from '../../src/engine/run/defaults';
import { runFile } from '../../src/engine/run/files';
import { checkManifest, manifestThreshold, readManifest, requireComplete, writeManifest } from '../../src/engine/run/manifest';
import { runStatus } from '../../src/engine/run/view';

const base = mkdtempSync(join(tmpdir(), 'un-runfolder-'));
after(() => rmSync(base, { recursive: true, force: true }));

const minimal = (over: Record<string, unknown> = {}) => ({
  format: 'universal-neurons/run@1',
  id: 'r',
  status: 'complete',
  models: [{ label: 'a', dir: '/m/a', nLayers: 2, dMlp: 4 }],
  ...over,
});

function folder(name: string, manifest: unknown): string {
  const dir = join(base, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(runFile(dir, 'manifest'), typeof manifest === 'string' ? manifest : JSON.stringify(manifest));
  return dir;
}

const corrupt = (re: RegExp) => (e: unknown) => e instanceof RunError && e.problem === 'corrupt' && re.test(e.message);

test('a minimal manifest reads; absent fields get their defaults; unknown fields are kept', () => {
  const m = readManifest(folder('min', minimal({ extra: { x: 1 }, models: [{ dir: '/m/a', nLayers: 2, dMlp: 4 }], id: undefined })));
  assert.equal(m.id, 'min', 'an id-less manifest takes the folder name');
  assert.equal(m.models[0]!.label, 'model 0');
  assert.equal(manifestThreshold(m), DEFAULT_THRESHOLD);
  assert.deepEqual((m as Record<string, unknown>).extra, { x: 1 });
  assert.equal(manifestThreshold(checkManifest(minimal({ settings: { threshold: 0.3 } }), '/d')), 0.3);
});

test('a field of the wrong type is refused, naming the field; the status decides completeness', () => {
  assert.throws(() => readManifest(folder('bad-layers', minimal({ models: [{ dir: '/m', nLayers: '2', dMlp: 4 }] }))), corrupt(/models\[0\]\.nLayers/));
  assert.throws(() => readManifest(folder('no-models', minimal({ models: [] }))), corrupt(/lists no models/));
  assert.throws(() => readManifest(folder('bad-threshold', minimal({ settings: { threshold: 'high' } }))), corrupt(/settings\.threshold/));
  assert.throws(() => readManifest(folder('bad-status', minimal({ status: 'paused' }))), corrupt(/status/));
  assert.throws(() => readManifest(folder('other-tool', { format: 'x' })), corrupt(/not a run manifest of this tool/));
  assert.throws(() => readManifest(folder('not-json', '{')), corrupt(/unreadable or not valid JSON/));
  assert.throws(() => readManifest(join(base, 'nowhere')), (e: unknown) => e instanceof RunError && e.problem === 'missing');
  const running = readManifest(folder('running', minimal({ status: 'running' })));
  assert.throws(() => requireComplete(running, '/d'), (e: unknown) => e instanceof RunError && e.problem === 'incomplete' && /still running/.test(e.message));
  // No pid recorded (an older run): it may be running or killed, and the detail says both.
  assert.deepEqual(runStatus(join(base, 'running')), {
    status: 'running',
    id: 'r',
    models: 'a',
    detail: `is still running, or was killed; if it was killed, resume it with: universal-neurons analyze --resume ${join(base, 'running')}`,
  });
  assert.equal(runStatus(join(base, 'not-json')).status, 'unreadable');
});

test('writeManifest writes back what readManifest read, unknown fields included', () => {
  const dir = folder('rewrite', minimal({ extra: 'kept', status: 'running' }));
  const m = readManifest(dir);
  writeManifest(dir, { ...m, status: 'failed', error: 'killed' });
  const back = JSON.parse(readFileSync(runFile(dir, 'manifest'), 'utf8'));
  assert.equal(back.status, 'failed');
  assert.equal(back.extra, 'kept');
  assert.equal(readManifest(dir).error, 'killed');
});

test('universal: excess strictly above the threshold; NaN never', () => {
  assert.equal(isUniversal(0.5, 0.5), false);
  assert.equal(isUniversal(0.51, 0.5), true);
  assert.equal(isUniversal(Number.NaN, -0.9), false);
  assert.equal(isUsableThreshold(-1), false);
  assert.equal(isUsableThreshold(2), false);
  assert.equal(isUsableThreshold(1.99), true);
});

test("the editor's threshold setting declares the engine's default and range", () => {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8'));
  const s = pkg.contributes.configuration.properties['universalNeurons.universalThreshold'];
  assert.equal(s.default, DEFAULT_THRESHOLD);
  assert.equal(s.exclusiveMinimum, THRESHOLD_RANGE.exclusiveMinimum);
  assert.equal(s.exclusiveMaximum, THRESHOLD_RANGE.exclusiveMaximum);
  assert.equal(s.minimum, undefined);
  assert.equal(s.maximum, undefined);
});
