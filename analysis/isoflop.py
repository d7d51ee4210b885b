"""IsoFLOP profiles (Chinchilla approach 2).

Per FLOP budget C: a parabola of loss in log N through that budget's runs, its
minimum N_opt(C) (and D_opt(C), from a parabola in log D when a D column is given,
else C / (6 N_opt)). Then least-squares lines log N_opt = a log C + log k_N and
log D_opt = b log C + log k_D. Bootstrap intervals resample runs within each budget.
A budget is skipped, with the reason recorded, when it has fewer than 3 distinct N,
when its parabola opens downward, or when the minimum lies outside the sampled N.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.laws import INTERVAL, percentile_interval
from analysis.tables import InsufficientDataError, usable_rows


@dataclass
class IsoFlopFit:
    """IsoFLOP minima per budget and the power laws through them.

    ``minima`` has one row per usable budget: C, N_opt, D_opt, loss_opt, n_points
    and the parabola coefficients (p2, p1, p0 of loss vs log N).
    """

    minima: pd.DataFrame
    exponents: tuple[float, float]  # (a, b): N_opt ~ C^a, D_opt ~ C^b
    coefficients: tuple[float, float]  # (k_N, k_D): N_opt = k_N C^a
    skipped: dict[float, str]
    columns: tuple[str, str, str]
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: pd.DataFrame | None = None
    replica_minima: list[pd.DataFrame] = field(default_factory=list)  # the bootstrap replicas' minima
    level: float = INTERVAL

    def optimal_allocation(self, C) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) at compute C from the fitted power laws."""
        C = np.asarray(C, dtype=float)
        (a, b), (kn, kd) = self.exponents, self.coefficients
        return kn * C ** a, kd * C ** b

    def to_dict(self) -> dict:
        """Plain numbers for fits.json."""
        a, b = self.exponents
        return {"law": "N_opt = k_N C^a, D_opt = k_D C^b (IsoFLOP parabolas)",
                "exponents": {"a": a, "b": b},
                "coefficients": {"k_N": self.coefficients[0], "k_D": self.coefficients[1]},
                "minima": self.minima.to_dict(orient="records"),
                "skipped": {str(k): v for k, v in self.skipped.items()},
                "ci_level": self.level, "ci": {k: list(v) for k, v in self.ci.items()},
                "bootstrap": 0 if self.samples is None else len(self.samples)}


def _vertex(log_x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray] | str:
    """log-x of the parabola's minimum and its coefficients, or why there is none."""
    if len(np.unique(log_x)) < 3:
        return f"{len(np.unique(log_x))} distinct sizes (< 3)"
    coef = np.polyfit(log_x, y, 2)
    if coef[0] <= 0:
        return "parabola has no minimum (opens downward)"
    v = -coef[1] / (2 * coef[0])
    if not log_x.min() <= v <= log_x.max():
        return "minimum outside the sampled range"
    return float(v), coef


def _groups(rows: pd.DataFrame, n: str, loss: str, budget: str, d: str | None) -> list[tuple]:
    """(C, log N, loss, log D or None) per budget, as arrays."""
    return [(float(C), np.log(g[n].to_numpy()), g[loss].to_numpy(), np.log(g[d].to_numpy()) if d else None)
            for C, g in rows.groupby(budget)]


def _minima(groups: list[tuple], idx: list[np.ndarray] | None = None) -> tuple[pd.DataFrame, dict[float, str]]:
    """Per-budget minima; ``idx`` selects (resampled) rows of each group."""
    found, skipped = [], {}
    for j, (C, log_n, y, log_d) in enumerate(groups):
        if idx is not None:
            log_n, y = log_n[idx[j]], y[idx[j]]
            log_d = None if log_d is None else log_d[idx[j]]
        vn = _vertex(log_n, y)
        vd = None if log_d is None else _vertex(log_d, y)
        reason = next((v for v in (vn, vd) if isinstance(v, str)), None)
        if reason:
            skipped[C] = reason
            continue
        log_nopt, coef = vn
        d_opt = C / (6.0 * np.exp(log_nopt)) if vd is None else np.exp(vd[0])
        found.append({"C": C, "N_opt": float(np.exp(log_nopt)), "D_opt": float(d_opt),
                      "loss_opt": float(np.polyval(coef, log_nopt)), "n_points": len(y),
                      "p2": coef[0], "p1": coef[1], "p0": coef[2]})
    return pd.DataFrame(found), skipped


def _lines(minima: pd.DataFrame) -> tuple[float, float, float, float]:
    log_c = np.log(minima["C"].to_numpy())
    a, log_kn = np.polyfit(log_c, np.log(minima["N_opt"].to_numpy()), 1)
    b, log_kd = np.polyfit(log_c, np.log(minima["D_opt"].to_numpy()), 1)
    return float(a), float(b), float(np.exp(log_kn)), float(np.exp(log_kd))


def fit_isoflop(
    df: pd.DataFrame,
    n: str = "N",
    loss: str = "loss",
    budget: str = "C",
    d: str | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = INTERVAL,
) -> IsoFlopFit:
    """IsoFLOP fit over the runs of ``df`` grouped by their FLOP ``budget`` column."""
    cols = [n, loss, budget] + ([d] if d else [])
    rows = usable_rows(df, cols, positive=cols, what="isoflop fit")
    groups = _groups(rows, n, loss, budget, d)
    minima, skipped = _minima(groups)
    if len(minima) < 2:
        why = "; ".join(f"C={c:.3g}: {r}" for c, r in skipped.items())
        raise InsufficientDataError(f"isoflop fit needs at least 2 budgets with a minimum, got {len(minima)}"
                                    + (f" ({why})" if why else ""))
    a, b, kn, kd = _lines(minima)
    fit = IsoFlopFit(minima, (a, b), (kn, kd), skipped, (n, loss, budget), level=level)
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        groups = [g for g in groups if g[0] not in skipped]
        reps = []
        for _ in range(bootstrap):
            m, lost = _minima(groups, [rng.integers(0, len(g[1]), len(g[1])) for g in groups])
            if not lost:  # a replica counts only if every budget still has a minimum
                reps.append(_lines(m))
                fit.replica_minima.append(m)
        fit.samples = pd.DataFrame(reps, columns=["a", "b", "k_N", "k_D"])
        fit.ci = {k: percentile_interval(fit.samples[k], level) for k in fit.samples.columns}
    return fit
