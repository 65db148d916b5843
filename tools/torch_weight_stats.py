#!/usr/bin/python3
"""Independent reference for the engine's weight statistics (src/engine/analysis/weightstats.ts).

Reads each checkpoint's model.safetensors directly (format parsed here, no safetensors package),
applies TransformerLens's default weight processing in float64 PyTorch, and writes the per-neuron
statistics of docs/method-notes.md "Weight statistics" to test/fixtures/weightstats/<name>.json:

  W_in' = diag(ln_2.w) W_in, b_in' = b_in + ln_2.b W_in, W_in' centred over d_model per neuron;
  W_out rows centred over d_model;
  W_U' = diag(ln_f.w) W_U (W_U = wte^T when tied, lm_head.weight^T otherwise), centred over
  d_model per token, then minus its mean over the vocab;
  c = (w_out/|w_out|) @ (W_U' with unit columns); population moments of c (kurtosis non-excess).
For GPT-NeoX also the attention-deactivation raw scores of roles.ts (attention_h, neox_attention_h):
with rotary keys, the mean over the query positions 1 .. n_positions-1 of the score of the query
rotated to each position (as the forward rotates it) against the unrotated k_BOS at position 0.

Nothing here imports or mirrors our TypeScript: it follows the formulas in the method and in
TransformerLens (fold_layer_norm, center_writing_weights, center_unembed).

Values are rounded to 7 significant digits. Top/bottom-10 composition tokens are stored for a
subset of neurons (every one for small fixtures, every 16th for the tiny family) to keep the
golden small.

Run:  /usr/bin/python3 tools/torch_weight_stats.py [NAME...]   (about a minute on 2 cores; deterministic)
"""
import hashlib
import math
import json
import os
import struct
import sys

import torch

torch.set_num_threads(2)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'weightstats')

# (golden name, checkpoint folder relative to ROOT, stride of neurons whose top tokens are kept)
CHECKPOINTS = [
    ('gpt2-tiny-crfm', 'test/fixtures/gpt2-tiny-crfm', 1),  # tied, fp32, d_mlp = 4·d_model
    ('gpt2-tiny-untied', 'test/fixtures/gpt2-tiny-untied', 1),  # untied lm_head, n_inner 40
    ('tiny-gpt2-a', 'models/tiny-gpt2-a', 16),  # shipped family, fp16
    # GPT-NeoX: nn.Linear [out, in] weights, post_attention_layernorm, untied embed_out, final_layer_norm
    ('neox-tiny-seq', 'test/fixtures/neox-tiny-seq', 4),
    ('neox-14m', 'test/fixtures/neox-14m', 16),  # parallel residual, Pythia-14m's layout scaled down
]
TOP = 10

_DTYPES = {'F32': (torch.float32, 4), 'F16': (torch.float16, 2), 'BF16': (torch.bfloat16, 2), 'F64': (torch.float64, 8)}


def read_safetensors(path):
    """{name: float64 tensor} from a safetensors file: u64 header length, JSON header, raw data."""
    with open(path, 'rb') as f:
        blob = f.read()
    (n,) = struct.unpack('<Q', blob[:8])
    header = json.loads(blob[8 : 8 + n].decode('utf-8'))
    data = blob[8 + n :]
    out = {}
    for name, info in header.items():
        if name == '__metadata__' or info['dtype'] not in _DTYPES:
            continue
        dt, size = _DTYPES[info['dtype']]
        begin, end = info['data_offsets']
        count = (end - begin) // size
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=dt, count=count) if count else torch.zeros(0, dtype=dt)
        out[name] = t.to(torch.float64).reshape(info['shape'])
    return out


def n_layer_of(cfg):
    return cfg['num_hidden_layers'] if cfg['model_type'] == 'gpt_neox' else cfg['n_layer']


def sig7(x):
    return float('%.7g' % x)


def moments(c):
    """Population mean, var, skew, kurtosis (non-excess) along the last axis; constant rows: 0."""
    mean = c.mean(-1)
    d = c - mean[:, None]
    var = (d * d).mean(-1)
    m3 = (d ** 3).mean(-1)
    m4 = (d ** 4).mean(-1)
    ok = var > 0
    safe = torch.where(ok, var, torch.ones_like(var))
    skew = torch.where(ok, m3 / safe ** 1.5, torch.zeros_like(var))
    kurt = torch.where(ok, m4 / safe ** 2, torch.zeros_like(var))
    return mean, var, skew, kurt


def stats(folder):
    cfg = json.load(open(os.path.join(folder, 'config.json')))
    W = read_safetensors(os.path.join(folder, 'model.safetensors'))

    def get(name):
        for n in (name, 'transformer.' + name):
            if n in W:
                return W[n]
        raise KeyError(name)

    neox = cfg['model_type'] == 'gpt_neox'
    if neox:
        # GPTNeoXForCausalLM: names under gpt_neox. (or none), Linear weights [out, in].
        def get(name):
            for n in ('gpt_neox.' + name, name):
                if n in W:
                    return W[n]
            raise KeyError(name)

    n_layer = cfg['num_hidden_layers' if neox else 'n_layer']
    tied = cfg.get('tie_word_embeddings', not neox) is not False
    rows = {k: [] for k in ('w_in_norm', 'input_bias', 'w_out_norm', 'in_out_sim', 'l2_penalty')}
    w_out_all = []
    for l in range(n_layer):
        if neox:
            p = f'layers.{l}.'
            g, b = get(p + 'post_attention_layernorm.weight'), get(p + 'post_attention_layernorm.bias')
            w_in = get(p + 'mlp.dense_h_to_4h.weight').T  # [d_model, d_mlp]
            b_in = get(p + 'mlp.dense_h_to_4h.bias') + b @ w_in
            w_out = get(p + 'mlp.dense_4h_to_h.weight').T  # [d_mlp, d_model]
        else:
            g, b = get(f'h.{l}.ln_2.weight'), get(f'h.{l}.ln_2.bias')
            w_in = get(f'h.{l}.mlp.c_fc.weight')  # [d_model, d_mlp] (Conv1D)
            b_in = get(f'h.{l}.mlp.c_fc.bias') + b @ w_in
            w_out = get(f'h.{l}.mlp.c_proj.weight')  # [d_mlp, d_model]
        w_in = g[:, None] * w_in
        w_in = w_in - w_in.mean(0, keepdim=True)
        w_out = w_out - w_out.mean(1, keepdim=True)
        ni = w_in.norm(dim=0)
        no = w_out.norm(dim=1)
        rows['w_in_norm'].append(ni)
        rows['input_bias'].append(b_in)
        rows['w_out_norm'].append(no)
        rows['in_out_sim'].append((w_in.T * w_out).sum(1) / (ni * no))
        rows['l2_penalty'].append(ni ** 2 + no ** 2)
        w_out_all.append(w_out / no[:, None])
    out = {k: torch.cat(v) for k, v in rows.items()}

    # Unembedding [d_model, vocab].
    if neox:
        W_U = (get('embed_in.weight') if tied else W['embed_out.weight']).T
        W_U = W_U * get('final_layer_norm.weight')[:, None]
    else:
        W_U = (get('wte.weight') if tied else W['lm_head.weight']).T
        W_U = W_U * get('ln_f.weight')[:, None]
    W_U = W_U - W_U.mean(0, keepdim=True)  # over d_model (fold_layer_norm, center_weights)
    W_U = W_U - W_U.mean(1, keepdim=True)  # over the vocab (center_unembed)
    W_U = W_U / W_U.norm(dim=0, keepdim=True)

    A = torch.cat(w_out_all)  # [N, d_model], unit rows
    N = A.shape[0]
    mom = {k: [] for k in ('vocab_mean', 'vocab_var', 'vocab_skew', 'vocab_kurt')}
    top_v, top_i, bot_v, bot_i = [], [], [], []
    for j0 in range(0, N, 256):
        c = A[j0 : j0 + 256] @ W_U
        for k, v in zip(mom, moments(c)):
            mom[k].append(v)
        t = torch.topk(c, TOP, dim=1, largest=True, sorted=True)
        bt = torch.topk(c, TOP, dim=1, largest=False, sorted=True)
        top_v.append(t.values)
        top_i.append(t.indices)
        bot_v.append(bt.values)
        bot_i.append(bt.indices)
    for k, v in mom.items():
        out[k] = torch.cat(v)
    return cfg, out, torch.cat(top_v), torch.cat(top_i), torch.cat(bot_v), torch.cat(bot_i), A


def gelu(x, act):
    if act == 'gelu':
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def neox_attention_h(folder, unit_w_out):
    """Attention-deactivation raw scores h[l][n][l2·H + head] (l2 > l) of a GPT-NeoX, from the method:
    k_BOS from a one-token forward of BOS (id bos_token_id; rotary is the identity at position 0;
    the parallel residual feeds the MLP the layer's input); for each neuron the query of its unit
    output direction, q = W_Q[:, head]^T (input_layernorm.w * w_out_unit) with W_Q the head's q rows
    of the fused query_key_value (per head [q | k | v], HF's view(..., H, 3·d_head)); at each query
    position p = 1 .. P-1 (P = max_position_embeddings) q is rotated as HF's apply_rotary_pos_emb
    does (q·cos + rotate_half(q)·sin on the first rotary_ndims dims) and scored against k_BOS,
    h_p = q_p . k_BOS / sqrt(d_head); h is the mean of h_p over p. Returns (h per layer, (1, P-1))."""
    cfg = json.load(open(os.path.join(folder, 'config.json')))
    W = read_safetensors(os.path.join(folder, 'model.safetensors'))

    def get(name):
        for n in ('gpt_neox.' + name, name):
            if n in W:
                return W[n]
        raise KeyError(name)

    L, H, d = cfg['num_hidden_layers'], cfg['num_attention_heads'], cfg['hidden_size']
    dh = d // H
    eps = cfg.get('layer_norm_eps', 1e-5)
    parallel = cfg.get('use_parallel_residual', True)
    has_bias = cfg.get('attention_bias', True)

    def ln(x, p):
        return torch.nn.functional.layer_norm(x, (d,), get(p + '.weight'), get(p + '.bias'), eps)

    rot = int(dh * cfg.get('rotary_pct', 0.25))
    P = cfg['max_position_embeddings']
    inv_freq = 1.0 / (cfg.get('rotary_emb_base', 10000) ** (torch.arange(0, rot, 2, dtype=torch.float64) / rot))
    x = get('embed_in.weight')[cfg.get('bos_token_id', 0)].clone()
    qs, ks = [], []  # per layer: W_Q folded with input_layernorm.w [H, dh, d], k_BOS [H, dh]
    for l in range(L):
        p = f'layers.{l}.'
        Wqkv = get(p + 'attention.query_key_value.weight').view(H, 3, dh, d)
        bqkv = get(p + 'attention.query_key_value.bias').view(H, 3, dh) if has_bias else torch.zeros(H, 3, dh, dtype=torch.float64)
        a = ln(x, p + 'input_layernorm')
        k = torch.einsum('hkd,d->hk', Wqkv[:, 1], a) + bqkv[:, 1]
        v = torch.einsum('hkd,d->hk', Wqkv[:, 2], a) + bqkv[:, 2]
        o = get(p + 'attention.dense.weight') @ v.reshape(d)
        if has_bias:
            o = o + get(p + 'attention.dense.bias')
        qs.append(Wqkv[:, 0] * get(p + 'input_layernorm.weight')[None, None, :])
        ks.append(k)
        mlp_in = x if parallel else x + o
        hid = gelu(get(p + 'mlp.dense_h_to_4h.weight') @ ln(mlp_in, p + 'post_attention_layernorm') + get(p + 'mlp.dense_h_to_4h.bias'), cfg['hidden_act'])
        y = get(p + 'mlp.dense_4h_to_h.weight') @ hid + get(p + 'mlp.dense_4h_to_h.bias')
        x = x + o + y if parallel else mlp_in + y
    m = cfg['intermediate_size']

    def rotate_half(t):
        return torch.cat((-t[..., rot // 2 : rot], t[..., : rot // 2]), dim=-1)

    out = []
    for l in range(L - 1):
        u = unit_w_out[l * m : (l + 1) * m]  # [m, d]
        cols = []
        for l2 in range(l + 1, L):
            q = torch.einsum('hkd,nd->nhk', qs[l2], u)  # [m, H, dh], unrotated (position 0)
            total = torch.zeros(m, H, dtype=torch.float64)
            for pos in range(1, P):
                emb = torch.cat((pos * inv_freq, pos * inv_freq))
                qp = torch.cat((q[..., :rot] * emb.cos() + rotate_half(q[..., :rot]) * emb.sin(), q[..., rot:]), dim=-1)
                total += torch.einsum('nhk,hk->nh', qp, ks[l2]) / math.sqrt(dh)
            cols.append(total / (P - 1))
        out.append(torch.cat(cols, dim=1))  # [m, (L-1-l)·H]
    return out, (1, P - 1)


def main():
    os.makedirs(OUT, exist_ok=True)
    only = sys.argv[1:]  # golden names; default all
    for name, rel, stride in CHECKPOINTS:
        if only and name not in only:
            continue
        folder = os.path.join(ROOT, rel)
        sha = hashlib.sha256(open(os.path.join(folder, 'model.safetensors'), 'rb').read()).hexdigest()
        cfg, s, tv, ti, bv, bi, A = stats(folder)
        N = len(s['w_in_norm'])
        picked = list(range(0, N, stride))
        golden = {
            'checkpoint': rel,
            'sha256': sha,
            'generator': 'tools/torch_weight_stats.py (float64 PyTorch %s)' % torch.__version__,
            'n_layer': n_layer_of(cfg),
            'n_neurons': N,
            'stats': {k: [sig7(x) for x in v.tolist()] for k, v in s.items()},
            'top': {
                'neurons': picked,
                'top_tokens': [ti[j].tolist() for j in picked],
                'top_values': [[sig7(x) for x in tv[j].tolist()] for j in picked],
                'bottom_tokens': [bi[j].tolist() for j in picked],
                'bottom_values': [[sig7(x) for x in bv[j].tolist()] for j in picked],
            },
        }
        if cfg['model_type'] == 'gpt_neox':
            h, positions = neox_attention_h(folder, A)
            golden['attention_h'] = [[[sig7(x) for x in row] for row in hl.tolist()] for hl in h]
            golden['attention_positions'] = list(positions)
        path = os.path.join(OUT, name + '.json')
        with open(path, 'w') as f:
            json.dump(golden, f, separators=(',', ':'))
            f.write('\n')
        print('%s: %d neurons -> %s (%d bytes)' % (name, N, os.path.relpath(path, ROOT), os.path.getsize(path)))


if __name__ == '__main__':
    main()
