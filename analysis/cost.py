"""The cost of scale: a fitted law and measured efficiency -> FLOPs, GPU-hours, days, money and memory per GPU.

    from analysis import plan_cost
    plan = plan_cost(law="runs/isoflop/report/fits.json", compute=1e21, gpu="H100", gpus=64, usd_per_gpu_hour=2.5)
    plan.to_dict(); print(plan.text()); print(plan.markdown()); plan.plot("out/")

Conventions, stated in every plan:

- compute C = k·N·D with k = 6 (forward + backward, N all parameters, as the isoflop study counts) unless the
  law's fits.json says otherwise (``flops_per_param_token``);
- compute-optimal allocation and predicted loss from L(N, D) = E + A/N^α + B/D^β (``analysis.laws``);
  along that frontier the reducible loss L − E falls as C^−γ with γ = αβ/(α+β), so each halving of it
  costs 2^(1/γ) times more compute;
- time = C / (GPUs · peak · MFU); the peak is the datasheet dense rate at ``precision`` (``harness.hardware``);
- memory per GPU: ``harness.memory`` (ZeRO's bytes per parameter, sharded as far as ``sharding`` goes, and
  Korthikanti et al.'s activations), printed in GiB;
- intervals are the central ``analysis.laws.INTERVAL`` (90%) of the same figure over the law's bootstrap
  replicas, when it has them.

The law is read by ``analysis.cost_law``, inputs checked by ``analysis.cost_inputs``, the plan printed by
``analysis.cost_render`` and drawn by ``analysis.cost_plot``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from analysis import cost_render
from analysis.cost_inputs import CostError, bad, check_memory_knobs, number, resolve_mfu
from analysis.cost_law import PUBLISHED, Law, load_law
from analysis.laws import (
    INTERVAL,
    chinchilla_loss,
    compute_for_loss,
    frontier_exponent,
    optimal_allocation,
    percentile_interval,
    tokens_for_params,
)
from harness.efficiency import MfuModel
from harness.hardware import GPUS, gpu_key, gpu_memory, gpu_peak
from harness.memory import format_bytes, memory_per_gpu, min_gpus, model_shape

__all__ = ["CostError", "CostPlan", "Law", "idle_cost_per_day", "load_law", "plan_cost"]

UTILISATIONS = (0.3, 0.5, 0.7, 0.9)
DEFAULT_USD = 2.5  # per GPU-hour, the middle of the seed's $2–3
LAW_NEEDED = [*PUBLISHED, "PATH/fits.json"]


def idle_cost_per_day(gpus: int, usd_per_gpu_hour: float, utilisation: float, best: float = 0.9) -> float:
    """Dollars a day a cluster pays for work it does not do: gpus · 24 · price · (best − utilisation)."""
    return gpus * 24 * usd_per_gpu_hour * (best - utilisation)


@dataclass
class CostPlan:
    """One planned run: target, law, hardware, the figures (with intervals) and the tables beside them."""

    figures: dict[str, Any]
    intervals: dict[str, list[float]]
    inputs: dict[str, Any]
    notes: list[str]
    utilisation: pd.DataFrame
    frontier: pd.DataFrame | None
    halvings: pd.DataFrame | None
    law: Law | None
    level: float = INTERVAL

    def to_dict(self) -> dict:
        """Plain numbers for JSON: the figures, each interval as `<figure>_interval<level%>`, inputs, tables."""
        from harness.jsonsafe import json_ready

        key = f"interval{round(self.level * 100)}"
        out = dict(self.figures)
        for name, iv in self.intervals.items():
            out[f"{name}_{key}"] = iv
        out.update(inputs=self.inputs, notes=self.notes, utilisation=self.utilisation.to_dict("records"))
        if self.halvings is not None:
            out["halvings"] = self.halvings.to_dict("records")
        if self.law is not None:
            out["law"] = {"source": self.law.source, "params": self.law.params,
                          "bootstrap": 0 if self.law.samples is None else len(self.law.samples),
                          "fit_range": {k: list(v) for k, v in self.law.fit_range.items()}}
        return json_ready(out)

    def text(self) -> str:
        """The plan as aligned lines for a terminal."""
        return cost_render.text(self)

    def markdown(self) -> str:
        """The plan as a markdown section."""
        return cost_render.markdown(self)

    def plot(self, out_dir: str | Path) -> list[Path]:
        """Loss against money and against compute along the frontier (PNG + SVG); [] without a law."""
        if self.frontier is None:
            return []
        from analysis.cost_plot import plot_cost_frontier

        return plot_cost_frontier(self, Path(out_dir) / "cost_frontier")


@dataclass
class _Hardware:
    """The checked hardware and memory knobs of a plan."""

    gpu: str
    gpus: int | None
    price: float
    memory: dict[str, Any]  # harness.memory.memory_per_gpu's keywords


def plan_cost(law: str | Path | Mapping[str, float] | Law | None = None, *, compute: float | None = None,
              params: float | None = None, tokens: float | None = None, tokens_per_param: float | None = None,
              loss: float | None = None, gpu: str = "H100", gpus: int | None = None, mfu: float | None = None,
              mfu_from: str | Path | pd.DataFrame | None = None, model: str | None = "transformer",
              usd_per_gpu_hour: float = DEFAULT_USD, precision: str = "bf16", optimizer: str = "adam",
              seq_len: int = 2048, micro_batch: int = 1, layers: int | None = None, d_model: int | None = None,
              checkpointing: bool = False, sharding: str = "none", level: float = INTERVAL) -> CostPlan:
    """Plan one run: a target (``compute``, ``params`` [+ ``tokens`` or ``tokens_per_param``], or ``loss``),
    a law (needed unless the target fixes N and D), hardware and memory knobs. See the module docstring.

    ``gpus`` defaults to the fewest that hold the run. ``model`` picks the MFU curve of that model name in
    an ``mfu_from`` study. Raises CostError (one line naming the key) on bad input.
    """
    hw = _check_hardware(gpu, gpus, usd_per_gpu_hour, dict(
        precision=precision, optimizer=optimizer, sharding=sharding, seq_len=seq_len, micro_batch=micro_batch,
        layers=layers, d_model=d_model, checkpointing=bool(checkpointing)))
    if not 0 < level < 1:
        raise bad("level", level, "must be in (0, 1)")
    the_law = law if isinstance(law, Law) or law is None else load_law(law)
    k = the_law.flops_per_param_token if the_law else 6.0
    p = the_law.draws() if the_law else None
    N, D, target, notes = _allocate(p, k, compute, params, tokens, tokens_per_param, loss)
    C = k * N * D
    eff = resolve_mfu(mfu, mfu_from)
    fig, series = _figures(N, D, C, k, hw, eff, model, notes)
    if p is not None:
        series["predicted_loss"] = chinchilla_loss(p, N, D)
        _law_figures(fig, p, series["predicted_loss"], notes)
    if not 1 <= D[0] / N[0] <= 1e4:
        notes.append(f"{D[0] / N[0]:.3g} tokens per parameter is far from any trained regime "
                     "(compute-optimal language models train on about 20)")
    intervals = _intervals(series, level) if p is not None and len(p["E"]) > 1 else {}
    if the_law is not None and the_law.fit_range:
        _beyond_fit(fig, notes, the_law, {"C": C[0], "N": N[0], "D": D[0]})
    util = _utilisation(float(C[0]), fig["mfu"], fig["peak_flops_per_s"], fig["gpus"], hw.price)
    frontier = halvings = None
    if p is not None and np.isfinite(C[0]):
        frontier, halvings, fig["halving_note"] = _frontier(p, float(C[0]), k, the_law, eff, model,
                                                            fig["peak_flops_per_s"], hw.price, level)
    inputs = {"target": target, "gpu": hw.gpu, "gpus": fig["gpus"], **{
        key: hw.memory[key] for key in ("precision", "optimizer", "sharding", "seq_len", "micro_batch",
                                        "checkpointing")}, "usd_per_gpu_hour": hw.price, "model": model,
              "mfu_model": eff.to_dict()}
    return CostPlan(fig, intervals, inputs, notes, util, frontier, halvings, the_law, level)


def _check_hardware(gpu: str, gpus: int | None, price: float, memory: dict[str, Any]) -> _Hardware:
    """The GPU's table key, GPU count, price and memory knobs, each checked (CostError naming the key)."""
    key = gpu_key(str(gpu))
    if key is None:
        raise bad("gpu", gpu, "unknown GPU", GPUS)
    check_memory_knobs(memory["precision"], memory["optimizer"], memory["sharding"])
    for name in ("seq_len", "micro_batch"):
        memory[name] = number(name, memory[name], integer=True, allow_none=False)
    for name in ("layers", "d_model"):
        memory[name] = number(name, memory[name], integer=True)
    return _Hardware(key, number("gpus", gpus, integer=True),
                     number("usd_per_gpu_hour", price, allow_none=False, strict=False), memory)


def _allocate(p: dict[str, np.ndarray] | None, k: float, compute, params, tokens, tokens_per_param,
              loss) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """The target -> (N, D) per draw of the law (index 0: the fitted law), its label and notes."""
    targets = {name: v for name, v in (("compute", compute), ("params", params), ("loss", loss)) if v is not None}
    if len(targets) != 1:
        raise bad("target", ",".join(targets) or "none", "give exactly one of compute=, params=, loss=",
                  ("compute", "params", "loss"))
    if tokens is not None and tokens_per_param is not None:
        raise bad("tokens", tokens, "give tokens= or tokens_per_param=, not both")
    if tokens is not None and params is None:
        raise bad("tokens", tokens, "goes with params=")
    draws = 1 if p is None else len(p["E"])
    if compute is not None:
        C = number("compute", compute)
        if tokens_per_param is not None:
            r = number("tokens_per_param", tokens_per_param)
            N = np.full(draws, math.sqrt(C / (k * r)))
            return N, r * N, f"C = {C:.3g} FLOPs", []
        if p is None:
            raise bad("law", None, "compute= without tokens_per_param= needs a law to allocate N and D", LAW_NEEDED)
        return (*optimal_allocation(p, C, k), f"C = {C:.3g} FLOPs", [])
    if params is not None:
        return _allocate_params(p, k, number("params", params), tokens, tokens_per_param)
    return _allocate_loss(p, k, number("loss", loss))


def _allocate_params(p, k: float, n: float, tokens, tokens_per_param) -> tuple[np.ndarray, np.ndarray, str, list]:
    """N fixed: D given, from tokens per parameter, or the law's compute-optimal D for N."""
    if tokens is not None:
        d = np.array([number("tokens", tokens)])
    elif tokens_per_param is not None:
        d = np.array([number("tokens_per_param", tokens_per_param) * n])
    elif p is None:
        raise bad("law", None, "params= without tokens= or tokens_per_param= needs a law for the "
                               "compute-optimal tokens", LAW_NEEDED)
    else:
        d = tokens_for_params(p, n, k)
    size = max(len(d), 1 if p is None else len(p["E"]))
    N, D = np.full(size, n), np.broadcast_to(d, (size,)).astype(float)
    target = f"N = {n:.3g} params" + (f", D = {float(d[0]):.3g} tokens" if tokens or tokens_per_param else
                                      ", compute-optimal D")
    return N, D, target, []


def _allocate_loss(p, k: float, target_loss: float) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """The compute-optimal run that reaches ``target_loss`` under each draw of the law."""
    if p is None:
        raise bad("law", None, "loss= needs a law", LAW_NEEDED)
    E = p["E"][0]
    if target_loss <= E:
        raise bad("loss", target_loss, f"at or below the law's floor E = {E:.4g}: no amount of compute reaches it")
    Cs = compute_for_loss(p, target_loss, k)
    notes = []
    unreachable = int(np.isnan(Cs[1:]).sum())
    if unreachable:
        notes.append(f"{unreachable} of {len(Cs) - 1} bootstrap replicas have E ≥ {target_loss:g}: "
                     "the loss is out of their reach (the interval's upper end is open)")
    return (*optimal_allocation(p, Cs, k), f"loss = {target_loss:g}", notes)


def _figures(N: np.ndarray, D: np.ndarray, C: np.ndarray, k: float, hw: _Hardware, eff: MfuModel,
             model: str | None, notes: list[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The plan's figures at the fitted law (index 0), and each figure over all draws for its interval."""
    precision = hw.memory["precision"]
    peak, capacity = gpu_peak(hw.gpu, precision), gpu_memory(hw.gpu)
    mfu_note = eff.predict(float(N[0]), model)[1]
    mfus = np.array([eff.predict(float(n), model)[0] if np.isfinite(n) else np.nan for n in N])
    if mfu_note:
        notes.append(f"MFU extrapolated: {mfu_note}")
    fewest = [min_gpus(float(n), capacity, **hw.memory) if np.isfinite(n) else None for n in N]
    n_gpus = _gpu_count(hw, fewest[0], capacity, notes)
    mems = [memory_per_gpu(float(n), n_gpus, **hw.memory) if np.isfinite(n) else None for n in N]
    gpu_hours = C / (peak * mfus) / 3600
    days, usd = gpu_hours / n_gpus / 24, gpu_hours * hw.price
    L, h = model_shape(float(N[0]), hw.memory["layers"], hw.memory["d_model"])
    given = hw.memory["layers"] and hw.memory["d_model"]
    notes.append(f"memory: activations for {hw.memory['micro_batch']} sequence(s) of {hw.memory['seq_len']} tokens "
                 f"per GPU, shape {L} layers × d_model {h}" +
                 ("" if given else " (assumed: d_model = 128·layers, N = 12·layers·d_model²)") +
                 ("; activation checkpointing" if hw.memory["checkpointing"] else "") +
                 "; logits and buffers not counted")
    fig = {"params": float(N[0]), "tokens": float(D[0]), "flops": float(C[0]),
           "flops_convention": f"C = {k:g}·N·D (N all parameters)", "predicted_loss": None,
           "gpu_hours": float(gpu_hours[0]), "days": float(days[0]), "usd": float(usd[0]),
           "gpus": n_gpus, "gpus_min": fewest[0], "mfu": float(mfus[0]), "mfu_source": eff.describe(),
           "peak_flops_per_s": peak, "gpu_memory_bytes": capacity,
           "memory_per_gpu_bytes": mems[0], "fits": fewest[0] is not None and n_gpus >= fewest[0]}
    series = {"params": N, "tokens": D, "flops": C, "gpu_hours": gpu_hours, "days": days, "usd": usd,
              "memory_per_gpu_bytes": np.array([m["total"] if m else np.nan for m in mems]),
              "gpus_min": np.array([np.inf if f is None else f for f in fewest], dtype=float)}
    return fig, series


def _gpu_count(hw: _Hardware, fewest: int | None, capacity: float, notes: list[str]) -> int:
    """The GPUs planned on: the given count (noting when it cannot hold the run), else the fewest that do."""
    if hw.gpus is None:
        n = fewest or 1
        notes.append(f"gpus not given: the fewest that hold the run ({n})" if fewest else
                     "gpus not given and no count holds the run without sharding: planned on 1 GPU")
        return n
    if fewest is None or hw.gpus < fewest:
        notes.append(f"does not fit: {hw.gpus} × {hw.gpu} ({format_bytes(capacity)} each) cannot hold the run "
                     f"with sharding={hw.memory['sharding']}" +
                     (f"; it needs at least {fewest} GPUs" if fewest else
                      "; shard it (sharding=optimizer|gradients|full)"))
    return hw.gpus


def _law_figures(fig: dict[str, Any], p: dict[str, np.ndarray], loss: np.ndarray, notes: list[str]) -> None:
    """Predicted loss, the floor and the frontier exponent, with a warning when the law is implausibly flat."""
    fig["predicted_loss"] = float(loss[0])
    fig["E"] = float(p["E"][0])
    g0 = float(frontier_exponent(p)[0])
    fig["reducible_loss_exponent"] = g0
    fig["compute_per_halving"] = 2 ** (1 / g0)
    if g0 < 0.05:
        notes.append(f"suspect law: along the frontier the reducible loss falls only as C^−{g0:.3g}, so each "
                     f"halving costs {2 ** (1 / g0):.3g}× more compute; a law this flat usually means the "
                     "fitted runs barely differed in loss — check its intervals before trusting the plan")


def _intervals(series: dict[str, np.ndarray], level: float) -> dict[str, list[float | None]]:
    """Each figure's central ``level`` over the bootstrap replicas (index 1 on); none for a figure the
    target fixes. A replica that cannot reach the target (NaN) opens the interval's upper end (None)."""
    intervals = {}
    for name, values in series.items():
        values = np.asarray(values, dtype=float)
        reps = values[1:]
        if np.allclose(reps, reps[0], equal_nan=True) and np.isclose(reps[0], values[0]):
            continue
        lo, hi = percentile_interval(np.where(np.isnan(reps), np.inf, reps), level)
        intervals[name] = [float(lo), float(hi) if np.isfinite(hi) else None]
    return intervals


def _beyond_fit(fig: dict[str, Any], notes: list[str], law: Law, planned: dict[str, float]) -> None:
    """How far the plan lies beyond the largest fitted C, N and D: `<X>_over_fitted_max` and a first note."""
    parts = []
    for name, value in planned.items():
        if name in law.fit_range and np.isfinite(law.fit_range[name][1]):
            ratio = value / law.fit_range[name][1]
            fig[f"{name}_over_fitted_max"] = float(ratio)
            times = f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.3g}"
            parts.append(f"{name} {times}× the largest fitted ({law.fit_range[name][1]:.3g})")
    if parts:
        notes.insert(0, "beyond the fitted range: " + ", ".join(parts) +
                     " — an extrapolation; the intervals cover the fit's uncertainty, not a change of regime")


def _utilisation(C: float, mfu: float, peak: float, gpus: int, price: float) -> pd.DataFrame:
    """The same run at this plan's MFU and at 30/50/70/90%: days, GPU-hours, money, and what is lost vs 90%."""
    best = max(UTILISATIONS)
    rows = []
    for u in ([] if mfu in UTILISATIONS else [mfu]) + list(UTILISATIONS):
        gh = C / (peak * u) / 3600
        label = f"{u:.0%}" if u in UTILISATIONS else f"{u:.3g} (this plan)"
        rows.append({"MFU": label, "days": gh / gpus / 24, "GPU-hours": gh, "USD": gh * price,
                     "USD lost per day vs 90%": idle_cost_per_day(gpus, price, u, best),
                     "USD extra vs 90%": gh * price - C / (peak * best) / 3600 * price})
    return pd.DataFrame(rows)


def _frontier(p, C: float, k: float, law: Law, eff: MfuModel, model: str | None, peak: float, price: float,
              level: float) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Loss (with band) and money along the compute-optimal frontier, and where each halving of L − E lands."""
    lo = C / 1e3  # from the smallest fitted run when that is lower
    fitted = [c for c in law.fit_range.get("C", ()) if np.isfinite(c)]
    if fitted:
        lo = min(lo, fitted[0])
    grid = np.geomspace(lo, C * 10, 60)
    central = {k_: v[:1] for k_, v in p.items()}
    n_opt, d_opt = optimal_allocation(central, grid, k)
    loss = chinchilla_loss(central, n_opt, d_opt)
    usd = np.array([c / (peak * eff.predict(float(n), model)[0]) / 3600 * price for c, n in zip(grid, n_opt)])
    frame = pd.DataFrame({"C": grid, "N_opt": n_opt, "D_opt": d_opt, "loss": loss, "usd": usd})
    if len(p["E"]) > 1:
        reps = {k_: v[1:, None] for k_, v in p.items()}
        n_r, d_r = optimal_allocation(reps, grid[None, :], k)
        frame["loss_lo"], frame["loss_hi"] = percentile_interval(chinchilla_loss(reps, n_r, d_r), level, axis=0)
    g = float(frontier_exponent(central)[0])
    factor = 2 ** (1 / g)
    E = float(central["E"][0])
    rows, c = [], lo
    while c <= C * 10 * (1 + 1e-9):
        n, d = optimal_allocation(central, c, k)
        cost = c / (peak * eff.predict(float(n[0]), model)[0]) / 3600 * price
        red = float(chinchilla_loss(central, n, d)[0]) - E
        previous = rows[-1]["USD"] if rows else float("nan")
        rows.append({"halving": len(rows), "reducible loss": red, "loss": red + E, "C": c, "USD": cost,
                     "× USD of previous": cost / previous})
        c *= factor
    note = (f"Diminishing returns: along the frontier L − E ∝ C^−{g:.3f}, so each halving of the reducible loss "
            f"costs {factor:,.3g}× more compute (money grows by that factor times any change in MFU).")
    return frame, pd.DataFrame(rows), note
