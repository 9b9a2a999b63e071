#!/usr/bin/env python3
"""PyTorch 2.x GPU reference: the configs/gpu models trained on CUDA, for MoEForge's GPU figures.

    python3 bench/reference/moe_reference_gpu.py --config configs/gpu/mixtral-style.yaml \
        --steps 20 --precision bf16 --mode eager [--experts loop|grouped] [--device cuda|cpu] \
        [--json OUT_FILE] [--data PREFIX] [--scale small] [--peak-tflops 989]

The model, losses, optimizer grouping and training step are moe_reference.py's (imported, not
copied); this file adds what a GPU run needs:
  --precision bf16   forward under torch.autocast(bfloat16) over f32 weights and f32 AdamW
                     state (the router and the cross-entropy stay f32, as in moe_reference.py);
              f32    f32 with TF32 GEMMs on CUDA (set_float32_matmul_precision("high")).
  --mode eager|compile   compile: torch.compile of the model (forward and backward); the
                     optimizer step stays eager. Compilation happens in the warmup steps.
  --experts loop     one GEMM per expert and projection; the expert counts come to the host once
                     per MoE layer (a graph break under compile).
            grouped  torch._grouped_mm, one grouped GEMM per projection, no host synchronisation.
                     The default where a small grouped GEMM runs and matches per-group GEMMs on
                     the device in the run's dtype (CUDA: bf16, sm_90 or newer); else loop.
  Attention is F.scaled_dot_product_attention (causal); AdamW is torch.optim.AdamW(fused=True);
  the lr is train.lr, constant.
Data: by default random token ids, uniform over model.vocab_size, drawn on the device each step
from a generator seeded with data.seed: throughput does not depend on which ids occur, and the
loss stays near ln(vocab_size) (loss_first/loss_last are a sanity check, not a learning curve).
--data PREFIX reads random windows of a MoEForge .bin/.idx dataset instead (docs/data.md).
Figures: --warmup untimed steps, then --steps timed ones, each timed between two device
synchronisations. tokens/s = batch x seq_len / mean step time; MFU = tokens/s x FLOPs per token /
--peak-tflops, with MoEForge's FLOPs per token (MoELM.flops_per_token); peak memory is
torch.cuda.max_memory_allocated (peak RSS with --device cpu). One line on stdout per run; --json
writes the figures as one JSON object.
--scale small divides the widths by 4 and the layers by 4 (at least 2) at seq_len 128, for a check
on a CPU (bench/reference/README.md).
"""

import argparse
import contextlib
import json
import math
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moe_reference as ref  # noqa: E402  (imports torch, or re-runs under Debian's python3)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

if int(torch.__version__.split(".")[0]) < 2:
    sys.exit(f"error: torch {torch.__version__} in {sys.executable}: the GPU reference needs "
             "torch >= 2 (SDPA, fused AdamW, torch.compile)")


def small_overrides(cfg):
    """--set overrides for --scale small."""
    m, e = cfg.model, cfg.moe
    sets = {"model.d_model": m.d_model // 4, "model.ffn_hidden": m.ffn_hidden // 4,
            "model.n_layers": max(2, m.n_layers // 4), "moe.expert_hidden": e.expert_hidden // 4,
            "moe.shared_expert_hidden": e.shared_expert_hidden // 4,
            "data.seq_len": 128, "model.max_seq_len": 128}
    if m.head_dim > 0:
        sets["model.head_dim"] = m.head_dim // 4
    return [f"{k}={v}" for k, v in sets.items()]


def grouped_mm_problem(device, dtype):
    """None when torch._grouped_mm runs forward and backward on `device` in `dtype` and agrees
    with per-group GEMMs; else why not."""
    if not ref.HAS_GROUPED_MM:
        return f"torch {torch.__version__} has no torch._grouped_mm"
    try:
        g = torch.Generator(device=device).manual_seed(0)
        a = torch.randn(48, 64, device=device, generator=g).to(dtype).requires_grad_()
        w = torch.randn(3, 32, 64, device=device, generator=g).to(dtype).requires_grad_()
        offs = torch.tensor([16, 16, 48], device=device, dtype=torch.int32)  # one empty group
        y = torch._grouped_mm(a, w.transpose(-2, -1), offs=offs)
        y.float().square().sum().backward()
        want = torch.cat([F.linear(a[:16], w[0]), F.linear(a[16:], w[2])]).float()
        err = (y.float() - want).abs().max().item() / want.abs().max().item()
        if not err < 2e-2:
            return f"torch._grouped_mm differs from per-group GEMMs by {err:.3g} (relative)"
    except RuntimeError as e:
        return f"torch._grouped_mm failed on {device} in {dtype}: {str(e).splitlines()[0]}"
    return None


class RandomTokens:
    def __init__(self, cfg, device):
        self.shape = (cfg.train.micro_batch_size, cfg.data.seq_len + 1)
        self.vocab, self.device = cfg.model.vocab_size, device
        self.gen = torch.Generator(device=device).manual_seed(cfg.data.seed)

    def next(self):
        w = torch.randint(0, self.vocab, self.shape, device=self.device, generator=self.gen)
        return w[:, :-1], w[:, 1:]


class DatasetTokens:
    def __init__(self, prefix, cfg, device):
        self.batches, self.device = ref.Batches(prefix, cfg), device

    def next(self):
        return tuple(t.to(self.device) for t in self.batches.next())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="MoEForge YAML config (configs/gpu/*.yaml)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key (value read as YAML); repeatable")
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (compile here)")
    ap.add_argument("--precision", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
    ap.add_argument("--experts", choices=["loop", "grouped"], default=None,
                    help="default: grouped where torch._grouped_mm works here, else loop")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--data", default=None, help="indexed dataset prefix (default: random ids)")
    ap.add_argument("--scale", choices=["full", "small"], default="full")
    ap.add_argument("--peak-tflops", type=float, default=989.0,
                    help="the device's dense bf16 peak for MFU (989: H100/H200 SXM)")
    ap.add_argument("--json", default=None, metavar="OUT_FILE", help="write the figures here")
    args = ap.parse_args()
    if args.steps < 1:
        sys.exit("error: --steps must be at least 1")

    cfg = ref.load_config(args.config, args.set)
    if args.scale == "small":
        cfg = ref.load_config(args.config, small_overrides(cfg) + args.set)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda: torch.cuda.is_available() is False "
                 "(no GPU, no driver, or a CPU-only torch); --device cpu runs on the CPU")
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    if device == "cuda" and args.precision == "f32":
        torch.set_float32_matmul_precision("high")  # TF32 GEMMs, as MoEForge's train.tf32
    problem = grouped_mm_problem(device, dtype)
    experts = args.experts or ("loop" if problem else "grouped")
    if experts == "grouped" and problem:
        sys.exit(f"error: --experts grouped: {problem}")
    if args.experts is None and problem:
        print(f"note: experts as a loop of GEMMs ({problem})", file=sys.stderr)

    torch.manual_seed(cfg.train.seed)
    with torch.device(device):
        model = ref.MoELM(cfg, grouped_experts=experts == "grouped")
    model.train()
    if not any(b.is_moe for b in model.blocks):
        experts = "none"
    opt = ref.make_optimizer(model, cfg.train, fused=True)
    step_model = torch.compile(model) if args.mode == "compile" else model
    batches = DatasetTokens(args.data, cfg, device) if args.data else RandomTokens(cfg, device)

    def amp():
        return torch.autocast(device, dtype=torch.bfloat16) if args.precision == "bf16" \
            else contextlib.nullcontext()

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses, times = [], []
    for step in range(args.warmup + args.steps):
        sync()
        t0 = time.perf_counter()
        ce, _, _ = ref.train_step(step_model, opt, batches, cfg, cfg.train.lr, amp=amp)
        sync()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
        losses.append(ce)
        if not math.isfinite(ce):
            sys.exit(f"error: loss is {ce} at step {step}")

    total, active = model.param_counts()
    tokens = cfg.train.micro_batch_size * cfg.train.grad_accum * cfg.data.seq_len
    flops = model.flops_per_token(cfg.data.seq_len)
    tok_s = tokens * len(times) / sum(times)
    name = os.path.splitext(os.path.basename(args.config))[0]
    if device == "cuda":
        peak_mb, peak_of = torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated"
        device_name = torch.cuda.get_device_name()
    else:
        peak_mb, peak_of = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss"
        device_name = "cpu"
    result = {
        "impl": "pytorch", "model": name + ("-small" if args.scale == "small" else ""),
        "config": args.config, "torch": torch.__version__, "device": device_name,
        "precision": args.precision, "mode": args.mode, "experts": experts,
        "data": args.data or "random", "batch": tokens // cfg.data.seq_len,
        "seq_len": cfg.data.seq_len, "warmup": args.warmup, "steps": args.steps,
        "params_total": total, "params_active": active, "flops_per_token": flops,
        "tokens_per_s": round(tok_s, 1),
        "step_ms_median": round(sorted(times)[len(times) // 2] * 1e3, 3),
        "step_ms_mean": round(sum(times) / len(times) * 1e3, 3),
        "peak_tflops": args.peak_tflops,
        "mfu": round(tok_s * flops / (args.peak_tflops * 1e12), 5),
        "peak_mem_mb": round(peak_mb, 1), "peak_mem_of": peak_of,
        "loss_first": round(losses[0], 5), "loss_last": round(losses[-1], 5),
    }
    print(f"{result['model']} {args.precision} {args.mode} experts={experts} on {device_name}: "
          f"{tok_s:,.0f} tok/s, step {result['step_ms_median']:.1f} ms (median of {args.steps}), "
          f"MFU {100 * result['mfu']:.1f}% of {args.peak_tflops:g} TFLOP/s, peak {peak_mb:,.0f} MB "
          f"({peak_of}), loss {losses[0]:.4f} -> {losses[-1]:.4f}, {total:,} params "
          f"({active:,} active)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
