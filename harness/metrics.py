"""The measurements a run reports: timing, throughput, MFU, memory, attention cost. Their names, units and
wandb keys are in `harness.metric_table`; losses are nats (cross-entropy) or squared error (regression).

MFU = achieved_flops_per_s / peak_flops_per_s, with achieved = analytic training FLOPs per step
(harness.flops) / median step time. The peak comes from the GPU table in `harness.hardware` for known GPUs,
or on CPU from a matmul measured once per machine, thread count and dtype (cached in
~/.cache/scaling-lab/peaks.json).
An unknown peak gives MFU None, never a guess.
"""
from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path
from statistics import median

import psutil
import torch

from harness.hardware import PEAK_FLOPS, gpu_peak  # noqa: F401 - the one GPU table, re-exported
from harness.results import write_atomic

PEAK_CACHE = Path(os.environ.get("SCALING_LAB_CACHE", Path.home() / ".cache" / "scaling-lab")) / "peaks.json"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def cpu_name() -> str:
    """The CPU model string (from /proc/cpuinfo on Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        return re.search(r"model name\s*:\s*(.+)", text).group(1).strip()
    except (OSError, AttributeError):
        return platform.processor() or platform.machine()


def measure_cpu_peak(precision: str, threads: int, size: int = 1024, repeats: int = 5) -> float:
    """Best-of-`repeats` FLOP/s of an n x n matmul at `threads` threads (bf16 uses a smaller n: it is slow on CPU)."""
    if precision == "bf16":
        size = 256
    a = torch.randn(size, size, dtype=DTYPES[precision])
    b = torch.randn(size, size, dtype=DTYPES[precision])
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a @ b
        best = min(_timed(lambda: a @ b) for _ in range(repeats))
    finally:
        torch.set_num_threads(old)
    return 2 * size ** 3 / best


def cpu_peak(precision: str, threads: int) -> float:
    """Measured CPU matmul peak, cached per CPU model, thread count and dtype."""
    key = f"{cpu_name()}|threads={threads}|{precision}"
    try:
        cache = json.loads(PEAK_CACHE.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        cache[key] = measure_cpu_peak(precision, threads)
        try:
            write_atomic(PEAK_CACHE, json.dumps(cache, indent=1))
        except OSError:
            pass  # an unwritable cache only costs a re-measurement next time
    return cache[key]


def _timed(fn, device: torch.device | None = None) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def sync(device: torch.device | None) -> None:
    """Wait for queued GPU work so host timers measure it."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


class MemoryMeter:
    """Peak memory over a span: CUDA's allocator counters, or the process's peak RSS (VmHWM) on CPU.

    On Linux, writing 5 to /proc/self/clear_refs resets VmHWM, so the CPU peak belongs to this run even
    when a multirun trains many runs in one process. Elsewhere it falls back to the process lifetime peak.
    """

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass

    @property
    def kind(self) -> str:
        """What is measured: the CUDA caching allocator's allocated memory, or the CPU process's RSS."""
        return "cuda_allocated" if self.device.type == "cuda" else "rss"

    def current_bytes(self) -> int:
        """Memory in use now: allocated CUDA memory, or the process RSS."""
        if self.device.type == "cuda":
            return torch.cuda.memory_allocated(self.device)
        return psutil.Process().memory_info().rss

    def peak(self) -> dict[str, int]:
        if self.device.type == "cuda":
            return {"peak_mem_bytes": torch.cuda.max_memory_allocated(self.device),
                    "peak_mem_reserved_bytes": torch.cuda.max_memory_reserved(self.device)}
        try:
            status = Path("/proc/self/status").read_text()
            hwm = int(re.search(r"VmHWM:\s*(\d+) kB", status).group(1)) * 1024
        except (OSError, AttributeError):
            hwm = psutil.Process().memory_info().rss
        return {"peak_mem_bytes": hwm}


def step_time_stats(times: list[float], warmup: int) -> dict[str, float | None]:
    """Median, p10, p90 of step times after the first `warmup` steps (which are summed in warmup_s).

    A run no longer than its warm-up times every step (warmup_s 0); `timed_steps` says how many were timed."""
    warmup = warmup if len(times) > warmup else 0
    timed = sorted(times[warmup:])
    q = lambda p: timed[min(len(timed) - 1, int(p * len(timed)))]  # noqa: E731
    return {"warmup_s": sum(times[:warmup]), "timed_steps": len(timed), "step_time_s": median(timed),
            "step_time_p10_s": q(0.1), "step_time_p90_s": q(0.9)}


def compile_overhead(times: list[float], warmup: int, step_time_s: float) -> float:
    """compile_s: the extra time of the first `warmup` steps over the median step (torch.compile compiles
    in the first step, and may recompile in the next few), kept out of step_time_s and throughput."""
    return sum(max(0.0, t - step_time_s) for t in times[:warmup])


def totals(steps: int, batch_size: int, tokens_per_example: int, flops_per_example: float,
           step_times: list[float], data_time_s: float) -> dict[str, float]:
    """What the run consumed: samples, tokens (D), FLOPs per step and in all (C), and the share of step time
    spent drawing batches."""
    flops_per_step = flops_per_example * batch_size
    return {"samples": steps * batch_size, "tokens": steps * batch_size * tokens_per_example,
            "flops_per_step": flops_per_step, "flops_total": flops_per_step * steps,
            "data_time_fraction": data_time_s / max(sum(step_times), 1e-12)}


def step_throughput(step_time_s: float, batch_size: int, tokens_per_example: int) -> float:
    """tokens_per_s of one logged step (history); the run's figure uses the median step (`throughput`)."""
    return batch_size * tokens_per_example / step_time_s


def throughput(step_time_s: float, batch_size: int, tokens_per_example: int, flops_per_step: float,
               peak_flops_per_s: float | None) -> dict[str, float | None]:
    """Samples/s, tokens/s, achieved FLOP/s and MFU from the median step time."""
    achieved = flops_per_step / step_time_s
    return {"samples_per_s": batch_size / step_time_s,
            "tokens_per_s": batch_size * tokens_per_example / step_time_s,
            "achieved_flops_per_s": achieved,
            "peak_flops_per_s": peak_flops_per_s,
            "mfu": achieved / peak_flops_per_s if peak_flops_per_s else None}


def attention_cost(model, batch_size: int, device: torch.device, precision: str) -> dict[str, float]:
    """Attention FLOPs per step, their share, the bytes of one layer's (B, H, T, T) score matrix, and the
    measured forward + backward time of one attention layer at the run's shape (median of 3)."""
    T, d, H = model.seq_len, model.d_model, model.n_heads
    attn = model.attention_flops_per_example() * batch_size
    layer = model.blocks[0].attn
    x = torch.randn(batch_size, T, d, device=device, requires_grad=True)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def fwd_bwd():
        with autocast:
            y = layer(x)
        y.float().sum().backward()

    fwd_bwd()  # warm-up
    times = [_timed(fwd_bwd, device) for _ in range(3)]
    layer.zero_grad(set_to_none=True)
    elem = 2 if precision == "bf16" else 4
    return {"attn_flops_per_step": attn,
            "attn_flops_share": attn / (model.flops_per_example() * batch_size),
            "attn_matrix_bytes": batch_size * H * T * T * elem if layer.impl == "manual" else None,  # sdpa: not materialised
            "attn_time_s": median(times)}
