"""`harness-plan`: what a study will cost (runs, FLOPs, time, memory) before it runs. The GPU check
(`tests/gpu_check.py`) imports its `estimate`; `harness-forecast step=plan` (analysis/forecast_plan.py) its
estimate and time model."""
from __future__ import annotations

import json
from dataclasses import replace

import torch
from omegaconf import DictConfig, OmegaConf

from harness.build import check_config
from harness.children import command
from harness.data import DataSpec
from harness.efficiency import EfficiencyCurve, MfuModel, constant, fit_mfu
from harness.memory import WEIGHT_BYTES, format_bytes, state_bytes
from harness.models.layers import count_params

# Time = FLOPs / (peak x wall-clock efficiency(params)) + the study's start + a gap per run. Without finished
# runs in the study, the cpu default is the wall-clock efficiency fitted on the reference machine (a 2-core Intel
# Xeon VM), rescaled to this machine by a short cached probe (harness/calibrate.py) unless calibrate=false;
# the start and gap were measured on the reference machine. See docs/benchmarks.md ("harness-plan vs wall time").
DEFAULT_EFFICIENCY = {
    # fitted on `harness -m sweep=params|architectures scale=cpu hydra/launcher=joblib` (docs/benchmarks.md)
    "cpu": MfuModel("wall_mfu", "the reference default (fitted on the 2-core Intel Xeon VM, docs/benchmarks.md)", {
        "cnn": EfficiencyCurve("cnn", 0.4335, -5.8203, (9941, 1000030), 9),
        "mlp": EfficiencyCurve("mlp", 0.7443, -11.3181, (9910, 1000162), 9),
        "rnn": EfficiencyCurve("rnn", 0.3280, -4.3646, (10336, 1003936), 12),
        "transformer": EfficiencyCurve("transformer", 0.4660, -6.6840, (9980, 999984), 9),
        "all": EfficiencyCurve("all", 0.4875, -6.9239, (9910, 1003936), 39)}),
    "cuda": constant(0.3, "the reference default 0.3 (not measured)", "wall_mfu"),
}
STUDY_START_S = 8.0  # process start, composing and checking every job, before the first run
RUN_GAP_S = 0.6  # per run, outside its own wall_s: launcher, wandb start, writing results
_SPLITS: dict[tuple, tuple[int, int] | None] = {}  # (model, task spec at a length, precision) -> _split


PROBE_LENGTHS = (16, 32, 48)  # a sequence longer than PROBE_ABOVE is counted at these lengths and extrapolated
PROBE_ABOVE = 128


def activation_bytes(model: torch.nn.Module, spec: DataSpec, precision: str,
                     config: str | None = None) -> tuple[int, int] | None:
    """(bytes per example, bytes independent of the batch) that autograd saves for backward in one forward
    pass, counted on the meta device; None without meta kernels. `config`: the model's config (JSON), which with
    its modules identifies it; given, each count is memoised, so a study's runs that share a model count it once
    (batch_lr: one per size; a recurrent model at several long sequence lengths: the same short probes).

    Counted at batch 1 and 2: the difference grows with the batch; what does not (weights saved by matmuls, or
    their bf16 casts) is counted once, not once per example. A token model's per-example bytes are a quadratic
    in the sequence length T (linear per token, T² for attention scores), so a long sequence is counted exactly
    from three short ones: a recurrent layer runs step by step on the meta device, which at T = 8192 takes minutes."""
    def split(seq_len: int) -> tuple[int, int] | None:
        if config is None:
            return _split(model, spec, seq_len, precision)
        at = (config, repr(model), repr(replace(spec, seq_len=seq_len)), precision)
        if at not in _SPLITS:
            _SPLITS[at] = _split(model, spec, seq_len, precision)
        return _SPLITS[at]

    if spec.kind != "tokens" or spec.seq_len <= PROBE_ABOVE:
        return split(spec.seq_len)
    probes = [split(t) for t in PROBE_LENGTHS]
    if None in probes:
        return None
    t0, h = PROBE_LENGTHS[0], PROBE_LENGTHS[1] - PROBE_LENGTHS[0]
    u = (spec.seq_len - t0) / h  # Newton's forward differences through the three counts, for each part

    def at_length(y0: int, y1: int, y2: int) -> int:
        return round(y0 + u * (y1 - y0) + u * (u - 1) / 2 * (y2 - 2 * y1 + y0))

    return at_length(*(p[0] for p in probes)), at_length(*(p[1] for p in probes))


def _split(model: torch.nn.Module, spec: DataSpec, seq_len: int, precision: str) -> tuple[int, int] | None:
    """(per example, fixed) saved bytes at token inputs `seq_len` long, from counts at batch 1 and 2."""
    one, two = (_saved_bytes(model, spec, seq_len, precision, b) for b in (1, 2))
    if one is None or two is None:
        return None
    return two - one, max(0, 2 * one - two)


def _saved_bytes(model: torch.nn.Module, spec: DataSpec, seq_len: int, precision: str, batch: int) -> int | None:
    """Bytes saved for backward by one forward pass of `batch` examples; None without meta kernels."""
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor):
        saved[id(t)] = t.numel() * (WEIGHT_BYTES[precision] if t.is_floating_point() else t.element_size())
        return t

    shape = {"tokens": (seq_len,), "image": tuple(spec.image_shape), "vector": (spec.input_dim,)}[spec.kind]
    x = torch.zeros((batch, *shape), dtype=torch.long if spec.kind == "tokens" else torch.float32, device="meta")
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
    except (NotImplementedError, RuntimeError):  # an op without a meta kernel (e.g. fused RNNs)
        return None
    return sum(saved.values())


def estimate(cfg: DictConfig) -> dict:
    """FLOPs and memory of one run (per rank: its micro-batch's activations), from its config alone: the model
    on the meta device, the data's shape from its config (nothing is allocated or generated)."""
    data, model, settings = check_config(cfg, shape_only=True)
    steps, precision = settings.steps, settings.precision
    device = "cuda" if cfg.device in ("cuda", "auto") and torch.cuda.is_available() or cfg.device == "cuda" else "cpu"
    n = count_params(model)
    flops = model.flops_per_example() * settings.batch_size * steps
    config = json.dumps(OmegaConf.to_container(cfg.model, resolve=True), sort_keys=True)
    act = activation_bytes(model, data.spec, precision, config)
    state = sum(state_bytes(n, cfg.optim.name, "fp32").values())  # autocast keeps fp32 weights, grads, state
    memory = state + (act[0] * settings.micro_batch + act[1] if act is not None else 0)
    return {"device": device, "params": n, "steps": steps, "flops": flops, "memory_bytes": memory,
            "activations_counted": act is not None}


def recorded_efficiency(study_dir) -> dict[str, MfuModel]:
    """Wall-clock efficiency vs params per model name, per device ("cpu", "cuda"), fitted on the ok runs a
    study already holds; a device without such runs is left out."""
    from pathlib import Path
    import warnings

    from harness.collect import collect

    if not Path(study_dir).is_dir():
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = collect(study_dir)
    if table.empty or "env.device" not in table.columns:
        return {}
    models = {}
    for device in ("cpu", "cuda"):
        rows = table[table["env.device"].astype(str).str.startswith(device)]
        try:
            models[device] = fit_mfu(rows, "wall_mfu", source=f"the study's finished runs in {study_dir}")
        except ValueError:
            pass
    return models


def efficiency_models(devices: set[str], study_dir, mfu: float | None = None,
                      calibrate: bool = True) -> dict[str, MfuModel]:
    """Wall-clock efficiency per device used: a given `mfu=`, else the study's finished runs, else (cpu) the
    reference default rescaled by this machine's cached probe (`calibrate`), else the reference default."""
    if mfu:
        return {d: constant(mfu, "mfu=", "wall_mfu") for d in devices}
    recorded = recorded_efficiency(study_dir)
    models = {}
    for d in devices:
        if d in recorded:
            models[d] = recorded[d]
        elif d == "cpu" and calibrate:
            from harness.calibrate import calibrated

            models[d] = calibrated(DEFAULT_EFFICIENCY[d])
        else:
            models[d] = DEFAULT_EFFICIENCY[d]
    return models


def run_seconds(cfg: DictConfig, plan: dict, model: MfuModel, gpu: str, threads: int) -> tuple[float, str]:
    """(planned wall seconds of one run: FLOPs / (peak x efficiency) + RUN_GAP_S, or NaN without a peak;
    the efficiency's note, empty unless it clamped)."""
    from harness.metrics import cpu_peak, gpu_peak

    cuda = plan["device"] == "cuda"
    peak = gpu_peak(gpu, cfg.trainer.precision) if cuda else cpu_peak(cfg.trainer.precision, threads)
    mfu, note = model.predict(plan["params"], cfg.model.name)
    rate = (peak or 0) * mfu
    return (plan["flops"] / rate + RUN_GAP_S if rate else float("nan")), note


def wall_time(seconds: list[float], jobs: int) -> float:
    """A study's planned wall seconds: STUDY_START_S, then each run on the first free of `jobs` workers."""
    workers = [0.0] * jobs
    for s in seconds:
        workers[workers.index(min(workers))] += s if s == s else 0
    return STUDY_START_S + max(workers)


USAGE = """harness-plan sweep=NAME [scale=smoke|cpu|gpu] [gpu=H100] [mfu=F] [mem_gib=G] [calibrate=true|false]
             [overrides]

Runs, FLOPs, wall time and memory of a study before it starts. gpu: the GPU assumed for cuda runs (peak
FLOP/s and memory, default H100); mfu: an assumed wall-clock MFU (default: fitted on the study's finished
runs, else the reference machine's default rescaled to this one by a probe of under a second, cached per
machine); calibrate=false: skip the probe (the reference default as it is); mem_gib: memory per run to check
against (default: the GPU's, or this machine's); any other key=value is a Hydra override, as for `harness -m`."""


@command("harness-plan", then="run it again")
def main(argv: list[str] | None = None) -> None:
    """`harness-plan sweep=NAME [scale=..] [gpu= mfu= mem_gib= calibrate=] [overrides]`: a study's cost before it
    starts."""
    import sys

    from harness.config import ConfigError, bad_input_exits, choose, command_args, key_values, positive
    from harness.device import parallelism
    from harness.study import study_configs

    argv = command_args(argv, USAGE)
    if argv is None:
        return
    with bad_input_exits():
        old = next((a for a in argv if a.startswith("--mem-gb")), None)
        if old:  # the one old flag whose key changed name (and unit: GiB, as it always meant)
            raise ConfigError(f"{old}: options are key=value now: mem_gib={old.partition('=')[2] or 'G'}")
        own, overrides = key_values(argv, ("gpu", "mfu", "mem_gib", "calibrate"), passthrough=True)
        gpu = own.get("gpu", "H100")
        mfu = positive("mfu", own["mfu"], integer=False) if "mfu" in own else None
        mem_gib = positive("mem_gib", own["mem_gib"], integer=False) if "mem_gib" in own else None
        calibrate = choose("calibrate", own.get("calibrate", "true"), ("true", "false")) == "true"
        primary, configs = study_configs(overrides, shape_only=True)
        plans = [estimate(c) for c in configs]
    jobs, threads = parallelism(primary.hydra.get("launcher"))
    models = efficiency_models({p["device"] for p in plans}, f"{primary.out_dir}/{primary.study}", mfu, calibrate)
    print(f"study {primary.study} (scale={primary.scale}): {len(configs)} runs")
    seconds, notes, warnings = _print_runs(configs, plans, models, gpu, mem_gib, threads)
    total_time = wall_time(seconds, jobs)
    print(f"total: {sum(p['flops'] for p in plans):.2e} FLOPs, ~{total_time / 60:.1f} min ({total_time:.0f} s) of wall time "
          f"({jobs} job{'s' if jobs > 1 else ''} at once, {threads} thread{'s' if threads > 1 else ''} each)")
    for d in sorted(models):
        print(f"time: wall-clock {models[d].describe()}; + {STUDY_START_S:g} s start, {RUN_GAP_S:g} s per run")
    for n in sorted(notes):
        print(f"note: {n}")
    print("memory per rank: fp32 weights + grads + optimizer state (harness/memory.py) + its micro-batch's"
          " activations saved for backward (* = activations not counted: no meta kernel)")
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)


def _print_runs(configs: list[DictConfig], plans: list[dict], models: dict[str, MfuModel], gpu: str,
                mem_gib: float | None, threads: int) -> tuple[list[float], set, list[str]]:
    """One line per run; (each run's planned seconds, efficiency notes, memory warnings)."""
    import psutil
    from harness.hardware import GIB, gpu_memory

    print(f"{'run':>4} {'model':>12} {'params':>10} {'steps':>7} {'FLOPs':>9} {'time':>8} {'memory':>9}  device")
    seconds, notes, warnings = [], set(), []
    for i, (cfg, p) in enumerate(zip(configs, plans)):
        cuda = p["device"] == "cuda"
        limit = mem_gib * GIB if mem_gib else (gpu_memory(gpu) or 80 * GIB) if cuda else psutil.virtual_memory().total
        s, note = run_seconds(cfg, p, models[p["device"]], gpu, threads)
        seconds.append(s)
        if note:
            notes.add(note)
        mem = format_bytes(p["memory_bytes"]) + ("" if p["activations_counted"] else "*")
        print(f"{i:>4} {cfg.model.name:>12} {p['params']:>10,} {p['steps']:>7} {p['flops']:>9.2e} {s:>7.1f}s "
              f"{mem:>9}  {p['device']}")
        if p["memory_bytes"] > limit:
            warnings.append(f"run {i} needs ~{format_bytes(p['memory_bytes'])} > {format_bytes(limit)} available")
    return seconds, notes, warnings
