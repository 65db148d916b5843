// The demo run shipped inside the extension (models/demo-run, made by `npm run demo:run`): it must
// be the run `npm run demo` makes of the shipped family today, or it fails here instead of going
// stale. Regenerating takes about 2 minutes on 2 cores, so the run is committed and checked here:
// the models' and the corpus' hashes against the shipped files, the demo's budget and settings,
// the engine's and onnxruntime's versions. It must also open in the extension's readers when the
// folders it records (the machine that made it) are absent, and be packaged in the VSIX.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { test } from 'node:test';
import { DEMO_TOKENS } from '../../src/cli/demo';
import { DEFAULTS, vocabHash } from '../../src/engine/analysis/pipeline';
import { loadRun } from '../../src/engine/run/data';
import { openRunView } from '../../src/engine/run/view';
import { Tokenizer } from '../../src/engine/tokenizer';
import { neuronData } from '../../src/extension/runData';
import { DEMO_RUN, demoRunDir } from '../../src/extension/runChoice';
import { runModelDir, shippedFamily } from '../../src/locate';

const ROOT = resolve(__dirname, '..', '..');
const DIR = join(ROOT, DEMO_RUN);
const REGENERATE = 'the shipped demo run is stale: regenerate it with `npm run demo:run` (about 2 minutes) and commit models/demo-run';

interface Manifest {
  id: string;
  status: string;
  software: Record<string, string>;
  models: { label: string; dir: string; role: string; config_sha256: string; safetensors_sha256: string; vocab_sha256: string; tokenizer_sha256?: string }[];
  corpus: { inputs: string[]; files: { path: string; kind: string; bytes: number; sha256: string; read: boolean }[]; tokens: { requested: number; used: number } };
  settings: Record<string, unknown> & { rotationSeeds?: Record<string, number> };
  results: { neurons: number; universal: number; files: string[] };
}

const manifest = (): Manifest => JSON.parse(readFileSync(join(DIR, 'manifest.json'), 'utf8')) as Manifest;
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

test('the demo run is shipped, complete, and made by this engine with the demo settings', () => {
  assert.equal(demoRunDir(ROOT), DIR);
  const m = manifest();
  assert.equal(m.status, 'complete');
  assert.equal(m.id, 'demo-run');
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };
  assert.equal(m.software['universal-neurons'], pkg.version, `made by universal-neurons ${m.software['universal-neurons']}, this is ${pkg.version}; ${REGENERATE}`);
  assert.equal(m.software['onnxruntime-node'], pkg.dependencies['onnxruntime-node'], REGENERATE);
  // The demo's budget and the analysis defaults (demo.ts passes nothing else).
  assert.equal(m.settings.tokens, DEMO_TOKENS, REGENERATE);
  assert.equal(m.corpus.tokens.requested, DEMO_TOKENS, REGENERATE);
  assert.equal(m.corpus.tokens.used, DEMO_TOKENS);
  for (const k of ['threshold', 'seed', 'mode', 'topK', 'batchRows'] as const) assert.equal(m.settings[k], DEFAULTS[k], `settings.${k}; ${REGENERATE}`);
  assert.equal(m.settings.reference, 'tiny-gpt2-a');
  // What today's engine writes: a rotation seed per pair, and the paper's and the exact activation columns.
  assert.ok(m.settings.rotationSeeds && Object.keys(m.settings.rotationSeeds).length === m.models.length - 1, `no per-pair rotation seeds; ${REGENERATE}`);
  const header = readFileSync(join(DIR, 'universal.csv'), 'utf8').split('\n')[0]!;
  assert.match(header, /,sparsity,excess_corr$/);
  const arrow = readFileSync(join(DIR, 'neurons.arrow'));
  for (const name of ['act_freq', 'kurt_exact']) assert.ok(arrow.includes(Buffer.from(name)), `neurons.arrow has no ${name} column; ${REGENERATE}`);
  assert.ok(m.results.files.includes('basis.json'), `no basis.json (the top-5 PCA share per layer); ${REGENERATE}`);
  // Every result file it lists is there, and nothing else (no checkpoint, no lock).
  assert.deepEqual(readdirSync(DIR).sort(), ['manifest.json', ...m.results.files].sort());
});

test('the demo run matches the shipped models and held-out corpus (hashes)', () => {
  const m = manifest();
  const family = shippedFamily(ROOT);
  assert.deepEqual(
    m.models.map((x) => x.label),
    family.map((f) => f.name),
    `the run's models are not the shipped family; ${REGENERATE}`,
  );
  for (const [i, x] of m.models.entries()) {
    const dir = family[i]!.dir;
    assert.equal(x.role, i === 0 ? 'reference' : 'other');
    assert.equal(x.config_sha256, sha256(join(dir, 'config.json')), `${x.label}/config.json changed; ${REGENERATE}`);
    assert.equal(x.safetensors_sha256, sha256(join(dir, 'model.safetensors')), `${x.label}/model.safetensors changed; ${REGENERATE}`);
    const tok = Tokenizer.fromTokenizerJson(join(dir, 'tokenizer.json'));
    assert.equal(x.vocab_sha256, vocabHash(tok), `${x.label}'s vocabulary changed; ${REGENERATE}`);
    assert.equal(x.tokenizer_sha256, tok.fingerprint(), `${x.label}'s tokenizer changed; ${REGENERATE}`);
  }
  // The demo reads the text form of the held-out corpus (its labels feed the families).
  assert.equal(m.corpus.files.length, 1);
  const f = m.corpus.files[0]!;
  assert.equal(basename(f.path), 'heldout.jsonl');
  assert.equal(f.read, true);
  const corpus = join(ROOT, 'models', 'corpus', 'heldout.jsonl');
  assert.equal(f.bytes, readFileSync(corpus).byteLength, `models/corpus/heldout.jsonl changed; ${REGENERATE}`);
  assert.equal(f.sha256, sha256(corpus), `models/corpus/heldout.jsonl changed; ${REGENERATE}`);
});

test('the demo run opens in the readers when the folders it records are absent (another machine)', async (t) => {
  // A copy whose manifest names folders this machine lacks, as an installed extension sees it.
  const tmp = mkdtempSync(join(tmpdir(), 'un-demo-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const copy = join(tmp, 'demo-run');
  const m = manifest();
  mkdirSync(copy);
  for (const f of m.results.files) symlinkSync(join(DIR, f), join(copy, f));
  for (const x of m.models) x.dir = join('/nonexistent-build-machine', 'models', x.label);
  writeFileSync(join(copy, 'manifest.json'), JSON.stringify(m));

  assert.equal(runModelDir(m.models[0]!, ROOT), join(ROOT, 'models', 'tiny-gpt2-a'));
  assert.equal(runModelDir({ dir: '/nonexistent/x', label: '../tiny-gpt2-a' }, ROOT), '/nonexistent/x', 'a label is never a path');

  const view = await openRunView(copy);
  assert.equal(view.nRows, 2048);
  let universal = 0;
  for (const u of view.universal) universal += u;
  assert.equal(universal, m.results.universal);
  assert.ok(universal > 0, 'the demo run marks no neuron universal: the hover would show no ★');

  const run = await loadRun(copy);
  assert.ok(run.tokenizer, `no tokenizer: ${run.tokenizerNote}`);
  const row = view.universal.indexOf(1);
  const nd = neuronData(run, { layer: view.layer[row]!, neuron: view.neuron[row]! });
  assert.ok(nd.examples.length > 0, 'no top contexts');
  assert.ok(nd.examples[0]!.tokens.every((x) => !x.text.startsWith('⟨')), 'token ids instead of text: the tokenizer was not found');
  assert.equal(nd.partners.length, 4);
});

test('the VSIX packages the demo run (.vscodeignore, by vsce’s own file list)', async () => {
  // The package's main (out/api.js, no type declarations shipped): the list `vsce package` packs.
  const vsce = '@vscode/vsce';
  const { listFiles } = (await import(vsce)) as { listFiles(o: { cwd: string; dependencies: boolean }): Promise<string[]> };
  const files = new Set(await listFiles({ cwd: ROOT, dependencies: false }));
  for (const f of ['manifest.json', ...manifest().results.files]) assert.ok(files.has(`models/demo-run/${f}`), `models/demo-run/${f} is not packaged`);
});
