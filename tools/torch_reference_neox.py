#!/usr/bin/python3
"""Independent GPT-NeoX (Pythia) reference for the engine's parity test.

Writes small random Pythia-shaped checkpoints in Hugging Face layout (config.json,
model.safetensors, tokenizer.json) under test/fixtures/, runs them through a GPT-NeoX forward
written here directly in PyTorch from the maths of transformers' modeling_gpt_neox.py (no
transformers, nothing from our TypeScript engine), and stores goldens in test/fixtures/golden/
in the format of tools/torch_reference.py (the GPT-2 reference, whose hand-written GPT-2
pre-tokenizer and safetensors writer are reused here).

The tokenizer. Pythia's own tokenizer.json (EleutherAI/gpt-neox-20b, 50,277 tokens) cannot be
downloaded here and would make each fixture 2 MB, so `pythia_like_tokenizer()` builds a small one
with the same structure:
  - normalizer NFC; pre_tokenizer ByteLevel (add_prefix_space false, trim_offsets true, GPT-2's
    regex); post_processor and decoder ByteLevel; model BPE without dropout or prefixes;
  - added tokens: <|endoftext|> id 0 and <|padding|> id 1 (special, normalized false), and the
    23 whitespace runs of 24 down to 2 spaces (special false, normalized true) after the BPE
    vocabulary, as Pythia's ids 50254..50276;
  - the 256 byte tokens at ids 2..257 in GPT-2's byte order, then one token per merge.
It differs from the real one in its size and merges: 481 tokens, whose merges are the first 200
of GPT-2's (Pythia's 50,000 merges were trained on the Pile, so the same text gives other ids),
and the models' vocab_size is padded to 512 (Pythia: 50,277 padded to 50,304). The reference
tokenizer below implements the semantics (NFC, then the added tokens leftmost-longest, then
GPT-2's pre-tokenizer and BPE by rank on each piece), and the TypeScript test also checks the
engine's ids against @huggingface/tokenizers on this file.

The forward runs in float64 on the (possibly F16-rounded) stored weights, so the golden is the
exact function of the stored checkpoint; the engine computes in fp32.

Run:  /usr/bin/python3 tools/torch_reference_neox.py   (a few seconds; deterministic)
      /usr/bin/python3 tools/torch_reference_neox.py scores          (only neox-14m.scores.json)
      /usr/bin/python3 tools/torch_reference_neox.py interventions [NAME...]
                       (only <fixture>.interventions.json/.bin of neox-14m and neox-tiny-seq)
"""
import json
import math
import os
import sys
import unicodedata

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import (GOLDEN, FIXTURES, ROOT, TOKENIZER_JSON, _bytes_to_unicode, edit_hook, pretokenize,  # noqa: E402
                             write_interventions, write_safetensors)

BOS = 0  # <|endoftext|>: TransformerLens prepends the tokenizer's bos_token, id 0 for Pythia
N_MERGES = 200
WHITESPACE_RUNS = list(range(24, 1, -1))  # Pythia's ids 50254..50276: 24 spaces down to 2
VOCAB_PADDED = 512


# ---------------------------------------------------------------------------------------------
# The Pythia-like tokenizer.json

def pythia_like_tokenizer(n_merges=N_MERGES):
    """n_merges: how many of GPT-2's merges (the fixtures: 200; tools/train_family.py's tiny NeoX
    takes more, so its tokens are words)."""
    with open(TOKENIZER_JSON, encoding='utf-8') as f:
        gpt2 = json.load(f)
    byte_chars = sorted(_bytes_to_unicode().values(), key=ord)  # GPT-2's byte tokens, in their id order
    vocab = {'<|endoftext|>': 0, '<|padding|>': 1}
    for c in byte_chars:
        vocab[c] = len(vocab)
    merges = []
    for m in gpt2['model']['merges']:
        if len(merges) == n_merges:
            break
        a, b = m.split(' ') if isinstance(m, str) else m
        assert a in vocab and b in vocab, m
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
        merges.append(f'{a} {b}')
    added = [dict(id=0, special=True, content='<|endoftext|>', single_word=False, lstrip=False, rstrip=False, normalized=False),
             dict(id=1, special=True, content='<|padding|>', single_word=False, lstrip=False, rstrip=False, normalized=False)]
    for n in WHITESPACE_RUNS:
        added.append(dict(id=len(vocab) + len(added) - 2, special=False, content=' ' * n, single_word=False, lstrip=False,
                          rstrip=False, normalized=True))
    byte_level = dict(type='ByteLevel', add_prefix_space=False, trim_offsets=True)
    return {
        'version': '1.0', 'truncation': None, 'padding': None,
        'added_tokens': added,
        'normalizer': {'type': 'NFC'},
        'pre_tokenizer': dict(byte_level),
        'post_processor': dict(byte_level),
        'decoder': dict(byte_level),
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': None,
                  'end_of_word_suffix': None, 'fuse_unk': False, 'vocab': vocab, 'merges': merges},
    }


class NeoxTokenizer:
    """tokenizer.json semantics: NFC, added tokens (leftmost, longest first), then on every other
    piece GPT-2's pre-tokenizer and byte-level BPE by merge rank."""

    def __init__(self, tj):
        model = tj['model']
        self.vocab = model['vocab']
        self.ranks = {tuple(m.split(' ')): r for r, m in enumerate(model['merges'])}
        self.byte_map = _bytes_to_unicode()
        self.added = sorted(tj['added_tokens'], key=lambda t: -len(t['content']))
        assert tj['normalizer'] == {'type': 'NFC'}

    def _bpe(self, word):
        parts = list(word)
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b)), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            pairs = [p for p in pairs if p[0] is not None]
            if not pairs:
                break
            r, _ = min(pairs)
            a, b = next((parts[i], parts[i + 1]) for rr, i in pairs if rr == r)
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return [self.vocab[p] for p in parts]

    def _ordinary(self, text):
        ids = []
        for piece in pretokenize(text):
            ids += self._bpe(''.join(self.byte_map[b] for b in piece.encode('utf-8')))
        return ids

    def encode(self, text):
        text = unicodedata.normalize('NFC', text)
        ids, i, start = [], 0, 0
        while i < len(text):
            tok = next((t for t in self.added if text.startswith(t['content'], i)), None)
            if tok is None:
                i += 1
                continue
            ids += self._ordinary(text[start:i]) + [tok['id']]
            i += len(tok['content'])
            start = i
        return ids + self._ordinary(text[start:])


# ---------------------------------------------------------------------------------------------
# Random weights, HF GPTNeoXForCausalLM names and [out, in] Linear layout

def make_weights(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    d, m, L, V = cfg['hidden_size'], cfg['intermediate_size'], cfg['num_hidden_layers'], cfg['vocab_size']

    def n(*shape, std=1.0, mean=0.0):
        return torch.randn(*shape, generator=g, dtype=torch.float32) * std + mean

    w = {'gpt_neox.embed_in.weight': n(V, d, std=0.5)}
    for l in range(L):
        p = f'gpt_neox.layers.{l}.'
        w[p + 'input_layernorm.weight'] = n(d, std=0.2, mean=1.0)
        w[p + 'input_layernorm.bias'] = n(d, std=0.1)
        w[p + 'post_attention_layernorm.weight'] = n(d, std=0.2, mean=1.0)
        w[p + 'post_attention_layernorm.bias'] = n(d, std=0.1)
        w[p + 'attention.query_key_value.weight'] = n(3 * d, d, std=1.5 / math.sqrt(d))
        if cfg['attention_bias']:
            w[p + 'attention.query_key_value.bias'] = n(3 * d, std=0.1)
        w[p + 'attention.dense.weight'] = n(d, d, std=0.5 / math.sqrt(d))
        if cfg['attention_bias']:
            w[p + 'attention.dense.bias'] = n(d, std=0.05)
        w[p + 'mlp.dense_h_to_4h.weight'] = n(m, d, std=1.5 / math.sqrt(d))
        w[p + 'mlp.dense_h_to_4h.bias'] = n(m, std=0.5, mean=-0.5)
        w[p + 'mlp.dense_4h_to_h.weight'] = n(d, m, std=0.5 / math.sqrt(m))
        w[p + 'mlp.dense_4h_to_h.bias'] = n(d, std=0.05)
    w['gpt_neox.final_layer_norm.weight'] = n(d, std=0.2, mean=1.0)
    w['gpt_neox.final_layer_norm.bias'] = n(d, std=0.1)
    w['embed_out.weight'] = n(V, d, std=0.1)
    return w


# ---------------------------------------------------------------------------------------------
# The forward, after HF GPTNeoXModel / GPTNeoXAttention / GPTNeoXMLP / GPTNeoXRotaryEmbedding

def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


ACT = {'gelu': gelu_erf, 'gelu_new': gelu_new}


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def forward(w, cfg, ids, intervention=None, resid_out=None, edits=None, gate=None):
    """One row of ids -> (hook_pre per layer, hook_post per layer, logits), float64.
    intervention = (layer, neuron, value) fixes that neuron's hook_post before dense_4h_to_h;
    resid_out, a list, receives the final LayerNorm's input.
    edits = {(layer, 'pre'|'post'): [(neuron, 'zero'|'fix'|'mean'|'scale', value)]} edits the hooks
    at the positions where the bool vector `gate` is true, as TransformerLens hooks on
    blocks.l.mlp.hook_pre / hook_post would (torch_reference.edit_hook; a hook_pre edit feeds the
    activation)."""
    d, H = cfg['hidden_size'], cfg['num_attention_heads']
    dh = d // H
    rot = int(dh * cfg['rotary_pct'])
    eps = cfg['layer_norm_eps']
    S = len(ids)
    W = lambda name: w['gpt_neox.' + name] if 'gpt_neox.' + name in w else w[name]

    def ln(x, p):
        return torch.nn.functional.layer_norm(x, (d,), W(p + '.weight'), W(p + '.bias'), eps)

    def linear(x, p, bias=True):
        y = x @ W(p + '.weight').T
        return y + W(p + '.bias') if bias else y

    inv_freq = 1.0 / (cfg['rotary_emb_base'] ** (torch.arange(0, rot, 2, dtype=torch.float64) / rot))
    freqs = torch.outer(torch.arange(S, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()  # [S, rot]
    causal = torch.tril(torch.ones(S, S, dtype=torch.bool))

    def attention(x, l):
        p = f'layers.{l}.attention'
        qkv = linear(x, p + '.query_key_value', cfg['attention_bias']).view(S, H, 3 * dh)  # per head [q | k | v]
        q, k, v = (qkv[..., i * dh:(i + 1) * dh].permute(1, 0, 2) for i in range(3))  # [H, S, dh]
        q = torch.cat((q[..., :rot] * cos + rotate_half(q[..., :rot]) * sin, q[..., rot:]), dim=-1)
        k = torch.cat((k[..., :rot] * cos + rotate_half(k[..., :rot]) * sin, k[..., rot:]), dim=-1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
        scores = torch.where(causal, scores, torch.tensor(torch.finfo(scores.dtype).min, dtype=scores.dtype))
        ctx = torch.softmax(scores, dim=-1) @ v  # [H, S, dh]
        return linear(ctx.permute(1, 0, 2).reshape(S, d), p + '.dense', cfg['attention_bias'])

    act = ACT[cfg['hidden_act']]
    x = W('embed_in.weight')[torch.tensor(ids)]
    pres, posts = [], []
    for l in range(cfg['num_hidden_layers']):
        p = f'layers.{l}'
        a = attention(ln(x, p + '.input_layernorm'), l)
        mlp_in = x if cfg['use_parallel_residual'] else x + a
        pre = edit_hook(linear(ln(mlp_in, p + '.post_attention_layernorm'), p + '.mlp.dense_h_to_4h'), l, 'pre', edits, gate)
        post = edit_hook(act(pre), l, 'post', edits, gate)
        if intervention is not None and intervention[0] == l:
            post = post.clone()
            post[:, intervention[1]] = intervention[2]
        pres.append(pre)
        posts.append(post)
        m = linear(post, p + '.mlp.dense_4h_to_h')
        x = x + a + m if cfg['use_parallel_residual'] else mlp_in + m
    if resid_out is not None:
        resid_out.append(x)
    logits = ln(x, 'final_layer_norm') @ w['embed_out.weight'].T
    return pres, posts, logits


def forward_text(w, cfg, ids):
    """The engine's long-text rule (runtime.ts windows): window 0 = the first n ids, each later
    window = BOS + the next n-1 ids; the inserted BOS positions are dropped."""
    P = cfg['max_position_embeddings']
    pieces = [(ids[:P], 0)]
    for i in range(P, len(ids), P - 1):
        pieces.append(([BOS] + ids[i:i + P - 1], 1))
    outs = [forward(w, cfg, row) for row, _ in pieces]
    cat = lambda parts: torch.cat([t[skip:] for t, (_, skip) in zip(parts, pieces)])
    L = cfg['num_hidden_layers']
    return ([cat([o[0][l] for o in outs]) for l in range(L)], [cat([o[1][l] for o in outs]) for l in range(L)],
            cat([o[2] for o in outs]), len(pieces))


# ---------------------------------------------------------------------------------------------

TEXTS = [
    'Hello world, universal neurons!',
    # multilingual, and NFD input that NFC composes (e + U+0301, A + U+030A, Hangul jamo)
    'Ünïcödé: naïve café, cafe\u0301 A\u030angstro\u0308m, 日本語のテキスト, 한국어 \u1100\u1161\u11a8, emoji 🤖🧠 and ∑∫√ — “quotes”.',
    # code and whitespace: runs of spaces hit the added whitespace tokens
    "def f(x):\n    return x ** 2  # it's squared\n\n\tTabs\tand  spaces   end" + ' ' * 30 + 'x<|endoftext|>next doc',
    # longer than every fixture's context, so it runs as several windows
    'The neurons of a language model are not all alike: some fire on one token, some on a letter.',
]

BASE_CONFIG = dict(model_type='gpt_neox', architectures=['GPTNeoXForCausalLM'], vocab_size=VOCAB_PADDED,
                   hidden_act='gelu', rotary_pct=0.25, rotary_emb_base=10000, layer_norm_eps=1e-5,
                   use_parallel_residual=True, attention_bias=True, tie_word_embeddings=False,
                   bos_token_id=0, eos_token_id=0, initializer_range=0.02, use_cache=True,
                   attention_dropout=0.0, hidden_dropout=0.0, classifier_dropout=0.1)

FIXTURE_SPECS = {
    # pythia-14m's widths (d_model 128, 4 heads, d_mlp 512, rotary on 25% of each head, base 10000,
    # parallel residual, exact-erf gelu, untied embed_out, attention biases) with 2 of its 6 layers
    # and a short context, to keep the fixture small.
    'neox-14m': dict(config=dict(num_hidden_layers=2, num_attention_heads=4, hidden_size=128, intermediate_size=512,
                                 max_position_embeddings=32),
                     seed=11, dtype=torch.float32, texts=[0, 3]),
    'neox-14m-f16': dict(base='neox-14m', dtype=torch.float16, texts=[0, 3]),
    # The other branches: sequential residual, gelu_new, no attention biases, rotary on half of
    # each head with another base, d_mlp not 4·d, a non-default epsilon, weights stored without
    # the gpt_neox. prefix (GPTNeoXModel) next to HF's per-layer buffers.
    'neox-tiny-seq': dict(config=dict(num_hidden_layers=3, num_attention_heads=4, hidden_size=64, intermediate_size=192,
                                      max_position_embeddings=32, use_parallel_residual=False, hidden_act='gelu_new',
                                      attention_bias=False, rotary_pct=0.5, rotary_emb_base=500, layer_norm_eps=1e-3),
                          seed=12, dtype=torch.float32, prefix=False, buffers=True, texts=[0, 2, 3]),
    'neox-tiny-seq-f16': dict(base='neox-tiny-seq', dtype=torch.float16, texts=[0, 2]),
}

# Logit columns kept in the golden: ids spread over the vocabulary, the added tokens and some
# padding rows past the tokenizer's size.
LOGIT_IDS = sorted(set([0, 1, 2, 100, 257, 258, 457, 458, 470, 480, 481, 490, 511]
                       + torch.randperm(VOCAB_PADDED, generator=torch.Generator().manual_seed(7))[:120].tolist()))


def build(name, spec, tok, tj_text):
    base = FIXTURE_SPECS.get(spec.get('base', name), spec)
    cfg = {**BASE_CONFIG, **base['config']}
    master = make_weights(cfg, base['seed'])
    dtype = spec['dtype']
    stored = {k: v.to(dtype) for k, v in master.items()}
    out_dir = os.path.join(FIXTURES, name)
    os.makedirs(out_dir, exist_ok=True)
    tensors = {}
    for k, v in stored.items():
        tensors[k if base.get('prefix', True) or k == 'embed_out.weight' else k.replace('gpt_neox.', '', 1)] = v
        if base.get('buffers') and k.endswith('input_layernorm.weight'):
            # HF buffers older transformers saved: the engine must ignore them.
            p = k[: -len('input_layernorm.weight')].replace('gpt_neox.', '', 1 if not base.get('prefix', True) else 0)
            P, dh = cfg['max_position_embeddings'], cfg['hidden_size'] // cfg['num_attention_heads']
            rot = int(dh * cfg['rotary_pct'])
            tensors[p + 'attention.bias'] = torch.tril(torch.ones(P, P)).reshape(1, 1, P, P).to(dtype)
            tensors[p + 'attention.masked_bias'] = torch.tensor(-1e9).to(dtype)
            tensors[p + 'attention.rotary_emb.inv_freq'] = (1.0 / (cfg['rotary_emb_base'] ** (torch.arange(0, rot, 2).float() / rot))).to(dtype)
    write_safetensors(os.path.join(out_dir, 'model.safetensors'), tensors)
    with open(os.path.join(out_dir, 'config.json'), 'w') as f:
        json.dump({**cfg, 'torch_dtype': {torch.float32: 'float32', torch.float16: 'float16'}[dtype]}, f, indent=2)
        f.write('\n')
    with open(os.path.join(out_dir, 'tokenizer.json'), 'w', encoding='utf-8') as f:
        f.write(tj_text)

    w64 = {k: v.to(torch.float64) for k, v in stored.items()}
    header = {'fixture': name, 'dtype': str(dtype).replace('torch.', ''), 'n_layer': cfg['num_hidden_layers'],
              'd_mlp': cfg['intermediate_size'], 'n_positions': cfg['max_position_embeddings'], 'bos': BOS,
              'logit_ids': LOGIT_IDS, 'texts': [],
              'note': 'tools/torch_reference_neox.py. float32 LE in <fixture>.bin; offset/length in floats; hooks are '
                      '[T, d_mlp] row-major, logits_slice [T, len(logit_ids)], logsumexp [T]; argmax and top2_gap per position'}
    chunks, offset = [], 0

    def put(t):
        nonlocal offset
        a = t.to(torch.float32).contiguous().reshape(-1)
        chunks.append(a.numpy().tobytes())
        entry = {'offset': offset, 'shape': list(t.shape)}
        offset += a.numel()
        return entry

    for text in [TEXTS[i] for i in spec['texts']]:
        ids = [BOS] + tok.encode(text)
        pres, posts, logits, nwin = forward_text(w64, cfg, ids)
        top2 = torch.topk(logits, 2, dim=-1).values
        entry = {'text': text, 'ids': ids, 'windows': nwin, 'tensors': {},
                 'argmax': logits.argmax(-1).tolist(), 'top2_gap': (top2[:, 0] - top2[:, 1]).tolist()}
        for l in range(cfg['num_hidden_layers']):
            entry['tensors'][f'L{l}.hook_pre'] = put(pres[l])
            entry['tensors'][f'L{l}.hook_post'] = put(posts[l])
        entry['tensors']['logits_slice'] = put(logits[:, LOGIT_IDS])
        entry['tensors']['logsumexp'] = put(torch.logsumexp(logits, -1))
        header['texts'].append(entry)
        print(f'  {name}: {len(ids)} tokens, {nwin} window(s), |pre| max {max(p.abs().max().item() for p in pres):.2f}, '
              f'post>0 {sum((p > 0).sum().item() for p in posts) / sum(p.numel() for p in posts):.2f}')
    os.makedirs(GOLDEN, exist_ok=True)
    with open(os.path.join(GOLDEN, name + '.bin'), 'wb') as f:
        for c in chunks:
            f.write(c)
    with open(os.path.join(GOLDEN, name + '.json'), 'w', encoding='utf-8') as f:
        json.dump(header, f, ensure_ascii=False)
        f.write('\n')


# Scores golden (the entropy intervention on GPT-NeoX): per-token nll, entropy and final-LN scale
# of a few rows, plain and with one neuron's hook_post fixed, from the stored fixture's weights.
SCORES_FIXTURE = 'neox-14m'
SCORES_INTERVENTION = dict(layer=0, neuron=37, values=[-0.17, 3.0])


def scores(w, cfg, row, intervention=None):
    """Per position t: -log p(row[t+1]) (0 at the last position), entropy, sqrt(var + eps) of the final LN's input."""
    resid = []
    logits = forward(w, cfg, row, intervention, resid)[2]
    logp = torch.log_softmax(logits, -1)
    nll = torch.zeros(len(row), dtype=logits.dtype)
    nll[:-1] = -logp[torch.arange(len(row) - 1), torch.tensor(row[1:])]
    entropy = -(logp.exp() * logp).sum(-1)
    scale = torch.sqrt(resid[0].var(-1, unbiased=False) + cfg['layer_norm_eps'])
    return {'nll': nll.tolist(), 'entropy': entropy.tolist(), 'ln_scale': scale.tolist()}


def write_scores_golden(tok):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_weight_stats import read_safetensors  # float64 tensors, the stored file as the engine reads it
    folder = os.path.join(FIXTURES, SCORES_FIXTURE)
    cfg = json.load(open(os.path.join(folder, 'config.json')))
    w = read_safetensors(os.path.join(folder, 'model.safetensors'))
    rows = [([BOS] + tok.encode(t))[:cfg['max_position_embeddings']] for t in TEXTS[:3]]
    iv = SCORES_INTERVENTION
    out = {'fixture': SCORES_FIXTURE, 'rows': rows,
           'note': 'tools/torch_reference_neox.py scores: per row, per position t: nll = -log p(row[t+1]) (0 at the last '
                   'position), entropy (nats), ln_scale = sqrt(var + eps) of the final LN input; float64 torch',
           'plain': [scores(w, cfg, r) for r in rows],
           'intervention': {'layer': iv['layer'], 'neuron': iv['neuron'], 'values': [
               {'value': v, 'rows': [scores(w, cfg, r, (iv['layer'], iv['neuron'], v)) for r in rows]} for v in iv['values']]}}
    path = os.path.join(GOLDEN, SCORES_FIXTURE + '.scores.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(out, f)
        f.write('\n')
    print(f'  {SCORES_FIXTURE}: scores of {len(rows)} rows ({sum(map(len, rows))} tokens) -> {path}')


# Interventions goldens (the steer graph on GPT-NeoX, issue #15): the format and the case list of
# tools/torch_reference.py --interventions (several neurons, modes, hooks, layers and token ranges
# at once, texts that need windows), from the stored fixture's weights.
INTERVENTION_CASES = {
    # name: (text index, hook, mode, value, neurons [(layer, neuron)], token range [a, b) or None = all)
    'neox-14m': [
        ('zero at hook_post, both layers, all tokens', 3, 'post', 'zero', None, [(0, 37), (1, 5), (1, 300)], None),
        ('fix 2.5 at hook_pre, a token range', 0, 'pre', 'fix', 2.5, [(0, 3), (1, 200)], (2, 6)),
        ('scale -1.5 at hook_post to the end', 3, 'post', 'scale', -1.5, [(0, 10), (0, 511)], (5, None)),
        ("mean (the prompt's own) at hook_pre", 3, 'pre', 'mean', 'prompt', [(0, 1), (1, 60)], None),
        ('fix -3 at hook_post at BOS only', 3, 'post', 'fix', -3.0, [(0, 0), (1, 1)], (0, 1)),
    ],
    'neox-tiny-seq': [
        ('zero at hook_post, three layers', 3, 'post', 'zero', None, [(0, 4), (1, 17), (2, 100)], None),
        ('fix 1.5 at hook_pre, a range', 2, 'pre', 'fix', 1.5, [(1, 0), (2, 191)], (3, 12)),
        ('mean (given) at hook_post', 3, 'post', 'mean', [0.3, -1.2], [(0, 20), (2, 33)], (1, 20)),
    ],
}


def write_intervention_goldens(tok, only=()):
    from torch_weight_stats import read_safetensors  # float64 tensors, the stored file as the engine reads it
    for name, case_specs in INTERVENTION_CASES.items():
        if only and name not in only:
            continue
        folder = os.path.join(FIXTURES, name)
        cfg = json.load(open(os.path.join(folder, 'config.json')))
        w = read_safetensors(os.path.join(folder, 'model.safetensors'))

        def run(row, edits, gate, w=w, cfg=cfg):
            resid = []
            logits = forward(w, cfg, row, resid_out=resid, edits=edits, gate=gate)[2]
            return logits, resid[0]

        model = dict(run=run, hooks=lambda ids, w=w, cfg=cfg: forward_text(w, cfg, ids)[:2],
                     P=cfg['max_position_embeddings'], eps=cfg['layer_norm_eps'], bos=BOS)
        write_interventions(name, model, case_specs, TEXTS, tok.encode, LOGIT_IDS[:64])


# Tokenizer goldens: ids of texts that exercise every branch (the TS test compares the engine
# and @huggingface/tokenizers with these).
TOKENIZER_TEXTS = TEXTS[:3] + [
    '',
    '   leading spaces, trailing  ',
    '\t\tx = [1, 2,  3]  # comment\r\n\r\n    if (a &&  b) { return "ok"; }\n' + ' ' * 50 + '}\n',
    'Ελληνικά, русский, العربية, हिन्दी, עברית, ǅ ß ŉ; 全角\u3000スペース\u00a0nbsp; 👩\u200d💻 🇫🇷',
    'NFD: e\u0301 o\u0308 \u212b (angstrom sign) \u1112\u1161\u11ab\u1100\u1173\u11af; <|padding|> <|endoftext|><|endoftext|>',
]


def main():
    torch.set_num_threads(1)
    tj = pythia_like_tokenizer()
    tj_text = json.dumps(tj, ensure_ascii=False, indent=1) + '\n'
    tok = NeoxTokenizer(tj)
    assert max(t['id'] for t in tj['added_tokens']) + 1 <= VOCAB_PADDED
    print(f'tokenizer: {len(tj["model"]["vocab"])} BPE tokens + {len(WHITESPACE_RUNS)} whitespace tokens, {N_MERGES} merges')
    only = sys.argv[1:]
    if only == ['scores']:  # the scores golden only; fixtures untouched
        write_scores_golden(tok)
        return
    if only[:1] == ['interventions']:  # the interventions goldens only (optionally of the fixtures named after); fixtures untouched
        write_intervention_goldens(tok, only[1:])
        return
    for name, spec in FIXTURE_SPECS.items():
        if not only or name in only:
            build(name, spec, tok, tj_text)
    out = {'tokenizer': 'test/fixtures/neox-14m/tokenizer.json', 'bos': BOS,
           'note': 'ids from tools/torch_reference_neox.py NeoxTokenizer (NFC, added tokens, GPT-2 pre-tokenizer, BPE); no BOS',
           'texts': [{'text': t, 'ids': tok.encode(t)} for t in TOKENIZER_TEXTS]}
    with open(os.path.join(GOLDEN, 'neox-tokenizer.json'), 'w', encoding='utf-8') as f:
        json.dump(out, f, ensure_ascii=False)
        f.write('\n')


if __name__ == '__main__':
    main()
