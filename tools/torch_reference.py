#!/usr/bin/python3
"""Independent GPT-2 reference for the engine's parity test.

Writes small random GPT-2 checkpoints in Hugging Face layout (config.json, model.safetensors,
tokenizer.json) under test/fixtures/, runs them through a GPT-2 forward written here directly in
PyTorch (no transformers, nothing from our engine), and stores goldens in test/fixtures/golden/.

Everything the engine does is re-derived here from the HF GPT-2 definition: the byte-level BPE
(from tokenizer.json), the safetensors format, the forward pass (both attention orders,
scale_attn_weights, scale_attn_by_inverse_layer_idx), and the long-text window rule.

The forward runs in float64 on the (possibly F16/BF16-rounded) stored weights, so the golden is
the exact function of the stored checkpoint; the engine computes in fp32.

Run:  /usr/bin/python3 tools/torch_reference.py   (about 10 s; deterministic)
      /usr/bin/python3 tools/torch_reference.py --interventions [--only NAME...]
                       (only the <fixture>.interventions.{json,bin} goldens; fixtures untouched. Their
                       writer, write_interventions, also serves tools/torch_reference_neox.py)
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys
import unicodedata

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, 'test', 'fixtures')
GOLDEN = os.path.join(FIXTURES, 'golden')
TOKENIZER_JSON = os.path.join(ROOT, 'models', 'gpt2-tokenizer', 'tokenizer.json')
BOS = 50256
VOCAB = 50257

# ---------------------------------------------------------------------------------------------
# GPT-2 byte-level BPE over tokenizer.json

# HF runs the GPT-2 pattern with Oniguruma, whose \s is [\t\n\v\f\r\x85] plus category Z.
_WS_EXTRA = set('\t\n\v\f\r\x85')


def _is_space(c):
    return c in _WS_EXTRA or unicodedata.category(c).startswith('Z')


def _is_letter(c):
    return unicodedata.category(c).startswith('L')


def _is_number(c):
    return unicodedata.category(c).startswith('N')


def _is_other(c):
    return not (_is_space(c) or _is_letter(c) or _is_number(c))


def pretokenize(text):
    """GPT-2's regex, by hand (no `regex` module here):
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "'":
            m = next((s for s in ('s', 't', 're', 've', 'm', 'll', 'd') if text.startswith(s, i + 1)), None)
            if m is not None:
                out.append("'" + m)
                i += 1 + len(m)
                continue
        matched = False
        for cls in (_is_letter, _is_number, _is_other):
            j = i + 1 if c == ' ' and i + 1 < n and cls(text[i + 1]) else i
            if j < n and cls(text[j]):
                k = j
                while k < n and cls(text[k]):
                    k += 1
                out.append(text[i:k])
                i = k
                matched = True
                break
        if matched:
            continue
        # whitespace run: \s+(?!\S) keeps the last space for the next word, else \s+
        k = i
        while k < n and _is_space(text[k]):
            k += 1
        if k < n and k - i > 1:
            k -= 1
        out.append(text[i:k])
        i = k
    return out


def _bytes_to_unicode():
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, nxt = {}, 256
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(nxt)
            nxt += 1
    return table


class Bpe:
    def __init__(self, path):
        with open(path, encoding='utf-8') as f:
            tj = json.load(f)
        model = tj['model']
        self.vocab = model['vocab']
        merges = [tuple(m.split(' ')) if isinstance(m, str) else tuple(m) for m in model['merges']]
        self.ranks = {m: r for r, m in enumerate(merges)}
        self.byte_map = _bytes_to_unicode()

    def _bpe(self, word):
        parts = list(word)
        while len(parts) > 1:
            best, best_rank = None, None
            for a, b in zip(parts, parts[1:]):
                r = self.ranks.get((a, b))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = (a, b), r
            if best is None:
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return [self.vocab[p] for p in parts]

    def encode(self, text):
        ids = []
        for piece in pretokenize(text):
            ids += self._bpe(''.join(self.byte_map[b] for b in piece.encode('utf-8')))
        return ids


# ---------------------------------------------------------------------------------------------
# safetensors, written by hand: u64 LE header length, JSON header (space-padded to 8), raw bytes

_DT = {torch.float32: ('F32', torch.int32), torch.float16: ('F16', torch.int16), torch.bfloat16: ('BF16', torch.int16)}


def write_safetensors(path, tensors):
    header, blobs, off = {'__metadata__': {'format': 'pt'}}, [], 0
    for name, t in tensors.items():
        dt, view = _DT[t.dtype]
        b = t.contiguous().view(view).numpy().tobytes() if t.dim() else t.reshape(1).view(view).numpy().tobytes()
        header[name] = {'dtype': dt, 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------------------------------------
# Random weights with scales that give non-trivial attention and MLP activations at tiny width

def make_weights(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    d, m, L = cfg['n_embd'], cfg.get('n_inner') or 4 * cfg['n_embd'], cfg['n_layer']

    def n(*shape, std=1.0, mean=0.0):
        return torch.randn(*shape, generator=g, dtype=torch.float32) * std + mean

    w = {'wte.weight': n(VOCAB, d, std=0.1), 'wpe.weight': n(cfg['n_positions'], d, std=0.05)}
    for l in range(L):
        p = f'h.{l}.'
        w[p + 'ln_1.weight'] = n(d, std=0.2, mean=1.0)
        w[p + 'ln_1.bias'] = n(d, std=0.1)
        w[p + 'attn.c_attn.weight'] = n(d, 3 * d, std=1.2 / math.sqrt(d))
        w[p + 'attn.c_attn.bias'] = n(3 * d, std=0.1)
        w[p + 'attn.c_proj.weight'] = n(d, d, std=0.5 / math.sqrt(d))
        w[p + 'attn.c_proj.bias'] = n(d, std=0.05)
        w[p + 'ln_2.weight'] = n(d, std=0.2, mean=1.0)
        w[p + 'ln_2.bias'] = n(d, std=0.1)
        w[p + 'mlp.c_fc.weight'] = n(d, m, std=1.5 / math.sqrt(d))
        w[p + 'mlp.c_fc.bias'] = n(m, std=0.5, mean=-0.5)  # negative input bias, as in trained GPT-2
        w[p + 'mlp.c_proj.weight'] = n(m, d, std=0.5 / math.sqrt(m))
        w[p + 'mlp.c_proj.bias'] = n(d, std=0.05)
    w['ln_f.weight'] = n(d, std=0.2, mean=1.0)
    w['ln_f.bias'] = n(d, std=0.1)
    if cfg.get('tie_word_embeddings') is False:
        w['lm_head.weight'] = n(VOCAB, d, std=0.1)
    return w


# ---------------------------------------------------------------------------------------------
# The forward, after HF GPT2Model/GPT2Attention/GPT2MLP, in float64

def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


ACT = {
    'gelu_new': gelu_new,
    'gelu': lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0))),
    'relu': torch.relu,
}


def edit_hook(h, layer, hook, edits, gate):
    """TransformerLens-style hook edit, from the definitions of the modes: at the positions where
    `gate` is true, zero sets the neuron to 0, fix and mean set it to the value, scale multiplies it."""
    todo = (edits or {}).get((layer, hook))
    if not todo:
        return h
    h = h.clone()
    for neuron, kind, val in todo:
        col = h[:, neuron]
        if kind == 'zero':
            new = torch.zeros_like(col)
        elif kind in ('fix', 'mean'):
            new = torch.full_like(col, val)
        elif kind == 'scale':
            new = col * val
        else:
            raise ValueError(kind)
        h[:, neuron] = torch.where(gate, new, col)
    return h


def forward(w, cfg, ids, intervention=None, edits=None, gate=None):
    """One row (len <= n_positions). Returns ([pre_l], [post_l], logits, ln_f input), all [S, ...].
    intervention = (layer, neuron, value) fixes that neuron's hook_post before c_proj.
    edits = {(layer, 'pre'|'post'): [(neuron, 'zero'|'fix'|'mean'|'scale', value)]} edits the hooks
    at the positions where the bool vector `gate` is true (hook_pre edits feed the activation)."""
    d, H, L = cfg['n_embd'], cfg['n_head'], cfg['n_layer']
    eps = cfg.get('layer_norm_epsilon', 1e-5)
    Dh = d // H
    S = len(ids)
    act = ACT[cfg.get('activation_function', 'gelu_new')]
    ln = lambda x, name: torch.nn.functional.layer_norm(x, (d,), w[name + '.weight'], w[name + '.bias'], eps)
    causal = torch.tril(torch.ones(S, S, dtype=torch.bool))
    neg = torch.finfo(torch.float64).min
    x = w['wte.weight'][torch.tensor(ids)] + w['wpe.weight'][:S]
    pres, posts = [], []
    for l in range(L):
        p = f'h.{l}.'
        qkv = ln(x, p + 'ln_1') @ w[p + 'attn.c_attn.weight'] + w[p + 'attn.c_attn.bias']
        q, k, v = (t.reshape(S, H, Dh).transpose(0, 1) for t in qkv.split(d, dim=-1))
        if cfg.get('reorder_and_upcast_attn', False):
            # HF _upcast_and_reordered_attn: one factor, applied as baddbmm's alpha
            f = 1.0
            if cfg.get('scale_attn_weights', True):
                f /= float(Dh) ** 0.5
            if cfg.get('scale_attn_by_inverse_layer_idx', False):
                f /= float(l + 1)
            scores = f * (q @ k.transpose(-1, -2))
        else:
            scores = q @ k.transpose(-1, -2)
            if cfg.get('scale_attn_weights', True):
                scores = scores / (float(Dh) ** 0.5)
            if cfg.get('scale_attn_by_inverse_layer_idx', False):
                scores = scores / float(l + 1)
        scores = torch.where(causal, scores, torch.tensor(neg, dtype=scores.dtype))
        ctx = (torch.softmax(scores, dim=-1) @ v).transpose(0, 1).reshape(S, d)
        x = x + ctx @ w[p + 'attn.c_proj.weight'] + w[p + 'attn.c_proj.bias']
        pre = ln(x, p + 'ln_2') @ w[p + 'mlp.c_fc.weight'] + w[p + 'mlp.c_fc.bias']
        pre = edit_hook(pre, l, 'pre', edits, gate)
        post = edit_hook(act(pre), l, 'post', edits, gate)
        if intervention is not None and intervention[0] == l:
            post = post.clone()
            post[:, intervention[1]] = intervention[2]
        pres.append(pre)
        posts.append(post)
        x = x + post @ w[p + 'mlp.c_proj.weight'] + w[p + 'mlp.c_proj.bias']
    head = w['lm_head.weight'] if cfg.get('tie_word_embeddings') is False else w['wte.weight']
    return pres, posts, ln(x, 'ln_f') @ head.T, x


def forward_text(w, cfg, ids):
    """The engine's long-text rule: window 0 = first n_positions ids (BOS included); each later
    window = BOS + the next n_positions-1 ids; the inserted BOS positions are dropped."""
    P = cfg['n_positions']
    pieces = [(ids[:P], 0)]
    for i in range(P, len(ids), P - 1):
        pieces.append(([BOS] + ids[i:i + P - 1], 1))
    outs = [forward(w, cfg, row) for row, _ in pieces]
    cat = lambda parts: torch.cat([t[skip:] for t, (_, skip) in zip(parts, pieces)])
    L = cfg['n_layer']
    pres = [cat([o[0][l] for o in outs]) for l in range(L)]
    posts = [cat([o[1][l] for o in outs]) for l in range(L)]
    return pres, posts, cat([o[2] for o in outs]), len(pieces)


# ---------------------------------------------------------------------------------------------

TEXTS = [
    'Hello world, universal neurons!',
    'Ünïcödé: naïve café, 日本語のテキスト, emoji 🤖🧠 and maths ∑∫√ — “quotes”.',
    "def f(x):\n    return x ** 2  # it's squared\n\n\tTabs\tand  spaces   end ",
    # Longer than every fixture's n_positions, so it runs as several windows.
    'The neurons of a language model are not all alike. Some fire on a single token, some on '
    'every token that starts with a given letter, and some only at a given position in the '
    'context. When two models are trained from different random seeds, a few of their neurons '
    'turn out to compute almost the same function: their activations over the same text are '
    'highly correlated. These universal neurons tend to have large weight norms, a strongly '
    'negative input bias, and sparse, heavy-tailed activations. This paragraph exists to be long '
    'enough to need several windows of context.',
]

FIXTURE_SPECS = {
    # As the Stanford CRFM GPT-2 seeds used in the paper: tied head, gelu_new, the two flags.
    'gpt2-tiny-crfm': dict(
        config=dict(n_layer=3, n_head=4, n_embd=16, n_positions=32, activation_function='gelu_new',
                    scale_attn_by_inverse_layer_idx=True, reorder_and_upcast_attn=True),
        seed=1, dtype=torch.float32),
    'gpt2-tiny-crfm-f16': dict(base='gpt2-tiny-crfm', dtype=torch.float16),
    'gpt2-tiny-crfm-bf16': dict(base='gpt2-tiny-crfm', dtype=torch.bfloat16),
    # Untied lm_head, `transformer.` prefix, n_inner not 4*d, exact-erf gelu, HF mask buffers stored,
    # inverse-layer-idx scaling without the reorder path.
    'gpt2-tiny-untied': dict(
        config=dict(n_layer=2, n_head=2, n_embd=8, n_inner=40, n_positions=64, activation_function='gelu',
                    tie_word_embeddings=False, scale_attn_by_inverse_layer_idx=True),
        seed=2, dtype=torch.float32, prefix='transformer.', buffers=True),
    # relu, unscaled attention, a non-default layer-norm epsilon.
    'gpt2-tiny-relu': dict(
        config=dict(n_layer=2, n_head=2, n_embd=8, n_positions=48, activation_function='relu',
                    scale_attn_weights=False, layer_norm_epsilon=1e-3),
        seed=3, dtype=torch.float32),
}

CONFIG_DEFAULTS = dict(model_type='gpt2', architectures=['GPT2LMHeadModel'], vocab_size=VOCAB, n_inner=None,
                       layer_norm_epsilon=1e-5, activation_function='gelu_new', scale_attn_weights=True,
                       scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False,
                       bos_token_id=BOS, eos_token_id=BOS, resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1,
                       initializer_range=0.02, use_cache=True)

# Logit columns kept in the golden: fixed ids spread over the vocabulary, plus the ends.
LOGIT_IDS = sorted(set([0, 1, 2, 13, 198, 220, 50255, 50256]
                       + torch.randperm(VOCAB, generator=torch.Generator().manual_seed(7))[:192].tolist()))


def build(name, spec, bpe, tokenizer_path):
    base = FIXTURE_SPECS.get(spec.get('base', name), spec)
    cfg = {**CONFIG_DEFAULTS, **base['config']}
    master = make_weights(cfg, base['seed'])
    dtype = spec['dtype']
    stored = {k: v.to(dtype) for k, v in master.items()}
    out_dir = os.path.join(FIXTURES, name)
    os.makedirs(out_dir, exist_ok=True)
    prefix = base.get('prefix', '')
    tensors = {}
    for k, v in stored.items():
        tensors[k if k == 'lm_head.weight' else prefix + k] = v
        if base.get('buffers') and k.endswith('ln_1.weight'):
            # HF's causal-mask buffers: must be ignored by the engine.
            l = k.split('.')[1]
            P = cfg['n_positions']
            tensors[f'{prefix}h.{l}.attn.bias'] = torch.tril(torch.ones(P, P)).reshape(1, 1, P, P).to(dtype)
            tensors[f'{prefix}h.{l}.attn.masked_bias'] = torch.tensor(-1e4).to(dtype)
    write_safetensors(os.path.join(out_dir, 'model.safetensors'), tensors)
    with open(os.path.join(out_dir, 'config.json'), 'w') as f:
        json.dump({**cfg, 'torch_dtype': {torch.float32: 'float32', torch.float16: 'float16', torch.bfloat16: 'bfloat16'}[dtype]},
                  f, indent=2)
        f.write('\n')
    shutil.copyfile(tokenizer_path, os.path.join(out_dir, 'tokenizer.json'))

    w64 = {k: v.to(torch.float64) for k, v in stored.items()}
    header = {'fixture': name, 'dtype': str(dtype).replace('torch.', ''), 'n_layer': cfg['n_layer'],
              'd_mlp': cfg['n_inner'] or 4 * cfg['n_embd'], 'n_positions': cfg['n_positions'],
              'logit_ids': LOGIT_IDS, 'texts': [],
              'note': 'float32 LE in <fixture>.bin; offset/length in floats; hooks are [T, d_mlp] row-major, '
                      'logits_slice [T, len(logit_ids)], logsumexp [T]; argmax and top2_gap per position'}
    chunks, offset = [], 0

    def put(t):
        nonlocal offset
        a = t.to(torch.float32).contiguous().reshape(-1)
        chunks.append(a.numpy().tobytes())
        entry = {'offset': offset, 'shape': list(t.shape)}
        offset += a.numel()
        return entry

    for text in TEXTS:
        ids = [BOS] + bpe.encode(text)
        pres, posts, logits, nwin = forward_text(w64, cfg, ids)
        top2 = torch.topk(logits, 2, dim=-1).values
        entry = {'text': text, 'ids': ids, 'windows': nwin, 'tensors': {},
                 'argmax': logits.argmax(-1).tolist(), 'top2_gap': (top2[:, 0] - top2[:, 1]).tolist()}
        for l in range(cfg['n_layer']):
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
    if name == SCORES_FIXTURE:
        write_scores_golden(w64, cfg, bpe)


# Scores golden: per-token nll, entropy and final-LN scale of a few rows (each text's first
# n_positions ids), plain and with one middle-layer neuron fixed, so that the fixed value must
# travel through later layers' attention and MLPs.
SCORES_FIXTURE = 'gpt2-tiny-crfm'
SCORES_INTERVENTION = dict(layer=1, neuron=13, values=[-0.17, 3.0])


def scores(w, cfg, row, intervention=None):
    """Per position t: -log p(row[t+1]) (0 at the last position), entropy, sqrt(var + eps) of ln_f's input."""
    _, _, logits, resid = forward(w, cfg, row, intervention)
    logp = torch.log_softmax(logits, -1)
    nll = torch.zeros(len(row), dtype=logits.dtype)
    nll[:-1] = -logp[torch.arange(len(row) - 1), torch.tensor(row[1:])]
    entropy = -(logp.exp() * logp).sum(-1)
    eps = cfg.get('layer_norm_epsilon', 1e-5)
    scale = torch.sqrt(resid.var(-1, unbiased=False) + eps)
    return {'nll': nll.tolist(), 'entropy': entropy.tolist(), 'ln_scale': scale.tolist()}


def write_scores_golden(w64, cfg, bpe):
    rows = [([BOS] + bpe.encode(t))[:cfg['n_positions']] for t in TEXTS]
    iv = SCORES_INTERVENTION
    out = {'fixture': SCORES_FIXTURE, 'rows': rows,
           'note': 'per row, per position t: nll = -log p(row[t+1]) (0 at the last position), entropy = '
                   '-sum p log p (nats), ln_scale = sqrt(var + eps) of the ln_f input; float64 torch',
           'plain': [scores(w64, cfg, r) for r in rows],
           'intervention': {'layer': iv['layer'], 'neuron': iv['neuron'], 'values': [
               {'value': v, 'rows': [scores(w64, cfg, r, (iv['layer'], iv['neuron'], v)) for r in rows]}
               for v in iv['values']]}}
    path = os.path.join(GOLDEN, SCORES_FIXTURE + '.scores.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(out, f)
        f.write('\n')
    print(f'  {SCORES_FIXTURE}: scores of {len(rows)} rows ({sum(map(len, rows))} tokens) -> {os.path.relpath(path, ROOT)}')


# Interventions golden (issue #16): several neurons, modes, hooks, layers and token ranges at
# once, on texts that need windows. Per case: the clean and the intervened run's per-token loss
# (of the real next token), entropy, final-LN scale, top-5 next tokens, and logit columns.
INTERVENTION_FIXTURES = ['gpt2-tiny-crfm', 'gpt2-tiny-untied']
INTERVENTION_LOGIT_IDS = LOGIT_IDS[:64]
INTERVENTION_CASES = {
    # name: (text index, hook, mode, value, neurons [(layer, neuron)], token range [a, b) or None = all)
    'gpt2-tiny-crfm': [
        ('zero, three layers, all tokens', 3, 'post', 'zero', None, [(0, 5), (1, 13), (2, 40)], None),
        ('fix 2.5, a token range', 1, 'post', 'fix', 2.5, [(1, 3), (1, 7), (2, 0)], (2, 9)),
        ('scale -1.5 to the end', 3, 'post', 'scale', -1.5, [(0, 10), (2, 2)], (5, None)),
        ('mean (given) on hook_pre', 3, 'pre', 'mean', [0.3, -1.2], [(1, 20), (2, 33)], (1, 20)),
        ("mean (the prompt's own)", 3, 'post', 'mean', 'prompt', [(0, 1), (1, 2), (1, 60)], None),
        ('fix -3 on hook_pre at BOS only', 3, 'pre', 'fix', -3.0, [(0, 0), (1, 1)], (0, 1)),
        ('scale 4, short text', 0, 'post', 'scale', 4.0, [(2, 7), (2, 8), (0, 63)], None),
    ],
    'gpt2-tiny-untied': [
        ('zero on both layers', 3, 'post', 'zero', None, [(0, 3), (1, 39)], None),
        ('fix 1.5 on hook_pre, a range', 2, 'pre', 'fix', 1.5, [(1, 0), (1, 17)], (3, 12)),
    ],
}
TOP_K = 5


def windowed_scores(run, P, eps, ids, edits=None, tok_range=None, bos=BOS):
    """The whole text in windows (see forward_text) of P positions; run(row, edits, gate) -> (logits,
    final-LN input) is one window's forward. The target of position i is ids[i + 1], scored with i's
    own window. tok_range = (a, b): edit text tokens a..b-1; a window's inserted BOS is edited when
    a == 0. Returns per text token: logits [n, V], nll [n-1], entropy, ln_scale."""
    n = len(ids)
    pieces = [(ids[:P], 0, 0)] + [([bos] + ids[i:i + P - 1], 1, i) for i in range(P, n, P - 1)]
    a, b = tok_range if tok_range else (0, n)
    logits, resid = [None] * n, [None] * n
    for row, skip, first in pieces:
        idx = [-1] * skip + list(range(first, first + len(row) - skip))
        gate = torch.tensor([(a == 0) if i < 0 else (a <= i < b) for i in idx])
        lg, x = run(row, edits, gate)
        for p, i in enumerate(idx):
            if i >= 0:
                logits[i], resid[i] = lg[p], x[p]
    logits, resid = torch.stack(logits), torch.stack(resid)
    logp = torch.log_softmax(logits, -1)
    nll = -logp[torch.arange(n - 1), torch.tensor(ids[1:])]
    entropy = -(logp.exp() * logp).sum(-1)
    scale = torch.sqrt(resid.var(-1, unbiased=False) + eps)
    return logits, nll, entropy, scale


def write_intervention_golden(name, bpe):
    spec = FIXTURE_SPECS[name]
    base = FIXTURE_SPECS.get(spec.get('base', name), spec)
    cfg = {**CONFIG_DEFAULTS, **base['config']}
    w64 = {k: v.to(spec['dtype']).to(torch.float64) for k, v in make_weights(cfg, base['seed']).items()}
    model = dict(run=lambda row, edits, gate: forward(w64, cfg, row, edits=edits, gate=gate)[2:],
                 hooks=lambda ids: forward_text(w64, cfg, ids)[:2],
                 P=cfg['n_positions'], eps=cfg.get('layer_norm_epsilon', 1e-5), bos=BOS)
    write_interventions(name, model, INTERVENTION_CASES[name], TEXTS, bpe.encode, INTERVENTION_LOGIT_IDS)


def write_interventions(name, model, case_specs, texts, encode, logit_ids):
    """The interventions golden of one fixture, for any architecture: model = dict(run, hooks, P,
    eps, bos) with run as windowed_scores takes it and hooks(ids) -> ([hook_pre], [hook_post]) of
    the whole text (the prompt's own means)."""
    P, bos = model['P'], model['bos']
    chunks, offset = [], 0

    def put(t):
        nonlocal offset
        a = t.to(torch.float32).contiguous().reshape(-1)
        chunks.append(a.numpy().tobytes())
        entry = {'offset': offset, 'shape': list(t.shape)}
        offset += a.numel()
        return entry

    def side(logits, nll, entropy, scale):
        probs, top = torch.softmax(logits, -1).topk(TOP_K, -1)
        srt = logits.sort(-1, descending=True).values
        return {'loss': nll.tolist(), 'entropy': entropy.tolist(), 'ln_scale': scale.tolist(),
                'top_ids': top.tolist(), 'top_probs': probs.tolist(),
                # gap between the k-th and (k+1)-th logit: a near tie may order differently in fp32
                'top_gaps': (srt[:, :TOP_K] - srt[:, 1:TOP_K + 1]).tolist(),
                'logits_slice': put(logits[:, logit_ids]), 'logsumexp': put(torch.logsumexp(logits, -1))}

    def scored(ids, edits=None, rng=None):
        return side(*windowed_scores(model['run'], P, model['eps'], ids, edits, rng, bos))

    cases = []
    for label, text_i, hook, kind, value, neurons, rng in case_specs:
        ids = [bos] + encode(texts[text_i])
        n = len(ids)
        a, b = (rng[0], rng[1] if rng[1] is not None else n) if rng else (0, n)
        means = None
        if kind == 'mean' and value == 'prompt':
            pres, posts = model['hooks'](ids)
            hooks = pres if hook == 'pre' else posts
            means = [hooks[l][1:, m].mean().item() for l, m in neurons]  # every token but BOS
        elif kind == 'mean':
            means = list(value)
        edits = {}
        for k, (l, m) in enumerate(neurons):
            val = means[k] if kind == 'mean' else value
            edits.setdefault((l, hook), []).append((m, kind, val))
        cases.append({'label': label, 'ids': ids, 'text': texts[text_i], 'hook': hook, 'mode': kind,
                      'value': value if kind in ('fix', 'scale') else None,
                      'means': value if kind == 'mean' and value != 'prompt' else ('prompt' if kind == 'mean' else None),
                      'resolved_means': means, 'neurons': [list(x) for x in neurons], 'range': [a, b],
                      'windows': 1 + max(0, math.ceil((n - P) / (P - 1))),
                      'clean': scored(ids),
                      'intervened': scored(ids, edits, (a, b))})
        c = cases[-1]
        moved = max(abs(x - y) for x, y in zip(c['clean']['loss'], c['intervened']['loss']))
        print(f'  {name}: {label}: {n} tokens, {c["windows"]} window(s), max |d loss| {moved:.3g}')
    out = {'fixture': name, 'top_k': TOP_K, 'logit_ids': logit_ids, 'cases': cases,
           'note': 'per case, per side: loss[i] = -log p(ids[i+1] | window of i) (n-1), entropy, ln_scale (n), '
                   'top_ids/top_probs [n, k], logits_slice [n, len(logit_ids)] and logsumexp [n] as float32 LE in '
                   '<fixture>.interventions.bin (offset/length in floats); float64 torch'}
    with open(os.path.join(GOLDEN, name + '.interventions.bin'), 'wb') as f:
        for ch in chunks:
            f.write(ch)
    with open(os.path.join(GOLDEN, name + '.interventions.json'), 'w', encoding='utf-8') as f:
        json.dump(out, f, ensure_ascii=False)
        f.write('\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--tokenizer', default=TOKENIZER_JSON, help='GPT-2 tokenizer.json to copy and encode with')
    ap.add_argument('--only', nargs='*', help='fixture names')
    ap.add_argument('--interventions', action='store_true',
                    help='write only the interventions goldens (fixtures unchanged: their weights are rebuilt from the seeds)')
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not os.path.exists(args.tokenizer):
        sys.exit(f'{args.tokenizer} not found (pass --tokenizer)')
    bpe = Bpe(args.tokenizer)
    check = bpe.encode('Hello world, universal neurons!')
    assert check == [15496, 995, 11, 10112, 16890, 0], check
    for name, spec in FIXTURE_SPECS.items():
        if (not args.only or name in args.only) and not args.interventions:
            build(name, spec, bpe, args.tokenizer)
    for name in INTERVENTION_FIXTURES:
        if not args.only or name in args.only:
            write_intervention_golden(name, bpe)


if __name__ == '__main__':
    main()
