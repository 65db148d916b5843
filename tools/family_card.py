#!/usr/bin/env python3
"""Measure the shipped family for the model card: held-out loss on the fixed slice, the
unigram baseline, and per-layer activation diagnostics. Reads the exported checkpoints (the fp16
weights as shipped, upcast to fp32), not the training state, so the card describes what ships.

    /usr/bin/python3 tools/family_card.py            # writes models/family.json

The fixed held-out slice (the engine's test recomputes it): rows of models/corpus/heldout.tokens.bin
cut as in training (BOS + 127 tokens), every SLICE_STRIDE-th row starting at row 0; loss is the
mean next-token cross-entropy over all 127 predictions of each row.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_family as tf  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SLICE_STRIDE = 16
DROP = {tf.EOT, 198}  # docs/method-notes.md: statistics skip <|endoftext|> and "\n" (GPT-2 id 198)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        dt = {"F16": np.float16, "F32": np.float32}[info["dtype"]]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=dt).astype(np.float32).reshape(info["shape"]).copy())
    return out


def load_model(folder):
    cfg_json = json.load(open(os.path.join(folder, "config.json")))
    cfg = {k: cfg_json[k] for k in ("n_layer", "n_embd", "n_head", "n_inner", "n_positions", "vocab_size", "layer_norm_epsilon")}
    model = tf.GPT2(cfg)
    w = read_safetensors(os.path.join(folder, "model.safetensors"))
    sd = {"wte.weight": w["transformer.wte.weight"], "wpe.weight": w["transformer.wpe.weight"], "ln_f.weight": w["transformer.ln_f.weight"], "ln_f.bias": w["transformer.ln_f.bias"]}
    for i in range(cfg["n_layer"]):
        p, q = f"h.{i}.", f"transformer.h.{i}."
        for a in ("ln_1", "ln_2"):
            sd[p + a + ".weight"], sd[p + a + ".bias"] = w[q + a + ".weight"], w[q + a + ".bias"]
        for a, b in (("c_attn", "attn.c_attn"), ("c_proj", "attn.c_proj"), ("c_fc", "mlp.c_fc"), ("mlp_proj", "mlp.c_proj")):
            sd[p + a + ".weight"] = w[q + b + ".weight"].t().contiguous()
            sd[p + a + ".bias"] = w[q + b + ".bias"]
    model.load_state_dict(sd)
    return model.eval(), cfg


def slice_rows(ctx):
    toks = np.fromfile(os.path.join(ROOT, "models", "corpus", "heldout.tokens.bin"), dtype="<u2").astype(np.int64)
    return tf.rows_of(toks, ctx)[::SLICE_STRIDE]


@torch.no_grad()
def measure(folder, rows):
    model, cfg = load_model(folder)
    pres = [[] for _ in range(cfg["n_layer"])]
    posts = [[] for _ in range(cfg["n_layer"])]
    hooks = []
    for i, blk in enumerate(model.h):
        hooks.append(blk.c_fc.register_forward_hook(lambda m, inp, out, i=i: pres[i].append(out.reshape(-1, out.shape[-1]))))
    tot, n = 0.0, 0
    keep = []
    for i in range(0, len(rows), 32):
        ids = torch.from_numpy(rows[i : i + 32])
        x = model.hidden(ids)  # the whole row: activations at all 128 positions
        logits = x[:, :-1] @ model.wte.weight.t()
        tot += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum").item()
        n += ids[:, 1:].numel()
        keep.append(~np.isin(rows[i : i + 32].reshape(-1), list(DROP)))
    for h in hooks:
        h.remove()
    mask = torch.from_numpy(np.concatenate(keep))
    layers = []
    for l in range(cfg["n_layer"]):
        pre = torch.cat(pres[l])[mask].double()
        post = tf.gelu_new(pre)
        freq = (pre > 0).double().mean(0)
        c = post - post.mean(0)
        ev = torch.linalg.eigvalsh(c.t() @ c / len(c)).flip(0)
        layers.append({"layer": l, "median_activation_frequency": round(freq.median().item(), 4), "top5_pc_variance_share": round((ev[:5].sum() / ev.sum()).item(), 4)})
    return tot / n, n, int(mask.sum()), layers


def unigram_baseline(rows):
    """Cross-entropy of the held-out slice's targets under the training unigram distribution
    (add-one smoothing over the vocab): the best loss a model that ignores context can reach."""
    train = np.fromfile(os.path.join(ROOT, "tools", ".cache", "corpus", "train.tokens.bin"), dtype="<u2")
    counts = np.bincount(train, minlength=tf.VOCAB).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    tgt = rows[:, 1:].reshape(-1)
    return float(-logp[tgt].mean())


def main():
    torch.set_num_threads(2)
    rows = slice_rows(128)
    card = {"slice": {"file": "models/corpus/heldout.tokens.bin", "ctx": 128, "row": "BOS + 127 tokens", "stride": SLICE_STRIDE, "rows": int(len(rows))}, "unigram_baseline_nats": round(unigram_baseline(rows), 4), "seeds": {}}
    for s in "abcde":
        folder = os.path.join(ROOT, "models", f"tiny-gpt2-{s}")
        loss, n, n_stat, layers = measure(folder, rows)
        card["seeds"][s] = {"heldout_loss": round(loss, 4), "predictions": n, "statistics_tokens": n_stat, "layers": layers}
        print(s, round(loss, 4), layers, flush=True)
    with open(os.path.join(ROOT, "models", "family.json"), "w") as f:
        json.dump(card, f, indent=1)
    print(json.dumps({k: v for k, v in card.items() if k != "seeds"}))


if __name__ == "__main__":
    main()
