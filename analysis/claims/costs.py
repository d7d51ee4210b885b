"""Claims about hardware and money: GPU speedup, the memory of a 70B model, idle GPUs, diminishing returns."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from analysis.claims.claim import Blocked, Claim, Verdict
from analysis.claims.lab import Lab

# --- gpu_speedup: the devices study --------------------------------------------------------------------------


def measure_gpu_speedup(lab: Lab) -> tuple[dict[str, Any], Path]:
    import torch

    if not torch.cuda.is_available():  # the cuda runs would only be recorded as skipped
        raise Blocked("no GPU on this machine: the devices study's CUDA runs cannot run")
    from analysis.systems import device_speedup

    table = device_speedup(lab.ok("devices"))

    def draw(fig):
        ax = fig.add_subplot()
        ax.semilogx(table.params, table.speedup, "o-")
        ax.set(xlabel="parameters", ylabel="GPU / CPU tokens/s", title=f"devices study: {torch.cuda.get_device_name()}")
    return {"gpu": torch.cuda.get_device_name(), "by_size": table[["params", "cpu", "cuda", "speedup"]]
            .to_dict("records")}, lab.figure("gpu_speedup", draw)


def rule_gpu_speedup(m: dict[str, Any]) -> Verdict:
    """holds if the largest model's GPU/CPU speedup is within 30–300× (about 100×); a correction if the GPU is
    faster by another factor; does not hold if it is not faster."""
    top = max(m["by_size"], key=lambda r: r["params"])
    said = f"{top['speedup']:.3g}× at {top['params']:.3g} parameters on {m['gpu']}"
    if 30 <= top["speedup"] <= 300:
        return Verdict("holds", said)
    return Verdict("holds with a correction" if top["speedup"] > 1 else "does not hold", said)


# --- memory_70b: harness-cost's memory breakdown -------------------------------------------------------------

GB = 1e9


def measure_memory_70b(lab: Lab) -> tuple[dict[str, Any], Path]:
    from analysis import memory_per_gpu

    fp16 = memory_per_gpu(70e9, precision="fp16", optimizer="adam", activations=False)
    parts = {k: v / GB for k, v in fp16.items()}

    def draw(fig):
        ax = fig.add_subplot()
        names = ["weights", "gradients", "optimizer"]
        ax.bar(names, [parts[n] for n in names])
        ax.axhline(140, ls=":", color="k", label="claim: 140 GB")
        ax.set(ylabel="GB (10⁹ bytes)", title="70B parameters, fp16 mixed-precision Adam (harness-cost)")
        ax.legend()
    return {"weights_gb": parts["weights"], "gradients_gb": parts["gradients"], "optimizer_gb": parts["optimizer"],
            "training_state_gb": parts["total"]}, lab.figure("memory_70b", draw)


def rule_memory_70b(m: dict[str, Any]) -> Verdict:
    """holds if fp16 weights alone take ≥ 140 GB (10⁹ bytes); does not hold otherwise."""
    said = (f"fp16 weights {m['weights_gb']:.0f} GB; with gradients and Adam state {m['training_state_gb']:.0f} GB "
            "before activations")
    return Verdict("holds" if m["weights_gb"] >= 140 * (1 - 1e-9) else "does not hold", said)


# --- utilisation_cost: harness-cost's idle-cost model ---------------------------------------------------------

CLAIMED_USD = (30e3, 50e3)


def measure_utilisation_cost(lab: Lab) -> tuple[dict[str, Any], Path]:
    from analysis.cost import idle_cost_per_day

    prices = (2.0, 3.0)
    lost = [idle_cost_per_day(1000, p, 0.5, best=0.9) for p in prices]

    def draw(fig):
        ax = fig.add_subplot()
        ax.bar([f"${p:g}/GPU-h" for p in prices], lost, label="measured (harness-cost)")
        ax.axhspan(*CLAIMED_USD, color="orange", alpha=0.3, label="claim: $30–50k")
        ax.set(ylabel="USD lost per day", title="1,000 GPUs at 50% instead of 90% utilisation")
        ax.legend()
    return {"gpus": 1000, "utilisation": 0.5, "vs": 0.9, "usd_per_gpu_hour": list(prices),
            "usd_lost_per_day": lost}, lab.figure("utilisation_cost", draw)


def rule_utilisation_cost(m: dict[str, Any]) -> Verdict:
    """holds if the computed daily loss range lies inside the claimed $30–50k (±10%); a correction if it is
    within 3× of it; does not hold otherwise."""
    lo, hi = min(m["usd_lost_per_day"]), max(m["usd_lost_per_day"])
    said = f"${lo:,.0f}–${hi:,.0f} a day lost (claim: ${CLAIMED_USD[0]:,.0f}–${CLAIMED_USD[1]:,.0f})"
    if lo >= 0.9 * CLAIMED_USD[0] and hi <= 1.1 * CLAIMED_USD[1]:
        return Verdict("holds", said)
    if lo >= CLAIMED_USD[0] / 3 and hi <= 3 * CLAIMED_USD[1]:
        return Verdict("holds with a correction", said)
    return Verdict("does not hold", said)


# --- diminishing_returns: the compute frontier of a fitted law -------------------------------------------------


def measure_diminishing_returns(lab: Lab) -> tuple[dict[str, Any], Path]:
    from analysis.chinchilla import HOFFMANN, fit_chinchilla
    from analysis.columns import roles
    from analysis.laws import frontier_exponent as gamma

    table = lab.ok("isoflop")
    r = roles(table)
    fit = fit_chinchilla(table, r.N, r.D, r.loss, workers=1)
    g = float(gamma({k: np.asarray(v) for k, v in fit.params.items()}))
    g_ref = float(gamma({k: np.asarray(v) for k, v in HOFFMANN.items()}))
    p = fit.params
    C = np.geomspace(1e8, 1e14, 50)

    def draw(fig):
        ax = fig.add_subplot()
        n, d = fit.optimal_allocation(C)
        ax.loglog(C, fit.predict(n, d) - p["E"], label=f"fitted: L − E ∝ C^−{g:.3f}")
        ax.set(xlabel="compute C (FLOPs)", ylabel="reducible loss L − E", title="isoflop study: compute frontier")
        ax.legend()
    return {"gamma": g, "compute_per_halving": 2 ** (1 / g) if g > 0 else None,
            "reducible_fraction_kept_per_doubling": 2 ** -g, "law": {k: float(v) for k, v in p.items()},
            "hoffmann2022_gamma": g_ref, "hoffmann2022_compute_per_halving": 2 ** (1 / g_ref)}, \
        lab.figure("diminishing_returns", draw)


def rule_diminishing_returns(m: dict[str, Any]) -> Verdict:
    """holds with a correction whenever the frontier's exponent γ is positive: a doubling of compute removes a
    fixed fraction 1 − 2^−γ of the reducible loss (not a fixed amount), so each halving of it costs 2^(1/γ)×
    more compute; does not hold if γ ≤ 0.005 (more compute buys nothing); inconclusive if no γ was fitted."""
    g = m["gamma"]
    if g is None or not np.isfinite(g):
        return Verdict("inconclusive", "no frontier exponent was fitted")
    if g <= 0.005:
        return Verdict("does not hold", f"γ = {g:.3g}: the fitted frontier is flat")
    return Verdict("holds with a correction", f"L − E ∝ C^−{g:.3f}: each doubling keeps {2 ** -g:.1%} of the "
                   f"reducible loss, each halving of it costs {2 ** (1 / g):.3g}× more compute "
                   f"(Hoffmann 2022: {m['hoffmann2022_compute_per_halving']:.3g}×)")


CLAIMS = [
    Claim("gpu_speedup", "GPUs train about 100× faster than CPUs.",
          "The devices study: tokens/s of the same Transformer on CPU and GPU at each size.",
          measure_gpu_speedup, rule_gpu_speedup),
    Claim("memory_70b", "A 70B-parameter model needs at least 140 GB for its FP16 weights alone.",
          "harness-cost's memory breakdown (analysis.memory_per_gpu) for 70e9 parameters in fp16 with Adam.",
          measure_memory_70b, rule_memory_70b),
    Claim("utilisation_cost", "1,000 GPUs at 50% instead of 90% utilisation waste $30–50k a day at $2–3 per "
          "GPU-hour.", "harness-cost's idle-cost model (analysis.cost.idle_cost_per_day) at $2 and $3 per GPU-hour.",
          measure_utilisation_cost, rule_utilisation_cost),
    Claim("diminishing_returns", "Doubling compute gives a fixed, small improvement in loss.",
          "The isoflop study, L(N, D) fitted (approach 3), the compute-optimal frontier's exponent γ of L − E vs C.",
          measure_diminishing_returns, rule_diminishing_returns),
]
