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

A tiny GPT-NeoX (--arch gpt_neox: GPTNeoXForCausalLM with Pythia's choices, parallel residual,
rotary on 25 % of each head, exact gelu, untied embed_out, its vocabulary padded to a multiple of
128) on the same corpus, tokenized with tools/torch_reference_neox.py's Pythia-like tokenizer
(Pythia's structure, GPT-2's first --neox-merges merges: 4,281 tokens at 4,000, padded to 4,352).
test/fixtures/neox-checkpoints (models--local--tiny-neox-a, steps 250, 500, 1000 and 2000 = main;
1.3 MB a step in fp16) was made so on 1 loaded CPU thread (~0.5 s a step):
    /usr/bin/python3 tools/train_family.py --arch gpt_neox --seeds a --threads 1 --layers 2 --d-model 64 \
        --heads 4 --d-mlp 256 --batch 8 --tokens 2032000 --warmup 100 --save-steps 250,500,1000 \
        --hub-out test/fixtures/neox-checkpoints --work /tmp/neox-work --data /tmp/corpus \
        --eval-rows 16 --eval-every 500 --ckpt-every 500 --no-export

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
NEOX_BOS = 0  # Pythia's <|endoftext|>: its BOS in TransformerLens and the document separator


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def init_weights(model, n_layer, residual_writers):
    """HF GPT-2's init: N(0, 0.02), the weights writing to the residual scaled by 1/sqrt(2 n_layer),
    zero biases (LayerNorm weights keep their ones)."""
    for name, p in model.named_parameters():
        if p.dim() == 2:
            std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(residual_writers) else 0.02
            nn.init.normal_(p, 0.0, std)
        elif name.endswith("bias"):
            nn.init.zeros_(p)


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
        init_weights(self, cfg["n_layer"], ("c_proj.weight", "mlp_proj.weight"))

    @property
    def out_weight(self):
        return self.wte.weight

    def hidden(self, ids):
        T = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(T, device=ids.device))
        for blk in self.h:
            x = blk(x)
        return self.ln_f(x)

    def loss(self, ids, out_rows=None):
        """Next-token loss. out_rows (compact vocab): softmax over those ids only; targets outside
        it are skipped. The output matrix is out_weight (GPT-2: the tied wte), or its rows."""
        x = self.hidden(ids[:, :-1])
        tgt = ids[:, 1:]
        if out_rows is None:
            logits = x @ self.out_weight.t()
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tgt.reshape(-1))
        ids_c, remap = out_rows
        logits = x @ self.out_weight[ids_c].t()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), remap[tgt].reshape(-1), ignore_index=-1)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


class NeoxLayer(nn.Module):
    """One GPTNeoXLayer, HF's module names (so the state dict is the checkpoint): the fused
    query_key_value with per-head [q | k | v], rotary on the first rotary_pct of each head,
    the parallel residual x + attn(ln1 x) + mlp(ln2 x), exact-erf gelu."""

    def __init__(self, cfg):
        super().__init__()
        d, self.h = cfg["hidden_size"], cfg["num_attention_heads"]
        self.dh = d // self.h
        self.rot = int(self.dh * cfg["rotary_pct"])
        eps = cfg["layer_norm_eps"]
        self.input_layernorm = nn.LayerNorm(d, eps=eps)
        self.post_attention_layernorm = nn.LayerNorm(d, eps=eps)
        self.attention = nn.Module()
        self.attention.query_key_value = nn.Linear(d, 3 * d)
        self.attention.dense = nn.Linear(d, d)
        self.mlp = nn.Module()
        self.mlp.dense_h_to_4h = nn.Linear(d, cfg["intermediate_size"])
        self.mlp.dense_4h_to_h = nn.Linear(cfg["intermediate_size"], d)

    def attn(self, x, cos, sin):
        B, T, D = x.shape
        qkv = self.attention.query_key_value(x).view(B, T, self.h, 3 * self.dh).transpose(1, 2)
        q, k, v = qkv.split(self.dh, dim=-1)
        r = self.rot
        q = torch.cat((q[..., :r] * cos + rotate_half(q[..., :r]) * sin, q[..., r:]), dim=-1)
        k = torch.cat((k[..., :r] * cos + rotate_half(k[..., :r]) * sin, k[..., r:]), dim=-1)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(self.dh)
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        a = s.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        return self.attention.dense(a.transpose(1, 2).reshape(B, T, D))

    def forward(self, x, cos, sin):
        a = self.attn(self.input_layernorm(x), cos, sin)
        return x + a + self.mlp.dense_4h_to_h(F.gelu(self.mlp.dense_h_to_4h(self.post_attention_layernorm(x))))


class Neox(nn.Module):
    """GPTNeoXForCausalLM (Pythia's choices: parallel residual, rotary 25 %, untied embed_out,
    attention biases), for the tiny NeoX whose training checkpoints the e2e and tests read."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg["hidden_size"]
        self.cfg = cfg
        self.gpt_neox = nn.Module()
        self.gpt_neox.embed_in = nn.Embedding(cfg["vocab_size"], d)
        self.gpt_neox.layers = nn.ModuleList(NeoxLayer(cfg) for _ in range(cfg["num_hidden_layers"]))
        self.gpt_neox.final_layer_norm = nn.LayerNorm(d, eps=cfg["layer_norm_eps"])
        self.embed_out = nn.Linear(d, cfg["vocab_size"], bias=False)
        init_weights(self, cfg["num_hidden_layers"], ("attention.dense.weight", "dense_4h_to_h.weight"))

    @property
    def out_weight(self):
        return self.embed_out.weight

    def hidden(self, ids):
        T = ids.shape[1]
        lay0 = self.gpt_neox.layers[0]
        r = lay0.rot
        inv_freq = 1.0 / (self.cfg["rotary_emb_base"] ** (torch.arange(0, r, 2, device=ids.device).float() / r))
        freqs = torch.outer(torch.arange(T, device=ids.device).float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        x = self.gpt_neox.embed_in(ids)
        for layer in self.gpt_neox.layers:
            x = layer(x, cos, sin)
        return self.gpt_neox.final_layer_norm(x)

    loss = GPT2.loss


def default_config(args):
    if args.arch == "gpt_neox":
        tj = neox_tokenizer(args.neox_merges)
        n_tok = max(max(tj["model"]["vocab"].values()), max(t["id"] for t in tj["added_tokens"])) + 1
        return {
            "num_hidden_layers": args.layers, "hidden_size": args.d_model, "num_attention_heads": args.heads,
            "intermediate_size": args.d_mlp, "max_position_embeddings": args.ctx,
            # Pythia pads its vocabulary to a multiple of 128 (50,277 -> 50,304); so do we.
            "vocab_size": -(-n_tok // 128) * 128, "rotary_pct": 0.25, "rotary_emb_base": 10000, "layer_norm_eps": 1e-5,
        }
    return {
        "n_layer": args.layers, "n_embd": args.d_model, "n_head": args.heads, "n_inner": args.d_mlp,
        "n_positions": args.ctx, "vocab_size": VOCAB, "layer_norm_epsilon": 1e-5,
    }


def load_tokens(path):
    return np.fromfile(path, dtype="<u2").astype(np.int64)


_NEOX_TOKENIZERS = {}


def neox_tokenizer(n_merges):
    """The Pythia-like tokenizer.json of tools/torch_reference_neox.py (Pythia's structure: NFC,
    <|endoftext|> id 0, <|padding|> id 1, the whitespace-run tokens) with GPT-2's first n_merges
    merges: Pythia's own cannot be downloaded here and is 2 MB a checkpoint."""
    if n_merges not in _NEOX_TOKENIZERS:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from torch_reference_neox import pythia_like_tokenizer
        _NEOX_TOKENIZERS[n_merges] = pythia_like_tokenizer(n_merges)
    return _NEOX_TOKENIZERS[n_merges]


def load_split(args, split):
    """A corpus split's token ids in the architecture's tokenizer. GPT-NeoX: the GPT-2 ids of
    build_corpus.mjs decoded back to text per document and encoded with the NeoX tokenizer
    (documents joined with its <|endoftext|>, id 0), cached beside the training state."""
    gpt2_ids = load_tokens(os.path.join(args.data, f"{split}.tokens.bin"))
    if args.arch != "gpt_neox":
        return gpt2_ids
    cache = os.path.join(args.work, f"neox-corpus-{args.neox_merges}", f"{split}.tokens.bin")
    if os.path.exists(cache):
        return load_tokens(cache)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_reference import TOKENIZER_JSON, _bytes_to_unicode, pretokenize
    from torch_reference_neox import NeoxTokenizer
    with open(TOKENIZER_JSON, encoding="utf-8") as f:
        gpt2_vocab = json.load(f)["model"]["vocab"]
    unbyte = {c: b for b, c in _bytes_to_unicode().items()}
    id_bytes = {i: bytes(unbyte[c] for c in tok) for tok, i in gpt2_vocab.items()}
    tok = NeoxTokenizer(neox_tokenizer(args.neox_merges))
    piece_cache = {}
    ordinary = tok._ordinary

    def encode_piece(text):  # whole documents repeat words: cache BPE per pre-token piece
        if text not in piece_cache:
            piece_cache[text] = ordinary(text)
        return piece_cache[text]

    tok._ordinary = lambda text: [i for piece in pretokenize(text) for i in encode_piece(piece)]
    out = []
    cuts = np.nonzero(gpt2_ids == EOT)[0].tolist() + [len(gpt2_ids)]
    start = 0
    for cut in cuts:
        doc = b"".join(id_bytes[int(i)] for i in gpt2_ids[start:cut]).decode("utf-8", errors="replace")
        if doc:
            out += tok.encode(doc) + [NEOX_BOS]
        start = cut + 1
    ids = np.array(out, dtype="<u2")
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    ids.tofile(cache + ".tmp")
    os.replace(cache + ".tmp", cache)
    print(f"{split}: {len(gpt2_ids)} GPT-2 tokens -> {len(ids)} NeoX tokens ({cache})", flush=True)
    return ids.astype(np.int64)


def rows_of(tokens, ctx, shift=0, bos=EOT):
    """Rows as TransformerLens tokenize_and_concatenate makes them: BOS, then ctx-1 corpus tokens.
    Training shifts the cut points each epoch so a row boundary is not always the same token."""
    tokens = tokens[shift:]
    n = (len(tokens)) // (ctx - 1)
    body = tokens[: n * (ctx - 1)].reshape(n, ctx - 1)
    return np.concatenate([np.full((n, 1), bos, dtype=np.int64), body], axis=1)


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
        logits = (x @ model.out_weight.t()).float()
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
    model = (Neox if args.arch == "gpt_neox" else GPT2)(cfg).to(dev)
    bos = NEOX_BOS if args.arch == "gpt_neox" else EOT
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))

    train_tokens = load_split(args, "train")
    train = rows_of(train_tokens, args.ctx, bos=bos)
    held = rows_of(load_split(args, "heldout"), args.ctx, bos=bos)[: args.eval_rows]
    tokens_per_step = args.batch * (args.ctx - 1)
    total = math.ceil(args.tokens / tokens_per_step)

    out_rows = None
    if args.compact_vocab:
        V = model.out_weight.shape[0]
        counts = np.bincount(train_tokens, minlength=V)
        keep = np.nonzero(counts >= args.compact_min_count)[0]
        remap = np.full(V, -1, dtype=np.int64)
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
        train = rows_of(train_tokens, args.ctx, shift, bos)
        print(f"[{seed}] resumed at step {step}/{total}", flush=True)

    def save():
        tmp = ck + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "log": log, "rng": rng.bit_generator.state, "perm": perm, "pos": pos, "shift": shift}, tmp)
        os.replace(tmp, ck)

    t0, step0 = time.time(), step
    while step < total:
        if pos + args.batch > len(perm):
            shift = int(rng.integers(args.ctx - 1))
            train = rows_of(train_tokens, args.ctx, shift, bos)
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
    """Our module names -> HF GPT2LMHeadModel names (Conv1D: weights stored [in, out]). Neox's
    module names and nn.Linear's [out, in] already are GPTNeoXForCausalLM's."""
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    if isinstance(model, Neox):
        return {k: v.numpy().astype(dtype) for k, v in sd.items()}
    out = {"transformer.wte.weight": sd["wte.weight"], "transformer.wpe.weight": sd["wpe.weight"], "transformer.ln_f.weight": sd["ln_f.weight"], "transformer.ln_f.bias": sd["ln_f.bias"]}
    for i in range(len(model.h)):
        p, q = f"h.{i}.", f"transformer.h.{i}."
        for a, b in (("ln_1", "ln_1"), ("ln_2", "ln_2")):
            out[q + b + ".weight"], out[q + b + ".bias"] = sd[p + a + ".weight"], sd[p + a + ".bias"]
        for a, b in (("c_attn", "attn.c_attn"), ("c_proj", "attn.c_proj"), ("c_fc", "mlp.c_fc"), ("mlp_proj", "mlp.c_proj")):
            out[q + b + ".weight"] = sd[p + a + ".weight"].t().contiguous()
            out[q + b + ".bias"] = sd[p + a + ".bias"]
    return {k: v.numpy().astype(dtype) for k, v in out.items()}


def model_name(seed, args):
    return f"tiny-{'neox' if args.arch == 'gpt_neox' else 'gpt2'}-{seed}"


def write_folder_files(folder, cfg, args):
    """config.json and tokenizer.json beside the weights: what makes the folder a standard HF checkpoint."""
    if args.arch == "gpt_neox":
        hf_cfg = {
            "model_type": "gpt_neox", "architectures": ["GPTNeoXForCausalLM"], **cfg, "hidden_act": "gelu",
            "use_parallel_residual": True, "attention_bias": True, "tie_word_embeddings": False,
            "bos_token_id": NEOX_BOS, "eos_token_id": NEOX_BOS, "initializer_range": 0.02, "use_cache": True,
            "attention_dropout": 0.0, "hidden_dropout": 0.0, "torch_dtype": "float16",
        }
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(hf_cfg, f, indent=2)
        with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(neox_tokenizer(args.neox_merges), f, ensure_ascii=False)
        return
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
    repo = os.path.join(args.hub_out, f"models--{args.hub_org}--{model_name(seed, args)}")
    blobs = os.path.join(repo, "blobs")
    os.makedirs(blobs, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=repo)
    write_safetensors(os.path.join(tmp, "model.safetensors"), hf_state(model, np.float16), {"format": "pt", "seed": seed, "step": str(step)})
    write_folder_files(tmp, cfg, args)
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
    model = (Neox if args.arch == "gpt_neox" else GPT2)(cfg)
    st = torch.load(os.path.join(args.work, f"seed-{seed}", "ckpt.pt"), map_location=dev, weights_only=False)
    model.load_state_dict(st["model"])
    folder = os.path.join(args.out, model_name(seed, args))
    os.makedirs(folder, exist_ok=True)
    tensors = hf_state(model, np.float16)
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors, {"format": "pt", "seed": seed})
    write_folder_files(folder, cfg, args)
    print(f"exported {folder}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="a,b,c,d,e")
    ap.add_argument("--arch", choices=("gpt2", "gpt_neox"), default="gpt2", help="gpt_neox: a Pythia-shaped model (tiny-neox-SEED) with the Pythia-like tokenizer")
    ap.add_argument("--neox-merges", dest="neox_merges", type=int, default=4000, help="gpt_neox: GPT-2 merges in its tokenizer")
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
