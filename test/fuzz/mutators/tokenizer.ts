// Mutators of tokenizer.json (the real GPT-2 tokenizer: 50,257 tokens, 50,000 merges): vocab and
// merges emptied, truncated, shuffled, duplicated, re-typed; added tokens; the model and
// pre-tokenizer settings; the sections the engine does not read; broken JSON; other files.
import { baseTokenizerJson, concat, type ModelBase, text, utf8 } from '../base';
import type { Draft } from '../mutation';
import type { Prng } from '../prng';

const FILE = 'tokenizer.json';
type Json = Record<string, unknown>;

const IGNORED =
  'the engine encodes with vocab, merges, added tokens and the ByteLevel pre-tokenizer only; post_processor, decoder, truncation, padding and version do not decide the ids (it prepends BOS itself)';

function clone(): { j: Json; model: Json } {
  const base = baseTokenizerJson();
  const model = { ...(base.model as Json) };
  return { j: { ...base, model }, model };
}

/** The base vocab and merges as JSON text, made once: most mutations leave both as they are. */
let cached: { vocab: unknown; merges: unknown; vocabText: string; mergesText: string } | undefined;

/** JSON.stringify, reusing the base vocab's and merges' text where the mutation kept those objects. */
function stringify(j: Json): string {
  const base = baseTokenizerJson().model as Json;
  cached ??= { vocab: base.vocab, merges: base.merges, vocabText: JSON.stringify(base.vocab), mergesText: JSON.stringify(base.merges) };
  const c = cached;
  const part = (k: string, v: unknown): string => JSON.stringify(k) + ':' + (v === c.vocab ? c.vocabText : v === c.merges ? c.mergesText : JSON.stringify(v));
  const obj = (o: Json, deep: boolean): string =>
    '{' +
    Object.entries(o)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => (deep && k === 'model' && isJson(v) ? JSON.stringify(k) + ':' + obj(v, false) : part(k, v)))
      .join(',') +
    '}';
  return obj(j, true);
}

let byIdCache: string[] | undefined;
function idsOf(vocab: Record<string, number>): string[] {
  const byId = new Array<string>(50257);
  for (const t in vocab) byId[vocab[t]!] = t;
  return byId;
}

const isJson = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

const out = (j: Json) => [{ path: FILE, content: utf8(stringify(j)) }];

export function tokenizerJson(r: Prng, _b: ModelBase): Draft {
  const { j, model } = clone();
  const vocab = model.vocab as Record<string, number>;
  const merges = model.merges as string[];
  const op = r.weighted([
    ['vocab', 5], ['merges', 5], ['added', 3], ['model', 2], ['pre_tokenizer', 2], ['normalizer', 1], ['ignored', 2], ['syntax', 3], ['file', 1],
  ] as const);
  if (op === 'vocab') {
    const how = r.pick(['empty', 'drop', 'drop-tail', 'shuffle', 'swap', 'swap', 'swap', 'dup-id', 'id-type', 'add', 'rename', 'type']);
    const v: Record<string, unknown> = { ...vocab };
    const byId = (byIdCache ??= idsOf(vocab));
    let detail = how;
    if (how === 'empty') model.vocab = {};
    else if (how === 'drop') {
      const n = r.pick([1, 2, 10, 1000]);
      const gone = Array.from({ length: n }, () => byId[r.int(byId.length)]!);
      for (const t of gone) delete v[t];
      model.vocab = v;
      detail = `${n} random tokens removed (e.g. ${JSON.stringify(gone[0])})`;
    } else if (how === 'drop-tail') {
      const keep = r.pick([256, 1000, 50000, 50256]);
      for (let id = keep; id < byId.length; id++) delete v[byId[id]!];
      model.vocab = v;
      detail = `ids ${keep}.. removed`;
    } else if (how === 'shuffle') {
      const ids = r.shuffle(Object.values(vocab));
      Object.keys(vocab).forEach((t, i) => (v[t] = ids[i]));
      model.vocab = v;
      detail = 'ids shuffled among the tokens';
    } else if (how === 'swap') {
      const kind = r.pick(['random', 'bytes', 'byte-merge', 'neighbours', 'eot-last', 'eot-random', 'last-two']);
      const [a, c] =
        kind === 'random' ? [r.int(50256), r.int(50256)]
        : kind === 'bytes' ? [r.int(256), r.int(256)]
        : kind === 'byte-merge' ? [r.int(256), 256 + r.int(50000)]
        : kind === 'neighbours' ? ((x) => [x, x + 1])(256 + r.int(49999))
        : kind === 'eot-last' ? [50256, 50255]
        : kind === 'eot-random' ? [50256, r.int(50256)]
        : [50254, 50255];
      if (a === c) return tokenizerJson(r, _b);
      v[byId[a]!] = c;
      v[byId[c]!] = a;
      model.vocab = v;
      detail = `ids of ${JSON.stringify(byId[a])} (${a}) and ${JSON.stringify(byId[c])} (${c}) swapped (${kind})`;
    } else if (how === 'dup-id') {
      const a = r.int(50257);
      const c = r.int(50257);
      if (a === c) return tokenizerJson(r, _b);
      v[byId[a]!] = c;
      model.vocab = v;
      detail = `${JSON.stringify(byId[a])} given id ${c} of ${JSON.stringify(byId[c])}`;
    } else if (how === 'id-type') {
      const t = byId[r.int(50257)]!;
      const val = r.pick(['5', -1, 1.5, null, 1e20, true, [], 2 ** 53, 2 ** 40, 2 ** 24, 1e7]);
      v[t] = val;
      model.vocab = v;
      detail = `${JSON.stringify(t)}: id -> ${JSON.stringify(val)}`;
    } else if (how === 'add') {
      const id = r.pick([50257, 50258, 60000]);
      v['fuzzĠtoken'] = id;
      model.vocab = v;
      detail = `token "fuzzĠtoken" added with id ${id}`;
    } else if (how === 'rename') {
      const id = r.int(50256);
      delete v[byId[id]!];
      v[byId[id] + 'x'] = id;
      model.vocab = v;
      detail = `token ${JSON.stringify(byId[id])} renamed ${JSON.stringify(byId[id] + 'x')}`;
    } else {
      model.vocab = r.pick([[], 'vocab', null, 3, Object.keys(vocab)]);
      detail = `model.vocab -> ${Array.isArray(model.vocab) ? 'array' : JSON.stringify(model.vocab)}`;
    }
    return { op: `vocab-${how}`, detail, changes: out(j) };
  }
  if (op === 'merges') {
    const how = r.pick(['empty', 'truncate', 'shuffle', 'swap', 'swap', 'dup-later', 'dup-earlier', 'delete-one', 'array-form', 'array-form-one', 'bad', 'type', 'reverse']);
    const m: unknown[] = [...merges];
    let detail = how;
    let harmless: string | undefined;
    if (how === 'empty') m.length = 0;
    else if (how === 'truncate') {
      const n = r.pick([1, 100, 25000, 49999, r.int(50000)]);
      m.length = n;
      detail = `first ${n} kept`;
    } else if (how === 'shuffle') r.shuffle(m);
    else if (how === 'reverse') m.reverse();
    else if (how === 'swap') {
      const a = r.int(50000);
      const c = r.chance(0.5) ? Math.min(49999, a + 1) : r.int(50000);
      if (a === c) return tokenizerJson(r, _b);
      [m[a], m[c]] = [m[c], m[a]];
      detail = `merges ${a} (${JSON.stringify(merges[a])}) and ${c} (${JSON.stringify(merges[c])}) swapped`;
    } else if (how === 'dup-later') {
      const a = r.int(50000);
      const at = r.range(a + 1, 50000);
      m.splice(at, 0, merges[a]);
      detail = `merge ${a} (${JSON.stringify(merges[a])}) repeated at ${at}`;
      harmless = 'a merge repeated after its first occurrence never applies: BPE ranks a pair by its first occurrence (as Hugging Face does)';
    } else if (how === 'dup-earlier') {
      const a = r.range(1, 49999);
      const at = r.int(a);
      m.splice(at, 0, merges[a]);
      detail = `merge ${a} (${JSON.stringify(merges[a])}) copied to position ${at}`;
    } else if (how === 'delete-one') {
      const a = r.int(50000);
      m.splice(a, 1);
      detail = `merge ${a} (${JSON.stringify(merges[a])}) removed`;
    } else if (how === 'array-form') {
      for (let i = 0; i < m.length; i++) m[i] = (m[i] as string).split(' ');
      harmless = 'merges as ["a", "b"] pairs is the newer tokenizers format of "a b"';
    } else if (how === 'array-form-one') {
      const a = r.int(50000);
      m[a] = merges[a]!.split(' ');
      harmless = 'merges as ["a", "b"] pairs is the newer tokenizers format of "a b"';
    } else if (how === 'bad') {
      const a = r.int(50000);
      const [x, y] = merges[a]!.split(' ');
      m[a] = r.pick([`${x}  ${y}`, `${x}`, `${x} ${y} z`, 3, null, [x], [x, 3], ` ${x} ${y}`, `${x}${y}`, '']);
      detail = `merge ${a} -> ${JSON.stringify(m[a])}`;
    } else {
      model.merges = r.pick([{}, 'merges', null, 3]);
      return { op: 'merges-type', detail: `model.merges -> ${JSON.stringify(model.merges)}`, changes: out(j) };
    }
    model.merges = m;
    return { op: `merges-${how}`, detail, changes: out(j), ...(harmless ? { harmless } : {}) };
  }
  if (op === 'added') {
    const base = (j.added_tokens as Json[])[0]!;
    const how = r.pick(['remove-all', 'id', 'content', 'special', 'lstrip', 'rstrip', 'single_word', 'normalized', 'add-new', 'duplicate', 'type', 'entry-type', 'empty-content']);
    const t: Json = { ...base };
    let list: unknown = [t];
    let legit: string | undefined;
    let harmless: string | undefined;
    if (how === 'remove-all') list = [];
    else if (how === 'id') t.id = r.pick([50255, 50257, 0, -1, '50256', 1.5]);
    else if (how === 'content') t.content = r.pick(['<|eot|>', '<|endoftext|> ', '', 'the']);
    else if (how === 'special') ((t.special = false), (harmless = 'special only marks a token to skip when decoding for display; the ids of a text do not depend on it'));
    else if (how === 'lstrip' || how === 'rstrip') ((t[how] = true), (legit = `${how} on an added token is a Hugging Face tokenizer setting (it takes the spaces beside the token into it): a valid, different tokenizer`));
    else if (how === 'single_word') t.single_word = true;
    else if (how === 'normalized') ((t.normalized = false), (harmless = 'normalized matters only with a normalizer, and GPT-2 has none'));
    else if (how === 'add-new') list = [t, { ...base, id: r.pick([50257, 50255, 0]), content: r.pick(['<|pad|>', 'hello']) }];
    else if (how === 'duplicate') ((list = [t, { ...t }]), (harmless = 'the same added token listed twice is one token'));
    else if (how === 'type') list = r.pick([{}, 'x', null, 3]);
    else if (how === 'entry-type') list = [r.pick([null, 'x', 3, [], { content: '<|endoftext|>' }])];
    else t.content = '';
    j.added_tokens = list;
    return { op: `added-${how}`, detail: `added_tokens: ${JSON.stringify(list).slice(0, 200)}`, changes: out(j), ...(legit ? { legit } : {}), ...(harmless ? { harmless } : {}) };
  }
  if (op === 'model') {
    const how = r.pick(['type', 'type-absent', 'dropout', 'dropout-zero', 'unk_token', 'continuing_subword_prefix', 'end_of_word_suffix', 'fuse_unk', 'byte_fallback', 'ignore_merges', 'model-type']);
    let legit: string | undefined;
    let harmless: string | undefined;
    if (how === 'type') model.type = r.pick(['WordPiece', 'Unigram', 'WordLevel', 'bpe', null, 3]);
    else if (how === 'type-absent') ((delete model.type), (harmless = 'model.type may be omitted; the BPE fields are there'));
    else if (how === 'dropout') model.dropout = r.pick([0.1, 0.5, 1]);
    else if (how === 'dropout-zero') ((model.dropout = 0), (harmless = 'BPE dropout 0 drops nothing'));
    else if (how === 'unk_token') ((model.unk_token = '<unk>'), (harmless = 'a byte-level vocabulary holds every byte, so nothing is ever unknown'));
    else if (how === 'continuing_subword_prefix') model.continuing_subword_prefix = '##';
    else if (how === 'end_of_word_suffix') model.end_of_word_suffix = '</w>';
    else if (how === 'fuse_unk') ((model.fuse_unk = true), (harmless = 'nothing is unknown in a byte-level vocabulary, so there is nothing to fuse'));
    else if (how === 'byte_fallback') ((model.byte_fallback = true), (harmless = 'byte_fallback applies to characters missing from the vocabulary, and a byte-level vocabulary has every byte'));
    else if (how === 'ignore_merges')
      ((model.ignore_merges = true), (legit = 'ignore_merges is a Hugging Face BPE setting (a word in the vocabulary is one token before any merge): a valid, different tokenizer'));
    else j.model = r.pick([null, 'BPE', [], 3]);
    return { op: `model-${how}`, detail: `model.${how}: ${JSON.stringify(how === 'model-type' ? j.model : model[how === 'type-absent' ? 'type' : how])}`, changes: out(j), ...(legit ? { legit } : {}), ...(harmless ? { harmless } : {}) };
  }
  if (op === 'pre_tokenizer') {
    const base = j.pre_tokenizer as Json;
    const how = r.pick(['add_prefix_space', 'use_regex', 'trim_offsets', 'type', 'null', 'sequence', 'sequence-two', 'delete']);
    let harmless: string | undefined;
    if (how === 'add_prefix_space') j.pre_tokenizer = { ...base, add_prefix_space: true };
    else if (how === 'use_regex') j.pre_tokenizer = { ...base, use_regex: false };
    else if (how === 'trim_offsets') ((j.pre_tokenizer = { ...base, trim_offsets: false }), (harmless = 'trim_offsets changes Hugging Face\'s offsets, not the ids; the engine computes its own character ranges'));
    else if (how === 'type') j.pre_tokenizer = { ...base, type: r.pick(['Whitespace', 'Metaspace', 'bytelevel']) };
    else if (how === 'null') j.pre_tokenizer = null;
    else if (how === 'sequence') ((j.pre_tokenizer = { type: 'Sequence', pretokenizers: [base] }), (harmless = 'a Sequence of the one ByteLevel pre-tokenizer is that pre-tokenizer'));
    else if (how === 'sequence-two') j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, base] };
    else delete j.pre_tokenizer;
    return { op: `pre_tokenizer-${how}`, detail: `pre_tokenizer -> ${JSON.stringify(j.pre_tokenizer)}`, changes: out(j), ...(harmless ? { harmless } : {}) };
  }
  if (op === 'normalizer') {
    const v = r.pick([{ type: 'NFC' }, { type: 'Lowercase' }, { type: 'Sequence', normalizers: [] }, 'x']);
    j.normalizer = v;
    // NFC is GPT-NeoX's (Pythia's) normalizer, which the engine supports: a valid tokenizer of another model.
    const legit = JSON.stringify(v) === '{"type":"NFC"}' ? 'NFC is a supported normalizer (GPT-NeoX\'s): a valid tokenizer whose ids differ from GPT-2\'s only on text that is not in NFC' : undefined;
    return { op: 'normalizer', detail: `normalizer -> ${JSON.stringify(v)}`, changes: out(j), ...(legit ? { legit } : {}) };
  }
  if (op === 'ignored') {
    const how = r.pick(['post_processor', 'decoder', 'truncation', 'padding', 'version', 'extra-key', 'delete-decoder']);
    if (how === 'post_processor') j.post_processor = { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [], special_tokens: {} };
    else if (how === 'decoder') j.decoder = { type: 'Metaspace', replacement: '▁' };
    else if (how === 'truncation') j.truncation = { direction: 'Right', max_length: 5, strategy: 'LongestFirst', stride: 0 };
    else if (how === 'padding') j.padding = { strategy: { Fixed: 64 }, direction: 'Left', pad_id: 0, pad_type_id: 0, pad_token: '!' };
    else if (how === 'version') j.version = '9.9';
    else if (how === 'extra-key') j.fuzz = { a: [1, 2] };
    else delete j.decoder;
    return { op: `ignored-${how}`, detail: `${how} changed`, changes: out(j), harmless: IGNORED };
  }
  if (op === 'syntax') {
    const src = _b.tokenizer;
    const how = r.pick(['truncate', 'replace', 'delete', 'bad-utf8', 'bom', 'empty', 'null', 'array', 'whitespace', 'nul']);
    const p = r.int(src.length);
    let c: Uint8Array;
    let harmless: string | undefined;
    if (how === 'truncate') c = src.subarray(0, p);
    else if (how === 'replace') (c = src.slice())[p] = r.pick([...utf8('0123456789{}[]",:. abxĠ')]);
    else if (how === 'delete') c = concat(src.subarray(0, p), src.subarray(p + 1));
    else if (how === 'bad-utf8') (c = src.slice())[p] = r.pick([0xff, 0xc3, 0x80]);
    else if (how === 'bom') ((c = concat(0xef, 0xbb, 0xbf, src)), (harmless = 'a UTF-8 byte-order mark is not part of the JSON text'));
    else if (how === 'empty') c = new Uint8Array(0);
    else if (how === 'null') c = utf8('null');
    else if (how === 'array') c = utf8('[]');
    else if (how === 'whitespace') ((c = utf8(JSON.stringify(JSON.parse(text(src)), null, 4))), (harmless = 'JSON whitespace'));
    else (c = src.slice())[p] = 0;
    return {
      op: `syntax-${how}`,
      detail: `${how} at byte ${p}`,
      changes: [{ path: FILE, content: c }],
      harmless: harmless ?? 'the edit fell in JSON whitespace or in a section the engine does not read (decoder, post_processor, an added token\'s "normalized")',
    };
  }
  const how = r.pick(['missing', 'folder', 'vocab-merges', 'vocab-only']);
  if (how === 'missing') return { op: 'file-missing', detail: 'tokenizer.json removed', changes: [{ path: FILE, content: 'delete' }] };
  if (how === 'folder') return { op: 'file-folder', detail: 'tokenizer.json is a folder', changes: [{ path: FILE, content: 'dir' }] };
  const vocabJson = utf8(JSON.stringify(vocab));
  const mergesTxt = utf8('#version: 0.2\n' + merges.join('\n') + '\n');
  if (how === 'vocab-only') return { op: 'file-vocab-only', detail: 'tokenizer.json replaced by vocab.json alone', changes: [{ path: FILE, content: 'delete' }, { path: 'vocab.json', content: vocabJson }] };
  return {
    op: 'file-vocab-merges',
    detail: 'tokenizer.json replaced by the same vocabulary as vocab.json + merges.txt',
    changes: [{ path: FILE, content: 'delete' }, { path: 'vocab.json', content: vocabJson }, { path: 'merges.txt', content: mergesTxt }],
    harmless: 'vocab.json + merges.txt is the original GPT-2 form of the same tokenizer',
  };
}
