// What every fuzz case starts from: the bytes of three small real checkpoints (the CRFM-style
// tiny GPT-2 fixture in F32, F16 and BF16; the real GPT-2 tokenizer.json) and a small corpus cut
// from the shipped held-out set, read once per worker and parsed where a mutator needs structure.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '..', '..');
export const BASE_NAMES = ['f32', 'f16', 'bf16'] as const;
export type BaseName = (typeof BASE_NAMES)[number];

const FIXTURE: Record<BaseName, string> = {
  f32: join(ROOT, 'test', 'fixtures', 'gpt2-tiny-crfm'),
  f16: join(ROOT, 'test', 'fixtures', 'gpt2-tiny-crfm-f16'),
  bf16: join(ROOT, 'test', 'fixtures', 'gpt2-tiny-crfm-bf16'),
};

export interface Tensor {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

export interface Safetensors {
  bytes: Uint8Array;
  headerLen: number;
  /** The header as parsed, keys in file order. */
  header: Record<string, unknown>;
  /** Tensors in data order. */
  tensors: Tensor[];
  data: Uint8Array;
}

export interface ModelBase {
  name: BaseName;
  fixture: string;
  config: Uint8Array;
  configJson: Record<string, unknown>;
  st: Safetensors;
  tokenizer: Uint8Array;
}

export interface CorpusDoc {
  source: string;
  id: string;
  topic?: string;
  text: string;
  tagged?: [string, string][][];
}

export interface CorpusBase {
  docs: CorpusDoc[];
  jsonl: Uint8Array;
  tokens: Uint8Array;
}

export const u8 = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
export const text = (b: Uint8Array): string => new TextDecoder().decode(b);

export function parseSafetensors(bytes: Uint8Array): Safetensors {
  const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(text(bytes.subarray(8, 8 + headerLen))) as Record<string, unknown>;
  const tensors: Tensor[] = Object.entries(header)
    .filter(([k]) => k !== '__metadata__')
    .map(([name, e]) => {
      const { dtype, shape, data_offsets } = e as { dtype: string; shape: number[]; data_offsets: [number, number] };
      return { name, dtype, shape, begin: data_offsets[0], end: data_offsets[1] };
    })
    .sort((a, b) => a.begin - b.begin);
  return { bytes, headerLen, header, tensors, data: bytes.subarray(8 + headerLen) };
}

/** A safetensors file from header text and data; `length` overrides the header length field. */
export function safetensorsBytes(headerText: string | Uint8Array, data: Uint8Array, length?: bigint): Uint8Array {
  const h = typeof headerText === 'string' ? utf8(headerText) : headerText;
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function loadModel(name: BaseName): ModelBase {
  const fixture = FIXTURE[name];
  const config = u8(readFileSync(join(fixture, 'config.json')));
  return {
    name,
    fixture,
    config,
    configJson: JSON.parse(text(config)) as Record<string, unknown>,
    st: parseSafetensors(u8(readFileSync(join(fixture, 'model.safetensors')))),
    tokenizer: u8(readFileSync(join(fixture, 'tokenizer.json'))),
  };
}

/** Five short documents of the held-out corpus (one per source, one tagged Brown text), ~1.6k tokens with the ids below. */
function loadCorpus(): CorpusBase {
  const lines = readFileSync(join(ROOT, 'models', 'corpus', 'heldout.jsonl'), 'utf8').split('\n').filter(Boolean);
  const all = lines.map((l) => JSON.parse(l) as CorpusDoc);
  const picks: CorpusDoc[] = [];
  for (const source of ['sotu', 'moby-dick', 'brown', 'kjv']) picks.push(all.find((d) => d.source === source)!);
  picks.push(all.find((d) => d.topic === undefined)!);
  const docs = picks.map((d, i) => {
    const cut = d.text.lastIndexOf(' ', 300 + 40 * i);
    const doc: CorpusDoc = { source: d.source, id: d.id, ...(d.topic ? { topic: d.topic } : {}), text: d.text.slice(0, cut) };
    if (d.tagged) doc.tagged = d.tagged.slice(0, 4);
    return doc;
  });
  const jsonl = utf8(docs.map((d) => JSON.stringify(d)).join('\n') + '\n');
  const bin = u8(readFileSync(join(ROOT, 'models', 'corpus', 'heldout.tokens.bin')));
  return { docs, jsonl, tokens: bin.slice(0, 2 * 600) };
}

let models: Record<BaseName, ModelBase> | undefined;
let corpus: CorpusBase | undefined;
let tokenizerJson: Record<string, unknown> | undefined;

export function baseModels(): Record<BaseName, ModelBase> {
  return (models ??= { f32: loadModel('f32'), f16: loadModel('f16'), bf16: loadModel('bf16') });
}

export function baseCorpus(): CorpusBase {
  return (corpus ??= loadCorpus());
}

/** The GPT-2 tokenizer.json, parsed once; mutators copy what they change. */
export function baseTokenizerJson(): Record<string, unknown> {
  return (tokenizerJson ??= JSON.parse(text(baseModels().f32.tokenizer)) as Record<string, unknown>);
}

/** Byte arrays (or single bytes) joined, without going through a JS array (the weights are MBs). */
export function concat(...parts: (Uint8Array | number)[]): Uint8Array {
  const n = parts.reduce<number>((s, p) => s + (typeof p === 'number' ? 1 : p.length), 0);
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    if (typeof p === 'number') out[at++] = p;
    else {
      out.set(p, at);
      at += p.length;
    }
  }
  return out;
}
