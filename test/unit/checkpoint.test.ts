import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hashFile, loadCheckpoint, resolveModelDir } from '../../src/engine/checkpoint';
import { EngineError } from '../../src/engine/errors';
import { TOKENIZER_JSON } from '../../tools/make_tokenizer_json';
import { writeSafetensors, type TensorSpec } from '../helpers/safetensors-writer';
import { throwsEngine } from '../helpers/assert-engine';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'un-checkpoint-'));
process.on('exit', () => fs.rmSync(root, { recursive: true, force: true }));
let counter = 0;


const CONFIG = { model_type: 'gpt2', n_layer: 1, n_embd: 4, n_head: 1, n_positions: 8, vocab_size: 50257 };
const TENSORS: Record<string, TensorSpec> = {
  'wte.weight': { shape: [3, 4], data: [...Array(12).keys()] },
  'h.0.mlp.c_fc.weight': { dtype: 'F16', shape: [2], data: [1, 2] },
  'h.0.attn.bias': { dtype: 'BOOL', shape: [1, 1, 8, 8] }, // old transformers saved the mask as BOOL
};

interface Parts {
  config?: string | null;
  weights?: Record<string, TensorSpec> | null;
  weightsName?: string;
  tokenizer?: 'json' | 'vocab-merges' | 'vocab-only' | null;
  extra?: Record<string, string>;
}

/** A model folder; null leaves a part out. */
function modelDir(parts: Parts = {}, dir = path.join(root, `m${counter++}`)): string {
  fs.mkdirSync(dir, { recursive: true });
  const config = parts.config === undefined ? JSON.stringify(CONFIG) : parts.config;
  if (config !== null) fs.writeFileSync(path.join(dir, 'config.json'), config);
  if (parts.weights !== null) writeSafetensors(path.join(dir, parts.weightsName ?? 'model.safetensors'), parts.weights ?? TENSORS);
  const tok = parts.tokenizer === undefined ? 'json' : parts.tokenizer;
  if (tok === 'json') fs.copyFileSync(TOKENIZER_JSON, path.join(dir, 'tokenizer.json'));
  if (tok === 'vocab-merges' || tok === 'vocab-only') {
    const j = JSON.parse(fs.readFileSync(TOKENIZER_JSON, 'utf8'));
    fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(j.model.vocab));
    if (tok === 'vocab-merges') fs.writeFileSync(path.join(dir, 'merges.txt'), '#version: 0.2\n' + j.model.merges.join('\n') + '\n');
  }
  for (const [name, text] of Object.entries(parts.extra ?? {})) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

test('loads a model folder: config, weights header, tokenizer', () => {
  const dir = modelDir();
  const ck = loadCheckpoint(dir);
  try {
    assert.equal(ck.dir, dir);
    assert.equal(ck.configPath, path.join(dir, 'config.json'));
    assert.deepEqual(ck.configJson, CONFIG);
    assert.equal(ck.weights.path, path.join(dir, 'model.safetensors'));
    assert.deepEqual(ck.weights.readF32('wte.weight'), Float32Array.from([...Array(12).keys()]));
    assert.equal(ck.weightsDtype, 'F32');
    assert.deepEqual(ck.tokenizer.encode('Hello world').ids, [15496, 995]);
    assert.deepEqual(ck.tokenizerFiles, [path.join(dir, 'tokenizer.json')]);
  } finally {
    ck.weights.close();
  }
});

test('weightsDtype is the float dtype with most elements', () => {
  const ck = loadCheckpoint(
    modelDir({ weights: { a: { dtype: 'F16', shape: [10, 10] }, b: { shape: [50] }, mask: { dtype: 'BOOL', shape: [1000] } } }),
  );
  ck.weights.close();
  assert.equal(ck.weightsDtype, 'F16');
  const bf = loadCheckpoint(modelDir({ weights: { a: { dtype: 'BF16', shape: [3] } } }));
  bf.weights.close();
  assert.equal(bf.weightsDtype, 'BF16');
});

test('vocab.json + merges.txt, and a single differently named .safetensors', () => {
  const dir = modelDir({ tokenizer: 'vocab-merges', weights: TENSORS, weightsName: 'gpt2-seed1.safetensors' });
  const ck = loadCheckpoint(dir);
  ck.weights.close();
  assert.equal(ck.weights.path, path.join(dir, 'gpt2-seed1.safetensors'));
  assert.deepEqual(ck.tokenizer.encode('Hello world, universal neurons!').ids, [15496, 995, 11, 10112, 16890, 0]);
  assert.deepEqual(ck.tokenizerFiles, [path.join(dir, 'vocab.json'), path.join(dir, 'merges.txt')]);
});

test('a folder with only pytorch_model.bin is refused without reading it', () => {
  const dir = modelDir({ weights: null });
  // A dangling link: any attempt to open it would fail with a different error than the refusal.
  fs.symlinkSync(path.join(root, 'does-not-exist'), path.join(dir, 'pytorch_model.bin'));
  throwsEngine(
    () => loadCheckpoint(dir),
    dir,
    'pytorch_model.bin',
    /pickle/i,
    'execute code',
    'safetensors',
    "save_pretrained('" + dir + "', safe_serialization=True)",
  );
  const bare = modelDir({ weights: null, config: null, tokenizer: null, extra: { 'model.pt': 'x' } });
  throwsEngine(() => loadCheckpoint(bare), 'model.pt', /pickle/i, 'safetensors');
});

test('pickle weights next to safetensors are ignored, safetensors used', () => {
  const ck = loadCheckpoint(modelDir({ extra: { 'pytorch_model.bin': 'not read' } }));
  ck.weights.close();
  assert.match(ck.weights.path, /model\.safetensors$/);
});

test('no weights, several .safetensors, sharded checkpoints', () => {
  const none = modelDir({ weights: null });
  throwsEngine(() => loadCheckpoint(none), none, 'no model.safetensors');
  const tf = modelDir({ weights: null, extra: { 'tf_model.h5': 'x' } });
  throwsEngine(() => loadCheckpoint(tf), 'tf_model.h5', 'from_tf=True');
  const two = modelDir({ weightsName: 'a.safetensors' });
  writeSafetensors(path.join(two, 'b.safetensors'), TENSORS);
  throwsEngine(() => loadCheckpoint(two), 'several .safetensors', 'a.safetensors, b.safetensors');
  const sharded = modelDir({ weights: null, extra: { 'model.safetensors.index.json': '{"weight_map": {}}' } });
  writeSafetensors(path.join(sharded, 'model-00001-of-00002.safetensors'), TENSORS);
  throwsEngine(() => loadCheckpoint(sharded), 'sharded', 'not supported yet', 'model.safetensors.index.json');
});

test('missing tokenizer is refused', () => {
  const dir = modelDir({ tokenizer: null });
  throwsEngine(() => loadCheckpoint(dir), dir, 'no tokenizer', 'tokenizer.json', 'vocab.json and merges.txt', 'models/gpt2-tokenizer');
  throwsEngine(() => loadCheckpoint(modelDir({ tokenizer: 'vocab-only' })), 'merges.txt is missing');
});

test('bad tokenizer.json in the folder names it', () => {
  const dir = modelDir({ tokenizer: null, extra: { 'tokenizer.json': '{"model": {"type": "BPE", "vocab": {}, "merges": []}' } });
  throwsEngine(() => loadCheckpoint(dir), path.join(dir, 'tokenizer.json'), 'not valid JSON');
});

test('bad config.json is refused', () => {
  const missing = modelDir({ config: null });
  throwsEngine(() => loadCheckpoint(missing), path.join(missing, 'config.json'), 'missing');
  const notJson = modelDir({ config: '{"n_layer": 12,' });
  throwsEngine(() => loadCheckpoint(notJson), path.join(notJson, 'config.json'), 'not valid JSON');
  const arr = modelDir({ config: '[1, 2]' });
  throwsEngine(() => loadCheckpoint(arr), path.join(arr, 'config.json'), 'JSON object', 'an array');
  throwsEngine(() => loadCheckpoint(modelDir({ config: 'null' })), 'JSON object', 'null');
});

test('a corrupt safetensors file in the folder is reported by name', () => {
  const dir = modelDir();
  const p = path.join(dir, 'model.safetensors');
  fs.truncateSync(p, fs.statSync(p).size - 10);
  throwsEngine(() => loadCheckpoint(dir), p, 'truncated');
});

test('resolveModelDir: folder, file inside it, missing and empty paths', () => {
  const dir = modelDir();
  assert.equal(resolveModelDir(dir), dir);
  assert.equal(resolveModelDir(path.join(dir, 'config.json')), dir);
  assert.equal(resolveModelDir(path.relative(process.cwd(), dir)), dir);
  throwsEngine(() => resolveModelDir(path.join(root, 'nope')), 'does not exist', 'nope');
  const empty = path.join(root, `empty${counter++}`);
  fs.mkdirSync(empty);
  throwsEngine(() => resolveModelDir(empty), empty, 'holds no checkpoint');
});

test('resolveModelDir: Hugging Face hub cache layout', () => {
  const hub = path.join(root, `hub${counter++}`);
  const repo = path.join(hub, 'models--stanford-crfm--alias-gpt2-small-x21');
  const snaps = path.join(repo, 'snapshots');
  const main = modelDir({}, path.join(snaps, 'aaaa1111'));
  const other = modelDir({}, path.join(snaps, 'bbbb2222'));
  fs.mkdirSync(path.join(repo, 'refs'), { recursive: true });
  fs.writeFileSync(path.join(repo, 'refs', 'main'), 'aaaa1111\n');
  // make the non-main snapshot the newest, so refs/main is what decides
  fs.utimesSync(other, new Date(), new Date(Date.now() + 60_000));
  assert.equal(resolveModelDir(repo), main);
  assert.equal(resolveModelDir(snaps), main);
  assert.equal(resolveModelDir(other), other);
  const ck = loadCheckpoint(repo);
  ck.weights.close();
  assert.equal(ck.dir, main);
  // without refs/main, the newest snapshot
  fs.rmSync(path.join(repo, 'refs'), { recursive: true });
  assert.equal(resolveModelDir(repo), other);
  // the cache root holds several models: ask for one
  throwsEngine(() => resolveModelDir(hub), 'hub cache', 'models--stanford-crfm--alias-gpt2-small-x21');
  // an entry whose download never finished
  const partial = path.join(hub, 'models--gpt2');
  fs.mkdirSync(path.join(partial, 'snapshots'), { recursive: true });
  throwsEngine(() => resolveModelDir(partial), partial, 'no snapshots');
});

test('hashFile streams a sha256', async () => {
  const p = path.join(root, 'abc.txt');
  fs.writeFileSync(p, 'abc');
  assert.equal(await hashFile(p), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  const big = path.join(root, 'big.bin');
  const data = new Uint8Array(3 * 1024 * 1024 + 7).map((_, i) => (i * 31) & 0xff);
  fs.writeFileSync(big, data);
  assert.equal(await hashFile(big), createHash('sha256').update(data).digest('hex'));
  await assert.rejects(hashFile(path.join(root, 'none')), (e: unknown) => e instanceof EngineError && e.message.includes('no such file'));
});
