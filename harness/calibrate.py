"""This machine's speed against the reference machine's, so `harness-plan`'s cpu default fits the CPU it runs on.

What is measured: forward + backward of three building blocks at 2 torch threads, the shapes of
`tests/benchmarks/test_bench_blocks.py` whose times on the reference machine (the 2-core Intel Xeon VM the
default efficiency was fitted on) docs/benchmarks.md records: a 256->256 linear layer at batch 256 (small
kernels: dispatch-bound), a 1024->1024 linear layer at batch 256 (compute-bound) and causal SDPA attention
(d_model 256, 4 heads, T = 128, batch 1: many small ops). Each block's time is the best of a few calls after
one warm-up, within PROBE_BUDGET_S, so the whole probe takes well under a second on an idle machine.

How it rescales: speed = the geometric mean over the blocks of reference time / time here (2 = twice as
fast). A run's planned time is FLOPs / (this machine's matmul peak x efficiency), so to scale the reference
machine's time by 1 / speed the efficiency is multiplied by speed x P_ref / P_here, with P the 1-thread fp32
matmul peak (harness.metrics.cpu_peak; the reference's 1.1e11 FLOP/s, docs/benchmarks.md): the peak cancels
and only the measured speed remains. One factor for every model name, size and thread count; a machine whose small-model
overheads differ from its matmuls more than the reference's did is what the study's own finished runs correct.

A busy machine is not probed (1-minute load average above BUSY_LOAD per core): two torch threads that share
their cores with other work wait on each other, and the probe would measure the load, not the machine (tens of
times slower on the 2-core VM under a nice'd test run). The plan then uses the reference default and says so.

The result is cached per machine in `$SCALING_LAB_CACHE/calibration.json` (default ~/.cache/scaling-lab),
keyed by CPU model, core count, torch version and probe threads: delete the entry to re-measure.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from harness.efficiency import MfuModel
from harness.results import write_atomic

# Reference machine: best-of forward + backward time in seconds (docs/benchmarks.md, "Building blocks").
REFERENCE_S = {"linear_256": 0.47e-3, "linear_1024": 6.2e-3, "attention_128": 1.7e-3}
REFERENCE_PEAK = 1.1e11  # its 1-thread fp32 matmul peak, FLOP/s (docs/benchmarks.md, "harness-plan vs wall time")
PROBE_THREADS = 2  # the reference blocks' thread count
PROBE_BUDGET_S = 0.5  # per block: stop repeating after this, even on a loaded machine
PROBE_REPEATS = 10
BUSY_LOAD = 0.5  # load average per core above which the probe is not run


def cache_file() -> Path:
    """Where probe results are kept (read at call time, so tests can point SCALING_LAB_CACHE elsewhere)."""
    return Path(os.environ.get("SCALING_LAB_CACHE", Path.home() / ".cache" / "scaling-lab")) / "calibration.json"


def machine_key() -> str:
    """CPU model, core count, torch version and probe threads: what a cached probe is valid for."""
    import torch

    from harness.metrics import cpu_name

    return f"{cpu_name()}|cores={os.cpu_count()}|torch={torch.__version__}|threads={PROBE_THREADS}"


def measure_blocks() -> dict[str, float]:
    """Best forward + backward seconds of each REFERENCE_S block at PROBE_THREADS threads, on this machine."""
    import torch
    from torch import nn

    from harness.models.transformer import CausalSelfAttention

    blocks: dict[str, tuple[Callable, torch.Tensor]] = {
        "linear_256": (nn.Linear(256, 256), torch.randn(256, 256, requires_grad=True)),
        "linear_1024": (nn.Linear(1024, 1024), torch.randn(256, 1024, requires_grad=True)),
        "attention_128": (CausalSelfAttention(256, 4, "sdpa"), torch.randn(1, 128, 256, requires_grad=True)),
    }
    old = torch.get_num_threads()
    torch.set_num_threads(PROBE_THREADS)
    times = {}
    try:
        for name, (module, x) in blocks.items():
            module(x).sum().backward()  # warm-up: allocation, first-call dispatch
            best, start = math.inf, time.perf_counter()
            for _ in range(PROBE_REPEATS):
                t = time.perf_counter()
                module(x).sum().backward()
                best = min(best, time.perf_counter() - t)
                if time.perf_counter() - start > PROBE_BUDGET_S:
                    break
            times[name] = best
    finally:
        torch.set_num_threads(old)
    return times


def busy() -> str | None:
    """Why this machine is too busy to probe ('load 2.3 on 2 cores'), or None."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    return f"load {load:.1f} on {cores} cores" if load > BUSY_LOAD * cores else None


def machine_speed(measure: Callable[[], dict[str, float]] | None = None) -> dict:
    """{"speed": this machine / the reference, "blocks_s": the probe's times, "measured": bool}: from the
    cache when this machine was probed before, else measured (by `measure`, default measure_blocks) and cached;
    {"busy": why} when the machine is too busy to probe (only checked for the real probe)."""
    key, path = machine_key(), cache_file()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return {**cache[key], "measured": False}
    if measure is None and (why := busy()):
        return {"busy": why}
    blocks = (measure or measure_blocks)()
    speed = math.exp(sum(math.log(REFERENCE_S[b] / blocks[b]) for b in REFERENCE_S) / len(REFERENCE_S))
    cache[key] = {"speed": speed, "blocks_s": blocks}
    try:
        write_atomic(path, json.dumps(cache, indent=1))
    except OSError:
        pass  # an unwritable cache only costs a re-measurement next time
    return {**cache[key], "measured": True}


def calibrated(default: MfuModel, measure: Callable[[], dict[str, float]] | None = None) -> MfuModel:
    """The reference machine's cpu efficiency rescaled to this machine (see the module docstring)."""
    from harness.metrics import cpu_peak

    probe = machine_speed(measure)
    if "busy" in probe:
        return replace(default, source=f"{default.source}; this machine not probed: busy ({probe['busy']}), "
                                       "plan again when it is idle")
    speed = probe["speed"]
    factor = speed * REFERENCE_PEAK / cpu_peak("fp32", 1)
    curves = {name: replace(c, intercept=c.intercept + math.log(factor)) for name, c in default.curves.items()}
    source = (f"the reference default x {factor:.3g}: this machine's probe ran the reference blocks at "
              f"{speed:.3g}x the reference machine's speed (harness/calibrate.py, cached in {cache_file()})")
    return MfuModel(default.column, source, curves)
