"""Golden for the paper-compatible activation columns (src/engine/analysis/paperhist.ts).

Written from the paper's code (wesg52/universal-neurons: summary.py `bin_activations`,
analysis/activations.py `get_activation_sparsity_df` and `compute_moments_from_binned_data`) as
its maths, in torch, on planted pre-activations chosen to hit the hard cases: values exactly on
an edge and one fp16 step either side, values that fp16 moves across an edge, the tails beyond
[-10, 15], zeros, and skewed and heavy-tailed neurons.

    /usr/bin/python3 tools/paper_hist_golden.py   # writes test/fixtures/golden/paper-hist.json
"""
import base64
import json
import os

import numpy as np
import torch

torch.set_num_threads(1)
g = torch.Generator().manual_seed(20261202)
T = 1500
edges = torch.linspace(-10, 15, 256)

cols = []
cols.append(torch.randn(T, generator=g) * 0.5 - 1.0)                     # a typical GELU pre-activation
cols.append(torch.exp(torch.randn(T, generator=g)) - 1.2)                  # skewed
cols.append(torch.randn(T, generator=g) * 8 + 2)                           # both tails clipped
on_edge = edges[torch.randint(0, 256, (T,), generator=g)]
cols.append(on_edge)                                                       # exactly on an edge
half_steps = torch.randint(-2, 3, (T,), generator=g).to(torch.float32)
near = on_edge.to(torch.float16).to(torch.float32)
cols.append(near + half_steps * torch.finfo(torch.float16).eps * near.abs().clamp(min=1e-3))  # an fp16 step or two off an edge
z = torch.zeros(T)
z[::3] = torch.randn(T, generator=g)[::3] * 1e-3
cols.append(z)                                                             # zeros and tiny values around the zero bin
x = torch.stack(cols, dim=1).to(torch.float32)                             # [T, N] token-major, as the engine's pre
N = x.shape[1]

# The paper's binning: fp16 activations, searchsorted on the float32 edges, 257 counts per neuron.
acts = x.to(torch.float16).T.contiguous()                                  # [N, T]
idx = torch.searchsorted(edges, acts)
counts = torch.zeros(N, 257, dtype=torch.int32)
counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.int32))

zero_bin = int(np.argmax(edges.numpy() >= 0))
c = counts.numpy().astype(np.float64)
sparsity = c[:, zero_bin:].sum(-1) / c.sum(-1)
e = edges.numpy()
ext = torch.tensor(np.concatenate([np.array([e[0] + e[0] - e[1]]), e, np.array([e[-1] + e[-1] - e[-2]])]))  # float32, as the paper's code
centres = ((ext[1:] + ext[:-1]) / 2).numpy().astype(np.float64)  # float32 centres; the sums here in float64
tot = c.sum(-1)
mean = (centres * c).sum(-1) / tot
var = (((centres - mean[:, None]) ** 2) * c).sum(-1) / tot
skew = (((centres - mean[:, None]) ** 3) * c).sum(-1) / (tot * var ** 1.5)
kurt = (((centres - mean[:, None]) ** 4) * c).sum(-1) / (tot * var ** 2)

out = {
    'about': 'tools/paper_hist_golden.py: the paper\'s 257-bin fp16 histogram columns on planted pre-activations',
    'torch': torch.__version__,
    'T': T,
    'N': N,
    'x_f32_base64': base64.b64encode(x.numpy().tobytes()).decode(),
    'edges': [float(v) for v in edges.tolist()],
    'zero_bin': zero_bin,
    'counts': counts.tolist(),
    'sparsity': sparsity.tolist(),
    'mean': mean.tolist(),
    'var': var.tolist(),
    'skew': skew.tolist(),
    'kurt': kurt.tolist(),
}
path = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'golden', 'paper-hist.json')
with open(path, 'w') as f:
    json.dump(out, f)
print(path, 'sparsity', [round(s, 4) for s in sparsity.tolist()])
