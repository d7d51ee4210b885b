"""`harness-plan`: what a study will cost (runs, FLOPs, time, memory) before it runs. Nothing imports it."""
from __future__ import annotations

import torch
from omegaconf import DictConfig

from harness.build import check_config
from harness.data import Dataset
from harness.models.layers import count_params

BYTES = {"fp32": 4, "bf16": 2}
OPTIMIZER_STATE = {"adamw": 2, "sgd": 1}  # tensors of parameter size kept by the optimizer (momentum buffers)
DEFAULT_MFU = {"cpu": 0.3, "cuda": 0.3}
GPU_MEMORY_BYTES = 80 * 2 ** 30  # assumed when planning cuda runs on a machine without the GPU


def activation_bytes(model: torch.nn.Module, data: Dataset, precision: str) -> int | None:
    """Bytes autograd saves for backward in one forward pass of one example, counted on the meta device."""
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor):
        saved[id(t)] = t.numel() * (BYTES[precision] if t.is_floating_point() else t.element_size())
        return t

    spec = data.spec
    shape = {"tokens": (1, spec.seq_len), "image": (1, *spec.image_shape), "vector": (1, spec.input_dim)}[spec.kind]
    x = torch.zeros(shape, dtype=torch.long if spec.kind == "tokens" else torch.float32, device="meta")
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
    except (NotImplementedError, RuntimeError):  # an op without a meta kernel (e.g. fused RNNs)
        return None
    return sum(saved.values())


def estimate(cfg: DictConfig) -> dict:
    """FLOPs and memory of one run, from its config alone."""
    data, model, steps = check_config(cfg)
    batch, precision = int(cfg.trainer.batch_size), cfg.trainer.precision
    device = "cuda" if cfg.device in ("cuda", "auto") and torch.cuda.is_available() or cfg.device == "cuda" else "cpu"
    n = count_params(model)
    flops = model.flops_per_example() * batch * steps
    act = activation_bytes(model, data, precision)
    micro = batch // int(cfg.trainer.grad_accum)
    state = n * 4 * (2 + OPTIMIZER_STATE[cfg.optim.name])  # fp32 weights, grads, optimizer state
    memory = state + (act * micro if act is not None else 0)
    return {"device": device, "params": n, "steps": steps, "flops": flops, "memory_bytes": memory,
            "activations_counted": act is not None}


def recorded_mfu(study_dir) -> dict[str, float]:
    """Median MFU per model name over the ok runs a study already holds (for time estimates)."""
    from pathlib import Path
    import warnings

    from harness.collect import collect

    if not Path(study_dir).is_dir():
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = collect(study_dir)
    if table.empty or "mfu" not in table:
        return {}
    ok = table[(table.status == "ok") & table.mfu.notna()]
    return ok.groupby("model.name").mfu.median().to_dict()


def main(argv: list[str] | None = None) -> None:
    """`harness-plan sweep=NAME [scale=..] [overrides]`: runs, FLOPs, time and memory before a study starts."""
    import argparse
    import sys

    import psutil
    from harness.config import ConfigError
    from harness.metrics import cpu_peak, gpu_peak
    from harness.device import resolve_threads
    from harness.study import study_configs

    parser = argparse.ArgumentParser(prog="harness-plan", description=main.__doc__)
    parser.add_argument("overrides", nargs="*", help="as for harness -m, e.g. sweep=params scale=cpu")
    parser.add_argument("--gpu", default="H100", help="GPU assumed for cuda runs (peak FLOP/s table; default H100)")
    parser.add_argument("--mfu", type=float, default=None, help=f"assumed MFU (default {DEFAULT_MFU['cpu']})")
    parser.add_argument("--mem-gb", type=float, default=None, help="memory per run to check against")
    args = parser.parse_args(argv)
    try:
        primary, configs = study_configs(args.overrides)
        plans = [estimate(c) for c in configs]
    except ConfigError as e:
        sys.exit(f"error: {e}")
    threads = resolve_threads("auto")
    measured = recorded_mfu(f"{primary.out_dir}/{primary.study}")
    print(f"study {primary.study} (scale={primary.scale}): {len(configs)} runs")
    print(f"{'run':>4} {'model':>12} {'params':>10} {'steps':>7} {'FLOPs':>9} {'time':>8} {'memory':>9}  device")
    total_time, warnings = 0.0, []
    for i, (cfg, p) in enumerate(zip(configs, plans)):
        cuda = p["device"] == "cuda"
        peak = gpu_peak(args.gpu, cfg.trainer.precision) if cuda else cpu_peak(cfg.trainer.precision, threads)
        limit = args.mem_gb * 2 ** 30 if args.mem_gb else GPU_MEMORY_BYTES if cuda else psutil.virtual_memory().total
        mfu = args.mfu or measured.get(cfg.model.name) or DEFAULT_MFU[p["device"]]
        rate = (peak or 0) * mfu
        seconds = p["flops"] / rate if rate else float("nan")
        total_time += seconds if seconds == seconds else 0
        mem = f"{p['memory_bytes'] / 2 ** 20:.0f} MiB" + ("" if p["activations_counted"] else "*")
        print(f"{i:>4} {cfg.model.name:>12} {p['params']:>10,} {p['steps']:>7} {p['flops']:>9.2e} {seconds:>7.1f}s {mem:>9}  {p['device']}")
        if p["memory_bytes"] > limit:
            warnings.append(f"run {i} needs ~{p['memory_bytes'] / 2 ** 30:.1f} GiB > {limit / 2 ** 30:.0f} GiB available")
    source = "--mfu" if args.mfu else "recorded in this study (" + ", ".join(f"{k} {v:.3g}" for k, v in measured.items()) + ")" if measured else f"default {DEFAULT_MFU['cpu']}"
    print(f"total: {sum(p['flops'] for p in plans):.2e} FLOPs, ~{total_time / 60:.1f} min of compute; MFU {source} "
          "(before per-run overhead; divide by parallel jobs)")
    print("memory: fp32 weights + grads + optimizer state + activations saved for backward"
          " (* = activations not counted: no meta kernel)")
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
