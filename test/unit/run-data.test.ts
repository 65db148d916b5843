import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getRun, loadRun, neuronData, overviewData, RunDataError, tableData } from '../../src/extension/runData';
import { isNeuronData, isOverviewData, isTableData } from '../../src/protocol';
import { writeSyntheticRun } from '../helpers/synthetic-run';

const tokenizerDir = join(__dirname, '..', '..', 'models', 'gpt2-tokenizer');

test('a complete run folder becomes view payloads that pass the protocol guards', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'un-run-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await writeSyntheticRun({ dir, nLayers: 3, dMlp: 16, modelDir: tokenizerDir, families: true, vocab: true, k: 4 });
  const run = await loadRun(dir);
  assert.equal(run.layer.length, 48);

  const ov = JSON.parse(JSON.stringify(overviewData(run)));
  assert.ok(isOverviewData(ov));
  assert.equal(ov.layers.length, 3);
  assert.equal(ov.totals.neurons, 48);
  assert.equal(ov.layers.reduce((s: number, l: { universal: number }) => s + l.universal, 0), ov.totals.universal);
  assert.equal(ov.excessHistogram.counts.reduce((a: number, b: number) => a + b, 0), 47); // one excess is NaN
  assert.ok(Array.isArray(ov.families));

  // No `universal` column in this file: the flag is excess_corr > threshold.
  assert.deepEqual(run.universal, Array.from(run.columns.get('excess_corr')!, (x) => x > 0.5));
  const tb = JSON.parse(JSON.stringify(tableData(run)));
  assert.ok(isTableData(tb));
  assert.equal(tb.columns.values.excess_corr[3], null); // NaN in the file → null

  const nd = JSON.parse(JSON.stringify(neuronData(run, { layer: 2, neuron: 5 })));
  assert.ok(isNeuronData(nd), JSON.stringify(nd).slice(0, 300));
  assert.equal(nd.partners.length, 2);
  assert.ok(nd.examples.length > 0);
  assert.equal(nd.examples[0].tokens[nd.examples[0].maxIndex].act, nd.examples[0].value);
  assert.ok(nd.examples[0].tokens.every((x: { text: string }) => !x.text.startsWith('⟨')), 'token text from the tokenizer');
  assert.ok(nd.histogram && nd.histogram.counts.length === 32);
  assert.ok(nd.vocab && nd.vocab.top.length === 5);
  const pct = nd.stats.find((s: { key: string }) => s.key === 'excess_corr')?.percentile ?? NaN;
  assert.ok(pct > 0 && pct < 100, String(pct));
  assert.ok(nd.partners.every((p: { bestReference: unknown }) => p.bestReference !== null));

  assert.throws(() => neuronData(run, { layer: 3, neuron: 0 }), RunDataError);
  assert.throws(() => neuronData(run, { layer: 0, neuron: 16 }), RunDataError);
  // The cache hands back the same data until a file changes.
  assert.equal(await getRun(dir), await getRun(dir));
});

test('missing optional files become notes; bad folders are refused with the file named', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'un-run-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await writeSyntheticRun({ dir, nLayers: 2, dMlp: 4, k: 0, partners: false });
  const run = await loadRun(dir);
  const nd = neuronData(run, { layer: 1, neuron: 1 });
  assert.equal(nd.examples.length, 0);
  assert.equal(nd.histogram, null);
  assert.equal(nd.vocab, null);
  assert.equal(nd.family, undefined);
  assert.ok(nd.notes.some((n) => /examples/.test(n)));
  assert.ok(nd.notes.some((n) => /partners/.test(n)));
  assert.equal(overviewData(run).families, null);

  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ ...m, status: 'running' }));
  await assert.rejects(loadRun(dir), /the run is running/);
  writeFileSync(join(dir, 'manifest.json'), '{');
  await assert.rejects(loadRun(dir), /manifest\.json is not valid JSON/);
  await assert.rejects(loadRun(join(dir, 'nope')), /no manifest\.json/);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
  writeFileSync(join(dir, 'neurons.arrow'), 'not arrow');
  await assert.rejects(loadRun(dir), /neurons\.arrow is not an Arrow IPC file/);
});

test("the pipeline's neurons.arrow layout: universal column and wide partner columns", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'un-run-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await writeSyntheticRun({ dir, nLayers: 2, dMlp: 8, k: 0, partners: false, wide: true });
  const run = await loadRun(dir);
  assert.equal(run.universal[0], true);
  const nd = neuronData(run, { layer: 0, neuron: 0 });
  assert.equal(nd.universal, true);
  assert.deepEqual(
    nd.partners.map((p) => [p.model, p.layer, p.neuron]),
    [
      ['tiny-gpt2-b', 0, 0],
      ['tiny-gpt2-c', 0, 0],
    ],
  );
  assert.ok(!nd.notes.some((n) => /partners/.test(n)));
  const tb = tableData(run);
  assert.equal(tb.columns.universal[0], true);
  assert.equal(overviewData(run).totals.universal, run.universal.filter(Boolean).length);
});
