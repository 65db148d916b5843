// Training checkpoints (issue #15): hub cache revisions (`ENTRY@REV`) on a temp cache laid out as
// huggingface_hub lays it out, the checks of a development run, and a development run on real
// checkpoints: test/fixtures/checkpoints holds steps 50–800 of one seed trained by the family's
// recipe (tools/train_family.py --save-steps, command in its docstring).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runAnalysis } from '../../src/engine/analysis/pipeline';
import { defaultPlan } from '../../src/engine/analysis/plan';
import { resolveModelDir, resolveRevision, revisionOf } from '../../src/engine/checkpoint';
import { checkDevelopment, summarizeDevelopment } from '../../src/engine/development';
import { loadRun } from '../../src/engine/run/data';
import { readManifest } from '../../src/engine/run/manifest';
import { runDevelopment } from '../../src/cli/development';
import { neuronData } from '../../src/view/payloads';
import { NeuronDataSchema } from '../../src/protocol';
import { problem } from '../../src/schema';

const ROOT = resolve(__dirname, '..', '..');
const SHIPPED = join(ROOT, 'models', 'tiny-gpt2-a');
const ENTRY = join(ROOT, 'test', 'fixtures', 'checkpoints', 'models--local--tiny-gpt2-a');
const STEPS = [50, 100, 200, 400];
const FINAL = 800;
// The entry alone is its main, the last step (refs/main and refs/step800 name one commit).
const FINAL_PATH = ENTRY;
const FINAL_LABEL = 'tiny-gpt2-a@main';
const FINAL_REV = 'main';
const HELDOUT = join(ROOT, 'models', 'corpus', 'heldout.tokens.bin');
const tmp = fs.mkdtempSync(join(tmpdir(), 'un-dev-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A hub cache entry: each revision a snapshot of the shipped model's files (linked), its config optionally edited. */
function hubEntry(name: string, revs: Record<string, { commit: string; config?: (c: Record<string, unknown>) => void }>, extraSnapshots: string[] = []): string {
  const entry = join(tmp, `models--org--${name}`);
  for (const [ref, { commit, config }] of Object.entries(revs)) {
    const snap = join(entry, 'snapshots', commit);
    fs.mkdirSync(snap, { recursive: true });
    for (const f of ['model.safetensors', 'tokenizer.json']) if (!fs.existsSync(join(snap, f))) fs.symlinkSync(join(SHIPPED, f), join(snap, f));
    const cfg = JSON.parse(fs.readFileSync(join(SHIPPED, 'config.json'), 'utf8')) as Record<string, unknown>;
    config?.(cfg);
    fs.writeFileSync(join(snap, 'config.json'), JSON.stringify(cfg));
    fs.mkdirSync(join(entry, 'refs'), { recursive: true });
    fs.writeFileSync(join(entry, 'refs', ref), commit);
  }
  for (const c of extraSnapshots) fs.mkdirSync(join(entry, 'snapshots', c), { recursive: true });
  return entry;
}

const C1 = 'a'.repeat(40);
const C2 = 'b'.repeat(40);
const C3 = 'c'.repeat(40);
const C4 = 'd'.repeat(40);

describe('hub cache revisions', () => {
  let entry: string;
  before(() => {
    entry = hubEntry('m', { step10: { commit: C1 }, step20: { commit: C2 }, main: { commit: C2 } });
  });

  test('ENTRY@REV resolves refs/REV to its snapshot; a commit or a prefix of 7+ also', () => {
    assert.equal(resolveModelDir(`${entry}@step10`), join(entry, 'snapshots', C1));
    assert.equal(resolveModelDir(`${entry}@step20`), join(entry, 'snapshots', C2));
    assert.equal(resolveModelDir(`${entry}@${C1}`), join(entry, 'snapshots', C1));
    assert.equal(resolveModelDir(`${entry}@${C1.slice(0, 8)}`), join(entry, 'snapshots', C1));
    assert.equal(resolveModelDir(entry), join(entry, 'snapshots', C2), 'the entry alone is its main');
  });

  test('what the manifest records: the ref given, its commit, every ref of that commit', () => {
    assert.deepEqual(revisionOf(`${entry}@step20`), { dir: join(entry, 'snapshots', C2), revision: 'step20', commit: C2, refs: ['step20', 'main'] });
    assert.deepEqual(revisionOf(entry), { dir: join(entry, 'snapshots', C2), revision: 'main', commit: C2, refs: ['step20', 'main'] });
    assert.equal(revisionOf(SHIPPED), undefined, 'a plain folder has no revision');
  });

  test('a revision not in the cache is refused with those that are', () => {
    assert.throws(() => resolveModelDir(`${entry}@step15`), (e: Error) => {
      assert.match(e.message, /revision step15 of .*models--org--m is not in the cache/);
      assert.match(e.message, /revisions step10, step20, main/);
      assert.match(e.message, /huggingface-cli download org\/m --revision step15/);
      return true;
    });
    const dangling = hubEntry('dangling', { step1: { commit: C1 } });
    fs.writeFileSync(join(dangling, 'refs', 'step2'), C3);
    assert.throws(() => resolveModelDir(`${dangling}@step2`), /names commit c{40}, whose snapshot is not in the cache/);
    assert.throws(() => resolveRevision(SHIPPED, 'step1'), /is not a Hugging Face hub cache entry .* has no revisions/);
  });
});

describe('development run checks', () => {
  test('checkpoints of different architectures are refused, naming both config.json files and the field', () => {
    const entry = hubEntry('arch', { step10: { commit: C1, config: (c) => (c.n_inner = 256) }, main: { commit: C2 } });
    assert.throws(() => checkDevelopment(entry, [`${entry}@step10`]), (e: Error) => {
      assert.match(e.message, /different architectures: d_mlp \(n_inner \/ intermediate_size\) is 512 in .*snapshots\/b{40}\/config\.json and 256 in .*snapshots\/a{40}\/config\.json/);
      return true;
    });
  });

  test('an earlier checkpoint needs a step, comes before the final, and is not the final itself', () => {
    const entry = hubEntry('steps', { step10: { commit: C1 }, step30: { commit: C3 }, main: { commit: C2 }, step20: { commit: C2 }, best: { commit: C4 } });
    assert.throws(() => checkDevelopment(entry, [`${entry}@best`]), /has no training step: give it as a hub cache revision named stepN/);
    assert.throws(() => checkDevelopment(entry, [`${entry}@step30`]), /step 30\) is not earlier than the final checkpoint .* \(step 20\)/);
    assert.throws(() => checkDevelopment(entry, [`${entry}@step20`]), /is the final checkpoint itself/);
    assert.throws(() => checkDevelopment(entry, []), /at least one earlier checkpoint/);
    assert.deepEqual(checkDevelopment(entry, [`${entry}@step10`]), [entry, `${entry}@step10`]);
  });
});

describe('a development run on real checkpoints of the family recipe', () => {
  const out = join(tmp, 'dev');
  const lines: string[] = [];
  before(async () => {
    await runDevelopment(
      { kind: 'development', final: FINAL_PATH, checkpoints: STEPS.map((s) => `${ENTRY}@step${s}`), corpus: [HELDOUT], tokens: 128 * 64, out, threads: 1 },
      (l) => lines.push(l),
      () => {},
      { cancelled: false },
      true,
    );
  });

  test('the manifest records each revision, commit and step', () => {
    const m = readManifest(out);
    assert.deepEqual(
      m.models.map((x) => [x.label, x.revision, x.step]),
      [[FINAL_LABEL, FINAL_REV, FINAL], ...STEPS.map((s) => [`tiny-gpt2-a@step${s}`, `step${s}`, s])],
    );
    for (const x of m.models) assert.equal(x.dir, join(ENTRY, 'snapshots', x.commit!));
  });

  test('correlation with the final neurons rises with the step', async () => {
    const run = await loadRun(out);
    assert.ok(run.development, run.developmentNote);
    const rows = summarizeDevelopment(run.development, run.partners!);
    assert.deepEqual(rows.map((r) => r.step), STEPS);
    for (const r of rows) assert.equal(r.neurons, run.layer.length);
    for (let i = 1; i < rows.length; i++) assert.ok(rows[i]!.mean > rows[i - 1]!.mean, `mean max corr at step ${rows[i]!.step} (${rows[i]!.mean}) > step ${rows[i - 1]!.step} (${rows[i - 1]!.mean})`);
    assert.ok(rows[rows.length - 1]!.above05 > rows[0]!.above05);
    const printed = lines.join('\n');
    for (const r of rows) assert.match(printed, new RegExp(`^\\s+${r.step}\\s+tiny-gpt2-a@step${r.step}\\s+${r.mean.toFixed(3)}`, 'm'));
  });

  test('the neuron page carries the development series, the final (itself) last at 1', async () => {
    const run = await loadRun(out);
    const d = neuronData({ ...run, examples: null }, { layer: 1, neuron: 7 }, () => {
      throw new Error('not read');
    })!;
    assert.equal(problem(NeuronDataSchema, d), undefined, 'the payload passes the protocol');
    const pts = d.development!.points;
    assert.deepEqual(pts.map((p) => p.step), [...STEPS, FINAL]);
    assert.equal(pts[pts.length - 1]!.corr, 1);
    const p = run.partners![run.rowOf[1 * run.dMlp + 7]!]!.find((x) => x.model === `tiny-gpt2-a@step${STEPS[STEPS.length - 1]}`)!;
    assert.equal(pts[STEPS.length - 1]!.corr, p.corr);
    assert.deepEqual(pts[STEPS.length - 1]!.partner, { layer: p.layer, neuron: p.neuron });
  });

  test('the final checkpoint against itself (main and step800 are one commit): every neuron its own partner at 1', async () => {
    const r = await runAnalysis({
      models: [FINAL_PATH, `${ENTRY}@step${FINAL}`],
      corpus: [HELDOUT],
      tokens: 128 * 16,
      out: join(tmp, 'self'),
      threads: 1,
      plan: defaultPlan({ families: { enabled: false } }),
    });
    const run = await loadRun(r.runDir);
    for (let row = 0; row < run.layer.length; row++) {
      const p = run.partners![row]![0]!;
      // A dead neuron (constant over the tokens) has no correlation; every live one finds itself.
      if (!Number.isFinite(p.corr)) continue;
      assert.equal(`L${p.layer}.N${p.neuron}`, `L${run.layer[row]}.N${run.neuron[row]}`);
      assert.ok(Math.abs(p.corr - 1) < 1e-5, `L${p.layer}.N${p.neuron}: ${p.corr}`);
    }
  });
});
