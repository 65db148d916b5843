#!/usr/bin/env python3
"""Train the shipped family of tiny GPT-2 models: one architecture, one corpus, five seeds.

Each seed sets both the initialisation and the data order, as in the Stanford CRFM seed models
the paper used. The model is exactly Hugging Face's GPT2LMHeadModel (pre-LN, learned positions,
tied embeddings, gelu_new, no dropout) so the export is a standard checkpoint.

    /usr/bin/python3 tools/train_family.py --seeds a,b,c,d,e --tokens 20000000
    (then)  /usr/bin/python3 tools/train_family.py --export-only ...

Training checkpoints of one seed, as hub cache revisions stepN (the workflow of
`universal-neurons development`). test/fixtures/checkpoints was made so on 1 loaded CPU thread
(a 2-layer, d_model 32 variant and a short schedule: about 1 s a step), from a corpus built by
`node tools/build_corpus.mjs --no-kjv --out /tmp/corpus` (then `git checkout models/corpus`:
that script also rewrites the shipped held-out files):
    /usr/bin/python3 tools/train_family.py --seeds a --threads 1 --layers 2 --d-model 32 --d-mlp 256 \
        --batch 8 --tokens 812800 --warmup 50 --compact-vocab --compact-min-count 20 \
        --save-steps 50,100,200,400 --hub-out test/fixtures/checkpoints --work /tmp/ckpt-work \
        --data /tmp/corpus --eval-rows 16 --eval-every 400 --ckpt-every 400 --no-export

Training checkpoints every --ckpt-every steps into --work and resumes from there, so a CPU run
can be stopped and continued across sessions. On CUDA it trains all seeds in parallel processes.

Context 128: the analysis streams per-token activations, so a longer context buys the
4-layer model little while doubling attention cost at analysis time; 128 also matches the
benchmark shape (4 x 128) and the trial recorded in the notes.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED_NUMBERS = {s: i + 1 for i, s in enumerate("abcdefghij")}
EOT = 50256
VOCAB = 50257


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Block(nn.Module):
    def __init__(self, d, h, d_mlp, eps):
        super().__init__()
        self.h = h
        self.ln_1 = nn.LayerNorm(d, eps=eps)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d, eps=eps)
        self.c_fc = nn.Linear(d, d_mlp)
        self.mlp_proj = nn.Linear(d_mlp, d)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(D, dim=2)
        q, k, v = (t.view(B, T, self.h, D // self.h).transpose(1, 2) for t in (q, k, v))
        if hasattr(F, "scaled_dot_product_attention"):
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            s = (q @ k.transpose(-2, -1)) / math.sqrt(D // self.h)
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            a = s.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        x = x + self.c_proj(a.transpose(1, 2).reshape(B, T, D))
        return x + self.mlp_proj(gelu_new(self.c_fc(self.ln_2(x))))


class GPT2(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["n_embd"]
        self.wte = nn.Embedding(cfg["vocab_size"], d)
        self.wpe = nn.Embedding(cfg["n_positions"], d)
        self.h = nn.ModuleList(Block(d, cfg["n_head"], cfg["n_inner"], cfg["layer_norm_epsilon"]) for _ in range(cfg["n_layer"]))
        self.ln_f = nn.LayerNorm(d, eps=cfg["layer_norm_epsilon"])
        # HF GPT-2 init: N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer).
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * cfg["n_layer"]) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def hidden(self, ids):
        T = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(T, device=ids.device))
        for blk in self.h:
            x = blk(x)
        return self.ln_f(x)

    def loss(self, ids, out_rows=None):
        """Next-token loss. out_rows (compact vocab): softmax over those ids only; targets outside
        it are skipped. Tied embeddings: the output matrix is wte (or its rows)."""
        x = self.hidden(ids[:, :-1])
        tgt = ids[:, 1:]
        if out_rows is None:
            logits = x @ self.wte.weight.t()
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tgt.reshape(-1))
        ids_c, remap = out_rows
        logits = x @ self.wte.weight[ids_c].t()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), remap[tgt].reshape(-1), ignore_index=-1)


def default_config(args):
    return {
        "n_layer": args.layers, "n_embd": args.d_model, "n_head": args.heads, "n_inner": args.d_mlp,
        "n_positions": args.ctx, "vocab_size": VOCAB, "layer_norm_epsilon": 1e-5,
    }


def load_tokens(path):
    return np.fromfile(path, dtype="<u2").astype(np.int64)


def rows_of(tokens, ctx, shift=0):
    """Rows as TransformerLens tokenize_and_concatenate makes them: BOS, then ctx-1 corpus tokens.
    Training shifts the cut points each epoch so a row boundary is not always the same token."""
    tokens = tokens[shift:]
    n = (len(tokens)) // (ctx - 1)
    body = tokens[: n * (ctx - 1)].reshape(n, ctx - 1)
    return np.concatenate([np.full((n, 1), EOT, dtype=np.int64), body], axis=1)


def lr_at(step, total, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    p = (step - args.warmup) / max(1, total - args.warmup)
    return args.lr * (args.final_lr_frac + (1 - args.final_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


@torch.no_grad()
def heldout_loss(model, rows, device, batch=64):
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(rows), batch):
        ids = torch.from_numpy(rows[i : i + batch]).to(device)
        x = model.hidden(ids[:, :-1])
        logits = (x @ model.wte.weight.t()).float()
        l = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum")
        tot += l.item()
        n += ids[:, 1:].numel()
    model.train()
    return tot / n


def train_seed(seed, args):
    dev = torch.device(args.device)
    if dev.type == "cpu":
        torch.set_num_threads(args.threads)
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    cfg = default_config(args)
    num = SEED_NUMBERS[seed]
    torch.manual_seed(1000 + num)
    model = GPT2(cfg).to(dev)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))

    train_tokens = load_tokens(os.path.join(args.data, "train.tokens.bin"))
    train = rows_of(train_tokens, args.ctx)
    held = rows_of(load_tokens(os.path.join(args.data, "heldout.tokens.bin")), args.ctx)[: args.eval_rows]
    tokens_per_step = args.batch * (args.ctx - 1)
    total = math.ceil(args.tokens / tokens_per_step)

    out_rows = None
    if args.compact_vocab:
        counts = np.bincount(load_tokens(os.path.join(args.data, "train.tokens.bin")), minlength=VOCAB)
        keep = np.nonzero(counts >= args.compact_min_count)[0]
        remap = np.full(VOCAB, -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        out_rows = (torch.from_numpy(keep).to(dev), torch.from_numpy(remap).to(dev))

    work = os.path.join(args.work, f"seed-{seed}")
    os.makedirs(work, exist_ok=True)
    ck = os.path.join(work, "ckpt.pt")
    step, log = 0, []
    rng = np.random.default_rng(num)  # data order: per-seed permutation of rows, per epoch
    perm, pos, shift = rng.permutation(len(train)), 0, 0
    if os.path.exists(ck):
        st = torch.load(ck, map_location=dev, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, log = st["step"], st["log"]
        rng.bit_generator.state = st["rng"]
        perm, pos, shift = st["perm"], st["pos"], st["shift"]
        train = rows_of(train_tokens, args.ctx, shift)
        print(f"[{seed}] resumed at step {step}/{total}", flush=True)

    def save():
        tmp = ck + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "log": log, "rng": rng.bit_generator.state, "perm": perm, "pos": pos, "shift": shift}, tmp)
        os.replace(tmp, ck)

    t0, step0 = time.time(), step
    while step < total:
        if pos + args.batch > len(perm):
            shift = int(rng.integers(args.ctx - 1))
            train = rows_of(train_tokens, args.ctx, shift)
            perm, pos = rng.permutation(len(train)), 0
        ids = torch.from_numpy(train[perm[pos : pos + args.batch]]).to(dev, non_blocking=True)
        pos += args.batch
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, args)
        loss = model.loss(ids, out_rows)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % args.log_every == 0 or step == total:
            el = time.time() - t0
            ev = heldout_loss(model, held, dev) if (step % args.eval_every == 0 or step == total) else None
            log.append({"step": step, "tokens": step * tokens_per_step, "train_loss": round(loss.item(), 4), "heldout_loss": None if ev is None else round(ev, 4), "elapsed_s": round(el, 1)})
            print(f"[{seed}] step {step}/{total} loss {loss.item():.3f}" + (f" heldout {ev:.3f}" if ev is not None else "") + f" {(step - step0) * tokens_per_step / max(el, 1e-9) / 1e3:.1f}k tok/s", flush=True)
        if args.hub_out and (step in args.save_steps or step == total):
            export_hub_revision(model, cfg, seed, step, total, args)
        if step % args.ckpt_every == 0 or step == total:
            save()
    meta = {"seed": seed, "steps": total, "tokens": total * tokens_per_step, "batch": args.batch, "wall_s_last_run": round(time.time() - t0, 1), "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu", "torch": torch.__version__, "log": log}
    with open(os.path.join(work, "train_meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


# ---------------------------------------------------------------- export to a Hugging Face folder

def write_safetensors(path, tensors, metadata):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dt = {np.dtype("float16"): "F16", np.dtype("float32"): "F32"}[a.dtype]
        b = a.tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def hf_state(model, dtype):
    """Our module names -> HF GPT2LMHeadModel names (Conv1D: weights stored [in, out])."""
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    out = {"transformer.wte.weight": sd["wte.weight"], "transformer.wpe.weight": sd["wpe.weight"], "transformer.ln_f.weight": sd["ln_f.weight"], "transformer.ln_f.bias": sd["ln_f.bias"]}
    for i in range(len(model.h)):
        p, q = f"h.{i}.", f"transformer.h.{i}."
        for a, b in (("ln_1", "ln_1"), ("ln_2", "ln_2")):
            out[q + b + ".weight"], out[q + b + ".bias"] = sd[p + a + ".weight"], sd[p + a + ".bias"]
        for a, b in (("c_attn", "attn.c_attn"), ("c_proj", "attn.c_proj"), ("c_fc", "mlp.c_fc"), ("mlp_proj", "mlp.c_proj")):
            out[q + b + ".weight"] = sd[p + a + ".weight"].t().contiguous()
            out[q + b + ".bias"] = sd[p + a + ".bias"]
    return {k: v.numpy().astype(dtype) for k, v in out.items()}


def write_folder_files(folder, cfg):
    """config.json and tokenizer.json beside the weights: what makes the folder a standard HF checkpoint."""
    hf_cfg = {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
        "n_layer": cfg["n_layer"], "n_embd": cfg["n_embd"], "n_head": cfg["n_head"], "n_inner": cfg["n_inner"],
        "n_positions": cfg["n_positions"], "n_ctx": cfg["n_positions"], "vocab_size": VOCAB,
        "layer_norm_epsilon": cfg["layer_norm_epsilon"], "bos_token_id": EOT, "eos_token_id": EOT,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False, "tie_word_embeddings": True,
        "initializer_range": 0.02, "torch_dtype": "float16",
    }
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(hf_cfg, f, indent=2)
    tok_src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "gpt2-tokenizer", "tokenizer.json")
    if os.path.exists(tok_src):
        with open(tok_src, "rb") as a, open(os.path.join(folder, "tokenizer.json"), "wb") as b:
            b.write(a.read())
    else:
        print(f"warning: {tok_src} missing; copy a GPT-2 tokenizer.json into {folder}", file=sys.stderr)


def export_hub_revision(model, cfg, seed, step, total, args):
    """Training step `step` as a revision of a Hugging Face hub cache entry, laid out as
    huggingface_hub lays out Pythia's `stepN` revisions: refs/step{N} holds a commit id,
    snapshots/<commit>/ links each file to blobs/<sha256> (a file shared by several steps, the
    tokenizer say, is stored once); the last step is also refs/main. The commit id is a sha1 of
    the snapshot's file hashes: this recipe has no git history to take one from."""
    import hashlib
    import shutil
    import tempfile
    repo = os.path.join(args.hub_out, f"models--{args.hub_org}--tiny-gpt2-{seed}")
    blobs = os.path.join(repo, "blobs")
    os.makedirs(blobs, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=repo)
    write_safetensors(os.path.join(tmp, "model.safetensors"), hf_state(model, np.float16), {"format": "pt", "seed": seed, "step": str(step)})
    write_folder_files(tmp, cfg)
    files = {}
    for name in sorted(os.listdir(tmp)):
        src = os.path.join(tmp, name)
        with open(src, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        dst = os.path.join(blobs, digest)
        if os.path.exists(dst):
            os.remove(src)
        else:
            os.replace(src, dst)
        files[name] = digest
    shutil.rmtree(tmp)
    commit = hashlib.sha1(json.dumps(files, sort_keys=True).encode()).hexdigest()
    snap = os.path.join(repo, "snapshots", commit)
    os.makedirs(snap, exist_ok=True)
    for name, digest in files.items():
        link = os.path.join(snap, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..", "..", "blobs", digest), link)
    os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
    for ref in [f"step{step}"] + (["main"] if step == total else []):
        with open(os.path.join(repo, "refs", ref), "w") as f:
            f.write(commit)
    print(f"[{seed}] step {step}: revision step{step} -> {snap}", flush=True)


def export_seed(seed, args):
    dev = torch.device("cpu")
    cfg = default_config(args)
    model = GPT2(cfg)
    st = torch.load(os.path.join(args.work, f"seed-{seed}", "ckpt.pt"), map_location=dev, weights_only=False)
    model.load_state_dict(st["model"])
    folder = os.path.join(args.out, f"tiny-gpt2-{seed}")
    os.makedirs(folder, exist_ok=True)
    tensors = hf_state(model, np.float16)
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors, {"format": "pt", "seed": seed})
    write_folder_files(folder, cfg)
    print(f"exported {folder}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="a,b,c,d,e")
    ap.add_argument("--data", default="tools/.cache/corpus")
    ap.add_argument("--work", default="tools/.cache/train")
    ap.add_argument("--out", default="models")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=20_000_000, help="training tokens per seed")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-model", dest="d_model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d-mlp", dest="d_mlp", type=int, default=512)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--final-lr-frac", dest="final_lr_frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--compact-vocab", dest="compact_vocab", action="store_true", help="softmax over tokens seen >= --compact-min-count times (about 2x faster on CPU)")
    ap.add_argument("--compact-min-count", dest="compact_min_count", type=int, default=5)
    ap.add_argument("--eval-rows", dest="eval_rows", type=int, default=512)
    ap.add_argument("--log-every", dest="log_every", type=int, default=100)
    ap.add_argument("--eval-every", dest="eval_every", type=int, default=500)
    ap.add_argument("--ckpt-every", dest="ckpt_every", type=int, default=500)
    ap.add_argument("--parallel", action="store_true", help="train seeds in parallel processes (GPU)")
    ap.add_argument("--save-steps", dest="save_steps", default="", help="with --hub-out: steps to keep as hub revisions stepN (the last step always, also as main)")
    ap.add_argument("--hub-out", dest="hub_out", default=None, help="write training checkpoints as a hub cache entry models--ORG--tiny-gpt2-SEED under this folder")
    ap.add_argument("--hub-org", dest="hub_org", default="local")
    ap.add_argument("--export-only", dest="export_only", action="store_true")
    ap.add_argument("--no-export", dest="no_export", action="store_true")
    args = ap.parse_args()
    args.save_steps = {int(x) for x in args.save_steps.split(",") if x}
    seeds = args.seeds.split(",")
    if not args.export_only:
        if args.parallel and len(seeds) > 1:
            import multiprocessing as mp
            ctx = mp.get_context("spawn")
            procs = [ctx.Process(target=train_seed, args=(s, args)) for s in seeds]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            if any(p.exitcode != 0 for p in procs):
                sys.exit("a seed failed")
        else:
            for s in seeds:
                train_seed(s, args)
    if not args.no_export:
        for s in seeds:
            export_seed(s, args)


if __name__ == "__main__":
    main()
