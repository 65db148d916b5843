// The CLI on GPT-NeoX checkpoints, as a user runs it (a child process through tsx): `activations
// --model DIR` on a NeoX fixture, and `analyze` on two random-weight NeoX seeds
// (tools/random_neox.ts) over the held-out text, with and without families, then the neuron
// interventions on that run (What it does, intervene --run), plus the refusals that concern
// architectures.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tableFromIPC } from 'apache-arrow';
import { loadRun } from '../../src/engine/run/data';
import { openModel } from '../../src/engine/runtime';
import { EffectRunner } from '../../src/extension/neuronEffect';
import { isToWebview } from '../../src/protocol';
import { writeRandomNeox } from '../../tools/random_neox';

const ROOT = resolve(__dirname, '..', '..');
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const CORPUS = join(ROOT, 'models', 'corpus', 'heldout.jsonl');
const tmp = mkdtempSync(join(tmpdir(), 'un-neox-an-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('activations --model on a GPT-NeoX folder: BOS <|endoftext|> id 0, UTF-16 ranges, the JSON dump', () => {
  const json = join(tmp, 'acts.json');
  const r = cli('activations', '--model', join(ROOT, 'test', 'fixtures', 'neox-14m'), '--text', 'Hello  world, cafe\u0301!', '--top', '3', '--threads', '1', '--json', json);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /2 layers x 512 neurons/);
  assert.match(r.out, /^\s*0\s+"<\|endoftext\|>"\s+0\s+0-0\s+L\d\.N\d+=/m);
  assert.match(r.out, /"  "\s+480\s+5-7/); // the added two-space token, as one token over its two characters
  const dump = JSON.parse(readFileSync(json, 'utf8')) as { tokens: { id: number; start: number; end: number }[]; hook_post: number[][][] };
  assert.equal(dump.tokens[0]!.id, 0);
  assert.equal(dump.tokens.at(-1)!.end, 'Hello  world, cafe\u0301!'.length, 'ranges end at the original (un-normalized) text\'s end');
  assert.equal(dump.hook_post.length, 2);
  assert.equal(dump.hook_post[0]![0]!.length, 512);
});

describe('analyze on two GPT-NeoX seeds', () => {
  const seeds = [join(tmp, 'neox-seed-1'), join(tmp, 'neox-seed-2')];
  before(() => seeds.forEach((d, i) => writeRandomNeox(d, i + 1)));

  test('runs with --no-families and writes the run folder (weight statistics of the GPT-NeoX reference included)', () => {
    const out = join(tmp, 'run');
    const r = cli('analyze', '--models', ...seeds, '--corpus', CORPUS, '--tokens', '1024', '--no-families', '--threads', '1', '--out', out);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /reference neox-seed-1 \(3 layers x 192 neurons\) vs neox-seed-2/);
    assert.match(r.out, /^all\s+576\s+\d+/m);
    // BOS (<|endoftext|>, id 0 here) and "\n" are left out of the statistics, as for GPT-2.
    const kept = Number(/\(([\d,]+) kept for statistics\)/.exec(r.out)![1]!.replace(/,/g, ''));
    assert.ok(kept > 0 && kept <= 1024 - 32, `${kept} kept`);
    for (const f of ['manifest.json', 'neurons.arrow', 'universal.csv', 'partners.arrow', 'vocab.arrow']) assert.ok(existsSync(join(out, f)), f);
    const table = tableFromIPC(new Uint8Array(readFileSync(join(out, 'neurons.arrow'))));
    assert.equal(table.numRows, 576);
    for (const col of ['w_in_norm', 'w_out_norm', 'vocab_kurt', 'max_corr']) {
      const v = table.getChild(col)!.toArray() as Float64Array;
      assert.ok(v.every((x) => Number.isFinite(x)) && v.some((x) => x !== 0), col);
    }
  });

  test('families, roles and the entropy intervention run on GPT-NeoX, and families label neurons from Pythia tokens', () => {
    const out = join(tmp, 'run-families');
    const r = cli('analyze', '--models', ...seeds, '--corpus', CORPUS, '--tokens', '1024', '--threads', '1', '--out', out);
    assert.equal(r.code, 0, r.err);
    for (const f of ['families.arrow', 'roles.json']) assert.ok(existsSync(join(out, f)), f);
    const table = tableFromIPC(new Uint8Array(readFileSync(join(out, 'neurons.arrow'))));
    const family = (table.getChild('family')!.toArray() as (string | null)[]).filter((x) => x);
    assert.ok(family.length > 0, 'some neuron gets a family label');
    const roles = JSON.parse(readFileSync(join(out, 'roles.json'), 'utf8')) as {
      entropy: { baseline: { loss: number } }[];
      attention: { head: string }[];
      attentionQuery: { positions: number[]; rotaryDims: number };
    };
    // Rotary keys: the attention score is the mean over the query positions of the run's rows
    // (32 tokens, neox-tiny-seq's context).
    assert.deepEqual(roles.attentionQuery.positions, [1, 31]);
    assert.ok(roles.attentionQuery.rotaryDims > 0);
    assert.ok(roles.entropy.length > 0 && roles.entropy.every((e) => Number.isFinite(e.baseline.loss)), 'the entropy intervention ran');
    assert.ok(roles.attention.length > 0 && roles.attention.every((p) => /^L[12]\.H\d+$/.test(p.head)), 'attention pairs name later heads');
  });

  test("neuron interventions on the NeoX run: What it does from its stored contexts and means, and intervene --run's means", async () => {
    const out = join(tmp, 'run-families'); // written by the test above
    const run = await loadRun(out);
    assert.equal(run.modelDir, seeds[0]);
    const model = await openModel(run.modelDir!, { threads: 1 });
    const runner = new EffectRunner({ use: async (_dir, _threads, fn) => fn(undefined as never, model) }, () => 1);
    try {
      const j = [...run.rowOf.keys()].find((c) => run.rowOf[c]! >= 0 && c >= run.dMlp)!; // a layer-1 neuron with contexts
      const ref = { layer: Math.floor(j / run.dMlp), neuron: j % run.dMlp };
      const d = await runner.measure(run, ref, { cancelled: false }, () => undefined);
      assert.ok(isToWebview({ type: 'effect', layer: ref.layer, neuron: ref.neuron, state: 'done', data: d }), 'the webview guard rejects the payload');
      assert.deepEqual(d.ablations.map((a) => [a.kind, a.hook]), [['zero', 'post'], ['mean', 'pre']]);
      assert.ok(d.contexts > 0 && d.ablations.every((a) => Number.isFinite(a.meanDeltaLoss) && a.up.length > 0));
    } finally {
      runner.dispose();
      await model.close();
    }
    const json = join(tmp, 'neox-iv.json');
    const r = cli('intervene', '--model', seeds[0]!, '--text', 'The cat sat on the mat.', '--neuron', 'L1.N7,L2.N3', '--mode', 'mean', '--hook', 'pre', '--run', out, '--threads', '1', '--json', json);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /means \(the run's corpus means\): L1\.N7=-?\d+\.\d{4} L2\.N3=/);
    const doc = JSON.parse(readFileSync(json, 'utf8')) as { tokens: { id: number }[]; delta: { loss: number[] } };
    assert.equal(doc.tokens[0]!.id, 0);
    assert.ok(doc.delta.loss.some((x) => Math.abs(x) > 0), 'the mean ablation moves the loss');
  });

  test('a GPT-2 and a GPT-NeoX model in one analysis are refused, naming both folders and their model_type', () => {
    const r = cli('analyze', '--models', seeds[0]!, join(ROOT, 'test', 'fixtures', 'gpt2-tiny-relu'), '--corpus', CORPUS, '--tokens', '1024', '--no-families', '--threads', '1', '--out', join(tmp, 'mixed'));
    assert.notEqual(r.code, 0);
    assert.match(r.err, /models .*neox-seed-1 and .*gpt2-tiny-relu differ in architecture \(model_type gpt_neox vs gpt2 in their config\.json/);
  });
});
