/**
 * Writes random-weight GPT-2 checkpoints in the Hugging Face layout (config.json,
 * model.safetensors in fp16, tokenizer.json from models/gpt2-tokenizer), for memory and speed
 * measurements at real sizes (bench/scale.ts). No training: weights are N(0, 0.02²) as GPT-2's
 * initializer, LayerNorm gains 1 and biases 0, so activations have realistic shapes and scales.
 *
 *   node --import tsx tools/random_gpt2.ts [--out DIR] [--seeds a,b,c,d,e] [--layers 12]
 *        [--embd 768] [--heads 12] [--positions 1024]
 *
 * Default: GPT-2-small's shape, five seeds, into tools/.cache/random-gpt2-12x768-<seed>.
 * An existing checkpoint with the same config is kept (the bench calls this every run).
 */
import { copyFileSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { mulberry32 as rng } from '../src/engine/rng';

const ROOT = join(__dirname, '..');

export interface RandomGpt2Shape {
  layers: number;
  embd: number;
  heads: number;
  positions: number;
}

export const GPT2_SMALL: RandomGpt2Shape = { layers: 12, embd: 768, heads: 12, positions: 1024 };
const VOCAB = 50257;

function configJson(s: RandomGpt2Shape, seed: string): string {
  return JSON.stringify(
    {
      model_type: 'gpt2',
      architectures: ['GPT2LMHeadModel'],
      activation_function: 'gelu_new',
      n_layer: s.layers,
      n_embd: s.embd,
      n_head: s.heads,
      n_inner: 4 * s.embd,
      n_positions: s.positions,
      n_ctx: s.positions,
      vocab_size: VOCAB,
      layer_norm_epsilon: 1e-5,
      bos_token_id: 50256,
      eos_token_id: 50256,
      tie_word_embeddings: true,
      initializer_range: 0.02,
      torch_dtype: 'float16',
      random_seed: seed,
    },
    null,
    2,
  );
}


const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits of x (round to nearest even; the values here are small normals or zero). */
export function toHalf(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const e = ((b >>> 23) & 0xff) - 127 + 15;
  if (e <= 0) return sign; // below half's normal range: flush (|x| < 6e-5 matters nowhere here)
  if (e >= 31) return sign | 0x7c00;
  let m = (b >>> 13) & 0x3ff;
  const rest = b & 0x1fff;
  let h = sign | (e << 10) | m;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) h++;
  return h;
}

function tensors(s: RandomGpt2Shape): [string, number[], 'normal' | 'one' | 'zero'][] {
  const d = s.embd;
  const out: [string, number[], 'normal' | 'one' | 'zero'][] = [
    ['transformer.wte.weight', [VOCAB, d], 'normal'],
    ['transformer.wpe.weight', [s.positions, d], 'normal'],
    ['transformer.ln_f.weight', [d], 'one'],
    ['transformer.ln_f.bias', [d], 'zero'],
  ];
  for (let l = 0; l < s.layers; l++) {
    const p = `transformer.h.${l}.`;
    out.push(
      [`${p}ln_1.weight`, [d], 'one'],
      [`${p}ln_1.bias`, [d], 'zero'],
      [`${p}attn.c_attn.weight`, [d, 3 * d], 'normal'],
      [`${p}attn.c_attn.bias`, [3 * d], 'zero'],
      [`${p}attn.c_proj.weight`, [d, d], 'normal'],
      [`${p}attn.c_proj.bias`, [d], 'zero'],
      [`${p}ln_2.weight`, [d], 'one'],
      [`${p}ln_2.bias`, [d], 'zero'],
      [`${p}mlp.c_fc.weight`, [d, 4 * d], 'normal'],
      [`${p}mlp.c_fc.bias`, [4 * d], 'zero'],
      [`${p}mlp.c_proj.weight`, [4 * d, d], 'normal'],
      [`${p}mlp.c_proj.bias`, [d], 'zero'],
    );
  }
  return out;
}

/** Writes one checkpoint folder; returns its path. Kept when its config.json already matches. */
export function writeRandomGpt2(dir: string, seed: string, shape: RandomGpt2Shape = GPT2_SMALL): string {
  const config = configJson(shape, seed);
  const st = join(dir, 'model.safetensors');
  if (existsSync(st) && existsSync(join(dir, 'config.json')) && readFileSync(join(dir, 'config.json'), 'utf8') === config) return dir;
  mkdirSync(dir, { recursive: true });
  const list = tensors(shape);
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', random_seed: seed } };
  let offset = 0;
  for (const [name, shp] of list) {
    const bytes = 2 * shp.reduce((a, b) => a * b, 1);
    header[name] = { dtype: 'F16', shape: shp, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let hjson = JSON.stringify(header);
  hjson += ' '.repeat((8 - (hjson.length % 8)) % 8);
  const tmp = `${st}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hjson.length));
    writeSync(fd, len);
    writeSync(fd, Buffer.from(hjson, 'utf8'));
    let h = 0;
    for (const c of seed) h = Math.imul(h ^ c.charCodeAt(0), 0x9e3779b1);
    const rand = rng(h);
    const std = 0.02;
    for (const [, shp, init] of list) {
      const n = shp.reduce((a, b) => a * b, 1);
      const buf = new Uint16Array(n);
      if (init === 'one') buf.fill(toHalf(1));
      else if (init === 'normal') {
        for (let i = 0; i < n; i += 2) {
          // Box–Muller: two normals per pair of uniforms.
          const r = std * Math.sqrt(-2 * Math.log(1 - rand()));
          const th = 2 * Math.PI * rand();
          buf[i] = toHalf(r * Math.cos(th));
          if (i + 1 < n) buf[i + 1] = toHalf(r * Math.sin(th));
        }
      }
      writeSync(fd, new Uint8Array(buf.buffer));
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, st);
  copyFileSync(join(ROOT, 'models', 'gpt2-tokenizer', 'tokenizer.json'), join(dir, 'tokenizer.json'));
  writeFileSync(join(dir, 'config.json'), config);
  return dir;
}

function main(argv: string[]): void {
  const arg = (name: string, def: string): string => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : def;
  };
  const shape: RandomGpt2Shape = {
    layers: Number(arg('layers', String(GPT2_SMALL.layers))),
    embd: Number(arg('embd', String(GPT2_SMALL.embd))),
    heads: Number(arg('heads', String(GPT2_SMALL.heads))),
    positions: Number(arg('positions', String(GPT2_SMALL.positions))),
  };
  const out = arg('out', join(ROOT, 'tools', '.cache'));
  for (const seed of arg('seeds', 'a,b,c,d,e').split(',')) {
    const dir = writeRandomGpt2(join(out, `random-gpt2-${shape.layers}x${shape.embd}-${seed}`), seed, shape);
    process.stdout.write(`${dir}\n`);
  }
}

if (require.main === module) main(process.argv.slice(2));
