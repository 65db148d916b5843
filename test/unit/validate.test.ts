// Issue #19 "never a silent wrong number": corrupted copies of the shipped tiny model
// (models/tiny-gpt2-a), built in a temp folder, are each refused when the model is opened — before
// any forward — with a message that names the file and the tensor or field.
//
// Weight and config cases pair the shipped config.json and model.safetensors with a small
// byte-level tokenizer (the toy checkpoint's) so each case opens in milliseconds; the tokenizer
// cases use the shipped tokenizer.json.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { nonFiniteError, runAnalysis, vocabHash } from '../../src/engine/analysis/pipeline';
import { loadCheckpoint } from '../../src/engine/checkpoint';
import { readCorpus } from '../../src/engine/corpus';
import { EngineError } from '../../src/engine/errors';
import { OnnxGraph } from '../../src/engine/onnx';
import { setWriteFn, writeFileAtomic } from '../../src/engine/store';
import { Tokenizer } from '../../src/engine/tokenizer';
import { checkpointWeights } from '../../src/engine/validate';
import { writeAtomic } from '../../src/cli/jsonOut';
import { writeToyCheckpoint } from '../e2e/toy-checkpoint';

const ROOT = resolve(__dirname, '..', '..');
const SHIPPED = join(ROOT, 'models', 'tiny-gpt2-a');
const tmp = mkdtempSync(join(tmpdir(), 'un-validate-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const TOY_TOKENIZER = join(writeToyCheckpoint(join(tmp, 'toy')), 'tokenizer.json');

// ---- the shipped safetensors, parsed once -------------------------------------------------------

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}
const RAW = new Uint8Array(readFileSync(join(SHIPPED, 'model.safetensors')));
const HEADER_LEN = Number(new DataView(RAW.buffer, RAW.byteOffset).getBigUint64(0, true));
const HEADER: Record<string, Entry> = JSON.parse(new TextDecoder().decode(RAW.subarray(8, 8 + HEADER_LEN)));
const DATA = RAW.subarray(8 + HEADER_LEN);

/** A safetensors file from a header object and data; `lengthDelta` mis-states the header length. */
function safetensorsBytes(header: Record<string, unknown>, data: Uint8Array, lengthDelta = 0): Uint8Array {
  let text = JSON.stringify(header);
  text += ' '.repeat(8 + ((8 - (text.length % 8)) % 8)); // at least 8 spaces of padding, as writers may add
  const h = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length + lengthDelta), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

let n = 0;
/** A model folder: the shipped config (patched), weights (as given, else linked) and a tokenizer. */
function modelDir(opts: { weights?: Uint8Array; config?: Record<string, unknown>; tokenizer?: string | object } = {}): string {
  const dir = join(tmp, `m${n++}`);
  mkdirSync(dir);
  const wp = join(dir, 'model.safetensors');
  if (opts.weights) writeFileSync(wp, opts.weights);
  else symlinkSync(join(SHIPPED, 'model.safetensors'), wp);
  // config.json's bos/eos_token_id must be the tokenizer's <|endoftext|> (validate.ts): 256 in the
  // toy tokenizer and the toy-based ones below, 50256 in the shipped config.
  const tok = opts.tokenizer;
  const eot =
    tok === undefined ? 256
    : typeof tok === 'object' ? (tok as { added_tokens?: { id: number; content: string }[] }).added_tokens?.find((t) => t.content === '<|endoftext|>')?.id
    : undefined;
  const config = { ...JSON.parse(readFileSync(join(SHIPPED, 'config.json'), 'utf8')), ...(eot === undefined ? {} : { bos_token_id: eot, eos_token_id: eot }), ...opts.config };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const tp = join(dir, 'tokenizer.json');
  if (typeof opts.tokenizer === 'object') writeFileSync(tp, JSON.stringify(opts.tokenizer));
  else copyFileSync(opts.tokenizer ?? TOY_TOKENIZER, tp);
  return dir;
}

/** Data with one element of a F16 tensor replaced by a raw bit pattern. */
function withHalf(tensor: string, index: number, bits: number): Uint8Array {
  const data = DATA.slice();
  const [begin] = HEADER[tensor]!.data_offsets;
  new DataView(data.buffer).setUint16(begin + 2 * index, bits, true);
  return data;
}

/** Opens and validates as openModel does (loadCheckpoint + checkpointWeights), without ORT. */
function open(dir: string): void {
  const ck = loadCheckpoint(dir);
  try {
    checkpointWeights(ck);
  } finally {
    ck.weights.close();
  }
}

function refused(fn: () => unknown, want: { file: string; tensor?: string; patterns: (string | RegExp)[] }): EngineError {
  let caught: EngineError | undefined;
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof EngineError, `expected EngineError, got ${String(e)}`);
    caught = e;
    return true;
  });
  const e = caught!;
  assert.ok(e.message.includes(want.file), `message ${JSON.stringify(e.message)} does not name ${want.file}`);
  if (want.tensor) {
    assert.equal(e.tensor, want.tensor);
    assert.ok(e.message.includes(want.tensor), `message ${JSON.stringify(e.message)} does not name ${want.tensor}`);
  }
  for (const p of want.patterns) {
    if (typeof p === 'string') assert.ok(e.message.includes(p), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(p)}`);
    else assert.match(e.message, p);
  }
  return e;
}

describe('checkpoint refusals (corrupted copies of tiny-gpt2-a)', () => {
  test('control: the shipped weights and config pass every check', () => {
    open(modelDir());
    open(modelDir({ weights: safetensorsBytes(HEADER, DATA) })); // re-serialised, extra padding
  });

  test('header length 4 bytes short: the data section has 4 bytes no tensor claims', () => {
    const dir = modelDir({ weights: safetensorsBytes(HEADER, DATA, -4) });
    const last = Object.entries(HEADER).filter(([k]) => k !== '__metadata__').sort((a, b) => b[1].data_offsets[1] - a[1].data_offsets[1])[0]![0];
    refused(() => open(dir), { file: join(dir, 'model.safetensors'), tensor: last, patterns: ['the last 4 bytes belong to no tensor', 'header length'] });
  });

  test('header length 4 bytes long: the last tensor runs past the end', () => {
    const dir = modelDir({ weights: safetensorsBytes(HEADER, DATA, +4) });
    refused(() => open(dir), { file: join(dir, 'model.safetensors'), patterns: [/truncated|out of range|not valid JSON/] });
  });

  test('a NaN inside a weight names the tensor and the element, at open', () => {
    const name = 'transformer.h.1.mlp.c_fc.weight'; // [128, 512]
    const dir = modelDir({ weights: safetensorsBytes(HEADER, withHalf(name, 1000, 0x7e00)) });
    refused(() => open(dir), { file: join(dir, 'model.safetensors'), tensor: name, patterns: ['NaN', 'element [1, 488]', 'flat index 1000'] });
  });

  test('a NaN in ln_f.weight (used only after the last layer) is found at open, not at the end', () => {
    const name = 'transformer.ln_f.weight';
    const dir = modelDir({ weights: safetensorsBytes(HEADER, withHalf(name, 7, 0x7e00)) });
    refused(() => open(dir), { file: join(dir, 'model.safetensors'), tensor: name, patterns: ['NaN', 'element [7]'] });
  });

  test('an infinite embedding is refused', () => {
    const name = 'transformer.wte.weight';
    const dir = modelDir({ weights: safetensorsBytes(HEADER, withHalf(name, 128 * 50256 + 3, 0xfc00)) });
    refused(() => open(dir), { file: join(dir, 'model.safetensors'), tensor: name, patterns: ['-Infinity', 'element [50256, 3]'] });
  });

  test('a U16 dtype on ln_f.weight is refused at open, naming the tensor', () => {
    const name = 'transformer.ln_f.weight';
    const dir = modelDir({ weights: safetensorsBytes({ ...HEADER, [name]: { ...HEADER[name]!, dtype: 'U16' } }, DATA) });
    refused(() => open(dir), { file: join(dir, 'model.safetensors'), tensor: name, patterns: ['stored as U16', 'F32, F16 or BF16'] });
  });

  test('n_layer smaller than the stored layers: the extra layers are refused, not ignored', () => {
    const dir = modelDir({ config: { n_layer: 2 } });
    refused(() => open(dir), { file: join(dir, 'config.json'), tensor: 'transformer.h.3.attn.c_attn.bias', patterns: ['"n_layer" is 2', 'holds 4 layers', 'Set n_layer to 4'] });
  });

  test('n_layer larger than the stored layers names the count', () => {
    const dir = modelDir({ config: { n_layer: 6 } });
    refused(() => open(dir), { file: join(dir, 'config.json'), patterns: ['"n_layer" is 6', 'holds 4 layers (h.0..h.3)'] });
  });

  test('n_layer 1e9 is refused at once, naming the field', () => {
    const dir = modelDir({ config: { n_layer: 1e9 } });
    const t0 = performance.now();
    refused(() => open(dir), { file: join(dir, 'config.json'), patterns: ['"n_layer" is 1000000000', 'absurd'] });
    assert.ok(performance.now() - t0 < 5000, 'refused before any work');
    const wide = modelDir({ config: { n_embd: 2 ** 40 } });
    refused(() => open(wide), { file: join(wide, 'config.json'), patterns: ['"n_embd"', 'absurd'] });
  });

  test('a tensor the architecture does not use is refused', () => {
    const extra = 'transformer.h.0.mlp.c_fc.weight_scale';
    const end = DATA.length;
    const data = new Uint8Array(end + 4);
    data.set(DATA);
    const dir = modelDir({ weights: safetensorsBytes({ ...HEADER, [extra]: { dtype: 'F16', shape: [2], data_offsets: [end, end + 4] } }, data) });
    refused(() => open(dir), { file: join(dir, 'model.safetensors'), tensor: extra, patterns: ['does not use'] });
  });

  test('one tensor re-labelled BF16 in an F16 file is refused: one model is never saved in both half formats', () => {
    const name = 'transformer.h.2.ln_1.weight';
    const dir = modelDir({ weights: safetensorsBytes({ ...HEADER, [name]: { ...HEADER[name]!, dtype: 'BF16' } }, DATA) });
    refused(() => open(dir), { file: join(dir, 'model.safetensors'), tensor: name, patterns: ['stored as BF16', 'other weights are F16', 'both half formats'] });
  });

  test("config.json's bos_token_id must be the tokenizer's <|endoftext|>; a placeholder past the vocabulary is ignored", () => {
    const dir = modelDir({ config: { bos_token_id: 5 } });
    refused(() => open(dir), { file: join(dir, 'config.json'), tensor: 'bos_token_id', patterns: ['"bos_token_id" is 5', '<|endoftext|> is id 256'] });
    const odd = modelDir({ config: { eos_token_id: '256' } });
    refused(() => open(odd), { file: join(odd, 'config.json'), tensor: 'eos_token_id', patterns: ['must be a token id'] });
    open(modelDir({ config: { bos_token_id: 60000, eos_token_id: null } })); // past vocab_size (50257): a placeholder
  });

  test('layer_norm_epsilon far outside any LayerNorm is refused, naming the field', () => {
    for (const eps of [1e5, 0.5, 1e-300]) {
      const dir = modelDir({ config: { layer_norm_epsilon: eps } });
      refused(() => open(dir), { file: join(dir, 'config.json'), patterns: ['"layer_norm_epsilon"', 'absurd'] });
    }
  });

  test('a token id beyond vocab_size names tokenizer.json and config.json', () => {
    const dir = modelDir({ config: { vocab_size: 260 } }); // the toy tokenizer has ids up to 264
    refused(() => open(dir), { file: join(dir, 'tokenizer.json'), patterns: [join(dir, 'config.json'), 'vocab_size is 260', 'token id 264'] });
  });
});

describe('tokenizer refusals (the shipped tokenizer.json, merges edited)', () => {
  const json = JSON.parse(readFileSync(join(SHIPPED, 'tokenizer.json'), 'utf8'));
  const merges: string[] = json.model.merges;
  const withMerges = (m: string[]) => ({ ...json, model: { ...json.model, merges: m } });

  test('merges emptied', () => {
    const dir = modelDir({ tokenizer: withMerges([]) });
    refused(() => loadCheckpoint(dir), { file: join(dir, 'tokenizer.json'), patterns: ['50000 vocabulary tokens are made by no merge', 'model.merges has 0 entries'] });
  });

  test('merges truncated', () => {
    const dir = modelDir({ tokenizer: withMerges(merges.slice(0, -100)) });
    refused(() => loadCheckpoint(dir), { file: join(dir, 'tokenizer.json'), patterns: ['100 vocabulary tokens are made by no merge', 'truncated'] });
  });

  test('merges shuffled', () => {
    let s = 7;
    const shuffled = merges.slice();
    for (let i = shuffled.length - 1; i > 0; i--) {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      const j = s % (i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    const dir = modelDir({ tokenizer: withMerges(shuffled) });
    refused(() => loadCheckpoint(dir), { file: join(dir, 'tokenizer.json'), patterns: ['no earlier merge produces', 'out of order', /model\.merges entry \d+/] });
  });

  test('same vocabulary, two independent merges swapped: refused at open, the merge results out of id order', () => {
    // On the small tokenizer. Merges 4 and 5 ("Ġ a", "a t") are independent: swapped, every part
    // is still made before it is used, yet "Ġat" would become "Ġ"+"at". Only the ids tell: a BPE
    // vocabulary numbers merge results in merge order.
    const toy = JSON.parse(readFileSync(TOY_TOKENIZER, 'utf8'));
    const swapped = toy.model.merges.slice();
    assert.deepEqual(swapped.slice(3, 5), ['Ġ a', 'a t']);
    [swapped[3], swapped[4]] = [swapped[4], swapped[3]];
    const dir = modelDir({ tokenizer: { ...toy, model: { ...toy.model, merges: swapped } } });
    refused(() => loadCheckpoint(dir), { file: join(dir, 'tokenizer.json'), patterns: ['model.merges entry 5 ("Ġ a") makes "Ġa"', 'merge order'] });
  });

  test('two ids exchanged between tokens: refused at open', () => {
    const toy = JSON.parse(readFileSync(TOY_TOKENIZER, 'utf8'));
    const vocab = { ...toy.model.vocab };
    [vocab['Ġa'], vocab['at']] = [vocab['at'], vocab['Ġa']];
    const dir = modelDir({ tokenizer: { ...toy, model: { ...toy.model, vocab } } });
    refused(() => loadCheckpoint(dir), { file: join(dir, 'tokenizer.json'), patterns: ['merge order'] });
    const bytes = { ...toy.model.vocab };
    [bytes['a'], bytes['b']] = [bytes['b'], bytes['a']];
    const dir2 = modelDir({ tokenizer: { ...toy, model: { ...toy.model, vocab: bytes } } });
    refused(() => loadCheckpoint(dir2), { file: join(dir2, 'tokenizer.json'), patterns: ["byte tokens' ids are in neither byte order nor GPT-2's order"] });
  });

  test('tokenizers differing only in a setting (ignore_merges): each accepted alone, but analyze refuses the pair, naming both files', async () => {
    const toy = JSON.parse(readFileSync(TOY_TOKENIZER, 'utf8'));
    const dirA = modelDir();
    const dirB = modelDir({ tokenizer: { ...toy, model: { ...toy.model, ignore_merges: true } } });
    const a = Tokenizer.fromTokenizerJson(join(dirA, 'tokenizer.json'));
    const b = Tokenizer.fromTokenizerJson(join(dirB, 'tokenizer.json'));
    assert.equal(vocabHash(a), vocabHash(b), 'the vocabularies are identical');
    assert.notEqual(a.fingerprint(), b.fingerprint());
    await assert.rejects(
      runAnalysis({ models: [dirA, dirB], corpus: [join(ROOT, 'models', 'corpus', 'heldout.tokens.bin')], tokens: 128 * 4, out: join(tmp, 'run-merges'), threads: 1 }),
      (e: unknown) =>
        e instanceof EngineError &&
        e.file === dirB &&
        /different tokenizers \(.*\): their merges or settings \(same vocabulary\) differ/.test(e.message) &&
        e.message.includes(join(dirB, 'tokenizer.json')),
    );
  });
});

describe('corpus ids and write failures name their file', () => {
  test('a .tokens.bin id at or above vocab_size names the file and the offset', () => {
    const p = join(tmp, 'bad.tokens.bin');
    writeFileSync(p, new Uint8Array(Uint16Array.from([50256, 464, 3797, 60000, 318]).buffer));
    assert.throws(
      () => readCorpus({ paths: [p], nPositions: 4, tokens: 4, vocabSize: 50257 }),
      (e: unknown) => e instanceof EngineError && e.file === p && e.message.includes(p) && /token 3 \(byte offset 6\) is id 60000/.test(e.message),
    );
  });

  test('a text file named .tokens.bin is refused, not read as in-range ids', () => {
    const p = join(tmp, 'text.tokens.bin');
    writeFileSync(p, 'The quick brown fox jumps over the lazy dog.\n'.repeat(4));
    assert.throws(
      () => readCorpus({ paths: [p], nPositions: 4, tokens: 8, vocabSize: 50257 }),
      (e: unknown) => e instanceof EngineError && e.file === p && e.message.includes(p) && /looks like a text file/.test(e.message),
    );
  });

  test('a JSON Lines record whose source, topic or tagged has the wrong type names the line', () => {
    const tok = Tokenizer.fromTokenizerJson(TOY_TOKENIZER);
    const cases: [string, RegExp][] = [
      ['{"text": "the cat", "source": 3}', /:2: "source" must be a string/],
      ['{"text": "the cat", "topic": ["a"]}', /:2: "topic" must be a string/],
      ['{"text": "the cat", "tagged": [["the", "AT"]]}', /:2: "tagged" must be a list of sentences/],
    ];
    for (const [i, [line, want]] of cases.entries()) {
      const p = join(tmp, `fields-${i}.jsonl`);
      writeFileSync(p, `{"text": "a first record", "source": "s"}\n${line}\n`);
      assert.throws(
        () => readCorpus({ paths: [p], nPositions: 4, tokens: 8, encode: (t) => tok.encode(t), bos: tok.bosId, eos: tok.eosId }),
        (e: unknown) => e instanceof EngineError && e.file === p && e.message.includes(p) && want.test(e.message),
      );
    }
  });

  test('an analysis batch with a non-finite activation names the model, the neuron, the row and the position', () => {
    const nan = new Float32Array(2 * 3 * 4).fill(0.5);
    nan[1 * 12 + 2 * 4 + 1] = Number.POSITIVE_INFINITY; // token 1, layer 2, neuron 1 of [T=2 × L=3·d=4]
    const empty = new Float32Array(0);
    const batch = {
      batchIndex: 0, rows: [[1, 2]], rowStart: 7, offsets: [0, 2], nTokens: 2, keep: new Uint8Array([1, 1]), keptIndex: Int32Array.of(0, 1), nKept: 2,
      models: [{ pre: empty, post: new Float32Array(24), keptPre: empty, keptPost: empty }, { pre: empty, post: nan, keptPre: empty, keptPost: empty }],
    };
    const handles = [0, 1].map((i) => ({ dir: `/m/${i}`, nLayers: 3, dMlp: 4, weightsPath: `/m/${i}/model.safetensors` }));
    const e = nonFiniteError(batch, handles)!;
    assert.ok(e instanceof EngineError);
    assert.equal(e.file, '/m/1/model.safetensors');
    assert.match(e.message, /^\/m\/1: the forward pass produced Infinity at L2\.N1 \(hook_post\) in corpus row 7, position 1, although every weight is finite/);
    assert.equal(nonFiniteError({ ...batch, models: [batch.models[0]!, batch.models[0]!] }, handles), undefined);
  });

  for (const [code, reason] of [
    ['ENOSPC', /disk is full \(ENOSPC\); free some space/],
    ['EACCES', /permission denied \(EACCES\)/],
    ['EROFS', /read-only \(EROFS\); choose a writable folder/],
  ] as const) {
    test(`store and activations --json: ${code} names the path, leaves no temp file and keeps the old file`, () => {
      const dir = join(tmp, `io-${code}`);
      mkdirSync(dir);
      const target = join(dir, 'manifest.json');
      const json = join(dir, 'acts.json');
      writeFileSync(target, 'old');
      writeFileSync(json, 'old');
      const restore = setWriteFn(() => {
        throw Object.assign(new Error(`${code}: raw error, write`), { code });
      });
      try {
        assert.throws(() => writeFileAtomic(target, '{"new": true}'), (e: unknown) => e instanceof EngineError && e.message.includes(target) && reason.test(e.message));
        assert.throws(
          () => writeAtomic(json, (put) => put('{"hook_pre": []}')),
          (e: unknown) => e instanceof EngineError && e.file === json && e.message.startsWith(`cannot write ${json}: `) && reason.test(e.message),
        );
      } finally {
        restore();
      }
      assert.equal(readFileSync(target, 'utf8'), 'old');
      assert.equal(readFileSync(json, 'utf8'), 'old');
      assert.deepEqual(readdirSync(dir).sort(), ['acts.json', 'manifest.json']);
      assert.ok(existsSync(target));
    });
  }

  test('ONNX external-data weights that cannot be written name their folder', () => {
    const g = new OnnxGraph('g', 20);
    g.output(g.op('Relu', [g.input('x', 'float', [1])]), 'float', [1]);
    const blocker = join(tmp, 'not-a-folder');
    writeFileSync(blocker, '');
    const target = join(blocker, 'onnx');
    assert.throws(() => g.writeExternal(target), (e: unknown) => e instanceof EngineError && e.file === target && e.message.startsWith(`cannot write the ONNX model's weights to ${target}: `));
  });
});
