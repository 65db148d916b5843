"""The paper's correlation algorithm in PyTorch, timed on synthetic activations (bench/analysis.ts
runs it; numbers go in BENCHMARKS.md, "Correlation analysis").

As in wesg52/universal-neurons `correlations_fast.py` (StreamingPearsonComputer): activations in
[layer, neuron, token] layout, one fp32 matmul per layer pair accumulated into a float64
[L, d, L, d] sum, float64 column sums and sums of squares. The rotation baseline is a second full
pass over the same tokens with each layer of model m replaced by R_l·V_l (fp32), exactly what the
paper's `--baseline rotation` run does. Forward passes are not timed: only the correlation work.

Usage: /usr/bin/python3 bench/torch_paper.py --tokens 8192 --chunks 3 --pairs 4 [--layers 4 --dmlp 512]
Prints one JSON line: seconds per chunk for the plain pass and the rotated pass (best and median),
and the extrapolated seconds per 1M tokens for all pairs.
"""
import argparse
import json
import time

import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--tokens', type=int, default=8192, help='tokens per chunk')
    p.add_argument('--chunks', type=int, default=3, help='timed chunks (after one warm-up)')
    p.add_argument('--pairs', type=int, default=4)
    p.add_argument('--layers', type=int, default=4)
    p.add_argument('--dmlp', type=int, default=512)
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    L, d, T = a.layers, a.dmlp, a.tokens
    gelu = torch.nn.functional.gelu
    # One reference chunk and one chunk per other model; speed does not depend on the values.
    x = gelu(torch.randn(L, d, T) - 0.5)
    ys = [gelu(torch.randn(L, d, T) - 0.5) for _ in range(a.pairs)]
    rot = torch.randn(L, d, d)
    rot /= rot.norm(dim=-1, keepdim=True)

    def state():
        return {
            'sxy': torch.zeros(L, d, L, d, dtype=torch.float64),
            'sx': torch.zeros(L, d, dtype=torch.float64),
            'sxx': torch.zeros(L, d, dtype=torch.float64),
            'sy': torch.zeros(L, d, dtype=torch.float64),
            'syy': torch.zeros(L, d, dtype=torch.float64),
        }

    def update(s, xa, yb):
        for l1 in range(L):
            for l2 in range(L):
                s['sxy'][l1, :, l2, :] += xa[l1] @ yb[l2].T
        s['sx'] += xa.sum(-1, dtype=torch.float64)
        s['sxx'] += (xa * xa).sum(-1, dtype=torch.float64)
        s['sy'] += yb.sum(-1, dtype=torch.float64)
        s['syy'] += (yb * yb).sum(-1, dtype=torch.float64)

    plain = [state() for _ in range(a.pairs)]
    rotated = [state() for _ in range(a.pairs)]

    def plain_pass():
        for k in range(a.pairs):
            update(plain[k], x, ys[k])

    def rotated_pass():
        for k in range(a.pairs):
            r = torch.stack([rot[l] @ ys[k][l] for l in range(L)])
            update(rotated[k], x, r)

    with torch.no_grad():
        plain_pass()
        rotated_pass()
        tp, tr = [], []
        for _ in range(a.chunks):
            t0 = time.perf_counter()
            plain_pass()
            t1 = time.perf_counter()
            rotated_pass()
            t2 = time.perf_counter()
            tp.append(t1 - t0)
            tr.append(t2 - t1)
        # The final correlation step, once per pass and pair (as compute_correlation does).
        t0 = time.perf_counter()
        s = plain[0]
        n = float(T * (a.chunks + 2))
        num = s['sxy'] - torch.einsum('ab,cd->abcd', s['sx'], s['sy']) / n
        den = torch.einsum('ab,cd->abcd', (s['sxx'] - s['sx'] ** 2 / n).clamp(min=0).sqrt(), (s['syy'] - s['sy'] ** 2 / n).clamp(min=0).sqrt())
        corr = (num / den).reshape(L * d, L * d)
        corr.max(dim=1)
        t_final = time.perf_counter() - t0

    med = lambda v: sorted(v)[len(v) // 2]
    per_m = 1e6 / T
    out = {
        'tokens_per_chunk': T,
        'pairs': a.pairs,
        'neurons': L * d,
        'threads': a.threads,
        'torch': torch.__version__,
        'plain_s_best': min(tp),
        'plain_s_median': med(tp),
        'rotated_s_best': min(tr),
        'rotated_s_median': med(tr),
        'finish_s_per_pass_pair': t_final,
        'per_1M_tokens_s_best': (min(tp) + min(tr)) * per_m + 2 * a.pairs * t_final,
        'per_1M_tokens_s_median': (med(tp) + med(tr)) * per_m + 2 * a.pairs * t_final,
        'plain_gflops_best': 2 * T * (L * d) ** 2 * a.pairs / min(tp) / 1e9,
    }
    print(json.dumps(out), flush=True)


if __name__ == '__main__':
    main()
