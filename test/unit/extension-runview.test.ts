// The editor's reader of run folders (src/engine/run/view.ts): a complete run's table, universal
// flags, ranking and family grouping for the tree and picker (src/view/ranking.ts, counts.ts), the paper-schema CSV export, and the
// missing / incomplete / corrupt cases the editor offers to remove.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { listRuns, openRunView, paperCsv, rowOf } from '../../src/engine/run/view';
import { familyCounts } from '../../src/view/counts';
import { NO_FAMILY, rankByExcess, universalByLayerAndFamily } from '../../src/view/ranking';
import { RunError } from '../../src/engine/errors';
import { PAPER_COLUMNS } from '../../src/engine/run/neurons';
import { arrowBytes } from '../../src/engine/store';
import { familyOf, familySummary } from '../../src/view/rowFamily';

const base = mkdtempSync(join(tmpdir(), 'un-runview-'));
after(() => rmSync(base, { recursive: true, force: true }));

const L = 2;
const D = 4;

function manifest(id: string, status = 'complete') {
  return {
    format: 'universal-neurons/run@1',
    id,
    status,
    created: '2026-01-01T00:00:00Z',
    models: [
      { label: 'm-a', dir: '/x/m-a', nLayers: L, dMlp: D, nNeurons: L * D, nPositions: 8 },
      { label: 'm-b', dir: '/x/m-b', nLayers: L, dMlp: D, nNeurons: L * D, nPositions: 8 },
    ],
    settings: { threshold: 0.5 },
    progress: { batches_done: 1, batches_total: 1, tokens_done: 1234 },
  };
}

async function makeRun(name: string, opts: { family?: boolean; roles?: boolean; status?: string } = {}): Promise<string> {
  const dir = join(base, 'runs', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest(name, opts.status)));
  const n = L * D;
  const cols: Record<string, Float64Array | Int32Array | string[]> = {};
  for (const c of PAPER_COLUMNS) cols[c] = new Float64Array(n).map((_, i) => i / 10);
  cols.layer = Int32Array.from({ length: n }, (_, i) => Math.floor(i / D));
  cols.neuron = Int32Array.from({ length: n }, (_, i) => i % D);
  // excess: neuron 0 of each layer universal (0.9, 0.7), one NaN, the rest small.
  cols.excess_corr = Float64Array.from([0.9, 0.1, NaN, 0.6, 0.7, 0.2, 0.3, 0.55]);
  if (opts.family) cols.family = ['unigram', '', '', 'alphabet', 'unigram', '', '', ''];
  if (opts.roles) {
    cols.family = ['unigram', 'unexplained', 'unexplained', 'previous-token', 'position', 'unexplained', 'syntax', 'unexplained'];
    cols.family_label = ['unigram:the', 'pos:NOUN', '', 'prev:alphabet:t', 'position:<32', 'feature:numeric', 'pos:VERB', 'unigram:of'];
    cols.family_vr = Float64Array.from([0.62, 0.1, NaN, 0.4, 0.5, 0.05, 0.45, 0.2]);
    cols.role = ['prediction', '', '', 'entropy', '', 'wizard', '', 'suppression'];
    cols.roles = ['prediction,partition', '', '', 'entropy', '', 'wizard', '', 'suppression,attention-deactivation'];
  }
  writeFileSync(join(dir, 'neurons.arrow'), await arrowBytes(cols));
  return dir;
}

test('openRunView: table, universal flags from the threshold, lookups', async () => {
  const dir = await makeRun('r1', { family: true });
  const v = await openRunView(dir);
  assert.equal(v.id, 'r1');
  assert.equal(v.source, 'neurons.arrow');
  assert.equal(v.nRows, 8);
  assert.equal(v.reference.label, 'm-a');
  assert.equal(v.corpusTokens, 1234);
  assert.deepEqual([...v.universal], [1, 0, 0, 1, 1, 0, 0, 1]);
  assert.equal(rowOf(v, { layer: 1, neuron: 0 }), 4);
  assert.equal(rowOf(v, { layer: 1, neuron: 9 }), -1);
  assert.deepEqual(rankByExcess(v, 3), [0, 4, 3]);
  assert.deepEqual(rankByExcess(v, 10, true), [0, 4, 3, 7]);
  assert.equal(rankByExcess(v, 10).at(-1), 2, 'NaN ranks last');
  const groups = universalByLayerAndFamily(v);
  assert.deepEqual(groups, [
    { layer: 0, families: [{ family: 'alphabet', rows: [3] }, { family: 'unigram', rows: [0] }] },
    { layer: 1, families: [{ family: 'unigram', rows: [4] }, { family: NO_FAMILY, rows: [7] }] },
  ]);
  assert.deepEqual(familyCounts(v.family!, v.universal, { unassigned: NO_FAMILY, universalOnly: true }), [
    { family: 'unigram', neurons: 2, universal: 2 },
    { family: 'alphabet', neurons: 1, universal: 1 },
    { family: NO_FAMILY, neurons: 1, universal: 1 },
  ]);
  assert.deepEqual(listRuns(join(base, 'runs')).includes(dir), true);
});

test('paperCsv: the paper schema, in order; all or universal only', async () => {
  const v = await openRunView(await makeRun('r2'));
  const all = paperCsv(v, false).trim().split('\n');
  assert.equal(all[0], PAPER_COLUMNS.join(','));
  assert.equal(all.length, 9);
  const uni = paperCsv(v, true).trim().split('\n');
  assert.equal(uni.length, 5);
  assert.match(uni[1]!, /^0,0,/);
  assert.ok(uni[1]!.endsWith(',0.9'));
  // NaN is written empty, as pandas writes missing values.
  assert.ok(all[3]!.endsWith(','), all[3]);
});

test('problems: missing, incomplete, corrupt', async () => {
  const expectProblem = async (dir: string, problem: string, re: RegExp) => {
    await assert.rejects(openRunView(dir), (e: unknown) => {
      assert.ok(e instanceof RunError, String(e));
      assert.equal(e.problem, problem);
      assert.match(e.message, re);
      return true;
    });
  };
  await expectProblem(join(base, 'nope'), 'missing', /does not exist/);
  await expectProblem(await makeRun('r3', { status: 'cancelled' }), 'incomplete', /was cancelled/);
  const bad = join(base, 'runs', 'bad-json');
  mkdirSync(bad, { recursive: true });
  writeFileSync(join(bad, 'manifest.json'), '{"format": "universal-neu');
  await expectProblem(bad, 'corrupt', /not valid JSON/);
  const noTable = join(base, 'runs', 'no-table');
  mkdirSync(noTable, { recursive: true });
  writeFileSync(join(noTable, 'manifest.json'), JSON.stringify(manifest('no-table')));
  await expectProblem(noTable, 'corrupt', /neither neurons\.arrow nor universal\.csv/);
  const garbage = await makeRun('garbage');
  writeFileSync(join(garbage, 'neurons.arrow'), 'not arrow at all');
  await expectProblem(garbage, 'corrupt', /not an Arrow IPC file/);
  const outOfRange = await makeRun('oor');
  writeFileSync(join(outOfRange, 'neurons.arrow'), await arrowBytes({ layer: Int32Array.from([5]), neuron: Int32Array.from([0]), excess_corr: Float64Array.from([1]) }));
  await expectProblem(outOfRange, 'corrupt', /outside the reference model/);
  const empty = join(base, 'runs', 'empty');
  mkdirSync(empty, { recursive: true });
  await expectProblem(empty, 'corrupt', /no manifest\.json/);
});

test('universal.csv fallback: every row universal', async () => {
  const dir = join(base, 'runs', 'csv-only');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest('csv-only')));
  const row = PAPER_COLUMNS.map((c) => (c === 'layer' ? 1 : c === 'neuron' ? 2 : c === 'excess_corr' ? 0.8 : 0.1));
  writeFileSync(join(dir, 'universal.csv'), PAPER_COLUMNS.join(',') + '\n' + row.join(',') + '\n');
  const v = await openRunView(dir);
  assert.equal(v.source, 'universal.csv');
  assert.deepEqual([...v.universal], [1]);
  assert.equal(rowOf(v, { layer: 1, neuron: 2 }), 0);
});

test("family columns of a run view: a row's family, label, VR and roles for the hover, tree and picker", async () => {
  const v = await openRunView(await makeRun('r-fam', { roles: true }));
  assert.deepEqual(familyOf(v, 0), { family: 'unigram', familyLabel: 'unigram:the', familyVr: 0.62, roles: ['prediction', 'partition'] });
  assert.deepEqual(familyOf(v, 2), { family: 'unexplained', roles: [] }, 'empty label and NaN VR are absent');
  assert.deepEqual(familyOf(v, 5).roles, [], 'unknown role names are dropped');
  assert.deepEqual(familyOf(v, 7).roles, ['suppression', 'attention-deactivation']);
  assert.equal(familySummary(familyOf(v, 0)), 'unigram · token is “the” · prediction, partition');
  assert.equal(familySummary(familyOf(v, 3)), 'previous token · previous token is the letter t · entropy');
  assert.equal(familySummary(familyOf(v, 1)), 'unexplained', 'the best label of an unexplained neuron is not a summary');
  // Old runs: the family column alone, or nothing.
  const old = await openRunView(await makeRun('r-old', { family: true }));
  assert.deepEqual(familyOf(old, 0), { family: 'unigram' });
  assert.deepEqual(familyOf(old, 1), {});
  assert.equal(familySummary(familyOf(old, 1)), undefined);
  const bare = await openRunView(await makeRun('r-bare'));
  assert.deepEqual(familyOf(bare, 0), {});
});
