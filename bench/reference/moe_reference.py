#!/usr/bin/python3
"""PyTorch reference of the MoEForge model, for side-by-side benchmarks.

A plain-PyTorch (no transformers) decoder-only MoE language model built from a MoEForge YAML
config (configs/*.yaml, defaults as in config/run_config.h, `--set a.b=v` overrides), trained with
AdamW on random byte windows of a text corpus. It prints one JSON line with throughput and losses.

    python3 bench/reference/moe_reference.py --config configs/quickstart.yaml \
        --threads 2 --warmup 3 --steps 20 [--data FILE] [--profile]

Model (Llama/Mixtral family, fp32 throughout):
  embedding [V, D]; n_layers x { h = x + Attn(RMSNorm(x)); out = h + FFN(RMSNorm(h)) };
  final RMSNorm; LM head (tied to the embedding when model.tie_embeddings); cross-entropy.
  Attention: GQA, optional qkv bias and per-head QK RMSNorm (before RoPE), RoPE in the Hugging Face
  rotate-half convention, causal softmax with scale 1/sqrt(head_dim).
  FFN: layer i is MoE when i >= moe.first_k_dense and i % moe.moe_layer_freq == 0, else a dense
  SwiGLU MLP. MoE: fp32 router D->E without bias, softmax or sigmoid scores, top-k, gates
  renormalized (moe.renormalize) and scaled (moe.routed_scaling); dropless dispatch: the
  assignments sorted by expert (index_select), the routed experts' weights stacked [E, out, in]
  and run as a loop of GEMMs (or one torch._grouped_mm per projection, see MoE), combined with
  index_add_; optional shared experts added without gate.
  Loss: CE + sum over MoE layers of (aux_loss_coeff * L_aux + z_loss_coeff * L_z), with
  L_aux = E / (k T^2) * sum_i (sum_t p_i(t)) * count_i (Megatron, micro-batch) and
  L_z = mean_t logsumexp(router logits(t))^2.

Data: the tokens of the first dataset of data.train (or --data PREFIX), a Megatron-style indexed
dataset (PREFIX.idx / PREFIX.bin, docs/data.md) as launch/prepare_corpora.sh writes them; random
windows of seq_len + 1 tokens of its concatenated documents. (MoEForge packs shuffled documents;
for a throughput benchmark the difference does not matter.)
"""

import argparse
import contextlib
import copy
import json
import math
import os
import resource
import sys
import time

try:
    import torch
except ImportError:  # Debian's python3-torch lives in /usr/bin/python3's dist-packages only.
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and \
            os.path.exists("/usr/bin/python3") and not os.environ.get("MOE_REF_REEXEC"):
        os.environ["MOE_REF_REEXEC"] = "1"
        print(f"note: no torch in {sys.executable}; re-running with /usr/bin/python3",
              file=sys.stderr)
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit("error: PyTorch not found; apt-get install -y --no-install-recommends "
             "python3-torch python3-yaml (then run with /usr/bin/python3)")
import torch.nn as nn
import torch.nn.functional as F
import yaml

# ----------------------------------------------------------------------------------------------
# Config: the same keys and defaults as config/run_config.h.

DEFAULTS = {
    "model": {
        "vocab_size": 257, "d_model": 128, "n_layers": 4, "n_heads": 4, "n_kv_heads": 4,
        "head_dim": 0, "ffn_hidden": 512, "rope_theta": 10000.0, "norm_eps": 1e-5,
        "qk_norm": False, "qkv_bias": False, "tie_embeddings": True, "max_seq_len": 256,
        "init_std": 0.02,
    },
    "moe": {
        "num_experts": 8, "top_k": 2, "expert_hidden": 256, "shared_experts": 0,
        "shared_expert_hidden": 0, "first_k_dense": 0, "moe_layer_freq": 1,
        "router_score": "softmax", "renormalize": True, "routed_scaling": 1.0,
        "capacity_factor": 0.0, "drop_policy": "probs", "aux_loss_coeff": 0.01,
        "aux_loss_type": "micro_batch", "aux_loss_norm": "megatron", "z_loss_coeff": 0.001,
        "expert_bias": False, "expert_bias_rate": 0.001,
    },
    "parallel": {"tp": 1, "dp": 0, "ep": 1, "expert_tp": False, "fssdp": False},
    "data": {"train": "", "valid": "", "tokenizer": "byte", "seq_len": 128, "val_fraction": 0.01,
             "seed": 1234},
    "train": {
        "device": "cpu", "steps": 200, "micro_batch_size": 8, "grad_accum": 1, "lr": 3e-3,
        "min_lr": 3e-4, "warmup_steps": 20, "schedule": "cosine", "decay_fraction": 0.2,
        "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "grad_clip": 1.0,
        "seed": 42, "eval_interval": 50, "eval_batches": 4, "recompute": False,
        "no_decay_embeddings": True,
    },
    "checkpoint": {"dir": "", "interval": 0, "keep_last": 3, "resume_from": ""},
    "log": {"interval": 10, "metrics_file": "", "level": "info"},
    "init": {"from": "", "method": "scratch", "drop_ratio": 0.5, "noise_std": 0.0, "seed": 0},
}


class Cfg:
    """Attribute access to one section: cfg.model.d_model."""

    def __init__(self, d):
        self.__dict__.update({k: Cfg(v) if isinstance(v, dict) else v for k, v in d.items()})


def _merge(into, tree, where, prefix=""):
    if not isinstance(tree, dict):
        raise SystemExit(f"error: {where}: '{prefix or '<root>'}' must be a mapping")
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if key not in into:
            raise SystemExit(f"error: unknown key '{path}' in {where}")
        if isinstance(into[key], dict):
            _merge(into[key], value, where, path + ".")
        else:
            default = into[key]
            if value is None:
                value = "" if isinstance(default, str) else default
            if isinstance(default, bool) and not isinstance(value, bool):
                raise SystemExit(f"error: '{path}' in {where} must be true or false")
            if isinstance(default, int) and not isinstance(default, bool):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                if not isinstance(value, int) or isinstance(value, bool):
                    raise SystemExit(f"error: '{path}' in {where} must be an integer, got {value!r}")
            if isinstance(default, float):
                if isinstance(value, str):  # PyYAML reads 3e-3 (no dot) as a string
                    try:
                        value = float(value)
                    except ValueError:
                        pass
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise SystemExit(f"error: '{path}' in {where} must be a number, got {value!r}")
                value = float(value)
            if isinstance(default, str):
                value = str(value)
            into[key] = value


def load_config(path, overrides):
    """Reads YAML `path` over DEFAULTS, then applies each "a.b=value" (value read as YAML)."""
    tree = {}
    if path:
        with open(path) as f:
            tree = yaml.safe_load(f) or {}
    for ov in overrides:  # edit the parsed tree, as the C++ loader does
        if "=" not in ov:
            raise SystemExit(f"error: --set {ov}: expected key.path=value")
        key, text = ov.split("=", 1)
        parts = key.split(".")
        if any(not p for p in parts):
            raise SystemExit(f"error: --set {ov}: empty key part")
        value = yaml.safe_load(text) if text.strip() else ""
        known = DEFAULTS
        for i, p in enumerate(parts):
            if not isinstance(known, dict) or p not in known:
                raise SystemExit(f"error: unknown key '{'.'.join(parts[:i + 1])}' in --set {ov}")
            known = known[p]
        _merge(copy.deepcopy(known), value, f"--set {ov}", key + ".") if isinstance(known, dict) \
            else _merge({parts[-1]: known}, {parts[-1]: value}, f"--set {ov}", key[:-len(parts[-1])])
        node = tree
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = value
    cfg = copy.deepcopy(DEFAULTS)
    _merge(cfg, tree, path or "--set")
    c = Cfg(cfg)
    m, e = c.model, c.moe
    checks = [
        (m.n_heads % m.n_kv_heads == 0, "model.n_kv_heads must divide model.n_heads"),
        (1 <= e.top_k <= e.num_experts, "moe.top_k must be in [1, moe.num_experts]"),
        (c.data.seq_len <= m.max_seq_len, "data.seq_len must be <= model.max_seq_len"),
        (e.router_score in ("softmax", "sigmoid"), "moe.router_score: softmax or sigmoid"),
        (m.head_dim > 0 or m.d_model % m.n_heads == 0, "d_model must divide by n_heads"),
        (head_dim(m) % 2 == 0, "head_dim must be even (RoPE)"),
    ]
    for ok, msg in checks:
        if not ok:
            raise SystemExit(f"error: invalid config: {msg}")
    # What this reference does not model: refuse rather than benchmark a different model.
    unsupported = [
        (e.capacity_factor == 0.0, "moe.capacity_factor > 0 (this reference is dropless)"),
        (e.aux_loss_type == "micro_batch", f"moe.aux_loss_type={e.aux_loss_type}"),
        (e.aux_loss_norm == "megatron", f"moe.aux_loss_norm={e.aux_loss_norm}"),
        (not e.expert_bias, "moe.expert_bias"),
        (c.init.method == "scratch", f"init.method={c.init.method}"),
    ]
    for ok, what in unsupported:
        if not ok:
            raise SystemExit(f"error: not supported by the PyTorch reference: {what}")
    return c


def head_dim(m):
    return m.head_dim if m.head_dim > 0 else m.d_model // m.n_heads


def learning_rate(t, step):
    """trainer/lr_schedule.cpp, step counted from 0."""
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps

    def progress(start, end):
        return 1.0 if end <= start else min(max((step - start) / (end - start), 0.0), 1.0)

    if t.schedule == "constant":
        return t.lr
    if t.schedule == "cosine":
        p = progress(t.warmup_steps, t.steps)
        return t.min_lr + (t.lr - t.min_lr) * 0.5 * (1.0 + math.cos(math.pi * p))
    if t.schedule == "linear":
        return t.lr + (t.min_lr - t.lr) * progress(t.warmup_steps, t.steps)
    if t.schedule == "wsd":
        if t.decay_fraction <= 0.0:
            return t.lr
        stable_until = max(t.warmup_steps, t.steps - t.decay_fraction * t.steps)
        return t.lr + (t.min_lr - t.lr) * progress(stable_until, t.steps)
    raise SystemExit(f"error: unknown train.schedule '{t.schedule}'")


# ----------------------------------------------------------------------------------------------
# Model.

PROFILE = False  # set by --profile: label forward regions for torch.profiler


def scope(name):
    return torch.autograd.profiler.record_function(name) if PROFILE else contextlib.nullcontext()


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Rope(nn.Module):
    """Hugging Face convention: frequencies repeated over both halves, rotate_half."""

    def __init__(self, hd, max_len, theta):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        freqs = torch.outer(torch.arange(max_len, dtype=torch.float64), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos", emb.cos().float(), persistent=False)
        self.register_buffer("sin", emb.sin().float(), persistent=False)

    def forward(self, x):  # x [B, H, S, hd]
        s = x.shape[-2]
        cos, sin = self.cos[:s].to(x.dtype), self.sin[:s].to(x.dtype)  # bf16 stays bf16
        return x * cos + rotate_half(x) * sin


_HAS_SDPA = hasattr(F, "scaled_dot_product_attention")  # torch >= 2.0


def causal_attention(q, k, v):
    """softmax(q k^T / sqrt(hd) + causal mask) v for q, k, v [B, H, S, hd]."""
    if _HAS_SDPA:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    # torch < 2.0 (Debian 12 ships 1.13): the same computation as SDPA's math path.
    s = q.shape[-2]
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    mask = torch.ones(s, s, dtype=torch.bool, device=q.device).triu_(1)
    scores = scores.masked_fill(mask, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


class Attention(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.hq, self.hkv, self.hd = m.n_heads, m.n_kv_heads, head_dim(m)
        self.wq = nn.Linear(m.d_model, self.hq * self.hd, bias=m.qkv_bias)
        self.wk = nn.Linear(m.d_model, self.hkv * self.hd, bias=m.qkv_bias)
        self.wv = nn.Linear(m.d_model, self.hkv * self.hd, bias=m.qkv_bias)
        self.wo = nn.Linear(self.hq * self.hd, m.d_model, bias=False)
        self.q_norm = RMSNorm(self.hd, m.norm_eps) if m.qk_norm else None
        self.k_norm = RMSNorm(self.hd, m.norm_eps) if m.qk_norm else None

    def forward(self, x, rope):
        b, s, _ = x.shape
        q = self.wq(x).view(b, s, self.hq, self.hd)
        k = self.wk(x).view(b, s, self.hkv, self.hd)
        v = self.wv(x).view(b, s, self.hkv, self.hd)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = rope(q), rope(k)
        if self.hkv != self.hq:
            rep = self.hq // self.hkv
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        with scope("attn.core"):
            o = causal_attention(q, k, v)
        return self.wo(o.transpose(1, 2).reshape(b, s, self.hq * self.hd))


class SwiGLU(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.gate = nn.Linear(d, hidden, bias=False)
        self.up = nn.Linear(d, hidden, bias=False)
        self.down = nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


HAS_GROUPED_MM = hasattr(torch, "_grouped_mm")  # torch >= 2.8


class MoE(nn.Module):
    """Routed experts are stacked weights [E, out, in] (nn.Linear's layout per expert), so that
    one grouped GEMM can run them all; `grouped` picks torch._grouped_mm over a loop of GEMMs."""

    def __init__(self, m, e, grouped=False):
        super().__init__()
        self.e = e
        self.grouped = grouped
        self.router = nn.Linear(m.d_model, e.num_experts, bias=False)
        n, d, h = e.num_experts, m.d_model, e.expert_hidden
        self.w_gate = nn.Parameter(torch.empty(n, h, d))
        self.w_up = nn.Parameter(torch.empty(n, h, d))
        self.w_down = nn.Parameter(torch.empty(n, d, h))
        hs = e.shared_expert_hidden if e.shared_expert_hidden > 0 else e.expert_hidden
        self.shared = nn.ModuleList(SwiGLU(m.d_model, hs) for _ in range(e.shared_experts))

    def experts_loop(self, xs, counts):
        """xs [A, D]: the assignments' rows grouped by expert, counts[i] rows for expert i."""
        parts = []
        for wg, wu, wd, rows in zip(self.w_gate.unbind(0), self.w_up.unbind(0),
                                    self.w_down.unbind(0), xs.split(counts.tolist())):
            if rows.shape[0]:
                parts.append(F.linear(F.silu(F.linear(rows, wg)) * F.linear(rows, wu), wd))
        return torch.cat(parts)

    def experts_grouped(self, xs, counts):
        """The same as experts_loop in three grouped GEMMs, with no host synchronisation."""
        dev = xs.device.type
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else xs.dtype
        offs = torch.cumsum(counts, 0).to(torch.int32)
        xs = xs.to(dtype)

        def gmm(a, w):  # a [A, in] x w [E, out, in] -> [A, out], group i over rows of expert i
            return torch._grouped_mm(a, w.to(dtype).transpose(-2, -1), offs=offs)

        return gmm(F.silu(gmm(xs, self.w_gate)) * gmm(xs, self.w_up), self.w_down)

    def forward(self, x):
        """Returns (output, L_aux, L_z); x [B, S, D]."""
        e = self.e
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        t, n_exp, k = x.shape[0], e.num_experts, e.top_k
        with scope("moe.router"):
            with torch.autocast(device_type=x.device.type, enabled=False):  # router in fp32
                logits = F.linear(x.float(), self.router.weight.float())
            if e.router_score == "softmax":
                scores = torch.softmax(logits, dim=-1)
            else:
                scores = torch.sigmoid(logits)
            top_scores, top_idx = torch.topk(scores, k, dim=-1)  # [T, k]
            gates = top_scores
            if e.renormalize:
                gates = gates / gates.sum(-1, keepdim=True)
            gates = (gates * e.routed_scaling).to(x.dtype)

            flat_idx = top_idx.reshape(-1)  # assignment a = t * k + j
            counts = torch.bincount(flat_idx, minlength=n_exp)
            aux = x.new_zeros(())
            if e.aux_loss_coeff > 0:
                # p: the softmax scores (sigmoid scores normalized per token, as Megatron does)
                p = scores if e.router_score == "softmax" else \
                    scores / (scores.sum(-1, keepdim=True) + 1e-20)
                aux = (p.sum(0) * counts.to(p.dtype)).sum() * (n_exp / (k * t * t))
            zl = x.new_zeros(())
            if e.z_loss_coeff > 0:
                zl = torch.logsumexp(logits, dim=-1).pow(2).mean()

        with scope("moe.experts"):
            order = torch.argsort(flat_idx)  # assignments grouped by expert
            token_of = order // k
            gate_sorted = gates.reshape(-1).index_select(0, order).unsqueeze(1)
            run = self.experts_grouped if self.grouped else self.experts_loop
            y = run(x.index_select(0, token_of), counts) * gate_sorted
            out = torch.zeros_like(x).index_add_(0, token_of, y.to(x.dtype))
        if len(self.shared):
            with scope("moe.shared"):
                for s in self.shared:
                    out = out + s(x)
        return out.reshape(shape), aux, zl


class Block(nn.Module):
    def __init__(self, m, e, layer, grouped):
        super().__init__()
        self.attn_norm = RMSNorm(m.d_model, m.norm_eps)
        self.attn = Attention(m)
        self.ffn_norm = RMSNorm(m.d_model, m.norm_eps)
        self.is_moe = layer >= e.first_k_dense and layer % e.moe_layer_freq == 0
        self.ffn = MoE(m, e, grouped) if self.is_moe else SwiGLU(m.d_model, m.ffn_hidden)

    def forward(self, x, rope):
        with scope("attn"):
            h = x + self.attn(self.attn_norm(x), rope)
        if self.is_moe:
            with scope("moe"):
                y, aux, zl = self.ffn(self.ffn_norm(h))
        else:
            with scope("dense_ffn"):
                y = self.ffn(self.ffn_norm(h))
            aux = zl = None
        return h + y, aux, zl


class MoELM(nn.Module):
    def __init__(self, cfg, grouped_experts=False):
        super().__init__()
        m, e = cfg.model, cfg.moe
        self.cfg = cfg
        self.embed = nn.Embedding(m.vocab_size, m.d_model)
        self.rope = Rope(head_dim(m), m.max_seq_len, m.rope_theta)
        self.blocks = nn.ModuleList(Block(m, e, i, grouped_experts) for i in range(m.n_layers))
        self.norm = RMSNorm(m.d_model, m.norm_eps)
        self.lm_head = None if m.tie_embeddings else nn.Linear(m.d_model, m.vocab_size, bias=False)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() >= 2:
                nn.init.normal_(p, 0.0, m.init_std)
            # 1-D weights are norms: ones

    def forward(self, idx, targets):
        """Returns (total loss, CE, summed L_aux, summed L_z)."""
        e = self.cfg.moe
        x = self.embed(idx)
        aux_sum = x.new_zeros(())
        z_sum = x.new_zeros(())
        for blk in self.blocks:
            x, aux, zl = blk(x, self.rope)
            if aux is not None:
                aux_sum = aux_sum + aux
                z_sum = z_sum + zl
        with scope("head+ce"):
            x = self.norm(x)
            w = self.embed.weight if self.lm_head is None else self.lm_head.weight
            logits = F.linear(x, w)
            ce = F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.reshape(-1))
        total = ce + e.aux_loss_coeff * aux_sum + e.z_loss_coeff * z_sum
        return total, ce, aux_sum, z_sum

    def param_counts(self):
        total = sum(p.numel() for p in self.parameters())
        e = self.cfg.moe
        inactive = 0
        for blk in self.blocks:
            if blk.is_moe:
                per_expert = sum(w[0].numel() for w in (blk.ffn.w_gate, blk.ffn.w_up,
                                                        blk.ffn.w_down))
                inactive += (e.num_experts - e.top_k) * per_expert
        return total, total - inactive

    def flops_per_token(self, seq_len):
        """Training FLOPs per token as MoEForge counts them (Model::flops_per_token): 6 per
        active weight used in a matmul (the embedding lookup is none unless the head is tied to
        it) plus 6 L H hd S for causal attention's two matmuls at sequence length S."""
        m = self.cfg.model
        _, active = self.param_counts()
        matmul_weights = active - (self.embed.weight.numel() if self.lm_head is not None else 0)
        return 6.0 * matmul_weights + 6.0 * m.n_layers * m.n_heads * head_dim(m) * seq_len


# ----------------------------------------------------------------------------------------------
# Data: random windows of the corpus bytes.

def read_indexed_tokens(prefix):
    """All tokens of PREFIX.bin, in the dtype PREFIX.idx names (Megatron's layout)."""
    import numpy as np
    dtypes = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64,
              7: np.float32, 8: np.uint16}
    if not os.path.exists(prefix + ".idx") or not os.path.exists(prefix + ".bin"):
        raise SystemExit(f"error: dataset '{prefix}' (.idx/.bin) not found; pass --data PREFIX, "
                         "or run launch/prepare_corpora.sh")
    with open(prefix + ".idx", "rb") as f:
        header = f.read(9 + 8 + 1)
    if header[:9] != b"MMIDIDX\x00\x00":
        raise SystemExit(f"error: {prefix}.idx is not an indexed dataset index")
    return np.fromfile(prefix + ".bin", dtype=dtypes[header[17]]).astype(np.int64)


class Batches:
    def __init__(self, prefix, cfg):
        self.data = torch.from_numpy(read_indexed_tokens(prefix))
        self.b, self.s = cfg.train.micro_batch_size, cfg.data.seq_len
        if len(self.data) <= self.s + 1:
            raise SystemExit(f"error: dataset {prefix} shorter than seq_len + 1")
        self.gen = torch.Generator().manual_seed(cfg.data.seed)

    def next(self):
        starts = torch.randint(0, len(self.data) - self.s - 1, (self.b,), generator=self.gen)
        w = torch.stack([self.data[i:i + self.s + 1] for i in starts.tolist()])
        return w[:, :-1].contiguous(), w[:, 1:].contiguous()


# ----------------------------------------------------------------------------------------------
# Training.

def make_optimizer(model, t, **adamw_options):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        # matrices decay; norms and biases never; the embedding (and so a tied head) not when
        # train.no_decay_embeddings
        if p.dim() < 2 or (t.no_decay_embeddings and name.startswith("embed.")):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": t.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2), eps=t.eps,
                             **adamw_options)


def train_step(model, opt, batches, cfg, lr, timers=None, amp=contextlib.nullcontext):
    """One optimizer step over train.grad_accum micro-batches; the forward runs under amp()
    (autocast in the GPU reference). Returns the mean CE, L_aux and L_z as floats, read back once
    per step."""
    t = cfg.train
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    sums = 0.0
    for _ in range(t.grad_accum):
        x, y = batches.next()
        t0 = time.perf_counter()
        with amp():
            loss, ce, aux, zl = model(x, y)
        t1 = time.perf_counter()
        (loss / t.grad_accum).backward()
        t2 = time.perf_counter()
        sums = sums + torch.stack([ce, aux, zl]).detach().float()
        if timers is not None:
            timers["forward"] += t1 - t0
            timers["backward"] += t2 - t1
    t0 = time.perf_counter()
    if t.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
    t1 = time.perf_counter()
    opt.step()
    t2 = time.perf_counter()
    if timers is not None:
        timers["grad_clip"] += t1 - t0
        timers["optimizer"] += t2 - t1
    return [v / t.grad_accum for v in sums.tolist()]


def selftest(cfg):
    """Dropless dispatch against a dense all-experts computation; grouped experts against the
    loop (values and gradients) when torch has grouped GEMMs; causal attention fallback against
    SDPA when both exist; the loss gradient flows into every parameter."""
    torch.manual_seed(0)
    model = MoELM(cfg)
    moe = next(b.ffn for b in model.blocks if b.is_moe)
    x = torch.randn(3, 17, cfg.model.d_model)
    out, _, _ = moe(x)
    xf = x.reshape(-1, x.shape[-1])
    scores = F.linear(xf, moe.router.weight)
    scores = scores.softmax(-1) if cfg.moe.router_score == "softmax" else scores.sigmoid()
    top, idx = scores.topk(cfg.moe.top_k, -1)
    g = top / top.sum(-1, keepdim=True) if cfg.moe.renormalize else top
    g = g * cfg.moe.routed_scaling
    dense = torch.zeros_like(xf)
    for i in range(cfg.moe.num_experts):
        w = (g * (idx == i)).sum(-1, keepdim=True)
        h = F.silu(F.linear(xf, moe.w_gate[i])) * F.linear(xf, moe.w_up[i])
        dense += w * F.linear(h, moe.w_down[i])
    for s in moe.shared:
        dense += s(xf)
    err = (out.reshape(-1, xf.shape[-1]) - dense).abs().max().item()
    assert err < 1e-5, f"MoE dispatch mismatch {err}"
    if HAS_GROUPED_MM:
        up = torch.randn_like(x)
        weights = (moe.w_gate, moe.w_up, moe.w_down)
        results = []
        for grouped in (False, True):
            moe.grouped = grouped
            y, _, _ = moe(x)
            results.append((y,) + torch.autograd.grad((y * up).sum(), weights))
        moe.grouped = False
        for a, b in zip(*results):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), \
                f"grouped experts differ from the loop by {(a - b).abs().max().item()}"
    if _HAS_SDPA:
        q, k, v = torch.randn(3, 2, 4, 9, 8).unbind(0)
        s = q.shape[-2]
        sc = (q @ k.transpose(-2, -1)) / math.sqrt(8)
        sc = sc.masked_fill(torch.ones(s, s, dtype=torch.bool).triu(1), float("-inf"))
        assert torch.allclose(causal_attention(q, k, v), sc.softmax(-1) @ v, atol=1e-5)
    idx_in = torch.randint(0, cfg.model.vocab_size, (2, 16))
    loss, _, _, _ = model(idx_in, idx_in)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"
    print(f"selftest ok (MoE dispatch max err {err:.2e})", file=sys.stderr)


def main():
    global PROFILE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="", help="MoEForge YAML config")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key (value read as YAML); repeatable")
    ap.add_argument("--data", default=None,
                    help="indexed dataset prefix (default: the first of data.train)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--schedule", choices=["constant", "config"], default="constant",
                    help="constant train.lr (default), or train.schedule over warmup+steps")
    ap.add_argument("--log-every", type=int, default=0, help="print losses to stderr every n")
    ap.add_argument("--profile", action="store_true",
                    help="print a per-phase and per-region time breakdown to stderr")
    ap.add_argument("--flush-denormal", action="store_true",
                    help="torch.set_flush_denormal(True): subnormals as zero (FTZ/DAZ); off by "
                         "default, as in stock PyTorch. AdamW's second moments can go "
                         "subnormal, which made the optimizer phase up to ~3x slower in profiles")
    ap.add_argument("--selftest", action="store_true", help="check the model, then exit")
    args = ap.parse_args()

    cfg = load_config(args.config, args.set)
    if cfg.train.device != "cpu":
        print(f"note: train.device={cfg.train.device} ignored; the reference runs on CPU",
              file=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.flush_denormal and not torch.set_flush_denormal(True):
        raise SystemExit("error: --flush-denormal: not supported on this CPU")
    torch.manual_seed(cfg.train.seed)
    if args.selftest:
        selftest(cfg)
        return

    first_train = cfg.data.train.split(",")[0].split()[0] if cfg.data.train.strip() else ""
    batches = Batches(args.data if args.data is not None else first_train, cfg)
    model = MoELM(cfg)
    model.train()
    opt = make_optimizer(model, cfg.train)
    params_total, params_active = model.param_counts()
    sched = copy.deepcopy(cfg.train)
    sched.steps = args.warmup + args.steps

    def lr_at(step):
        return cfg.train.lr if args.schedule == "constant" else learning_rate(sched, step)

    losses, times = [], []
    timers = {"forward": 0.0, "backward": 0.0, "grad_clip": 0.0, "optimizer": 0.0}
    prof = None
    for step in range(args.warmup + args.steps):
        timed = step >= args.warmup
        if timed and args.profile and prof is None:
            PROFILE = True
            prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            prof.__enter__()
        t0 = time.perf_counter()
        ce, aux, zl = train_step(model, opt, batches, cfg, lr_at(step),
                                 timers if timed else None)
        dt = time.perf_counter() - t0
        losses.append(ce)
        if timed:
            times.append(dt)
        if not math.isfinite(ce):
            raise SystemExit(f"error: loss is {ce} at step {step}")
        if args.log_every and (step % args.log_every == 0 or step == args.warmup + args.steps - 1):
            print(f"step {step:4d} ce {ce:.4f} aux(sum) {aux:.4f} z(sum) {zl:.4f} lr {lr_at(step):.2e} "
                  f"{dt * 1e3:.1f} ms", file=sys.stderr)

    b, s = cfg.train.micro_batch_size * cfg.train.grad_accum, cfg.data.seq_len
    step_s = sum(times) / len(times) if times else float("nan")
    result = {
        "impl": "pytorch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch": b,
        "seq_len": s,
        "params_total": params_total,
        "params_active_per_token": params_active,
        "tokens_per_s": round(b * s / step_s, 1) if times else None,
        "step_ms_mean": round(step_s * 1e3, 3) if times else None,
        "step_ms_min": round(min(times) * 1e3, 3) if times else None,
        "step_ms_median": round(sorted(times)[len(times) // 2] * 1e3, 3) if times else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "loss_first": round(losses[0], 5),
        "loss_last": round(losses[-1], 5),
        "flush_denormal": bool(args.flush_denormal),
    }
    if prof is not None:
        prof.__exit__(None, None, None)
        PROFILE = False
        n = len(times)
        err = sys.stderr
        print(f"\n== phases (ms per step, mean of {n} timed steps, profiler on) ==", file=err)
        for k, v in timers.items():
            print(f"  {k:<10} {v / n * 1e3:9.2f}", file=err)
        print(f"  {'step':<10} {step_s * 1e3:9.2f}", file=err)
        ev = prof.key_averages()
        regions = ["attn", "attn.core", "dense_ffn", "moe", "moe.router", "moe.experts",
                   "moe.shared", "head+ce"]
        print("== forward regions (ms per step, inclusive; backward is in the op table) ==",
              file=err)
        for e_ in ev:
            if e_.key in regions:
                print(f"  {e_.key:<12} {e_.cpu_time_total / 1e3 / n:9.2f}", file=err)
        print("== top ops by self CPU time, forward + backward + optimizer ==", file=err)
        print(ev.table(sort_by="self_cpu_time_total", row_limit=25), file=err)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
