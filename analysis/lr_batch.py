"""Learning rate vs batch size: the best LR per batch size, LR_opt ~ B^gamma, and throughput saturation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from analysis.laws import INTERVAL
from analysis.tables import InsufficientDataError, need, usable_rows


def linear_fit(x: np.ndarray, y: np.ndarray, level: float = INTERVAL) -> tuple[float, float, tuple[float, float]]:
    """Least-squares slope, intercept and the slope's t-interval (NaN with fewer than 3 points)."""
    res = stats.linregress(x, y)
    if len(x) < 3:
        return float(res.slope), float(res.intercept), (float("nan"), float("nan"))
    half = stats.t.ppf(0.5 + level / 2, len(x) - 2) * res.stderr
    return float(res.slope), float(res.intercept), (float(res.slope - half), float(res.slope + half))


@dataclass
class LrBatchFit:
    """Best LR per batch size and the fitted LR_opt = c * B^gamma."""

    best: pd.DataFrame  # batch, lr_opt, loss_opt, method, n_runs
    gamma: float
    coefficient: float
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    level: float = INTERVAL

    @property
    def verdict(self) -> str:
        """Whether gamma looks like linear (1) or square-root (0.5) scaling."""
        closer = "linear (gamma ~ 1)" if abs(self.gamma - 1) < abs(self.gamma - 0.5) else "square-root (gamma ~ 0.5)"
        lo, hi = self.ci.get("gamma", (float("nan"),) * 2)
        if not np.isfinite(lo):
            return f"closer to {closer}; too few batch sizes for an interval"
        inside = [name for name, g in (("linear", 1.0), ("square-root", 0.5)) if lo <= g <= hi]
        return f"closer to {closer}; {self.level:.0%} interval contains " + (" and ".join(inside) or "neither")

    def predict(self, batch) -> np.ndarray:
        """LR_opt at batch size ``batch``."""
        return self.coefficient * np.asarray(batch, dtype=float) ** self.gamma

    def to_dict(self) -> dict:
        return {"law": "lr_opt = c * batch^gamma", "gamma": self.gamma, "c": self.coefficient,
                "ci_level": self.level, "ci": {k: list(v) for k, v in self.ci.items()},
                "verdict": self.verdict, "best": self.best.to_dict(orient="records")}


def best_lr(lr: np.ndarray, loss: np.ndarray) -> tuple[float, float, str]:
    """LR at the minimum of the parabola in log LR through the best run and its neighbour on each side.

    Only the neighbours: far from the optimum the loss is no parabola (it
    saturates, or the run nearly diverges). Falls back to the best run when it
    is the smallest or largest LR tried, or the parabola opens downward.
    """
    order = np.argsort(lr)
    lr, loss = lr[order], loss[order]
    i = int(np.argmin(loss))
    window = slice(max(0, i - 1), i + 2)
    x, y = np.log(lr[window]), loss[window]
    if len(np.unique(x)) >= 3:
        p2, p1, p0 = np.polyfit(x, y, 2)
        if p2 > 0 and x.min() <= -p1 / (2 * p2) <= x.max():
            v = -p1 / (2 * p2)
            return float(np.exp(v)), float(np.polyval((p2, p1, p0), v)), "parabola"
    return float(lr[i]), float(loss[i]), "best run"


def fit_lr_batch(
    df: pd.DataFrame,
    lr: str = "optim.lr",
    batch: str = "trainer.batch_size",
    loss: str = "val_loss",
    level: float = INTERVAL,
) -> LrBatchFit:
    """Best LR per batch size over the ok (non-diverged) runs, then LR_opt = c * B^gamma by least squares in log-log.

    Runs are grouped by batch size; repeated runs at one LR are averaged first.
    """
    rows = usable_rows(df, [lr, batch, loss], positive=[lr, batch], what="lr/batch fit")
    best = []
    for b, g in rows.groupby(batch):
        mean = g.groupby(lr)[loss].mean()
        lr_opt, loss_opt, method = best_lr(mean.index.to_numpy(dtype=float), mean.to_numpy())
        best.append({"batch": float(b), "lr_opt": lr_opt, "loss_opt": loss_opt, "method": method, "n_runs": len(g)})
    best = pd.DataFrame(best)
    need(len(best), 2, "lr/batch fit", "batch sizes with ok runs")
    gamma, icpt, ci = linear_fit(np.log(best["batch"].to_numpy()), np.log(best["lr_opt"].to_numpy()), level)
    return LrBatchFit(best, gamma, float(np.exp(icpt)), {"gamma": ci}, level)


@dataclass
class ThroughputCurve:
    """Median throughput per batch size and where it saturates."""

    table: pd.DataFrame  # batch, throughput, n_runs, fraction_of_max
    metric: str
    saturation_batch: float  # smallest batch reaching `fraction` of the best throughput
    fraction: float

    def to_dict(self) -> dict:
        return {"metric": self.metric, "saturation_batch": self.saturation_batch, "fraction": self.fraction,
                "table": self.table.to_dict(orient="records")}


def throughput_metric(df: pd.DataFrame) -> str:
    """tokens_per_s where the table has it, else samples_per_s."""
    for col in ("tokens_per_s", "samples_per_s"):
        if col in df.columns and pd.to_numeric(df[col], errors="coerce").notna().any():
            return col
    raise InsufficientDataError("no throughput column (tokens_per_s or samples_per_s) with values")


def throughput_vs_batch(
    df: pd.DataFrame,
    batch: str = "trainer.batch_size",
    metric: str | None = None,
    fraction: float = 0.9,
) -> ThroughputCurve:
    """Median throughput per batch size; saturation = the smallest batch within ``fraction`` of the best."""
    metric = metric or throughput_metric(df)
    rows = usable_rows(df, [batch, metric], positive=[batch, metric], what="throughput vs batch")
    table = rows.groupby(batch)[metric].agg(throughput="median", n_runs="size").reset_index()
    table = table.rename(columns={batch: "batch"})
    need(len(table), 2, "throughput vs batch", "batch sizes")
    table["fraction_of_max"] = table["throughput"] / table["throughput"].max()
    sat = float(table.loc[table["fraction_of_max"] >= fraction, "batch"].min())
    return ThroughputCurve(table, metric, sat, fraction)
