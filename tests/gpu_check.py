"""GPU check (issue 13): the figures only a real GPU gives, in one JSON file and one markdown table.

    python -m tests.gpu_check [--out DIR] [--budget-s S]     # on a CUDA machine: ~5 min on one H100/H200
    python -m tests.gpu_check --cpu-smoke --out DIR          # same sections and keys, CPU, tiny sizes, < 1 min

Sections, in this order (each ends `ok`, `skipped`, `failed` or `blocked` with a one-line reason; one failing
section never stops the others, and the files are rewritten atomically after every section):
  devices      CPU vs GPU tokens/s at 3-4 sizes of the Transformer and the LSTM (harness runs), the ratio per size
  mfu          a ~100M-parameter Transformer, bf16, SDPA, with and without trainer.compile: MFU against the
               card's bf16 dense peak (harness.hardware via the run's own metrics), compile_s apart
  attention    one attention layer forward + backward, manual vs SDPA, n = 1k..16k: time and allocator peak,
               their exponents (analysis.systems.fit_attention), and `oom` where manual runs out of memory
  plan_memory  harness-plan's memory estimate (harness.plan.estimate) against the run's measured allocator peak
  cuda_tests   the test suite's CUDA cases (`pytest -k cuda`)

`--cpu-smoke` measures everything on the CPU at reduced sizes (the "gpu" side of `devices` is the CPU too,
so its ratios are 1) and emulates a small GPU with `--mem-cap-mib`: a manual-attention length whose
score matrix alone exceeds the cap is recorded `oom` without allocating it. On CUDA the cap is the card.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

import pandas as pd
import torch

from harness import compose, run
from harness.hardware import gpu_peak
from harness.metrics import cpu_name, sync
from harness.results import write_atomic

REPO = Path(__file__).resolve().parent.parent
MFU_GOAL, PLAN_TOLERANCE, SEED_RATIO = 0.40, 0.15, 100.0

# Sizes per mode. gpu: sized so the whole check takes ~5 min on one H100 (the CPU half of `devices` dominates).
PRESETS = {
    "gpu": {
        "devices": {"transformer": [1e5, 1e6, 1e7, 5e7], "lstm": [1e5, 1e6, 1e7]},
        "devices_run": ["data.seq_len=128", "trainer.batch_size=32"],
        "devices_steps": {"cpu": 12, "cuda": 40},
        # GPT-2-small widths at 14 layers, ~99M parameters (d_model 768, head_dim 64, d_ff 3072): tensor-core
        # friendly, unlike a target_params search, whose width lands on a multiple of n_heads (head_dim 69)
        "mfu": ["model.d_model=768", "model.n_layers=14", "model.n_heads=12", "data.seq_len=512",
                "trainer.batch_size=128", "trainer.precision=bf16", "trainer.max_steps=40",
                "trainer.timing_warmup_steps=5"],
        "attention": {"lengths": [1024, 2048, 4096, 8192, 16384], "batch": 8, "d_model": 1024, "heads": 16},
    },
    "smoke": {
        "devices": {"transformer": [2e4, 6e4], "lstm": [2e4, 6e4]},
        "devices_run": ["data.seq_len=32", "trainer.batch_size=16", "data.train_tokens=20000"],
        "devices_steps": {"cpu": 6, "cuda": 6},
        "mfu": ["model.target_params=3e4", "model.n_layers=2", "model.n_heads=2", "data.seq_len=32",
                "trainer.batch_size=16", "data.train_tokens=20000", "trainer.max_steps=8",
                "trainer.timing_warmup_steps=2"],
        "attention": {"lengths": [64, 128, 256, 512, 1024], "batch": 2, "d_model": 32, "heads": 2},
    },
}
COMMON = ["logger=none", "trainer.eval_samples=64", "optim.warmup_steps=2", "study=gpu_check"]


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".splitlines()[0][:300]


class Check:
    """Mode, device and output folder shared by the sections."""

    def __init__(self, args: argparse.Namespace):
        self.smoke = args.cpu_smoke
        self.preset = PRESETS["smoke" if self.smoke else "gpu"]
        self.device = torch.device("cpu" if self.smoke else "cuda")
        self.gpu = "cpu" if self.smoke else "cuda"  # the device every "gpu" figure is measured on
        self.out = Path(args.out)
        self.mem_cap = args.mem_cap_mib * 2 ** 20 if args.mem_cap_mib else None
        self.compile = not args.skip_compile
        self.runs = {}  # name -> RunResult, shared between sections

    def run(self, name: str, overrides: list[str]):
        """One harness run under <out>/runs (a rerun of the check reuses finished runs)."""
        res = run(compose([*COMMON, f"out_dir={self.out / 'runs'}", *overrides]))
        self.runs[name] = res
        return res


# ---------------------------------------------------------------------------------------------- sections

def cuda_tests(c: Check) -> dict:
    if c.smoke:
        return {"status": "skipped", "reason": "--cpu-smoke: no CUDA device (the CUDA cases skip themselves)"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-k", "cuda", "--ignore=tests/benchmarks", "-p", "no:cacheprovider",
           "tests"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240)
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    return {"status": "ok" if proc.returncode == 0 else "failed", "reason": None if proc.returncode == 0 else summary,
            "command": " ".join(cmd[1:]), "summary": summary, "wall_s": time.perf_counter() - t0}


def devices(c: Check) -> dict:
    rows = []
    for model, sizes in c.preset["devices"].items():
        for size in sizes:
            row = {"model": model, "target_params": size}
            for side, dev in (("cpu", "cpu"), ("gpu", c.gpu)):
                steps = c.preset["devices_steps"]["cpu" if dev == "cpu" else "cuda"]
                res = c.run(f"devices/{model}/{size:g}/{side}", [
                    f"model={model}", f"model.target_params={int(size)}", f"device={dev}", *c.preset["devices_run"],
                    f"trainer.max_steps={steps}", f"trainer.timing_warmup_steps={max(1, steps // 4)}"])
                row["params"] = res.metrics.get("params")
                row[f"{side}_status"] = res.status
                row[f"{side}_tokens_per_s"] = res.metrics.get("tokens_per_s")
            ok = row["cpu_tokens_per_s"] and row["gpu_tokens_per_s"]
            row["ratio"] = row["gpu_tokens_per_s"] / row["cpu_tokens_per_s"] if ok else None
            rows.append(row)
    failed = [r for r in rows if r["cpu_status"] != "ok" or r["gpu_status"] != "ok"]
    reaching = [r for r in rows if r["ratio"] and r["ratio"] >= SEED_RATIO]
    return {"status": "failed" if failed else "ok",
            "reason": f"{len(failed)} size(s) without two ok runs" if failed else None,
            "rows": rows, "max_ratio": max((r["ratio"] for r in rows if r["ratio"]), default=None),
            "seed_100x_first_at": {m: min((r["params"] for r in reaching if r["model"] == m), default=None)
                                   for m in c.preset["devices"]}}


def mfu(c: Check) -> dict:
    variants = []
    for compiled in (False, True):
        if compiled and not c.compile:
            variants.append({"compile": True, "status": "skipped", "reason": "--skip-compile"})
            continue
        res = c.run(f"mfu/compile={compiled}", ["model=transformer", "model.attention=sdpa", f"device={c.gpu}",
                                                 *c.preset["mfu"], f"trainer.compile={str(compiled).lower()}"])
        m = res.metrics
        variants.append({"compile": compiled, "status": res.status, "reason": res.reason, "params": m.get("params"),
                         **{k: m.get(k) for k in ("mfu", "step_time_s", "tokens_per_s", "achieved_flops_per_s",
                                                  "peak_flops_per_s", "compile_s", "data_time_fraction",
                                                  "attn_flops_share", "peak_mem_bytes")}})
    ok = [v for v in variants if v["status"] == "ok" and v.get("mfu") is not None]
    best = max(ok, key=lambda v: v["mfu"], default=None)
    precision = next(o.split("=")[1] for o in c.preset["mfu"] + ["trainer.precision=fp32"] if "precision" in o)
    name = device_name(c.device)
    return {"status": "ok" if best else "failed", "reason": None if best else "no variant measured an MFU",
            "device_name": name, "precision": precision, "table_peak_flops_per_s": gpu_peak(name, precision),
            "variants": variants, "best_mfu": best and best["mfu"], "goal": MFU_GOAL,
            "goal_met": bool(best and best["mfu"] >= MFU_GOAL), "limit": best and limiter(best)}


def limiter(v: dict) -> str | None:
    """A first guess at what holds MFU under the goal, from the run's own metrics (None when it is met)."""
    if v["mfu"] >= MFU_GOAL:
        return None
    if (v.get("data_time_fraction") or 0) > 0.1:
        return f"input pipeline: {v['data_time_fraction']:.0%} of step time fetching batches"
    if v["step_time_s"] < 0.03:
        return f"launch/Python overhead: {v['step_time_s'] * 1e3:.1f} ms steps are too short to fill the card"
    return "kernel efficiency (matmul shapes, LayerNorm/GELU/optimizer memory traffic): profile the step"


def attention(c: Check) -> dict:
    from analysis.systems import fit_attention
    from harness.models.transformer import CausalSelfAttention

    p = c.preset["attention"]
    B, d, H = p["batch"], p["d_model"], p["heads"]
    dtype = torch.bfloat16 if c.device.type == "cuda" else torch.float32
    elem = torch.finfo(dtype).bits // 8
    rows = []
    for impl in ("manual", "sdpa"):
        oom_at = None
        for n in p["lengths"]:
            row = {"impl": impl, "n": n, "score_matrix_bytes": B * H * n * n * elem}
            if oom_at is not None:
                rows.append({**row, "status": "oom", "reason": f"longer than n={oom_at}, which ran out of memory"})
                continue
            if impl == "manual" and c.mem_cap and row["score_matrix_bytes"] > c.mem_cap:
                oom_at = n
                rows.append({**row, "status": "oom", "reason": f"score matrix {row['score_matrix_bytes'] / 2**20:.0f} "
                             f"MiB > the {c.mem_cap / 2**20:.0f} MiB cap (emulated)"})
                continue
            try:
                rows.append({**row, "status": "ok", **attention_cost(CausalSelfAttention(d, H, impl), B, n, c.device,
                                                                      dtype)})
            except (torch.cuda.OutOfMemoryError, MemoryError) as e:
                oom_at = n
                rows.append({**row, "status": "oom", "reason": one_line(e)})
            finally:
                if c.device.type == "cuda":
                    torch.cuda.empty_cache()
    table = pd.DataFrame([r for r in rows if r["status"] == "ok"])
    exps = {}
    try:
        fit = fit_attention(table.rename(columns={"n": "data.seq_len", "impl": "model.attention"}),
                            memory="mem_bytes")
        for r in fit.exponents.to_dict(orient="records"):
            exps[f"{r['impl']}_{r['metric']}"] = {k: r[k] for k in ("k", "k_low", "k_high", "n_min", "n_max")}
    except Exception as e:  # noqa: BLE001 - too few ok lengths: the rows still stand
        exps["error"] = one_line(e)
    oom = [r["n"] for r in rows if r["impl"] == "manual" and r["status"] == "oom"]
    return {"status": "ok" if len(table) else "failed", "reason": None if len(table) else "no length ran",
            "shape": {"batch": B, "d_model": d, "heads": H, "dtype": str(dtype).removeprefix("torch.")},
            "memory_source": "torch.cuda.max_memory_allocated over the call" if c.device.type == "cuda"
            else "bytes saved for backward + output (CPU has no allocator counter)",
            "rows": rows, "exponents": exps, "manual_oom_length": min(oom, default=None)}


def attention_cost(layer: torch.nn.Module, B: int, n: int, device: torch.device, dtype) -> dict:
    """Median forward + backward time (3 timed, 1 warm-up) of one attention layer and its memory."""
    layer = layer.to(device=device, dtype=dtype)
    x = torch.randn(B, n, layer.qkv.in_features, device=device, dtype=dtype, requires_grad=True)
    saved: list[int] = []

    def fwd_bwd():
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel() * t.element_size()) or t,
                                                      lambda t: t):
            y = layer(x)
        saved.append(y.numel() * y.element_size())
        y.float().sum().backward()

    fwd_bwd()
    times = []
    for _ in range(3):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        sync(device)
        t0 = time.perf_counter()
        fwd_bwd()
        sync(device)
        times.append(time.perf_counter() - t0)
    mem = torch.cuda.max_memory_allocated(device) - base if device.type == "cuda" else sum(saved)
    return {"attn_time_s": median(times), "mem_bytes": mem}


def plan_memory(c: Check) -> dict:
    from harness.plan import estimate

    rows, seen, cuda = [], set(), c.device.type == "cuda"
    for name, res in c.runs.items():
        if res.status != "ok" or "compile=True" in name or not name.startswith(("mfu", "devices/transformer")):
            continue
        if res.run_dir in seen or (cuda and res.metrics.get("peak_mem_reserved_bytes") is None):
            continue  # the same run twice (smoke), or a CPU run in a GPU check: its peak is the process RSS
        seen.add(res.run_dir)
        est = estimate(_config_of(res))["memory_bytes"]
        measured = res.metrics["peak_mem_bytes"]
        within = abs(est / measured - 1) <= PLAN_TOLERANCE if cuda else None
        rows.append({"run": name, "params": res.metrics["params"], "estimate_bytes": est, "measured_bytes": measured,
                     "ratio": est / measured, "within_goal": within})
    if not rows:
        return {"status": "failed", "reason": "no ok run to compare against", "rows": []}
    note = None if cuda else ("CPU: the measured peak is the process RSS (interpreter, torch, "
                                                  "data), so the ratio says nothing about the estimate")
    return {"status": "ok", "reason": None, "goal": PLAN_TOLERANCE, "note": note, "rows": rows,
            "all_within_goal": all(r["within_goal"] for r in rows) if cuda else None}


def _config_of(res):
    """The config a recorded run was composed from (result.json keeps it resolved)."""
    from omegaconf import OmegaConf

    return OmegaConf.create(json.loads((res.run_dir / "result.json").read_text())["config"])


# The measurements first: if the time budget runs out, the test suite's CUDA cases are what is left out.
SECTIONS = {"devices": devices, "mfu": mfu, "attention": attention, "plan_memory": plan_memory,
            "cuda_tests": cuda_tests}


# ---------------------------------------------------------------------------------------------- output

def fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3g}" if math.isfinite(v) else str(v)
    return str(v)


def compact(v) -> str:
    """A value on one markdown line, nested dicts included, numbers at 3 significant digits."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {compact(x)}" for k, x in v.items()) + "}"
    return fmt(v)


def markdown(report: dict) -> str:
    out = [f"# GPU check ({report['mode']})", "",
           f"device: {report['device_name']}; torch {report['torch']}; started {report['started']}; "
           f"wall {fmt(report.get('wall_s'))} s", "", "| section | status | reason |", "|---|---|---|"]
    out += [f"| {k} | {s['status']} | {fmt(s.get('reason'))} |" for k, s in report["sections"].items()]
    for name, s in report["sections"].items():
        tables = {k: v for k, v in s.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
        scalars = {k: v for k, v in s.items() if k not in tables and k not in ("status", "reason")}
        if not tables and not scalars:
            continue
        out += ["", f"## {name}", ""]
        out += [f"- {k}: {compact(v)}" for k, v in scalars.items()]
        for rows in tables.values():
            cols = list(dict.fromkeys(k for r in rows for k in r))
            out += ["", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            out += ["| " + " | ".join(fmt(r.get(k)) for k in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "gpu_check.json", json.dumps(report, indent=1, default=str))
    write_atomic(out / "gpu_check.md", markdown(report))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="CPU, tiny sizes, same sections and keys (< 1 min)")
    parser.add_argument("--out", default="reports/gpu_check", help="folder for gpu_check.json, gpu_check.md, runs/")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="sections not started by then are recorded skipped (default 450 s: inside 8 minutes)")
    parser.add_argument("--mem-cap-mib", type=float, default=None,
                        help="emulated memory of the card for manual attention (default: 8 with --cpu-smoke)")
    parser.add_argument("--skip-compile", action="store_true", help="leave out the trainer.compile=true MFU run")
    parser.add_argument("--only", nargs="*", choices=list(SECTIONS), help="run only these sections")
    args = parser.parse_args(argv)
    if args.cpu_smoke and args.mem_cap_mib is None:
        args.mem_cap_mib = 8.0
    c = Check(args)
    report = {"mode": "cpu-smoke" if c.smoke else "gpu", "device_name": None, "torch": torch.__version__,
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "budget_s": args.budget_s,
              "sections": {}}
    t0 = time.perf_counter()
    if not c.smoke and not torch.cuda.is_available():
        report["device_name"] = "none"
        report["sections"] = {k: {"status": "blocked", "reason": "no CUDA device (use --cpu-smoke on a CPU)"}
                              for k in SECTIONS}
        write(report, c.out)
        print(f"gpu_check: no CUDA device; wrote {c.out}/gpu_check.json", file=sys.stderr)
        return 1
    report["device_name"] = device_name(c.device)
    for name, section in SECTIONS.items():
        if args.only and name not in args.only:
            continue
        spent = time.perf_counter() - t0
        if spent > args.budget_s:
            result = {"status": "skipped", "reason": f"time budget: {spent:.0f} s > {args.budget_s:.0f} s spent"}
        else:
            ts = time.perf_counter()
            try:
                result = section(c)
            except Exception as e:  # noqa: BLE001 - one broken section is recorded; the others still run
                result = {"status": "failed", "reason": one_line(e)}
            result["wall_s"] = time.perf_counter() - ts
        report["sections"][name] = result
        report["wall_s"] = time.perf_counter() - t0
        write(report, c.out)
        print(f"gpu_check: {name}: {result['status']}" + (f" ({result['reason']})" if result.get("reason") else ""),
              file=sys.stderr)
    print(f"gpu_check: wrote {c.out}/gpu_check.json and gpu_check.md in {report['wall_s']:.0f} s", file=sys.stderr)
    return 0 if all(s["status"] in ("ok", "skipped") for s in report["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
