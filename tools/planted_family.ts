/**
 * A "planted" family for checking the universality analysis end to end: models b, c, … are the
 * reference model with each layer's MLP neurons permuted — the columns of W_in
 * (`mlp.c_fc.weight`, [d_model × d_mlp] in GPT-2's Conv1D layout), the entries of b_in
 * (`mlp.c_fc.bias`) and the rows of W_out (`mlp.c_proj.weight`, [d_mlp × d_model]) — and then
 * slightly perturbed (Gaussian noise of `noise` × the tensor's standard deviation on those three
 * tensors). A permutation leaves the model's function unchanged, so every neuron of the reference
 * has a partner in each other model — neuron π_l(i) of the same layer — with correlation ≈ 1, up to
 * the perturbation. The analysis must find exactly those partners.
 *
 *   node --import tsx tools/planted_family.ts --out DIR [--src CHECKPOINT | --random 2x64]
 *        [--labels b,c,d,e] [--seed 1] [--noise 0.01]
 *
 * `--random LxE` first writes a random-weight GPT-2 of L layers and width E (d_mlp = 4E) with
 * tools/random_gpt2.ts as the reference (`DIR/planted-a`). Each model goes to `DIR/planted-<label>`
 * with the reference's config.json and tokenizer.json, and a `planted.json`: the source, seed,
 * noise, and per layer the permutation (`perm[l][i]` = this model's neuron that is the reference's
 * neuron i). fp16 and fp32 checkpoints; with `--noise 0` the permuted tensors are bit-exact copies.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { halfToFloat } from '../src/engine/safetensors';
import { mulberry32 } from '../src/engine/rng';
import { toHalf, writeRandomGpt2 } from './random_gpt2';

export interface PlantedModel {
  label: string;
  dir: string;
  /** Per layer: perm[l][i] is this model's neuron that is the reference's neuron i. */
  perm: Int32Array[];
}

export interface PlantedOptions {
  /** Seed of the permutations and the noise (default 1). */
  seed?: number;
  /** Noise standard deviation as a fraction of each permuted tensor's (default 0.01). */
  noise?: number;
}

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

function readSafetensors(path: string): { header: Record<string, unknown>; data: Buffer } {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  return { header, data: buf.subarray(8 + n) };
}

function writeSafetensors(path: string, header: Record<string, unknown>, data: Uint8Array): void {
  let h = JSON.stringify(header);
  h += ' '.repeat((8 - (h.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(h, 'utf8')));
  writeFileSync(path, Buffer.concat([len, Buffer.from(h, 'utf8'), data]));
}

/** A tensor's values as float64 and a way to store them back, for F16 and F32. */
function codec(e: Entry, data: Buffer, name: string): { get: (i: number) => number; set: (i: number, v: number) => void; width: number } {
  const [a, b] = e.data_offsets;
  const bytes = data.subarray(a, b);
  if (e.dtype === 'F16') {
    const v = new Uint16Array(bytes.buffer, bytes.byteOffset, (b - a) / 2);
    return { get: (i) => halfToFloat(v[i]!), set: (i, x) => (v[i] = toHalf(x)), width: 2 };
  }
  if (e.dtype === 'F32') {
    const v = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + (b - a)));
    // Float32Array needs 4-byte alignment: work on a copy and write it back on every set.
    return {
      get: (i) => v[i]!,
      set: (i, x) => {
        v[i] = x;
        bytes.writeFloatLE(v[i]!, 4 * i);
      },
      width: 4,
    };
  }
  throw new Error(`${name}: dtype ${e.dtype} is not supported (F16 or F32)`);
}

/** A uniform random permutation of 0..n−1 (Fisher–Yates). */
function permutation(n: number, r: () => number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/**
 * Writes one permuted, perturbed copy of the checkpoint folder `src` per label into
 * `outDir/planted-<label>`; returns each model's folder and permutations.
 */
export function writePlantedFamily(src: string, outDir: string, labels: readonly string[], opts: PlantedOptions = {}): PlantedModel[] {
  const seed = opts.seed ?? 1;
  const noise = opts.noise ?? 0.01;
  if (!(noise >= 0)) throw new Error(`noise ${noise} must be ≥ 0`);
  const { header, data } = readSafetensors(join(src, 'model.safetensors'));
  const layers: { l: number; fc: string; bias: string; proj: string }[] = [];
  for (const name of Object.keys(header)) {
    const m = /^(.*?)h\.(\d+)\.mlp\.c_fc\.weight$/.exec(name);
    if (!m) continue;
    const p = `${m[1]}h.${m[2]}.mlp.`;
    for (const t of [`${p}c_fc.bias`, `${p}c_proj.weight`]) if (!(t in header)) throw new Error(`${src}: ${t} is missing`);
    layers.push({ l: Number(m[2]), fc: name, bias: `${p}c_fc.bias`, proj: `${p}c_proj.weight` });
  }
  if (layers.length === 0) throw new Error(`${src}: no GPT-2 MLP weights (h.<l>.mlp.c_fc.weight) found`);
  layers.sort((a, b) => a.l - b.l);
  const out: PlantedModel[] = [];
  labels.forEach((label, mi) => {
    const r = mulberry32((seed * 1000003 + mi * 7919 + 17) >>> 0);
    const g = (): number => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
    const bytes = Buffer.from(data); // a copy per model
    const perm: Int32Array[] = [];
    for (const { fc, bias, proj } of layers) {
      const efc = header[fc] as Entry;
      const ebias = header[bias] as Entry;
      const eproj = header[proj] as Entry;
      const [E, D] = efc.shape as [number, number];
      if (ebias.shape.length !== 1 || ebias.shape[0] !== D || eproj.shape[0] !== D || eproj.shape[1] !== E) {
        throw new Error(`${src}: ${fc} ${JSON.stringify(efc.shape)}, ${bias} ${JSON.stringify(ebias.shape)} and ${proj} ${JSON.stringify(eproj.shape)} do not fit GPT-2's MLP`);
      }
      const p = permutation(D, r);
      perm.push(p);
      // new index of old element (row, col) per tensor: columns of c_fc, entries of the bias, rows of c_proj.
      const tensors: [Entry, string, (i: number) => number][] = [
        [efc, fc, (i) => Math.floor(i / D) * D + p[i % D]!],
        [ebias, bias, (i) => p[i]!],
        [eproj, proj, (i) => p[Math.floor(i / E)]! * E + (i % E)],
      ];
      for (const [e, name, to] of tensors) {
        const src32 = codec(e, data, name);
        const dst = codec(e, bytes, name);
        const n = e.shape.reduce((a, b) => a * b, 1);
        let s1 = 0;
        let s2 = 0;
        for (let i = 0; i < n; i++) {
          const v = src32.get(i);
          s1 += v;
          s2 += v * v;
        }
        const std = n > 1 ? Math.sqrt(Math.max(0, s2 / n - (s1 / n) ** 2)) : 0;
        const [a] = e.data_offsets;
        for (let i = 0; i < n; i++) {
          if (noise === 0 || std === 0) {
            // Bit-exact: move the stored bytes.
            const w = src32.width;
            data.copy(bytes, a + w * to(i), a + w * i, a + w * (i + 1));
          } else {
            dst.set(to(i), src32.get(i) + noise * std * g());
          }
        }
      }
    }
    const dir = join(outDir, `planted-${label}`);
    mkdirSync(dir, { recursive: true });
    const meta = { ...((header.__metadata__ as Record<string, string> | undefined) ?? {}), planted_from: basename(src), planted_label: label };
    writeSafetensors(join(dir, 'model.safetensors'), { ...header, __metadata__: meta }, bytes);
    copyFileSync(join(src, 'config.json'), join(dir, 'config.json'));
    if (existsSync(join(src, 'tokenizer.json'))) copyFileSync(join(src, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    writeFileSync(join(dir, 'planted.json'), JSON.stringify({ source: src, label, seed, noise, perm: perm.map((q) => Array.from(q)) }));
    out.push({ label, dir, perm });
  });
  return out;
}

function main(argv: string[]): void {
  const arg = (name: string, def?: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : def;
  };
  const out = arg('out');
  if (!out) throw new Error('--out DIR is required');
  let src = arg('src');
  const random = arg('random');
  if (!src && random) {
    const m = /^(\d+)x(\d+)$/.exec(random);
    if (!m) throw new Error(`--random ${random}: expected LxE, e.g. 2x64`);
    const embd = Number(m[2]);
    src = writeRandomGpt2(join(out, 'planted-a'), `planted-${random}`, { layers: Number(m[1]), embd, heads: Math.max(1, Math.floor(embd / 16)), positions: 128 });
  }
  if (!src) throw new Error('--src CHECKPOINT or --random LxE is required');
  const labels = (arg('labels', 'b,c,d,e') ?? '').split(',').filter(Boolean);
  const models = writePlantedFamily(src, out, labels, { seed: Number(arg('seed', '1')), noise: Number(arg('noise', '0.01')) });
  process.stdout.write(`${src}\n${models.map((m) => m.dir).join('\n')}\n`);
}

if (require.main === module) main(process.argv.slice(2));
