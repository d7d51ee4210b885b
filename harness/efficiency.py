"""Measured efficiency instead of a constant: MFU as a function of model size, fitted on a collected study.

Two efficiencies, one model:

- `mfu` (recorded per run: analytic FLOPs per step / median step time / peak), the sustained rate that
  `harness-cost` scales a large run by;
- `wall_mfu` = flops_total / (peak_flops_per_s * wall_s), everything a run spends (warm-up, evaluation,
  slow steps, writing results) charged to its FLOPs, which is what `harness-plan` needs to predict the
  wall time of a study of small runs.

Per model name, log(efficiency) is fitted linear in log(params) when the runs span at least two sizes,
else the median is used; a size outside the measured range is clamped to the nearest measured size, with
a note. Torch-free (numpy and pandas only).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

COLUMNS = ("mfu", "wall_mfu")


@dataclass(frozen=True)
class EfficiencyCurve:
    """log(efficiency) = intercept + slope * log(params), valid over `params_range`."""

    model: str
    slope: float
    intercept: float
    params_range: tuple[float, float]
    n_runs: int

    def at(self, params: float) -> tuple[float, str]:
        """(efficiency, note): the note is empty inside the measured sizes, else says where it clamped."""
        lo, hi = self.params_range
        p = min(max(float(params), lo), hi)
        note = ""
        if p != params:
            side = "largest" if params > hi else "smallest"
            note = (f"{self.model}: {params:.3g} params is outside the measured {lo:.3g}–{hi:.3g}; "
                    f"efficiency held at the {side} measured size's")
        return math.exp(self.intercept + self.slope * math.log(p)), note

    def to_dict(self) -> dict:
        return {"model": self.model, "slope": self.slope, "intercept": self.intercept,
                "params_range": list(self.params_range), "n_runs": self.n_runs}


@dataclass
class MfuModel:
    """Efficiency per model name (and `all`, pooled), with where it came from."""

    column: str
    source: str
    curves: dict[str, EfficiencyCurve] = field(default_factory=dict)

    def predict(self, params: float, model: str | None = None) -> tuple[float, str]:
        """(efficiency, note) for a model of `params` parameters; an unknown or absent name uses `all`."""
        curve = self.curves.get(model) if model else None
        return (curve or self.curves["all"]).at(params)

    def describe(self) -> str:
        """One line: the source and each curve, e.g. 'transformer 0.012 at 1e4 .. 0.05 at 3e5'."""
        if set(self.curves) == {"all"} and self.curves["all"].n_runs == 0:
            return self.source
        parts = []
        for name, c in self.curves.items():
            if name == "all" and len(self.curves) > 2:
                continue
            lo, hi = c.params_range
            span = (f"{c.at(lo)[0]:.3g} at {lo:.3g} .. {c.at(hi)[0]:.3g} at {hi:.3g} params" if hi > lo
                    else f"{c.at(lo)[0]:.3g} (median)")
            parts.append(f"{name} {span}, {c.n_runs} runs")
        return f"{self.column} from {self.source}: " + "; ".join(parts)

    def to_dict(self) -> dict:
        return {"column": self.column, "source": self.source,
                "curves": {k: c.to_dict() for k, c in self.curves.items()}}


def wall_mfu(table: pd.DataFrame) -> pd.Series:
    """flops_total / (peak_flops_per_s * wall_s) per run: the efficiency a run reached on the wall clock."""
    need = ("flops_total", "peak_flops_per_s", "wall_s")
    if not all(c in table.columns for c in need):
        return pd.Series(np.nan, index=table.index)
    num = {c: pd.to_numeric(table[c], errors="coerce") for c in need}
    return num["flops_total"] / (num["peak_flops_per_s"] * num["wall_s"])


def _curve(name: str, params: np.ndarray, eff: np.ndarray) -> EfficiencyCurve:
    lp, le = np.log(params), np.log(eff)
    if len(np.unique(params)) >= 2:
        slope, intercept = np.polyfit(lp, le, 1)
    else:
        slope, intercept = 0.0, float(np.median(le))
    return EfficiencyCurve(name, float(slope), float(intercept), (float(params.min()), float(params.max())),
                           len(params))


def fit_mfu(table: pd.DataFrame, column: str = "mfu", device: str | None = None,
            source: str = "a collected study") -> MfuModel:
    """Fit efficiency (`mfu` or `wall_mfu`) against params per `model.name` over the table's ok runs.

    `device` ("cpu", "cuda") keeps the runs whose `env.device` starts with it, when any do (else all, and
    the source says which devices they ran on).
    Raises ValueError when no run has a positive efficiency and parameter count.
    """
    if column not in COLUMNS:
        raise ValueError(f"column={column}: unknown (valid: {', '.join(COLUMNS)})")
    t = table
    if "status" in t.columns:
        t = t[t["status"] == "ok"]
    if device and "env.device" in t.columns:
        on = t["env.device"].astype(str).str.startswith(device)
        if on.any():
            t = t[on]
        else:
            source += f" (no {device} runs in it: measured on {', '.join(sorted(set(t['env.device'].astype(str))))})"
    eff = wall_mfu(t) if column == "wall_mfu" else pd.to_numeric(t.get(column), errors="coerce")
    params = pd.to_numeric(t["params"], errors="coerce") if "params" in t.columns else pd.Series(np.nan, t.index)
    names = t["model.name"].astype(str) if "model.name" in t.columns else pd.Series("all", index=t.index)
    ok = (eff > 0) & (params > 0) & np.isfinite(eff) & np.isfinite(params)
    if not ok.any():
        raise ValueError(f"no ok run with a positive {column} and params in {source}")
    eff, params, names = eff[ok].to_numpy(float), params[ok].to_numpy(float), names[ok].to_numpy()
    model = MfuModel(column, source)
    for name in sorted(set(names)):
        sel = names == name
        model.curves[name] = _curve(name, params[sel], eff[sel])
    model.curves["all"] = _curve("all", params, eff)
    return model


def constant(value: float, source: str, column: str = "mfu") -> MfuModel:
    """An efficiency that does not depend on size (a given `mfu=`)."""
    return MfuModel(column, source, {"all": EfficiencyCurve("all", 0.0, math.log(value), (0.0, math.inf), 0)})
