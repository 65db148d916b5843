// Mutators of config.json. Each mutated text is judged here, before the engine runs, by what it
// means: fields the forward does not read are harmless; a few fields may take another valid
// value that the weights cannot contradict (a different model, not a corrupt one); anything
// else must be refused.
import { concat, type ModelBase, text, utf8 } from '../base';
import type { Draft } from '../mutation';
import type { Prng } from '../prng';

const FILE = 'config.json';

/** Fields the engine reads (arch/gpt2.ts parseGpt2Config, validate.ts). */
const READ = new Set([
  'model_type', 'n_layer', 'n_head', 'n_embd', 'n_inner', 'n_positions', 'n_ctx', 'vocab_size', 'layer_norm_epsilon',
  'activation_function', 'scale_attn_weights', 'scale_attn_by_inverse_layer_idx', 'reorder_and_upcast_attn', 'tie_word_embeddings',
  'bos_token_id', 'eos_token_id',
]);
const ACTIVATIONS = ['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast', 'gelu', 'relu'];
const BOOLS = ['scale_attn_weights', 'scale_attn_by_inverse_layer_idx', 'reorder_and_upcast_attn'];

const VALUES: unknown[] = [
  0, -1, 1, 2, 3, 4, 8, 15, 16, 17, 31, 32, 33, 64, 65, 128, 50256, 50257, 50258, 1e9, -1e9, 1.5, 0.5, 1e-300, 1e308, 2 ** 31, 2 ** 53, 2 ** 53 + 2,
  1e-5, 1e-6, 1e-12, 1e-13, 0.1, 0.2, 10, '3', '', 'gelu', 'gelu_new', 'relu', 'gelu_pytorch_tanh', 'swish', 'gpt2', 'gpt_neox', 'float16', 'true', 'null',
  true, false, null, [], {}, [3], { n: 3 },
];

/** Why a changed field with value `v` is a valid, different model; undefined when it is not. */
function legitValue(field: string, v: unknown, cfg: Record<string, unknown>): string | undefined {
  if (field === 'n_head') {
    const d = cfg.n_embd;
    if (Number.isInteger(v) && (v as number) > 0 && typeof d === 'number' && d % (v as number) === 0) {
      return 'n_head is not visible in the weights (c_attn is [n_embd, 3·n_embd] for any head count): another divisor of n_embd is a valid config of a different model';
    }
  }
  if (field === 'layer_norm_epsilon' && (v === undefined || v === null || (typeof v === 'number' && v >= 1e-12 && v <= 0.1))) {
    return 'layer_norm_epsilon is a free hyperparameter (GPT-2: 1e-5); another plausible value is a valid config of a different model';
  }
  if (field === 'activation_function' && (v === undefined || v === null || ACTIVATIONS.includes(v as string))) {
    return 'the MLP nonlinearity is not visible in the weights; another supported one is a valid config of a different model';
  }
  if (BOOLS.includes(field) && (v === undefined || v === null || typeof v === 'boolean')) {
    return `${field} is a switch the weights cannot contradict (absent: Hugging Face's default); either value is a valid config of a different model`;
  }
  if (field === 'tie_word_embeddings' && (v === undefined || v === null || typeof v === 'boolean')) return 'tie_word_embeddings is a valid switch';
  if (field === 'n_inner' && (v === undefined || v === null || v === cfg.n_embd_times_4)) return 'n_inner absent or null means 4·n_embd';
  return undefined;
}

/**
 * bos_token_id / eos_token_id do not enter the forward; the engine checks them against the
 * tokenizer's <|endoftext|> (50256) when they are ids of the vocabulary, and ignores an id past it.
 */
function placeholderId(k: string, v: unknown, cfg: Record<string, unknown>): boolean {
  if (k !== 'bos_token_id' && k !== 'eos_token_id') return false;
  const vocab = typeof cfg.vocab_size === 'number' ? cfg.vocab_size : 50257;
  return v === undefined || v === null || v === 50256 || (Number.isSafeInteger(v) && (v as number) >= vocab);
}

/** The meaning of `mutated` against `base`: harmless / legit(why) / corrupt. */
export function judgeConfig(base: Record<string, unknown>, mutated: Uint8Array): Pick<Draft, 'legit' | 'harmless'> {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(mutated));
  } catch {
    return {};
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
  const cfg = v as Record<string, unknown>;
  const keys = new Set([...Object.keys(base), ...Object.keys(cfg)]);
  const reasons: string[] = [];
  let unread = 0;
  for (const k of keys) {
    if (JSON.stringify(base[k]) === JSON.stringify(cfg[k])) continue;
    if (!READ.has(k) || (k === 'n_ctx' && cfg.n_positions !== undefined) || placeholderId(k, cfg[k], cfg)) {
      unread++;
      continue;
    }
    const why = legitValue(k, cfg[k], { ...cfg, n_embd_times_4: typeof cfg.n_embd === 'number' ? 4 * cfg.n_embd : undefined });
    if (!why) return {};
    reasons.push(why);
  }
  if (reasons.length > 0) return { legit: [...new Set(reasons)].join('; ') };
  return {
    harmless: unread > 0 ? 'the change is to fields the forward does not read (dropout, initializer_range, architectures, torch_dtype, use_cache, ...; bos/eos_token_id absent, or past the vocabulary: a placeholder)' : 'the JSON means the same (whitespace, key order, number spelling, escapes)',
  };
}

function set(obj: Record<string, unknown>, k: string, v: unknown): Record<string, unknown> {
  const o = { ...obj };
  if (v === undefined) delete o[k];
  else o[k] = v;
  return o;
}

export function configJson(r: Prng, b: ModelBase): Draft {
  const base = b.configJson;
  const keys = Object.keys(base);
  const op = r.weighted([['remove', 3], ['set', 6], ['add', 1], ['duplicate-key', 1], ['format', 2], ['syntax', 3], ['file', 1]] as const);
  let out: Uint8Array;
  let detail: string;
  let names: string[] | undefined;
  if (op === 'remove') {
    const k = r.pick(keys);
    out = utf8(JSON.stringify(set(base, k, undefined), null, 2));
    detail = `"${k}" removed`;
    names = [k];
  } else if (op === 'set' || op === 'add') {
    const k = op === 'add' ? r.pick(['n_ctx', 'tie_word_embeddings', 'n_inner', 'fuzz_field', 'bos_token_id', 'summary_type']) : r.pick([...keys.filter((x) => READ.has(x)), ...keys]);
    const v = r.pick(VALUES);
    out = utf8(JSON.stringify(set(base, k, v), null, 2));
    detail = `"${k}": ${JSON.stringify(base[k])} -> ${JSON.stringify(v)}`;
    names = [k];
  } else if (op === 'duplicate-key') {
    const k = r.pick(keys);
    const v = r.pick(VALUES);
    // A second "k" at the end: JSON.parse (like Python's json) keeps the last.
    out = utf8(JSON.stringify(base, null, 2).replace(/\n}$/, `,\n  ${JSON.stringify(k)}: ${JSON.stringify(v)}\n}`));
    detail = `"${k}" given again at the end as ${JSON.stringify(v)}`;
    names = [k];
  } else if (op === 'format') {
    const how = r.pick(['compact', 'shuffle', 'tabs', 'float-ints', 'exp-ints', 'escape-keys', 'crlf']);
    const s =
      how === 'compact' ? JSON.stringify(base)
      : how === 'shuffle' ? JSON.stringify(Object.fromEntries(r.shuffle(Object.entries(base))), null, 1)
      : how === 'tabs' ? JSON.stringify(base, null, '\t')
      : how === 'float-ints' ? JSON.stringify(base, null, 2).replace(/: (\d+)(,?)$/gm, ': $1.0$2')
      : how === 'exp-ints' ? JSON.stringify(base, null, 2).replace(/: (\d+)(,?)$/gm, ': $1e0$2')
      : how === 'escape-keys' ? JSON.stringify(base, null, 2).replace(/"n_/g, '"\\u006e_')
      : JSON.stringify(base, null, 2).replace(/\n/g, '\r\n');
    out = utf8(s);
    detail = `re-written: ${how}`;
  } else if (op === 'syntax') {
    const src = utf8(JSON.stringify(base, null, 2));
    const how = r.pick(['replace', 'delete', 'insert', 'truncate', 'array', 'null', 'number', 'string', 'empty', 'bom', 'bad-utf8', 'nan', 'utf16']);
    const p = r.int(src.length);
    if (how === 'replace') (out = src.slice())[p] = r.pick([...utf8('0123456789{}[]",:.-e abnx')]);
    else if (how === 'delete') out = concat(src.subarray(0, p), src.subarray(p + 1));
    else if (how === 'insert') out = concat(src.subarray(0, p), r.pick([...utf8('0{}[]",:-x ')]), src.subarray(p));
    else if (how === 'truncate') out = src.subarray(0, p);
    else if (how === 'array') out = utf8('[]');
    else if (how === 'null') out = utf8('null');
    else if (how === 'number') out = utf8('3');
    else if (how === 'string') out = utf8('"gpt2"');
    else if (how === 'empty') out = new Uint8Array(0);
    else if (how === 'bom') out = concat(0xef, 0xbb, 0xbf, src);
    else if (how === 'bad-utf8') (out = src.slice())[p] = 0xff;
    else if (how === 'nan') out = utf8(text(src).replace(/"n_layer": \d+/, '"n_layer": NaN'));
    else {
      const s = text(src);
      out = new Uint8Array(2 * s.length);
      for (let i = 0; i < s.length; i++) new DataView(out.buffer).setUint16(2 * i, s.charCodeAt(i), true);
    }
    detail = `${how} at byte ${p}`;
  } else {
    const how = r.pick(['missing', 'folder']);
    return { op: 'file', detail: `config.json ${how}`, changes: [{ path: FILE, content: how === 'missing' ? 'delete' : 'dir' }] };
  }
  return { op, detail, changes: [{ path: FILE, content: out }], ...(names ? { names } : {}), ...judgeConfig(base, out) };
}
