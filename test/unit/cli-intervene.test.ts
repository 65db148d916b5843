// `universal-neurons intervene` (#16 item 4) as a user runs it: `node dist/cli.js ...` (test/run.mjs
// builds dist/ first) on the gpt2-tiny-crfm fixture, whose 32-token context makes a long text run
// in windows. The numbers themselves are checked against torch in intervene.test.ts; here: the
// argument parsing, the table, the --json document, and that both equal the engine API's result.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseCli, UsageError } from '../../src/cli/args';
import { openIntervener } from '../../src/engine/intervene';
import { openModel } from '../../src/engine/runtime';

const ROOT = resolve(__dirname, '..', '..');
const CLI = join(ROOT, 'dist', 'cli.js');
const MODEL = join(ROOT, 'test', 'fixtures', 'gpt2-tiny-crfm');
const TEXT = 'The cat sat on the mat, and the hat sat on the cat. Then the dog came in and sat on the hat, so the cat left the room and went out into the garden.';

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('intervene: arguments', () => {
  test('parses neurons, modes, hook, range and top', () => {
    assert.deepEqual(parseCli(['intervene', '--model', 'm', '--text', 'hi', '--neuron', 'L3.N120,L1.N5', '--mode', 'fix=2.5', '--tokens', '2:7', '--hook', 'pre', '--top', '3', '--json', 'o.json']), {
      kind: 'intervene',
      model: 'm',
      text: 'hi',
      file: undefined,
      neurons: [
        { layer: 3, neuron: 120 },
        { layer: 1, neuron: 5 },
      ],
      mode: { kind: 'fix', value: 2.5 },
      hook: 'pre',
      tokens: { start: 2, end: 7 },
      top: 3,
      json: 'o.json',
      threads: 0,
    });
    const d = parseCli(['intervene', '--model', 'm', '--file', 'f.txt', '--neuron', 'L0.N0', '--mode', 'scale=-1']);
    assert.ok(d.kind === 'intervene');
    assert.deepEqual([d.mode, d.hook, d.top, d.tokens], [{ kind: 'scale', factor: -1 }, 'post', 5, undefined]);
    assert.deepEqual((parseCli(['intervene', '--model', 'm', '--text', 'x', '--neuron', 'L0.N0', '--mode', 'zero', '--tokens', '4:']) as { tokens: unknown }).tokens, {
      start: 4,
      end: undefined,
    });
  });

  test('usage errors name the flag', () => {
    const base = ['intervene', '--model', 'm', '--text', 'x'];
    for (const [args, pattern] of [
      [['intervene', '--text', 'x', '--neuron', 'L0.N0', '--mode', 'zero'], /needs --model/],
      [['intervene', '--model', 'm', '--neuron', 'L0.N0', '--mode', 'zero'], /exactly one of --text/],
      [[...base, '--mode', 'zero'], /needs --neuron/],
      [[...base, '--neuron', 'L0.N0'], /needs --mode/],
      [[...base, '--neuron', 'N5', '--mode', 'zero'], /--neuron: "N5" is not a neuron/],
      [[...base, '--neuron', 'L0.N0', '--mode', 'fix=nan'], /--mode: .*finite/],
      [[...base, '--neuron', 'L0.N0', '--mode', 'scale='], /--mode: .*finite/],
      [[...base, '--neuron', 'L0.N0', '--mode', 'drop'], /--mode: unknown intervention mode "drop"/],
      [[...base, '--neuron', 'L0.N0', '--mode', 'zero', '--hook', 'mid'], /--hook must be pre or post/],
      [[...base, '--neuron', 'L0.N0', '--mode', 'zero', '--tokens', '1-3'], /--tokens: .*not A:B/],
      [[...base, '--neuron', 'L0.N0', '--mode', 'zero', '--top', '0'], /--top/],
      [[...base, '--neuron', 'L0.N0', '--mode', 'zero', '--corpus', 'c'], /intervene does not take --corpus/],
      [[...base, '--neuron', 'L0.N0', '--mode', 'zero', '--run', 'r'], /--run gives the means of --mode mean/],
    ] as const) {
      assert.throws(() => parseCli([...args]), (e: unknown) => e instanceof UsageError && pattern.test(e.message), args.join(' '));
    }
  });
});

describe('intervene: the CLI', () => {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'un-cli-iv-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  test('the table and --json agree with the engine, BOS as token 0, windows said', async () => {
    const json = join(tmp, 'iv.json');
    const r = cli('intervene', '--model', MODEL, '--text', TEXT, '--neuron', 'L1.N13,L2.N40', '--mode', 'fix=3', '--tokens', '2:20', '--top', '3', '--json', json, '--threads', '1');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(readFileSync(json, 'utf8'));
    assert.deepEqual(Object.keys(doc), ['model', 'neurons', 'mode', 'hook', 'range', 'windows', 'n_positions', 'tokens', 'clean', 'intervened', 'delta', 'top_change']);
    assert.deepEqual([doc.neurons, doc.mode, doc.hook, doc.range], [['L1.N13', 'L2.N40'], 'fix=3', 'post', [2, 20]]);
    const n = doc.tokens.length;
    assert.ok(n > 32 && doc.windows === 2, `a ${n}-token text runs as ${doc.windows} windows`);
    assert.deepEqual(doc.tokens[0], { id: 50256, text: '<|endoftext|>', start: 0, end: 0 });
    for (let t = 1; t < n; t++) assert.equal(TEXT.slice(doc.tokens[t].start, doc.tokens[t].end), doc.tokens[t].text);
    for (const side of ['clean', 'intervened']) {
      assert.deepEqual(Object.keys(doc[side]), ['loss', 'entropy', 'ln_scale', 'top']);
      assert.equal(doc[side].loss.length, n - 1);
      assert.equal(doc[side].entropy.length, n);
      assert.equal(doc[side].top.length, n);
      assert.deepEqual(Object.keys(doc[side].top[0][0]), ['id', 'text', 'p']);
      assert.equal(doc[side].top[0].length, 3);
    }

    // The engine API on the same input gives the same numbers.
    const model = await openModel(MODEL, { threads: 1 });
    const iv = await openIntervener(model, { threads: 1 });
    try {
      const res = await iv.run(TEXT, { neurons: [{ layer: 1, neuron: 13 }, { layer: 2, neuron: 40 }], mode: { kind: 'fix', value: 3 }, tokens: { start: 2, end: 20 } }, { topK: 3 });
      assert.deepEqual(doc.clean.loss, res.clean.loss);
      assert.deepEqual(doc.intervened.loss, res.intervened.loss);
      assert.deepEqual(doc.intervened.entropy, res.intervened.entropy);
      assert.deepEqual(doc.delta.loss, res.delta.loss);
      assert.deepEqual(
        doc.top_change[5].map((x: { id: number }) => x.id),
        res.topChange[5]!.map((x) => x.id),
      );
    } finally {
      await iv.close();
      await model.close();
    }

    const lines = r.out.split('\n');
    assert.match(lines[0]!, /gpt2-tiny-crfm: 3 layers x 64 neurons, \d+ tokens \(BOS first\), run as 2 windows of at most 32 tokens/);
    assert.equal(lines[1], 'intervention: fix=3 on L1.N13, L2.N40 at hook_post, tokens 2:20 (marked *)');
    const rows = lines.filter((l) => /^\s*\d+[* ]\s+"/.test(l));
    assert.equal(rows.length, n);
    rows.forEach((l, i) => {
      const m = /^\s*(\d+)([* ])\s+("(?:[^"\\]|\\.)*")\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)/.exec(l)!;
      assert.equal(Number(m[1]), i);
      assert.equal(m[2] === '*', i >= 2 && i < 20, `range mark of token ${i}`);
      assert.equal(JSON.parse(m[3]!), doc.tokens[i].text);
      if (i < n - 1) {
        assert.equal(m[5], doc.clean.loss[i].toFixed(3));
        assert.equal(m[6], doc.intervened.loss[i].toFixed(3));
      } else assert.deepEqual([m[5], m[6], m[7]], ['-', '-', '-']);
    });
    assert.match(r.out, /mean loss over the \d+ predicted tokens: clean \d+\.\d{4}, intervened \d+\.\d{4} \(Δ [+-]\d+\.\d{4} nats\)/);
    assert.match(r.out, /\nwrote .*iv\.json\n$/);
    assert.deepEqual(readdirSync(tmp).filter((f) => f.endsWith('.tmp')), [], 'temp file left behind');
  });

  test("mean: the prompt's own, said so; bad neurons and ranges: exit 1 with a clear line", () => {
    const mean = cli('intervene', '--model', MODEL, '--text', 'Hello world', '--neuron', 'L0.N3', '--mode', 'mean', '--hook', 'pre', '--threads', '1');
    assert.equal(mean.code, 0, mean.err);
    assert.match(mean.out, /means \(this prompt's own, over its tokens but BOS; no run statistics given\): L0\.N3=-?\d+\.\d{4}/);
    for (const [args, pattern] of [
      [['--neuron', 'L3.N0', '--mode', 'zero'], /L3\.N0: layer 3 is outside this model's layers 0\.\.2/],
      [['--neuron', 'L0.N64', '--mode', 'zero'], /L0\.N64 is outside this model's neurons 0\.\.63/],
      [['--neuron', 'L0.N1', '--mode', 'zero', '--tokens', '1:9'], /token range 1:9 ends past the prompt's 3 tokens/],
    ] as const) {
      const r = cli('intervene', '--model', MODEL, '--text', 'Hello world', '--threads', '1', ...args);
      assert.equal(r.code, 1, r.err);
      assert.equal(r.out, '');
      assert.match(r.err, /^universal-neurons: error: .+\n$/);
      assert.match(r.err, pattern);
    }
    const usage = cli('intervene', '--model', MODEL, '--text', 'x', '--neuron', 'L0.N0', '--mode', 'fix=inf');
    assert.equal(usage.code, 2);
    assert.match(usage.err, /^universal-neurons: --mode: fix=inf: the value must be a finite number\nTry 'universal-neurons --help'\.\n$/);
  });

  test("--run: the means are the run's statistics (hook_pre); hook_post is refused", async () => {
    const demo = join(ROOT, 'models', 'demo-run');
    const json = join(tmp, 'run-means.json');
    const args = ['intervene', '--model', join(ROOT, 'models', 'tiny-gpt2-a'), '--text', 'The cat sat.', '--neuron', 'L1.N100,L2.N7', '--mode', 'mean', '--run', demo, '--threads', '1'];
    const r = cli(...args, '--hook', 'pre', '--json', json);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /means \(the run's corpus means\): L1\.N100=-?\d+\.\d{4} L2\.N7=/);
    const doc = JSON.parse(readFileSync(json, 'utf8'));
    const { openRunView } = await import('../../src/engine/run/view');
    const view = await openRunView(demo);
    const want = [[1, 100], [2, 7]].map(([l, n]) => view.columns['mean_exact']![view.rowIndex.get(l! * view.reference.dMlp + n!)!]!);
    assert.equal(doc.mean_source, 'given');
    assert.ok(Math.abs(doc.means[0] - want[0]!) < 1e-6 && Math.abs(doc.means[1] - want[1]!) < 1e-6, `${doc.means} vs ${want}`);
    const post = cli(...args);
    assert.equal(post.code, 1);
    assert.match(post.err, /holds each neuron's hook_pre mean only/);
  });

  test('GPT-NeoX (#15): the same document on neox-14m, BOS id 0, windows, and equal to the engine API', async () => {
    const neox = join(ROOT, 'test', 'fixtures', 'neox-14m');
    const json = join(tmp, 'neox.json');
    const r = cli('intervene', '--model', neox, '--text', TEXT, '--neuron', 'L0.N37,L1.N5', '--mode', 'zero', '--top', '3', '--json', json, '--threads', '1');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(readFileSync(json, 'utf8'));
    assert.deepEqual(doc.tokens[0], { id: 0, text: '<|endoftext|>', start: 0, end: 0 });
    assert.ok(doc.windows > 1, `${doc.tokens.length} tokens in a 32-token context`);
    for (let t = 1; t < doc.tokens.length; t++) assert.equal(TEXT.slice(doc.tokens[t].start, doc.tokens[t].end), doc.tokens[t].text);
    assert.match(r.out.split('\n')[0]!, /neox-14m: 2 layers x 512 neurons, \d+ tokens \(BOS first\), run as \d+ windows/);
    const model = await openModel(neox, { threads: 1 });
    const iv = await openIntervener(model, { threads: 1 });
    try {
      const res = await iv.run(TEXT, { neurons: [{ layer: 0, neuron: 37 }, { layer: 1, neuron: 5 }], mode: { kind: 'zero' } }, { topK: 3 });
      assert.deepEqual(doc.intervened.loss, res.intervened.loss);
      assert.deepEqual(doc.delta.loss, res.delta.loss);
      assert.ok(res.delta.loss.some((d) => Math.abs(d) > 1e-3), 'the ablation moves the loss');
    } finally {
      await iv.close();
      await model.close();
    }
  });

  test('--help lists intervene', () => {
    const r = cli('--help');
    assert.equal(r.code, 0);
    assert.match(r.out, /universal-neurons intervene --model DIR \(--text T \| --file F\) --neuron L3\.N120/);
    assert.match(r.out, /Options of intervene:/);
  });
});
