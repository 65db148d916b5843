#!/usr/bin/python3
"""A plain PyTorch peer of the paper's whole analysis, for `npm run bench:side` (bench/side.ts).

Written the way a researcher would write it in a notebook, after wesg52/universal-neurons
(`correlations_fast.py`, `summary.py`), in eager fp32 with float64 accumulators. Nothing from our
engine is used. What it does, on the same tokens the project's `analyze` reads:

1. loads the checkpoints from their safetensors (reader below; F16/BF16 upcast to fp32);
2. cuts the corpus as TransformerLens `tokenize_and_concatenate` (and src/engine/corpus.ts) does:
   `.tokens.bin` files (uint16 LE, documents already joined with EOS) joined with EOS into one
   stream, cut into chunks of n_positions−1, BOS in front of each, the first floor(T / n_positions)
   rows; the sha256 of the rows (uint32 LE) is printed, and equals the run manifest's corpus hash;
3. pass 1, batches of 8 rows: a forward of every model keeping every layer's hook_pre and
   hook_post; tokens 50256 and 198 dropped (the kept tokens); float64 power sums of hook_pre for
   every model (mean, var, skew, kurt, fraction > 0); for each other model m, the paper's cross
   moments of hook_post in [layer, neuron, token] layout — one fp32 matmul per layer pair added
   into a float64 [L, d, L, d] S_xy, float64 sums and sums of squares;
4. pass 2 (the paper's `--baseline rotation`, a second run over the same tokens): the forwards
   again, each layer l of m replaced by R_l·V_l (R_l Gaussian d×d, rows normalised, seeded), the
   same cross moments;
5. Pearson ρ from the sums (zero variance → 0), max_corr and partner per reference neuron and m,
   baseline = max over rotated neurons, and the summary: mean_corr, mean_baseline, excess.

Usage:
  /usr/bin/python3 bench/torch_peer.py --models models/tiny-gpt2-{a,b,c,d,e} \
      --corpus models/corpus/heldout.tokens.bin --tokens 40960 [--threads 2] [--out peer.json]

Prints one JSON line: tokens (used, kept), the rows' hash, wall seconds per phase, kept tokens/s
over the stream (both passes), process CPU seconds (CPU % = cpu_s / wall_s) and peak RSS.
--out writes the per-neuron results (max_corr, partner, baseline per other model; the
reference's activation moments) as JSON.
"""
import argparse
import hashlib
import json
import math
import os
import resource
import struct
import sys
import time

import numpy as np
import torch

EOS = BOS = 50256
NEWLINE = 198


# --------------------------------------------------------------------------------------------
# safetensors: u64 LE header length, JSON header, raw little-endian tensors

def load_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == '__metadata__':
            continue
        a, b = meta['data_offsets']
        raw = data[a:b]
        dt = meta['dtype']
        if dt == 'F32':
            t = torch.from_numpy(np.frombuffer(raw, dtype='<f4').copy())
        elif dt == 'F16':
            t = torch.from_numpy(np.frombuffer(raw, dtype='<f2').astype(np.float32))
        elif dt == 'BF16':
            u = np.frombuffer(raw, dtype='<u2').astype(np.uint32) << 16
            t = torch.from_numpy(u.view(np.float32).copy())
        else:
            continue  # e.g. HF's bool/uint8 attention-mask buffers
        out[name] = t.reshape(meta['shape'])
    # HF GPT2LMHeadModel stores `transformer.`-prefixed names; GPT2Model does not.
    return {k[len('transformer.'):] if k.startswith('transformer.') else k: v for k, v in out.items()}


class Model:
    def __init__(self, folder):
        self.name = os.path.basename(os.path.normpath(folder))
        with open(os.path.join(folder, 'config.json')) as f:
            self.cfg = json.load(f)
        c = self.cfg
        self.L, self.d = c['n_layer'], c['n_embd']
        self.H = c['n_head']
        self.d_mlp = c.get('n_inner') or 4 * self.d
        self.n_pos = c['n_positions']
        self.eps = c.get('layer_norm_epsilon', 1e-5)
        act = c.get('activation_function', 'gelu_new')
        if act == 'gelu_new':
            self.act = lambda x: torch.nn.functional.gelu(x, approximate='tanh')
        elif act == 'gelu':
            self.act = torch.nn.functional.gelu
        elif act == 'relu':
            self.act = torch.relu
        else:
            raise SystemExit(f'{folder}: activation_function {act!r} is not supported by the peer')
        self.scale = 1.0
        if c.get('scale_attn_weights', True):
            self.scale /= math.sqrt(self.d // self.H)
        self.inv_layer = c.get('scale_attn_by_inverse_layer_idx', False)
        self.w = load_safetensors(os.path.join(folder, 'model.safetensors'))

    def forward(self, ids):
        """ids [B, S] → [(pre, post)] per layer, each [B, S, d_mlp] (no LM head)."""
        w, d, H = self.w, self.d, self.H
        B, S = ids.shape
        Dh = d // H
        mask = torch.triu(torch.full((S, S), float('-inf')), 1)
        ln = torch.nn.functional.layer_norm
        x = w['wte.weight'][ids] + w['wpe.weight'][:S]
        hooks = []
        for l in range(self.L):
            p = f'h.{l}.'
            h = ln(x, (d,), w[p + 'ln_1.weight'], w[p + 'ln_1.bias'], self.eps)
            qkv = h @ w[p + 'attn.c_attn.weight'] + w[p + 'attn.c_attn.bias']
            q, k, v = (t.reshape(B, S, H, Dh).transpose(1, 2) for t in qkv.split(d, dim=-1))
            scale = self.scale / (l + 1) if self.inv_layer else self.scale
            att = torch.softmax((q @ k.transpose(-1, -2)) * scale + mask, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(B, S, d)
            x = x + ctx @ w[p + 'attn.c_proj.weight'] + w[p + 'attn.c_proj.bias']
            h = ln(x, (d,), w[p + 'ln_2.weight'], w[p + 'ln_2.bias'], self.eps)
            pre = h @ w[p + 'mlp.c_fc.weight'] + w[p + 'mlp.c_fc.bias']
            post = self.act(pre)
            hooks.append((pre, post))
            if l < self.L - 1:  # nothing reads the last layer's output
                x = x + post @ w[p + 'mlp.c_proj.weight'] + w[p + 'mlp.c_proj.bias']
        return hooks


# --------------------------------------------------------------------------------------------
# Corpus: TransformerLens tokenize_and_concatenate on pre-tokenized .tokens.bin files

def read_rows(paths, n_pos, tokens):
    chunk = n_pos - 1
    want = tokens // n_pos
    if want < 1:
        raise SystemExit(f'a budget of {tokens} tokens is less than one row of {n_pos}')
    need = want * chunk
    parts, length, last = [], 0, None
    for p in paths:
        if not p.endswith('.tokens.bin'):
            raise SystemExit(f'{p}: the peer reads pre-tokenized .tokens.bin files only (uint16 LE ids)')
        if length >= need:
            break
        ids = np.fromfile(p, dtype='<u2').astype(np.int64)
        if length > 0 and last != EOS:
            parts.append(np.array([EOS], dtype=np.int64))
            length += 1
        parts.append(ids)
        length += len(ids)
        last = int(ids[-1]) if len(ids) else last
    stream = np.concatenate(parts)[:need]
    n_rows = min(want, len(stream) // chunk)
    rows = np.empty((n_rows, n_pos), dtype=np.int64)
    rows[:, 0] = BOS
    rows[:, 1:] = stream[:n_rows * chunk].reshape(n_rows, chunk)
    digest = hashlib.sha256(rows.astype('<u4').tobytes()).hexdigest()
    return rows, digest


# --------------------------------------------------------------------------------------------
# The paper's streaming Pearson sums (correlations_fast.py), [layer, neuron, token] layout

class Pearson:
    def __init__(self, L1, d1, L2, d2):
        f64 = torch.float64
        self.sxy = torch.zeros(L1, d1, L2, d2, dtype=f64)
        self.sx, self.sxx = torch.zeros(L1, d1, dtype=f64), torch.zeros(L1, d1, dtype=f64)
        self.sy, self.syy = torch.zeros(L2, d2, dtype=f64), torch.zeros(L2, d2, dtype=f64)
        self.n = 0

    def update(self, x, y):
        """x [L1, d1, T], y [L2, d2, T], fp32."""
        for l1 in range(x.shape[0]):
            for l2 in range(y.shape[0]):
                self.sxy[l1, :, l2, :] += x[l1] @ y[l2].T  # fp32 GEMM, added in float64
        self.sx += x.sum(-1, dtype=torch.float64)
        self.sxx += (x * x).sum(-1, dtype=torch.float64)
        self.sy += y.sum(-1, dtype=torch.float64)
        self.syy += (y * y).sum(-1, dtype=torch.float64)
        self.n += x.shape[-1]

    def max_corr(self):
        """Pearson ρ (zero variance → 0) and its max and argmax over y's neurons, per x neuron.
        One x layer at a time, so the float64 temporaries are a twelfth of S_xy at GPT-2 size."""
        n = float(self.n)
        sa = (self.sxx - self.sx ** 2 / n).clamp(min=0).sqrt()
        sb = (self.syy - self.sy ** 2 / n).clamp(min=0).sqrt().reshape(-1)
        sy = self.sy.reshape(-1)
        zero = torch.zeros((), dtype=torch.float64)
        best, arg = [], []
        for l1 in range(self.sx.shape[0]):
            num = self.sxy[l1].reshape(self.sx.shape[1], -1) - torch.outer(self.sx[l1], sy) / n
            den = torch.outer(sa[l1], sb)
            rho = torch.where(den > 0, num / den, zero).clamp(-1, 1)
            v, i = rho.max(dim=1)
            best.append(v)
            arg.append(i)
        return torch.cat(best), torch.cat(arg)


class Moments:
    """float64 power sums of hook_pre: mean, var, skew, kurt (population, non-excess), P(pre > 0)."""

    def __init__(self, L, d):
        self.s = [torch.zeros(L, d, dtype=torch.float64) for _ in range(4)]
        self.pos = torch.zeros(L, d, dtype=torch.float64)
        self.n = 0

    def update(self, pre):  # [L, T, d] fp32
        x = pre.double()
        x2 = x * x
        self.s[0] += x.sum(1)
        self.s[1] += x2.sum(1)
        self.s[2] += (x2 * x).sum(1)
        self.s[3] += (x2 * x2).sum(1)
        self.pos += (pre > 0).sum(1)
        self.n += pre.shape[1]

    def result(self):
        n = float(self.n)
        e1, e2, e3, e4 = (s / n for s in self.s)
        var = (e2 - e1 ** 2).clamp(min=0)
        m3 = e3 - 3 * e1 * e2 + 2 * e1 ** 3
        m4 = e4 - 4 * e1 * e3 + 6 * e1 ** 2 * e2 - 3 * e1 ** 4
        ok = var > 0
        zero = torch.zeros((), dtype=torch.float64)
        skew = torch.where(ok, m3 / var.clamp(min=1e-300) ** 1.5, zero)
        kurt = torch.where(ok, m4 / var.clamp(min=1e-300) ** 2, zero)
        flat = lambda t: t.reshape(-1).tolist()
        return {'mean': flat(e1), 'var': flat(var), 'skew': flat(skew), 'kurt': flat(kurt), 'frac_pos': flat(self.pos / n)}


def rotations(L, d, seed):
    g = torch.Generator().manual_seed(seed)
    R = torch.randn(L, d, d, generator=g)
    return R / R.norm(dim=-1, keepdim=True)  # rows of unit length, not orthogonalised


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--models', nargs='+', required=True, help='reference first')
    ap.add_argument('--corpus', nargs='+', required=True, help='.tokens.bin files, in order')
    ap.add_argument('--tokens', type=int, required=True, help='token budget (BOS included), as analyze --tokens')
    ap.add_argument('--batch-rows', type=int, default=8)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--seed', type=int, default=0, help='seed of the rotations')
    ap.add_argument('--out', help='write per-neuron results here (JSON)')
    ap.add_argument('--pairwise', action='store_true',
                    help='one other model at a time (a float64 S_xy per pair: GPT-2-small size fits 24 GB only this way)')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    cpu_start = time.process_time()
    ph = {k: 0.0 for k in ('load', 'corpus', 'forward_1', 'moments', 'cross', 'forward_2', 'rotate', 'cross_rotated', 'finish')}

    t = time.perf_counter()
    models = [Model(m) for m in a.models]
    ref, others = models[0], models[1:]
    if len({(m.L, m.d_mlp, m.n_pos) for m in models}) != 1:
        raise SystemExit('the models differ in shape')
    L, d = ref.L, ref.d_mlp
    ph['load'] = time.perf_counter() - t

    t = time.perf_counter()
    rows, digest = read_rows(a.corpus, ref.n_pos, a.tokens)
    ph['corpus'] = time.perf_counter() - t

    batches = [torch.from_numpy(rows[i:i + a.batch_rows]) for i in range(0, len(rows), a.batch_rows)]

    def kept_acts(model, ids, keep):
        """The forward; hook_pre as [L, T, d] and hook_post as [L, d, T] (the paper's layout), kept tokens only."""
        hooks = model.forward(ids)
        pre = torch.stack([p.reshape(-1, d)[keep] for p, _ in hooks])
        post = torch.stack([q.reshape(-1, d)[keep].T for _, q in hooks])
        return pre, post

    moments = [Moments(L, d) for _ in models]
    rots = [rotations(L, d, a.seed * 1000 + k) for k in range(len(others))]
    # Which other models share a pass: all of them (the paper's script), or one at a time
    # (--pairwise: one float64 S_xy held instead of four, 10.9 GB at GPT-2-small size; the
    # reference is forwarded again for each).
    groups = [[k] for k in range(len(others))] if a.pairwise else [list(range(len(others)))]
    per_model = [None] * len(others)
    kept = 0
    with torch.inference_mode():
        for gi, ks in enumerate(groups):
            # Pass 1: forwards, activation moments (each model once), cross moments.
            plain = {k: Pearson(L, d, L, d) for k in ks}
            fwd = [0] + [k + 1 for k in ks]
            for ids in batches:
                keep = ((ids != EOS) & (ids != NEWLINE)).reshape(-1)
                if gi == 0:
                    kept += int(keep.sum())
                t = time.perf_counter()
                acts = {j: kept_acts(models[j], ids, keep) for j in fwd}
                t1 = time.perf_counter()
                for j in fwd:
                    if gi == 0 or j != 0:
                        moments[j].update(acts[j][0])
                t2 = time.perf_counter()
                for k in ks:
                    plain[k].update(acts[0][1], acts[k + 1][1])
                t3 = time.perf_counter()
                ph['forward_1'] += t1 - t
                ph['moments'] += t2 - t1
                ph['cross'] += t3 - t2
            # ρ's max now, so that S_xy is freed before the rotated one is made.
            t = time.perf_counter()
            best = {k: plain.pop(k).max_corr() for k in ks}
            ph['finish'] += time.perf_counter() - t
            # Pass 2: the rotation baseline, a second run over the same tokens.
            rotated = {k: Pearson(L, d, L, d) for k in ks}
            for ids in batches:
                keep = ((ids != EOS) & (ids != NEWLINE)).reshape(-1)
                t = time.perf_counter()
                acts = {j: kept_acts(models[j], ids, keep)[1] for j in fwd}
                t1 = time.perf_counter()
                rot = {k: torch.stack([rots[k][l] @ acts[k + 1][l] for l in range(L)]) for k in ks}
                t2 = time.perf_counter()
                for k in ks:
                    rotated[k].update(acts[0], rot[k])
                t3 = time.perf_counter()
                ph['forward_2'] += t1 - t
                ph['rotate'] += t2 - t1
                ph['cross_rotated'] += t3 - t2
            del acts, rot
            t = time.perf_counter()
            for k in ks:
                mc, partner = best[k]
                bl, bpartner = rotated.pop(k).max_corr()
                per_model[k] = {'label': others[k].name, 'max_corr': mc.tolist(), 'partner': partner.tolist(),
                                'baseline': bl.tolist(), 'baseline_partner': bpartner.tolist()}
            ph['finish'] += time.perf_counter() - t

        t = time.perf_counter()
        mc = torch.tensor([p['max_corr'] for p in per_model], dtype=torch.float64)
        bl = torch.tensor([p['baseline'] for p in per_model], dtype=torch.float64)
        excess = mc.mean(0) - bl.mean(0)
        ref_moments = moments[0].result()
        for mo in moments[1:]:
            mo.result()  # computed for every model, as the engine does; only the reference's is written
        ph['finish'] += time.perf_counter() - t

    wall = time.perf_counter() - t_start
    stream = sum(ph[k] for k in ('forward_1', 'moments', 'cross', 'forward_2', 'rotate', 'cross_rotated'))
    used = int(rows.size)
    report = {
        'peer': 'torch', 'torch': torch.__version__, 'threads': a.threads, 'pairwise': a.pairwise,
        'models': [m.name for m in models], 'tokens': used, 'rows': int(len(rows)), 'kept': kept, 'hash': digest,
        'wall_s': wall, 'stream_s': stream, 'phases_s': ph,
        'kept_tokens_per_s': kept / stream if stream > 0 else None,
        'cpu_s': time.process_time() - cpu_start,
        'peak_rss_bytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        'universal': {str(th): int((excess > th).sum()) for th in (0.3, 0.4, 0.5)},
    }
    if a.out:
        with open(a.out, 'w') as f:
            json.dump({'reference': ref.name, 'n_layers': L, 'd_mlp': d, 'kept': kept, 'hash': digest, 'seed': a.seed,
                       'others': per_model, 'excess': excess.tolist(), 'moments': ref_moments}, f)
    print(json.dumps(report), flush=True)


if __name__ == '__main__':
    sys.exit(main())
