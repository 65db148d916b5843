#!/usr/bin/python3
"""Torch eager baseline for `npm run bench`: the same GPT-2 forward the engine runs for
activations (every layer's MLP hook_pre and hook_post, no LM head), random fp32 weights, batch
4x128, 2 threads. Prints one JSON line per config: {"name", "tokens_per_s", "ms_per_batch"}.

Run: /usr/bin/python3 bench/torch_forward.py [--configs tiny small] [--seconds 6]

--serve (used by bench/run.ts): for the one config given, print {"ready": ...} and then, for
each line "run N" on stdin, run N forwards and print {"ms": [...]} (each forward's own time). The
engine and torch then take turns in short blocks, so that load from other processes on a shared
machine falls on both alike.
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch

CONFIGS = {
    'tiny': dict(n_layer=4, n_embd=128, n_head=4, d_mlp=512),
    'small': dict(n_layer=12, n_embd=768, n_head=12, d_mlp=3072),
}
VOCAB, N_POS = 50257, 1024


def weights(c):
    g = torch.Generator().manual_seed(0)
    d, m = c['n_embd'], c['d_mlp']
    r = lambda *s: torch.randn(*s, generator=g) * 0.02
    w = {'wte': r(VOCAB, d), 'wpe': r(N_POS, d), 'layers': []}
    for _ in range(c['n_layer']):
        w['layers'].append(dict(ln1=(torch.ones(d), torch.zeros(d)), attn=(r(d, 3 * d), r(3 * d)), proj=(r(d, d), r(d)),
                                ln2=(torch.ones(d), torch.zeros(d)), fc=(r(d, m), r(m)), out=(r(m, d), r(d))))
    return w


def forward(w, c, ids):
    B, S = ids.shape
    d, H = c['n_embd'], c['n_head']
    Dh = d // H
    mask = torch.triu(torch.full((S, S), float('-inf')), 1).expand(B * H, S, S)
    x = w['wte'][ids] + w['wpe'][:S]
    hooks = []
    n = len(w['layers'])
    for i, L in enumerate(w['layers']):
        a = torch.nn.functional.layer_norm(x, (d,), *L['ln1'])
        qkv = torch.addmm(L['attn'][1], a.reshape(-1, d), L['attn'][0]).reshape(B, S, 3, H, Dh)
        q, k, v = (t.reshape(B * H, S, Dh) for t in qkv.permute(2, 0, 3, 1, 4))
        # mask + scale·q·kᵀ in one baddbmm
        p = torch.softmax(torch.baddbmm(mask, q, k.transpose(-1, -2), alpha=1 / math.sqrt(Dh)), dim=-1)
        ctx = torch.bmm(p, v).reshape(B, H, S, Dh).transpose(1, 2).reshape(-1, d)
        x = x + torch.addmm(L['proj'][1], ctx, L['proj'][0]).reshape(B, S, d)
        h = torch.nn.functional.layer_norm(x, (d,), *L['ln2'])
        pre = torch.addmm(L['fc'][1], h.reshape(-1, d), L['fc'][0]).reshape(B, S, -1)
        post = torch.nn.functional.gelu(pre, approximate='tanh')  # gelu_new, one fused kernel
        hooks.append((pre, post))
        if i < n - 1:  # the last c_proj is not needed for activations
            x = x + torch.addmm(L['out'][1], post.reshape(-1, post.shape[-1]), L['out'][0]).reshape(B, S, d)
    return hooks


def serve(args):
    c = CONFIGS[args.configs[0]]
    w = weights(c)
    ids = torch.randint(0, VOCAB, (args.batch, args.seq), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        print(json.dumps({'ready': True, 'torch': torch.__version__, 'threads': torch.get_num_threads()}), flush=True)
        for line in sys.stdin:
            cmd = line.split()
            if len(cmd) != 2 or cmd[0] != 'run':
                break
            ms = []
            for _ in range(int(cmd[1])):
                t0 = time.perf_counter()
                forward(w, c, ids)
                ms.append((time.perf_counter() - t0) * 1e3)
            print(json.dumps({'ms': ms}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--configs', nargs='*', default=list(CONFIGS))
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--seq', type=int, default=128)
    ap.add_argument('--seconds', type=float, default=6.0)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--serve', action='store_true')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.serve:
        serve(args)
        return
    for name in args.configs:
        c = CONFIGS[name]
        w = weights(c)
        ids = torch.randint(0, VOCAB, (args.batch, args.seq), generator=torch.Generator().manual_seed(1))
        times = []
        with torch.inference_mode():
            for _ in range(2):
                forward(w, c, ids)
            start = time.perf_counter()
            while time.perf_counter() - start < args.seconds or len(times) < 3:
                t0 = time.perf_counter()
                forward(w, c, ids)
                times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(json.dumps({'name': name, 'tokens_per_s': args.batch * args.seq / med, 'ms_per_batch': med * 1e3,
                          'runs': len(times), 'torch': torch.__version__, 'threads': args.threads}), flush=True)


if __name__ == '__main__':
    main()
