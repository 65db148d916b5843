import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getRun, loadRun } from '../../src/engine/run/data';
import { neuronData, overviewData, RunDataError, tableData } from '../../src/extension/runData';
import { isNeuronData, isOverviewData, isTableData } from '../../src/protocol';
import { arrowBytes } from '../../src/engine/store';
import { SYNTHETIC_ATTENTION_NEURON, SYNTHETIC_ENTROPY_NEURON, writeSyntheticRun } from '../helpers/synthetic-run';

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
  // A run made before families: every family part absent, and the payloads still pass the guards.
  for (const k of ['family', 'explanation', 'roles', 'attention', 'entropy'] as const) assert.equal(nd[k], undefined, k);
  const ov = overviewData(run);
  assert.deepEqual([ov.familyLayers, ov.roles, ov.attention], [null, null, null]);
  const tb = tableData(run).columns;
  assert.deepEqual([tb.family, tb.familyLabel, tb.familyVr, tb.roles], [null, null, null, null]);
  assert.ok(isNeuronData(JSON.parse(JSON.stringify(nd))) && isOverviewData(JSON.parse(JSON.stringify(ov))));

  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ ...m, status: 'running' }));
  await assert.rejects(loadRun(dir), /is still running/);
  writeFileSync(join(dir, 'manifest.json'), '{');
  await assert.rejects(loadRun(dir), /manifest\.json is unreadable or not valid JSON/);
  await assert.rejects(loadRun(join(dir, 'nope')), /does not exist/);
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

test('family and role columns and roles.json reach the views', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'un-run-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const L = 3;
  await writeSyntheticRun({ dir, nLayers: L, dMlp: 16, families: true, k: 4 });
  const run = await loadRun(dir);
  assert.equal(run.familyLabel?.length, 48);
  assert.ok(run.columns.has('family_vr') && run.columns.has('position_mi') && run.columns.has('attn_score'));
  assert.equal(run.rolesFile?.note, undefined);

  // The entropy neuron: label, VR, roles (primary first), its intervention sorted by value.
  const e = SYNTHETIC_ENTROPY_NEURON(L);
  const nd = neuronData(run, e);
  assert.ok(isNeuronData(JSON.parse(JSON.stringify(nd))));
  assert.equal(typeof nd.family, 'string');
  assert.ok(nd.explanation && typeof nd.explanation.label === 'string' && nd.explanation.vr !== null);
  assert.equal(nd.roles?.[0], 'entropy');
  assert.ok(nd.entropy && nd.entropy.points.length === 8 && nd.entropy.candidate === true);
  assert.deepEqual(nd.entropy.points.map((p) => p.value), [...nd.entropy.points.map((p) => p.value)].sort((a, b) => a - b));
  // family_hits: one flag per example, in rank order.
  const hits = run.familyHits![run.rowOf[e.layer * 16 + e.neuron]!]!;
  assert.deepEqual(nd.examples.map((x) => x.carriesLabel), [...hits].slice(0, nd.examples.length).map((c) => c === '1'));

  // The attention-deactivation neuron: head and z-score from roles.json (column head not repeated).
  const a = neuronData(run, SYNTHETIC_ATTENTION_NEURON);
  assert.ok(a.roles?.includes('attention-deactivation'));
  assert.equal(a.attention?.[0]?.head, SYNTHETIC_ATTENTION_NEURON.head);
  assert.equal(a.attention?.filter((x) => x.head === SYNTHETIC_ATTENTION_NEURON.head).length, 1);
  assert.ok((a.attention?.[0]?.score ?? 0) > 2 && a.attention?.[0]?.raw !== null);

  // A neuron whose family_hits is empty: no example is marked either way.
  const empty = run.familyHits!.findIndex((h, i) => h === null && run.examples !== null && i % 17 !== 5);
  assert.ok(empty >= 0);
  const ne = neuronData(run, { layer: run.layer[empty]!, neuron: run.neuron[empty]! });
  assert.ok(ne.examples.length > 0 && ne.examples.every((x) => x.carriesLabel === undefined));

  const ov = JSON.parse(JSON.stringify(overviewData(run))) as unknown;
  assert.ok(isOverviewData(ov) && ov.familyLayers && ov.roles && ov.attention);
  assert.equal(ov.familyLayers.reduce((s, f) => s + f.all.reduce((x, y) => x + y, 0), 0), 48);
  assert.equal(ov.familyLayers.at(-1)!.family, 'unexplained'); // method order: unexplained last
  const byRole: Record<string, number> = Object.fromEntries(ov.roles.map((r) => [r.role, r.neurons]));
  assert.equal(byRole.entropy, 1);
  assert.ok(byRole['attention-deactivation']! >= 1);
  assert.ok(ov.attention.length >= 1 && ov.attention.every((p) => /^L\d+\.H\d+$/.test(p.head)));

  const tb = JSON.parse(JSON.stringify(tableData(run))) as unknown;
  assert.ok(isTableData(tb) && tb.columns.familyVr && tb.columns.roles);
  assert.equal(tb.columns.familyVr.length, 48);
  assert.deepEqual(tb.columns.roles[run.rowOf[e.layer * 16 + e.neuron]!][0], 'entropy');
});

test('malformed family columns and roles.json are ignored, not fatal', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'un-run-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await writeSyntheticRun({ dir, nLayers: 2, dMlp: 4, k: 0, partners: false });
  // Right names, wrong types or values: numbers where text belongs and the reverse, unknown roles,
  // a bad head name, hits that are not 0/1.
  const { readNeuronArrow } = await import('../../src/engine/run/neurons');
  const base = await readNeuronArrow(join(dir, 'neurons.arrow'));
  const cols: Record<string, Float64Array | Int32Array | string[]> = {};
  for (const [k, v] of base.columns) cols[k] = k === 'layer' || k === 'neuron' ? Int32Array.from(v) : v;
  cols.family = ['unigram', 'unexplained', 'position', 'syntax', 'semantic', 'alphabet', 'unexplained', 'unigram'];
  cols.family_label = new Float64Array(8).fill(1);
  cols.family_vr = Array(8).fill('high');
  cols.role = ['prediction', 'wizard', '', 'entropy', '', '', '', ''];
  cols.roles = ['prediction,partition', 'wizard,suppression', '', 'entropy,entropy', '', '', '', ''];
  cols.attn_head = ['L1.H0', 'head one', '', '', '', '', '', ''];
  cols.family_hits = ['10x', '', '', '', '', '', '', ''];
  writeFileSync(join(dir, 'neurons.arrow'), await arrowBytes(cols));
  writeFileSync(
    join(dir, 'roles.json'),
    JSON.stringify({
      entropy: [
        { layer: 1, neuron: 0, baseline: { lnScale: 1, entropy: 2, loss: 3 }, points: [{ value: 1, lnScale: 0.9, entropy: 2.1, loss: 3, dLoss: 0, dEntropy: 0.1 }, { value: 'x' }] },
        { layer: 9, neuron: 0, baseline: { lnScale: 1, entropy: 2, loss: 3 }, points: [] },
        { layer: 1, neuron: 1, points: [] },
      ],
      attention: [{ layer: 0, neuron: 0, head: 'L1.H0', score: 3, raw: 0.2 }, { layer: 0, neuron: 1, head: 'nope', score: 3, raw: 0 }, 'junk'],
    }),
  );
  const run = await loadRun(dir);
  assert.equal(run.familyLabel, null, 'a numeric family_label is not a label column');
  assert.equal(run.columns.get('family_vr'), undefined, 'a text family_vr is not a number column');
  assert.deepEqual(run.roles!.slice(0, 4), [['prediction', 'partition'], ['suppression'], [], ['entropy']]);
  assert.deepEqual(run.attnHead!.slice(0, 2), ['L1.H0', null]);
  assert.equal(run.familyHits![0], null);
  assert.match(run.rolesFile?.note ?? '', /5 malformed entries skipped/);
  const nd = neuronData(run, { layer: 1, neuron: 0 });
  assert.ok(isNeuronData(JSON.parse(JSON.stringify(nd))));
  assert.deepEqual(nd.entropy?.points.map((p) => p.value), [1]);
  assert.equal(nd.explanation, undefined, 'no usable label, VR or MI column');
  assert.ok(nd.notes.some((n) => /roles\.json/.test(n)));
  assert.deepEqual(neuronData(run, { layer: 0, neuron: 0 }).attention, [{ head: 'L1.H0', score: 3, raw: 0.2 }]);
  assert.ok(isOverviewData(JSON.parse(JSON.stringify(overviewData(run)))));
  assert.ok(isTableData(JSON.parse(JSON.stringify(tableData(run)))));

  writeFileSync(join(dir, 'roles.json'), '{"entropy": [');
  const again = await loadRun(dir);
  assert.match(again.rolesFile?.note ?? '', /not valid JSON/);
  assert.equal(neuronData(again, { layer: 1, neuron: 0 }).entropy, undefined);
});

test('a run with only the family column (before labels and roles) opens as before', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'un-run-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await writeSyntheticRun({ dir, nLayers: 2, dMlp: 8, k: 3, families: 'family-only' });
  const run = await loadRun(dir);
  assert.ok(run.family && !run.familyLabel && !run.roles && !run.rolesFile);
  const nd = neuronData(run, { layer: 1, neuron: 3 });
  assert.ok('family' in nd);
  for (const k of ['explanation', 'roles', 'attention', 'entropy'] as const) assert.equal(nd[k], undefined, k);
  assert.ok(nd.examples.every((x) => x.carriesLabel === undefined));
  const ov = overviewData(run);
  assert.ok(ov.familyLayers && ov.roles === null && ov.attention === null);
  assert.ok(isOverviewData(JSON.parse(JSON.stringify(ov))) && isTableData(JSON.parse(JSON.stringify(tableData(run)))));
});

test('basis.json (top-5 PCA share per layer) reaches the overview; absent or malformed: "not in this run"', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'un-run-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await writeSyntheticRun({ dir, nLayers: 2, dMlp: 8, k: 3 });
  const before = overviewData(await loadRun(dir));
  assert.deepEqual(before.basis.map((b) => b.pcaTop5), [null, null]);
  assert.equal(before.properties.stats.length + before.properties.missing.length, 13);
  const { writeBasis, readBasis } = await import('../../src/engine/run/basis');
  writeBasis(dir, [
    { layer: 0, tokens: 10, totalVariance: 2, eigenvalues: [1, 0.2, 0.1, 0.05, 0.05], topShare: 0.7 },
    { layer: 1, tokens: 10, totalVariance: 0, eigenvalues: [0, 0, 0, 0, 0], topShare: NaN },
  ], 5);
  assert.deepEqual(readBasis(dir, 2), { topShare: [0.7, null], top: 5 });
  const ov = JSON.parse(JSON.stringify(overviewData(await loadRun(dir))));
  assert.ok(isOverviewData(ov));
  assert.deepEqual(ov.basis.map((b: { pcaTop5: number | null }) => b.pcaTop5), [0.7, null]);
  writeFileSync(join(dir, 'basis.json'), '{"top": 5, "layers": [{"layer": 0, "top_share": 7}]}');
  const bad = readBasis(dir, 2);
  assert.deepEqual(bad?.topShare, [null, null]);
  assert.match(bad?.note ?? '', /basis\.json: layer 0: top_share 7 is not a share in \[0, 1\]/);
});
