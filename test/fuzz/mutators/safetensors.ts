// Mutators of model.safetensors: the 8-byte header length, the header JSON, the data bytes, and
// the file as a whole.
import { concat, type ModelBase, safetensorsBytes, type Tensor, utf8 } from '../base';
import { type Draft, FINITE_CHANGE } from '../mutation';
import type { Prng } from '../prng';

const FILE = 'model.safetensors';
const DTYPES = ['F32', 'F16', 'BF16', 'F64', 'BOOL', 'U8', 'I8', 'U16', 'I16', 'U32', 'I32', 'U64', 'I64', 'F8_E4M3', 'F8_E5M2'];
const SIZE: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

const one = (content: Uint8Array) => [{ path: FILE, content }];

/** The tensors just before and after `t` in data order, and `t`: a refusal about `t` may name any. */
function near(b: ModelBase, t: Tensor): string[] {
  const ts = b.st.tensors;
  const i = ts.findIndex((x) => x.name === t.name);
  return [ts[i - 1]?.name, t.name, ts[i + 1]?.name].filter((n): n is string => !!n);
}

// ---- header length ------------------------------------------------------------------------------

export function headerLength(r: Prng, b: ModelBase): Draft {
  const { bytes, headerLen } = b.st;
  const size = bytes.length;
  const out = bytes.slice();
  const dv = new DataView(out.buffer);
  const op = r.weighted([['delta', 5], ['set', 3], ['bitflip', 2]] as const);
  if (op === 'delta') {
    const d = r.pick([-16, -8, -7, -4, -3, -2, -1, 1, 2, 3, 4, 7, 8, 16, -headerLen, headerLen, r.range(-headerLen, 4096) || 5]);
    dv.setBigUint64(0, BigInt.asUintN(64, BigInt(headerLen + d)), true);
    return { op: 'length-delta', detail: `header length ${headerLen} -> ${headerLen + d}`, changes: one(out) };
  }
  if (op === 'set') {
    const v = r.pick([0n, 1n, 2n, BigInt(size - 8), BigInt(size - 7), BigInt(size), 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, BigInt(r.int(2 ** 30)) * BigInt(r.int(2 ** 30))]);
    if (v === BigInt(headerLen)) return headerLength(r, b);
    dv.setBigUint64(0, v, true);
    return { op: 'length-set', detail: `header length ${headerLen} -> ${v}`, changes: one(out) };
  }
  const byte = r.int(8);
  const bit = r.int(8);
  out[byte]! ^= 1 << bit;
  return { op: 'length-bitflip', detail: `header length byte ${byte} bit ${bit} flipped (${headerLen} -> ${dv.getBigUint64(0, true)})`, changes: one(out) };
}

// ---- header JSON --------------------------------------------------------------------------------

type Entries = [string, unknown][];

function entries(b: ModelBase): Entries {
  return Object.entries(JSON.parse(JSON.stringify(b.st.header)) as Record<string, unknown>);
}

/** Header text as writers make it: compact JSON, then spaces to a multiple of 8 bytes. */
function serialize(es: Entries, pad = true): string {
  const s = '{' + es.map(([k, v]) => JSON.stringify(k) + ':' + JSON.stringify(v)).join(',') + '}';
  const n = utf8(s).length;
  return pad ? s + ' '.repeat((8 - (n % 8)) % 8) : s;
}

const withHeader = (b: ModelBase, headerText: string | Uint8Array, length?: bigint) => one(safetensorsBytes(headerText, b.st.data, length));

function entryOf(es: Entries, name: string): Record<string, unknown> {
  return es.find(([k]) => k === name)![1] as Record<string, unknown>;
}

/** A value of another type or range, for a header field. */
function oddValue(r: Prng): unknown {
  return r.pick([null, true, 'x', '', -1, 1.5, 2 ** 53, 2 ** 64, -0, [], {}, [1, 2, 3], '16', 1e308]);
}

export function headerJson(r: Prng, b: ModelBase): Draft {
  const es = entries(b);
  const t = r.pick(b.st.tensors);
  const e = entryOf(es, t.name);
  const op = r.weighted([
    ['dtype', 4], ['shape', 4], ['offsets', 4], ['rename', 3], ['swap-entries', 1], ['remove-entry', 1],
    ['add-entry', 2], ['metadata', 2], ['format', 3], ['syntax', 4],
  ] as const);
  switch (op) {
    case 'dtype': {
      const v = r.chance(0.75) ? r.pick(DTYPES.filter((d) => d !== t.dtype)) : r.pick(['f32', 'F32 ', '', 'FP32', 'float32', 'bf16', 3, null, true, [], undefined]);
      if (v === undefined) delete e.dtype;
      else e.dtype = v;
      return { op: 'dtype', detail: `tensor ${t.name}: dtype ${t.dtype} -> ${JSON.stringify(v) ?? '(removed)'}`, changes: withHeader(b, serialize(es)), names: [t.name] };
    }
    case 'shape': {
      const s = [...t.shape];
      const k = r.int(s.length);
      const how = r.pick(['inc', 'dec', 'double', 'zero', 'neg', 'float', 'string', 'huge', 'drop', 'append1', 'prepend1', 'reverse', 'scalar', 'empty', 'remove', 'odd']);
      let v: unknown = s;
      if (how === 'inc') s[k]! += 1;
      else if (how === 'dec') s[k]! -= 1;
      else if (how === 'double') s[k]! *= 2;
      else if (how === 'zero') s[k] = 0;
      else if (how === 'neg') s[k] = -s[k]!;
      else if (how === 'float') (s as unknown[])[k] = s[k]! + 0.5;
      else if (how === 'string') (s as unknown[])[k] = String(s[k]);
      else if (how === 'huge') s[k] = r.pick([2 ** 31, 2 ** 32, 2 ** 53, 2 ** 60]);
      else if (how === 'drop') s.splice(k, 1);
      else if (how === 'append1') s.push(1);
      else if (how === 'prepend1') s.unshift(1);
      else if (how === 'reverse') s.reverse();
      else if (how === 'scalar') v = s[0];
      else if (how === 'empty') v = [];
      else if (how === 'odd') v = oddValue(r);
      if (how === 'remove') delete e.shape;
      else e.shape = v;
      const same = JSON.stringify(v) === JSON.stringify(t.shape) && how !== 'remove';
      return {
        op: 'shape',
        detail: `tensor ${t.name}: shape ${JSON.stringify(t.shape)} -> ${how === 'remove' ? '(removed)' : JSON.stringify(v)} (${how})`,
        changes: withHeader(b, serialize(es)),
        names: [t.name],
        ...(same ? { harmless: 'the shape is unchanged (a square matrix with its dimensions reversed)' } : {}),
      };
    }
    case 'offsets': {
      const n = t.end - t.begin;
      const k = r.pick([1, 2, 3, 4, 8, n, -1, -2, -4, -8, -n]);
      const how = r.pick(['shift', 'begin', 'end', 'swap', 'neg', 'float', 'string', 'huge', 'one', 'three', 'odd', 'remove', 'zero-length']);
      let v: unknown = [t.begin, t.end];
      if (how === 'shift') v = [t.begin + k, t.end + k];
      else if (how === 'begin') v = [t.begin + k, t.end];
      else if (how === 'end') v = [t.begin, t.end + k];
      else if (how === 'swap') v = [t.end, t.begin];
      else if (how === 'neg') v = [-t.begin - 1, t.end];
      else if (how === 'float') v = [t.begin + 0.5, t.end + 0.5];
      else if (how === 'string') v = [String(t.begin), String(t.end)];
      else if (how === 'huge') v = [t.begin, 2 ** 53 + 2];
      else if (how === 'one') v = [t.begin];
      else if (how === 'three') v = [t.begin, t.end, t.end];
      else if (how === 'odd') v = oddValue(r);
      else if (how === 'zero-length') v = [t.begin, t.begin];
      if (how === 'remove') delete e.data_offsets;
      else e.data_offsets = v;
      return {
        op: 'offsets',
        detail: `tensor ${t.name}: data_offsets [${t.begin}, ${t.end}] -> ${how === 'remove' ? '(removed)' : JSON.stringify(v)} (${how})`,
        changes: withHeader(b, serialize(es)),
        names: near(b, t),
      };
    }
    case 'rename': {
      const how = r.pick(['other', 'prefix', 'garbage', 'layer', 'mask', 'case', 'space', 'empty']);
      const other = r.pick(b.st.tensors.filter((x) => x.name !== t.name)).name;
      const to =
        how === 'other' ? other
        : how === 'prefix' ? 'transformer.' + t.name
        : how === 'garbage' ? t.name.replace(/\w/, 'q')
        : how === 'layer' ? t.name.replace(/^h\.\d+/, 'h.3').replace(/^(wte|wpe|ln_f)/, 'h.3.$1')
        : how === 'mask' ? t.name.replace(/[^.]+\.[^.]+$/, 'attn.bias')
        : how === 'case' ? t.name.toUpperCase()
        : how === 'space' ? t.name + ' '
        : '';
      // Renamed in the text, so that a name that already exists gives a duplicate key.
      const text = serialize(es.map(([k, v]) => [k === t.name ? to : k, v]));
      return {
        op: 'rename',
        detail: `tensor ${t.name} renamed ${JSON.stringify(to)} (${how})`,
        changes: withHeader(b, text),
        // A duplicate key keeps the later entry, so the gap may be where the other tensor was.
        names: [...near(b, t), to, ...(how === 'other' ? near(b, b.st.tensors.find((x) => x.name === other)!) : [])].filter(Boolean),
        ...(how === 'prefix' ? { harmless: 'Hugging Face stores GPT-2 tensors with or without the "transformer." prefix; both spellings name the same weight' } : {}),
      };
    }
    case 'swap-entries': {
      const same = b.st.tensors.filter((x) => x.name !== t.name && x.dtype === t.dtype && JSON.stringify(x.shape) === JSON.stringify(t.shape));
      if (same.length === 0) return headerJson(r, b);
      const u = r.pick(same);
      const eu = entryOf(es, u.name);
      const swapped = es.map(([k, v]) => [k, k === t.name ? eu : k === u.name ? e : v] as [string, unknown]);
      return {
        op: 'swap-entries',
        detail: `tensors ${t.name} and ${u.name} (same dtype and shape) exchange their data_offsets`,
        changes: withHeader(b, serialize(swapped)),
        legit:
          'a well-formed header that gives two tensors of one shape each other\'s bytes is a valid file of another model: the same as saving those weights exchanged, which nothing in a safetensors file can tell apart',
      };
    }
    case 'remove-entry':
      return { op: 'remove-entry', detail: `header entry of ${t.name} removed (its data left in place)`, changes: withHeader(b, serialize(es.filter(([k]) => k !== t.name))), names: near(b, t) };
    case 'add-entry': {
      const last = b.st.tensors[b.st.tensors.length - 1]!;
      const how = r.pick(['overlap', 'past-end', 'zero-size-unknown', 'zero-size-mask', 'lm_head-zero', 'scalar-overlap']);
      const add: [string, unknown] =
        how === 'overlap' ? ['extra.weight', { dtype: 'F32', shape: [4], data_offsets: [0, 16] }]
        : how === 'past-end' ? ['extra.weight', { dtype: 'F32', shape: [4], data_offsets: [last.end, last.end + 16] }]
        : how === 'zero-size-unknown' ? ['extra.weight', { dtype: 'F32', shape: [0], data_offsets: [last.end, last.end] }]
        : how === 'zero-size-mask' ? ['h.0.attn.masked_bias', { dtype: 'F32', shape: [0], data_offsets: [last.end, last.end] }]
        : how === 'lm_head-zero' ? ['lm_head.weight', { dtype: 'F32', shape: [0, 16], data_offsets: [0, 0] }]
        : ['h.0.attn.bias', { dtype: 'F32', shape: [], data_offsets: [t.begin, t.begin + 4] }];
      es.splice(r.int(es.length + 1), 0, add);
      const harmless =
        how === 'zero-size-mask' ? 'GPT-2 checkpoints may store the causal-mask buffers attn.bias / attn.masked_bias; they are not weights, and Hugging Face ignores them too'
        : how === 'lm_head-zero' ? 'with tie_word_embeddings (the default) the LM head is wte, as in Hugging Face, whatever lm_head.weight holds'
        : undefined;
      return { op: 'add-entry', detail: `header entry ${add[0]} ${JSON.stringify(add[1])} added (${how})`, changes: withHeader(b, serialize(es)), ...(harmless ? { harmless } : {}) };
    }
    case 'metadata': {
      const how = r.pick(['array', 'string', 'number', 'null', 'add-key', 'non-string-value', 'remove', 'nested']);
      const i = es.findIndex(([k]) => k === '__metadata__');
      const meta = es[i]![1] as Record<string, unknown>;
      let harmless: string | undefined;
      if (how === 'array') es[i]![1] = ['format', 'pt'];
      else if (how === 'string') es[i]![1] = 'pt';
      else if (how === 'number') es[i]![1] = 1;
      else if (how === 'null') es[i]![1] = null;
      else if (how === 'add-key') ((meta.note = 'fuzz'), (harmless = '__metadata__ is free-form strings; nothing reads it'));
      else if (how === 'non-string-value') ((meta.n = 3), (harmless = '__metadata__ is free-form; nothing reads it'));
      else if (how === 'nested') ((meta.obj = { a: [1] }), (harmless = '__metadata__ is free-form; nothing reads it'));
      else (es.splice(i, 1), (harmless = '__metadata__ is optional'));
      return { op: 'metadata', detail: `__metadata__ ${how}`, changes: withHeader(b, serialize(es)), ...(harmless ? { harmless } : {}) };
    }
    case 'format': {
      const how = r.pick(['pretty', 'shuffle-keys', 'shuffle-fields', 'pad-spaces', 'no-pad', 'escape-names', 'extra-field', 'float-ints', 'newline-pad']);
      let text: string;
      if (how === 'pretty') text = JSON.stringify(Object.fromEntries(es), null, 2);
      else if (how === 'shuffle-keys') text = serialize(r.shuffle([...es]));
      else if (how === 'shuffle-fields') text = serialize(es.map(([k, v]) => [k, k === '__metadata__' ? v : Object.fromEntries(r.shuffle(Object.entries(v as object)))]));
      else if (how === 'pad-spaces') text = serialize(es) + ' '.repeat(8 * r.range(1, 64));
      else if (how === 'no-pad') text = serialize(es, false);
      else if (how === 'escape-names') text = serialize(es).replace(/"h\./g, '"\\u0068.');
      else if (how === 'extra-field') text = serialize(es.map(([k, v]) => [k, k === '__metadata__' ? v : { ...(v as object), note: 'x' }]));
      else if (how === 'float-ints') text = serialize(es).replace(/"shape":\[(\d+)/g, '"shape":[$1.0');
      else text = serialize(es) + '\n\t \r\n';
      return { op: 'format', detail: `header re-written: ${how}`, changes: withHeader(b, text), harmless: 'JSON whitespace, key order, escapes and number spelling do not change what the header says' };
    }
    case 'syntax': {
      const base = utf8(serialize(es));
      const how = r.pick(['replace', 'delete', 'insert', 'truncate', 'array', 'null', 'empty-object', 'bad-utf8', 'nul']);
      let h: Uint8Array = base;
      let keepLength = r.chance(0.3);
      const p = r.int(base.length);
      if (how === 'replace') (h = base.slice())[p] = r.pick([...utf8('0123456789{}[]",: abcFhx.'), r.int(256)]);
      else if (how === 'delete') h = concat(base.subarray(0, p), base.subarray(p + 1));
      else if (how === 'insert') h = concat(base.subarray(0, p), r.pick([...utf8('0{}[]",: x')]), base.subarray(p));
      else if (how === 'truncate') h = base.subarray(0, p);
      else if (how === 'array') h = utf8('[]');
      else if (how === 'null') h = utf8('null');
      else if (how === 'empty-object') h = utf8('{}');
      else if (how === 'bad-utf8') (h = base.slice())[p] = r.pick([0xff, 0xc3, 0x80, 0xfe]);
      else (h = base.slice())[p] = 0;
      if (how === 'array' || how === 'null' || how === 'empty-object') keepLength = false;
      return {
        op: 'syntax',
        detail: `header text ${how} at byte ${p}${keepLength ? ' (length field kept)' : ''}`,
        changes: withHeader(b, h, keepLength ? BigInt(b.st.headerLen) : undefined),
        harmless: 'the edit fell in JSON whitespace or padding, or in __metadata__, and left every tensor\'s name, dtype, shape and offsets as they were',
      };
    }
  }
}

// ---- data bytes ---------------------------------------------------------------------------------

const NONFINITE: Record<string, number[]> = {
  F32: [0x7fc00000, 0x7f800001, 0xffc00000, 0x7f800000, 0xff800000, 0x7fffffff, 0xffffffff],
  F16: [0x7e00, 0x7c01, 0xfe00, 0x7c00, 0xfc00, 0x7fff, 0xffff],
  BF16: [0x7fc0, 0x7f81, 0xffc0, 0x7f80, 0xff80, 0x7fff, 0xffff],
};
const EXP: Record<string, number> = { F32: 0x7f800000, F16: 0x7c00, BF16: 0x7f80 };

function getBits(d: DataView, dtype: string, at: number): number {
  return SIZE[dtype] === 4 ? d.getUint32(at, true) : d.getUint16(at, true);
}
function setBits(d: DataView, dtype: string, at: number, v: number): void {
  if (SIZE[dtype] === 4) d.setUint32(at, v >>> 0, true);
  else d.setUint16(at, v, true);
}
const finiteBits = (dtype: string, v: number): boolean => ((v & EXP[dtype]!) >>> 0) !== EXP[dtype];

export function dataBytes(r: Prng, b: ModelBase): Draft {
  const { data, tensors, headerLen } = b.st;
  const t = r.pick(tensors);
  const size = SIZE[t.dtype]!;
  const count = (t.end - t.begin) / size;
  const out = b.st.bytes.slice();
  const dv = new DataView(out.buffer, 8 + headerLen);
  const k = r.weighted([[0, 1], [count - 1, 1], [r.int(count), 6]] as const);
  const at = t.begin + k * size;
  const op = r.weighted([['nonfinite', 5], ['bitflip', 3], ['run', 2], ['huge', 1], ['tensor', 1]] as const);
  void data;
  if (op === 'nonfinite') {
    const n = r.chance(0.8) ? 1 : Math.min(count - k, r.range(2, 64));
    const v = r.pick(NONFINITE[t.dtype]!);
    for (let i = 0; i < n; i++) setBits(dv, t.dtype, at + i * size, v);
    return { op: 'nonfinite', detail: `${t.name}[${k}${n > 1 ? `..${k + n - 1}` : ''}] = 0x${v.toString(16)} (${t.dtype})`, changes: one(out), names: [t.name] };
  }
  if (op === 'bitflip') {
    const bit = r.int(8 * size);
    const before = getBits(dv, t.dtype, at);
    const after = (before ^ (2 ** bit)) >>> 0;
    setBits(dv, t.dtype, at, after);
    const finite = finiteBits(t.dtype, after);
    return {
      op: 'bitflip',
      detail: `${t.name}[${k}] bit ${bit} flipped: 0x${before.toString(16)} -> 0x${after.toString(16)} (${finite ? 'finite' : 'non-finite'})`,
      changes: one(out),
      ...(finite ? { legit: FINITE_CHANGE } : { names: [t.name] }),
    };
  }
  if (op === 'run') {
    const n = Math.min(t.end - at, r.range(1, 64));
    const how = r.pick(['zero', 'random', '0xff', 'copy']);
    for (let i = 0; i < n; i++) {
      const o = 8 + headerLen + at + i;
      out[o] = how === 'zero' ? 0 : how === '0xff' ? 0xff : how === 'random' ? r.int(256) : out[8 + headerLen + ((at + i + 4096) % data.length)]!;
    }
    let finite = true;
    for (let e = k; e * size < at - t.begin + n; e++) finite &&= finiteBits(t.dtype, getBits(dv, t.dtype, t.begin + e * size));
    return {
      op: 'byte-run',
      detail: `${t.name}: ${n} bytes from element ${k} set to ${how} (${finite ? 'all finite' : 'some non-finite'})`,
      changes: one(out),
      ...(finite ? { legit: FINITE_CHANGE } : { names: [t.name] }),
    };
  }
  if (op === 'huge') {
    const v = r.pick(t.dtype === 'F32' ? [0x7f7fffff, 0xff7fffff, 0x7e967699, 0x00000001] : t.dtype === 'F16' ? [0x7bff, 0xfbff, 0x0001] : [0x7f7f, 0xff7f, 0x0001]);
    setBits(dv, t.dtype, at, v);
    return { op: 'huge-finite', detail: `${t.name}[${k}] = 0x${v.toString(16)} (${t.dtype}, largest finite or subnormal)`, changes: one(out), legit: FINITE_CHANGE };
  }
  const how = r.pick(['zero', 'copy-other']);
  const d0 = 8 + headerLen;
  if (how === 'zero') out.fill(0, d0 + t.begin, d0 + t.end);
  else {
    const same = tensors.filter((x) => x.name !== t.name && x.end - x.begin === t.end - t.begin);
    if (same.length === 0) out.fill(0, d0 + t.begin, d0 + t.end);
    else {
      const u = r.pick(same);
      out.set(b.st.bytes.subarray(d0 + u.begin, d0 + u.end), d0 + t.begin);
    }
  }
  return { op: 'tensor-overwrite', detail: `${t.name}: every byte ${how === 'zero' ? 'zeroed' : 'copied from a tensor of the same size'}`, changes: one(out), legit: FINITE_CHANGE };
}

// ---- the file -----------------------------------------------------------------------------------

export function wholeFile(r: Prng, b: ModelBase): Draft {
  const { bytes, headerLen, tensors } = b.st;
  const size = bytes.length;
  const op = r.weighted([['truncate', 5], ['extend', 3], ['prepend', 1], ['replace', 2], ['layout', 3]] as const);
  if (op === 'truncate') {
    const t = r.pick(tensors);
    const at = r.pick([0, 1, 7, 8, 9, r.range(9, 8 + headerLen), 8 + headerLen, 8 + headerLen + t.begin, 8 + headerLen + t.end, r.int(size), size - 1, size - 2, size - 4]);
    if (at >= size) return wholeFile(r, b);
    return { op: 'truncate', detail: `cut to ${at} of ${size} bytes`, changes: one(bytes.subarray(0, at)) };
  }
  if (op === 'extend') {
    const n = r.pick([1, 2, 4, 8, 16, r.range(1, 4096)]);
    const how = r.pick(['zero', 'random', 'space', 'copy']);
    const tail = how === 'zero' ? new Uint8Array(n) : how === 'random' ? r.bytes(n) : how === 'space' ? new Uint8Array(n).fill(0x20) : bytes.subarray(size - n);
    return { op: 'extend', detail: `${n} ${how} bytes appended`, changes: one(concat(bytes, tail)) };
  }
  if (op === 'prepend') {
    const n = r.pick([1, 2, 4, 8]);
    return { op: 'prepend', detail: `${n} zero bytes prepended`, changes: one(concat(new Uint8Array(n), bytes)) };
  }
  if (op === 'replace') {
    const how = r.pick(['random', 'zeros', 'json', 'pickle', 'text', 'empty']);
    const content =
      how === 'random' ? r.bytes(Math.min(size, 65536))
      : how === 'zeros' ? new Uint8Array(size)
      : how === 'json' ? utf8(JSON.stringify(b.configJson))
      : how === 'pickle' ? new Uint8Array([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e])
      : how === 'text' ? utf8('version https://git-lfs.github.com/spec/v1\noid sha256:4f0c\nsize 3261352\n')
      : new Uint8Array(0);
    return { op: 'replace', detail: `file replaced by ${content.length} bytes of ${how}`, changes: one(content) };
  }
  const how = r.pick(['missing', 'pickle-only', 'sharded', 'folder', 'renamed', 'two-files', 'extra-file']);
  if (how === 'missing') return { op: 'layout', detail: 'model.safetensors removed', changes: [{ path: FILE, content: 'delete' }] };
  if (how === 'pickle-only')
    return { op: 'layout', detail: 'model.safetensors removed, pytorch_model.bin present', changes: [{ path: FILE, content: 'delete' }, { path: 'pytorch_model.bin', content: new Uint8Array([0x80, 0x02]) }] };
  if (how === 'sharded')
    return { op: 'layout', detail: 'model.safetensors removed, model.safetensors.index.json present', changes: [{ path: FILE, content: 'delete' }, { path: 'model.safetensors.index.json', content: utf8('{"weight_map":{}}') }] };
  if (how === 'folder') return { op: 'layout', detail: 'model.safetensors is a folder', changes: [{ path: FILE, content: 'dir' }] };
  if (how === 'renamed')
    return {
      op: 'layout',
      detail: 'model.safetensors renamed weights.safetensors',
      changes: [{ path: FILE, content: 'delete' }, { path: 'weights.safetensors', content: bytes }],
      harmless: 'the folder\'s only .safetensors file is the weights, whatever its name',
    };
  if (how === 'two-files')
    return { op: 'layout', detail: 'model.safetensors renamed a.safetensors, plus b.safetensors', changes: [{ path: FILE, content: 'delete' }, { path: 'a.safetensors', content: bytes }, { path: 'b.safetensors', content: bytes }] };
  return {
    op: 'layout',
    detail: 'an extra old.safetensors (garbage) beside model.safetensors',
    changes: [{ path: 'old.safetensors', content: r.bytes(100) }],
    harmless: 'model.safetensors is read when present; other .safetensors files in the folder are not weights of this model',
  };
}
