/**
 * Writes a small but complete Hugging Face GPT-2 checkpoint folder (config.json,
 * model.safetensors, tokenizer.json) with seeded random weights, so the CLI and e2e tests run the
 * real engine end to end without depending on the shipped family being trained. The tokenizer is
 * GPT-2 byte-level BPE with a handful of merges (ids: 256 bytes, <|endoftext|>, merges).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mulberry32 as rng } from '../../src/engine/rng';

export const TOY = { nLayer: 2, nHead: 2, nEmbd: 16, dMlp: 64, nPositions: 256 } as const;

/** GPT-2's bytes_to_unicode. */
function byteToChar(): string[] {
  const keep = new Set<number>();
  for (let b = 0x21; b <= 0x7e; b++) keep.add(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.add(b);
  for (let b = 0xae; b <= 0xff; b++) keep.add(b);
  let next = 256;
  return Array.from({ length: 256 }, (_, b) => String.fromCharCode(keep.has(b) ? b : next++));
}


export function writeToyCheckpoint(dir: string, seed = 1): string {
  mkdirSync(dir, { recursive: true });
  const chars = byteToChar();
  const vocab: Record<string, number> = {};
  chars.forEach((c, b) => (vocab[c] = b));
  const EOT = 256;
  const merges: [string, string][] = [['Ġ', 't'], ['h', 'e'], ['Ġt', 'he'], ['Ġ', 'a'], ['a', 't'], ['Ġ', 's'], ['o', 'n'], ['Ġ', 'c']];
  let id = EOT + 1;
  for (const [a, b] of merges) vocab[a + b] ??= id++;
  const V = id;
  writeFileSync(
    join(dir, 'tokenizer.json'),
    JSON.stringify({
      version: '1.0',
      added_tokens: [{ id: EOT, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, vocab, merges: merges.map((m) => m.join(' ')) },
    }),
  );
  const { nLayer, nHead, nEmbd: d, dMlp: m, nPositions: p } = TOY;
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify(
      {
        model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], activation_function: 'gelu_new',
        n_layer: nLayer, n_head: nHead, n_embd: d, n_inner: m, n_positions: p, n_ctx: p, vocab_size: V,
        layer_norm_epsilon: 1e-5, bos_token_id: EOT, eos_token_id: EOT, tie_word_embeddings: true,
      },
      null,
      2,
    ),
  );
  const r = rng(seed);
  const normal = (std: number) => () => std * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const tensors: [string, number[], () => number][] = [
    ['transformer.wte.weight', [V, d], normal(0.5)],
    ['transformer.wpe.weight', [p, d], normal(0.1)],
  ];
  for (let l = 0; l < nLayer; l++) {
    const h = `transformer.h.${l}.`;
    tensors.push(
      [h + 'ln_1.weight', [d], () => 1], [h + 'ln_1.bias', [d], normal(0.02)],
      [h + 'attn.c_attn.weight', [d, 3 * d], normal(0.3)], [h + 'attn.c_attn.bias', [3 * d], normal(0.02)],
      [h + 'attn.c_proj.weight', [d, d], normal(0.3)], [h + 'attn.c_proj.bias', [d], normal(0.02)],
      [h + 'ln_2.weight', [d], () => 1], [h + 'ln_2.bias', [d], normal(0.02)],
      [h + 'mlp.c_fc.weight', [d, m], normal(0.4)], [h + 'mlp.c_fc.bias', [m], normal(0.3)],
      [h + 'mlp.c_proj.weight', [m, d], normal(0.2)], [h + 'mlp.c_proj.bias', [d], normal(0.02)],
    );
  }
  tensors.push(['transformer.ln_f.weight', [d], () => 1], ['transformer.ln_f.bias', [d], () => 0]);
  // safetensors: u64 header length, JSON header (space-padded to 8), little-endian F32 data.
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', note: 'toy test checkpoint' } };
  const arrays: Float32Array[] = [];
  let at = 0;
  for (const [name, shape, gen] of tensors) {
    const a = Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, gen);
    header[name] = { dtype: 'F32', shape, data_offsets: [at, at + a.byteLength] };
    arrays.push(a);
    at += a.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // ASCII only: length = bytes
  const file = new Uint8Array(8 + json.length + at);
  new DataView(file.buffer).setBigUint64(0, BigInt(json.length), true);
  file.set(new TextEncoder().encode(json), 8);
  let off = 8 + json.length;
  for (const a of arrays) {
    file.set(new Uint8Array(a.buffer), off);
    off += a.byteLength;
  }
  writeFileSync(join(dir, 'model.safetensors'), file);
  return dir;
}
