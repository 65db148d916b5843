// The CLI as a user runs it: `node dist/cli.js ...` (test/run.mjs builds dist/ first), on a toy
// GPT-2 checkpoint written by the test, through the real engine and onnxruntime.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { shippedFamily } from '../../src/locate';
import { TOY, writeToyCheckpoint } from '../e2e/toy-checkpoint';

const ROOT = resolve(__dirname, '..', '..');
const CLI = join(ROOT, 'dist', 'cli.js');
const TEXT = 'The cat sat on the mat, and the hat sat on the cat.';

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Table rows: index, JSON token text, id, start-end, neurons. */
const ROW = /^\s*(\d+)\s+("(?:[^"\\]|\\.)*")\s+(\d+)\s+(\d+)-(\d+)\s+(.*)$/;
const NEURON = /L(\d+)\.N(\d+)=(-?\d+\.\d{3})/g;

const geluNew = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

describe('universal-neurons CLI', () => {
  let tmp: string;
  let model: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'un-cli-'));
    model = writeToyCheckpoint(join(tmp, 'toy-gpt2'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  test('--help prints usage and exits 0', () => {
    const r = cli('--help');
    assert.equal(r.code, 0);
    assert.match(r.out, /Usage:\n(\s+universal-neurons .*\n)*\s+universal-neurons activations --model DIR/);
  });

  test('usage errors exit 2 with a one-line reason', () => {
    for (const args of [
      [],
      ['frobnicate'],
      ['activations', '--text', 'hi'],
      ['activations', '--model', 'm'],
      ['activations', '--model', 'm', '--text', 'a', '--file', 'b'],
      ['activations', '--model', 'm', '--text', 'a', '--top', '0'],
      ['activations', '--model', 'm', '--text', 'a', '--threads', 'two'],
      ['activations', '--model', 'm', '--text', 'a', '--bogus'],
      ['activations', '--model'],
      ['demo', '--json', 'x.json'],
    ]) {
      const r = cli(...args);
      assert.equal(r.code, 2, `${args.join(' ')} → ${r.code}: ${r.err}`);
      assert.equal(r.out, '');
      assert.match(r.err, /^universal-neurons: .+\nTry 'universal-neurons --help'\.\n$/, r.err);
    }
  });

  test('missing model folder: clear error, exit 1', () => {
    const r = cli('activations', '--model', '/nonexistent/un-model', '--text', 'hello');
    assert.equal(r.code, 1, r.err);
    assert.equal(r.out, '');
    assert.match(r.err, /^universal-neurons: error: .*\/nonexistent\/un-model.*\n$/);
  });

  test('activations: a table row per token with top-K neurons, and the --json dump agrees', () => {
    const json = join(tmp, 'acts.json');
    const r = cli('activations', '--model', model, '--text', TEXT, '--top', '4', '--json', json);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.split('\n');
    assert.match(lines[0]!, new RegExp(`^model .*toy-gpt2: ${TOY.nLayer} layers x ${TOY.dMlp} neurons, \\d+ tokens`));
    assert.match(r.out, /L0\.N\d+=/);
    const rows = lines.map((l) => ROW.exec(l)).filter((m): m is RegExpExecArray => m !== null);

    const doc = JSON.parse(readFileSync(json, 'utf8'));
    assert.deepEqual(Object.keys(doc), ['model', 'tokens', 'hook_pre', 'hook_post']);
    assert.equal(realpathSync(doc.model), realpathSync(model));
    const T = doc.tokens.length;
    assert.equal(rows.length, T);
    assert.deepEqual(doc.tokens[0], { id: 256, text: '<|endoftext|>', start: 0, end: 0 });
    for (let t = 1; t < T; t++) {
      const tok = doc.tokens[t];
      assert.deepEqual(Object.keys(tok), ['id', 'text', 'start', 'end']);
      assert.equal(TEXT.slice(tok.start, tok.end), tok.text);
    }
    for (const hook of ['hook_pre', 'hook_post'] as const) {
      assert.equal(doc[hook].length, TOY.nLayer);
      for (const layer of doc[hook]) {
        assert.equal(layer.length, T);
        for (const tok of layer) assert.equal(tok.length, TOY.dMlp);
      }
    }
    // hook_post is gelu_new(hook_pre): the two dumps are the same neurons in the same order.
    for (let l = 0; l < TOY.nLayer; l++) {
      for (let t = 0; t < T; t++) {
        for (let n = 0; n < TOY.dMlp; n++) {
          const want = geluNew(doc.hook_pre[l][t][n]);
          assert.ok(Math.abs(doc.hook_post[l][t][n] - want) < 1e-4, `L${l}.N${n} t${t}`);
        }
      }
    }
    // Each row matches its token, and its neurons are the largest hook_post values of that token.
    rows.forEach((m, t) => {
      const tok = doc.tokens[t];
      assert.deepEqual([Number(m[1]), JSON.parse(m[2]!), Number(m[3]), Number(m[4]), Number(m[5])], [t, tok.text, tok.id, tok.start, tok.end]);
      const cells = [...m[6]!.matchAll(NEURON)];
      assert.equal(cells.length, 4, m[0]);
      const all = doc.hook_post.flatMap((layer: number[][], l: number) => layer[t]!.map((v, n) => ({ l, n, v })));
      all.sort((a: { v: number }, b: { v: number }) => b.v - a.v);
      cells.forEach((c, j) => {
        const [l, n, v] = [Number(c[1]), Number(c[2]), Number(c[3])];
        assert.equal(v.toFixed(3), doc.hook_post[l][t][n].toFixed(3), c[0]);
        assert.equal(doc.hook_post[l][t][n], all[j].v, `${c[0]} is not rank ${j + 1} at token ${t}`);
      });
    });
    assert.deepEqual(readdirSync(tmp).filter((f) => f.endsWith('.tmp')), [], 'temp file left behind');
  });

  test('--file gives the same table as --text; binary and empty files are refused', () => {
    const f = join(tmp, 'prompt.txt');
    writeFileSync(f, TEXT);
    const a = cli('activations', '--model', model, '--file', f, '--threads', '1');
    const b = cli('activations', '--model', model, '--text', TEXT);
    assert.equal(a.code, 0, a.err);
    assert.equal(a.out, b.out);
    writeFileSync(f, new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0x00, 0x00, 0x41]));
    const bin = cli('activations', '--model', model, '--file', f);
    assert.equal(bin.code, 1);
    assert.match(bin.err, /^universal-neurons: error: .*looks binary.*\n$/);
    writeFileSync(f, '');
    assert.match(cli('activations', '--model', model, '--file', f).err, /is empty/);
  });

  test('a run leaves no onnxruntime telemetry file (mat-debug-<pid>.log) in the temp folder', () => {
    // onnxruntime-node 1.30's telemetry SDK opened TMPDIR/mat-debug-<pid>.log at the first session
    // (src/engine/ortTelemetry.ts); the CLI turns that telemetry off.
    const tmpdirChild = mkdtempSync(join(tmpdir(), 'un-cli-tmp-'));
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmpdirChild };
      delete env.ORT_DISABLE_TELEMETRY;
      const r = spawnSync(process.execPath, [CLI, 'activations', '--model', model, '--text', TEXT, '--top', '1'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000, env });
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(readdirSync(tmpdirChild), [], 'the CLI left files in its temp folder');
      assert.equal(existsSync(`/tmp/mat-debug-${r.pid}.log`), false);
    } finally {
      rmSync(tmpdirChild, { recursive: true, force: true });
    }
  });

  test('a NaN weight: activations exits 1 naming the weights file and the tensor, and writes no JSON', () => {
    const bad = join(tmp, 'toy-nan');
    cpSync(model, bad, { recursive: true });
    const p = join(bad, 'model.safetensors');
    const bytes = readFileSync(p);
    const hlen = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + hlen).toString('utf8'));
    const name = Object.keys(header).find((k) => k.endsWith('h.0.mlp.c_fc.weight'))!;
    bytes.writeFloatLE(NaN, 8 + hlen + header[name].data_offsets[0] + 4 * 5);
    writeFileSync(p, bytes);
    const json = join(tmp, 'nan.json');
    const r = cli('activations', '--model', bad, '--text', TEXT, '--json', json);
    assert.equal(r.code, 1, r.err);
    assert.equal(r.out, '');
    assert.match(r.err, new RegExp(`^universal-neurons: error: ${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: tensor ${name.replace(/\./g, '\\.')} holds NaN at element \\[0, 5\\]`));
    assert.equal(existsSync(json), false);
  });

  test('finite weights that overflow fp32 in the forward: exit 1 naming the model and the neuron, not a null in the JSON', () => {
    const bad = join(tmp, 'toy-overflow');
    cpSync(model, bad, { recursive: true });
    const p = join(bad, 'model.safetensors');
    const bytes = readFileSync(p);
    const hlen = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + hlen).toString('utf8'));
    const at = (suffix: string) => 8 + hlen + header[Object.keys(header).find((k) => k.endsWith(suffix))!].data_offsets[0];
    // ln_2's gain on feature 0 blows it up, and c_fc's row 0 multiplies it past fp32's range.
    bytes.writeFloatLE(1e10, at('h.0.ln_2.weight'));
    for (let j = 0; j < TOY.dMlp; j++) bytes.writeFloatLE(1e30, at('h.0.mlp.c_fc.weight') + 4 * j);
    writeFileSync(p, bytes);
    const json = join(tmp, 'overflow.json');
    const r = cli('activations', '--model', bad, '--text', TEXT, '--json', json);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /^universal-neurons: error: .*toy-overflow: the forward pass produced (-?Infinity|NaN) at L0\.N\d+ hook_pre, token \d+ .*although every weight is finite/);
    assert.equal(existsSync(json), false);
  });

  test('--json into a missing folder fails cleanly', () => {
    const r = cli('activations', '--model', model, '--text', 'hi', '--json', join(tmp, 'no', 'such', 'dir', 'out.json'));
    assert.equal(r.code, 1);
    assert.match(r.err, /^universal-neurons: error: .*no[/\\]such[/\\]dir.*\n$/);
  });

  test('demo analyses the shipped family on the held-out corpus and prints the summary', () => {
    const family = shippedFamily(ROOT);
    // A small budget keeps this test short; `npm run demo` uses the full demo budget.
    const r = cli('demo', '--top', '3', '--tokens', '1024', '--out', join(tmp, 'demo-run'));
    if (family.length < 2) {
      assert.equal(r.code, 1);
      assert.match(r.err, /needs the shipped family/);
      return;
    }
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`^demo: ${family.map((m) => m.name).join(', ')} on 1,024 tokens`, 'm'));
    assert.match(r.out, /^layer\s+neurons\s+universal\s+%\s+median excess\s+median baseline$/m);
    assert.match(r.out, /^all\s+\d+\s+\d+\s+\d+\.\d\d%/m);
    assert.match(r.out, /> 0\.3: \d+ .*> 0\.4: \d+ .*> 0\.5: \d+/);
  });
});
