/**
 * Writes a random-weight GPT-NeoX (Pythia-shaped) checkpoint in the Hugging Face layout: the
 * config.json and tokenizer.json of a template folder (default the NeoX test fixture
 * test/fixtures/neox-tiny-seq) and a fresh model.safetensors (F32) drawn from a seed, with the
 * tensor names and [out, in] layout of GPTNeoXForCausalLM. Two seeds make a family small enough
 * for a test of the analysis on GPT-NeoX (test/unit/neox-analysis.test.ts).
 *
 *   node --import tsx tools/random_neox.ts --out DIR --seed N [--template DIR]
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mulberry32 } from '../src/engine/rng';

const ROOT = join(__dirname, '..');
export const NEOX_TEMPLATE = join(ROOT, 'test', 'fixtures', 'neox-tiny-seq');

/** Writes the checkpoint into `out` (created); returns `out`. */
export function writeRandomNeox(out: string, seed: number, template = NEOX_TEMPLATE): string {
  const cfg = JSON.parse(readFileSync(join(template, 'config.json'), 'utf8')) as Record<string, number | boolean | string>;
  const d = cfg['hidden_size'] as number;
  const m = cfg['intermediate_size'] as number;
  const V = cfg['vocab_size'] as number;
  const bias = cfg['attention_bias'] !== false;
  const rand = mulberry32(seed);
  // Box–Muller normals.
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const tensors: [string, number[], Float32Array][] = [];
  const put = (name: string, shape: number[], std: number, mean = 0): void => {
    const a = new Float32Array(shape.reduce((x, y) => x * y, 1));
    for (let i = 0; i < a.length; i++) a[i] = mean + std * normal();
    tensors.push([name, shape, a]);
  };
  put('gpt_neox.embed_in.weight', [V, d], 0.5);
  for (let l = 0; l < (cfg['num_hidden_layers'] as number); l++) {
    const p = `gpt_neox.layers.${l}.`;
    put(p + 'input_layernorm.weight', [d], 0.2, 1);
    put(p + 'input_layernorm.bias', [d], 0.1);
    put(p + 'post_attention_layernorm.weight', [d], 0.2, 1);
    put(p + 'post_attention_layernorm.bias', [d], 0.1);
    put(p + 'attention.query_key_value.weight', [3 * d, d], 1.5 / Math.sqrt(d));
    if (bias) put(p + 'attention.query_key_value.bias', [3 * d], 0.1);
    put(p + 'attention.dense.weight', [d, d], 0.5 / Math.sqrt(d));
    if (bias) put(p + 'attention.dense.bias', [d], 0.05);
    put(p + 'mlp.dense_h_to_4h.weight', [m, d], 1.5 / Math.sqrt(d));
    put(p + 'mlp.dense_h_to_4h.bias', [m], 0.5, -0.5);
    put(p + 'mlp.dense_4h_to_h.weight', [d, m], 0.5 / Math.sqrt(m));
    put(p + 'mlp.dense_4h_to_h.bias', [d], 0.05);
  }
  put('gpt_neox.final_layer_norm.weight', [d], 0.2, 1);
  put('gpt_neox.final_layer_norm.bias', [d], 0.1);
  put('embed_out.weight', [V, d], 0.1);

  const header: Record<string, unknown> = { __metadata__: { format: 'pt', random_seed: String(seed) } };
  let at = 0;
  for (const [name, shape, a] of tensors) {
    header[name] = { dtype: 'F32', shape, data_offsets: [at, at + a.byteLength] };
    at += a.byteLength;
  }
  let h = JSON.stringify(header);
  h += ' '.repeat((8 - (h.length % 8)) % 8);
  const hb = new TextEncoder().encode(h);
  const buf = new Uint8Array(8 + hb.length + at);
  new DataView(buf.buffer).setBigUint64(0, BigInt(hb.length), true);
  buf.set(hb, 8);
  let o = 8 + hb.length;
  for (const [, , a] of tensors) {
    buf.set(new Uint8Array(a.buffer), o);
    o += a.byteLength;
  }
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'model.safetensors'), buf);
  writeFileSync(join(out, 'config.json'), JSON.stringify({ ...cfg, torch_dtype: 'float32' }, null, 2) + '\n');
  copyFileSync(join(template, 'tokenizer.json'), join(out, 'tokenizer.json'));
  return out;
}

if (require.main === module) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, seed: { type: 'string' }, template: { type: 'string' } } });
  if (!values.out || values.seed === undefined) {
    console.error('usage: node --import tsx tools/random_neox.ts --out DIR --seed N [--template DIR]');
    process.exit(2);
  }
  console.log(`wrote ${writeRandomNeox(values.out, Number(values.seed), values.template)}`);
}
