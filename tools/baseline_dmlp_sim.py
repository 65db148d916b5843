#!/usr/bin/env python3
"""How the layer shape sets the rotated baseline, on synthetic layers (models/README.md, "Why the
baseline is high").

Each "model" is one MLP layer reading the same token representations: x ~ N(0, I_{d_model}) per
token (the information both seeds share), activations gelu(x·W + b) with its own random
W ~ N(0, 1/d_model) [d_model × d_mlp] and b ~ N(-1, 0.25) (sparse, as trained layers are: about
19% of pre-activations > 0). The baseline is the engine's (analysis/cross/baseline.ts): rotate the
reference layer's activations by a random orthogonal R [d_mlp × d_mlp], take each rotated
neuron's largest correlation with the other model's neurons, average over the other models, and
report the median over neurons. No neuron of these layers is "universal" by construction (W is
random per model), so everything the baseline shows is what a random direction in this shape
scores.

    /usr/bin/python3 tools/baseline_dmlp_sim.py [--tokens 16384] [--others 1] [--seed 0] \
        [--shapes 128x512,768x3072,128x3072,768x512]

Prints one markdown row per shape (d_model × d_mlp): the median baseline, its 10th and 90th
percentiles, and the median of the plain (unrotated) max correlation for comparison.
"""
import argparse
import math

import torch

torch.set_num_threads(1)
# float32 halves the cost; a correlation over thousands of tokens needs no more precision. Its
# random draws differ from float64's (128 × 512 at 4,096 tokens: 0.125 here, 0.128 in float64: another sample).
DTYPE = torch.float32


def gelu_new(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * z * (1 + torch.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))


def standardise(a: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(0, keepdim=True)
    return a / a.norm(dim=0, keepdim=True).clamp_min(1e-30)


def layer(x: torch.Tensor, d_mlp: int, g: torch.Generator) -> torch.Tensor:
    d_model = x.shape[1]
    w = torch.randn(d_model, d_mlp, generator=g, dtype=DTYPE) / math.sqrt(d_model)
    b = -1 + 0.5 * torch.randn(d_mlp, generator=g, dtype=DTYPE)
    return gelu_new(x @ w + b)


def max_corr(a: torch.Tensor, b: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Each column of a: its largest correlation with any column of b (a, b standardised)."""
    out = torch.empty(a.shape[1], dtype=DTYPE)
    for i in range(0, a.shape[1], chunk):
        out[i : i + chunk] = (a[:, i : i + chunk].T @ b).max(dim=1).values
    return out


def shape_row(d_model: int, d_mlp: int, tokens: int, others: int, seed: int) -> str:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, d_model, generator=g, dtype=DTYPE)
    ref = layer(x, d_mlp, g)
    q, r = torch.linalg.qr(torch.randn(d_mlp, d_mlp, generator=g, dtype=DTYPE))
    rot = q * torch.sign(torch.diagonal(r))  # Haar-distributed orthogonal matrix
    ref_rot = standardise(ref @ rot.T)
    ref = standardise(ref)
    base = torch.zeros(d_mlp, dtype=DTYPE)
    plain = torch.zeros(d_mlp, dtype=DTYPE)
    for _ in range(others):
        other = standardise(layer(x, d_mlp, g))
        base += max_corr(ref_rot, other) / others
        plain += max_corr(ref, other) / others
    q10, q50, q90 = torch.quantile(base, torch.tensor([0.1, 0.5, 0.9], dtype=DTYPE)).tolist()
    return f"| {d_model} × {d_mlp} | {tokens:,} | {q50:.3f} | {q10:.3f}–{q90:.3f} | {plain.median().item():.3f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--others", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shapes", default="128x512,768x3072,128x3072,768x512")
    a = ap.parse_args()
    print("| d_model × d_mlp | tokens | median rotated baseline | 10th–90th percentile | median max corr, unrotated |")
    print("|---|---|---|---|---|")
    for s in a.shapes.split(","):
        dm, dd = (int(v) for v in s.lower().split("x"))
        print(shape_row(dm, dd, a.tokens, a.others, a.seed), flush=True)


if __name__ == "__main__":
    main()
