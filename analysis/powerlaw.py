"""Power laws y = E + A x^-alpha (with offset) and y = A x^-alpha (Kaplan form), plus extrapolation checks.

Same recipe as the Chinchilla fit (``analysis.robustfit``): log-form parameters
(e = log E, a = log A), log-sum-exp prediction, summed Huber (delta 1e-3) of log
residuals, every start of a grid minimised and the best kept. The grid is the
Chinchilla one restricted to these parameters (e in {-1, ..., 1}, a in
{0, 5, ..., 25}, alpha in {0, 0.5, ..., 2}) plus starts read off the data: the
least-squares line through log y vs log x, and for the offset form the same
line through log(y - E) for E at 50%, 90% and 99% of the smallest y.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
import pandas as pd

from analysis.laws import INTERVAL, percentile_interval, power_law
from analysis.robustfit import (
    HUBER_DELTA,
    LogSumExpModel,
    bootstrap_refits,
    default_workers,
    fit_from_starts,
)
from analysis.tables import AnalysisError, need, usable_rows


@dataclass
class PowerLawFit:
    """A fitted y = E + A x^-alpha (``offset``) or y = A x^-alpha.

    ``ci`` maps each parameter to a (low, high) interval when bootstrapped.
    """

    params: dict[str, float]
    offset: bool
    objective: float
    n_points: int
    columns: tuple[str, str]
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: pd.DataFrame | None = None
    level: float = INTERVAL

    def predict(self, x) -> np.ndarray:
        """Predicted y = E + A x^-alpha at x (``analysis.laws.power_law``)."""
        return power_law(self.params, x)

    def predict_frame(self, df: pd.DataFrame) -> np.ndarray:
        """Predictions for the fit's x column of ``df``."""
        return self.predict(df[self.columns[0]].to_numpy(dtype=float))

    @property
    def law(self) -> str:
        x, y = self.columns
        return f"{y} = {'E + ' if self.offset else ''}A * {x}^-alpha"

    def to_dict(self) -> dict:
        """Plain numbers for fits.json."""
        return {"law": self.law, "params": self.params, "objective": self.objective, "n_points": self.n_points,
                "ci_level": self.level, "ci": {k: list(v) for k, v in self.ci.items()},
                "bootstrap": 0 if self.samples is None else len(self.samples)}


def _starts(log_x: np.ndarray, log_y: np.ndarray, offset: bool) -> np.ndarray:
    """Rows of theta: (a, alpha, e) with offset, (a, alpha) without."""
    coefs, exps = np.arange(0.0, 25.1, 5.0), np.arange(0.0, 2.01, 0.5)
    if not offset:
        slope, icpt = np.polyfit(log_x, log_y, 1)
        return np.array([*itertools.product(coefs, exps), (icpt, -slope)])
    grid = [(a, al, e) for e, a, al in itertools.product(np.arange(-1.0, 1.01, 0.5), coefs, exps)]
    y_min = np.exp(log_y).min()
    for frac in (0.5, 0.9, 0.99):
        slope, icpt = np.polyfit(log_x, np.log(np.exp(log_y) - frac * y_min), 1)
        grid.append((icpt, -slope, np.log(frac * y_min)))
    return np.array(grid)


def _design(log_x: np.ndarray, offset: bool) -> np.ndarray:
    o, z = np.ones_like(log_x), np.zeros_like(log_x)
    if not offset:  # theta = (a, alpha)
        return np.stack([np.stack([o, -log_x], axis=1)])
    return np.stack([np.stack([o, -log_x, z], axis=1), np.stack([z, z, o], axis=1)])  # theta = (a, alpha, e)


def _natural(theta: np.ndarray, offset: bool) -> dict[str, float]:
    p = {"A": float(np.exp(theta[0])), "alpha": float(theta[1])}
    if offset:
        p = {"E": float(np.exp(theta[2])), **p}
    return p


def fit_power_law(
    df: pd.DataFrame,
    x: str = "N",
    y: str = "loss",
    offset: bool = True,
    bootstrap: int = 0,
    seed: int = 0,
    delta: float = HUBER_DELTA,
    level: float = INTERVAL,
    workers: int | None = None,
) -> PowerLawFit:
    """Fit y = E + A x^-alpha (``offset=True``) or y = A x^-alpha to columns ``x``, ``y`` of ``df``.

    ``bootstrap`` > 0 adds ``level`` percentile intervals from refits on resampled points;
    ``workers`` processes share large batches (default: the CPUs available).
    """
    workers = workers or default_workers()
    n_params = 3 if offset else 2
    what = f"power-law fit of {y} vs {x}"
    rows = usable_rows(df, [x, y], positive=[x, y], what=what)
    need(len(rows), n_params, f"{what} ({n_params} parameters)")
    log_x, log_y = np.log(rows[x].to_numpy()), np.log(rows[y].to_numpy())
    if np.ptp(log_x) == 0:
        raise AnalysisError(f"{what}: all points have the same {x}")
    model = LogSumExpModel(_design(log_x, offset), log_y, delta)
    theta, objective, endpoints = fit_from_starts(model, _starts(log_x, log_y, offset), workers=workers)
    fit = PowerLawFit(_natural(theta, offset), offset, objective, len(rows), (x, y), level=level)
    if bootstrap > 0:
        reps = bootstrap_refits(model, endpoints, bootstrap, np.random.default_rng(seed), workers)
        fit.samples = pd.DataFrame([_natural(t, offset) for t in reps])
        fit.ci = {k: percentile_interval(fit.samples[k], level) for k in fit.samples.columns}
    return fit


class _Fit(Protocol):
    params: dict[str, float]

    def predict_frame(self, df: pd.DataFrame) -> np.ndarray: ...


@dataclass(frozen=True)
class ExtrapolationCheck:
    """Fit on the points with the smaller ``by``, predict the held-out larger ones."""

    by: str
    n_fit: int
    n_holdout: int
    fit_max: float  # largest `by` in the fitted part
    holdout_min: float
    holdout_max: float
    fit_mean_abs_rel_error: float  # in-sample, for comparison
    mean_abs_rel_error: float  # on the held-out points
    max_abs_rel_error: float
    params: dict[str, float]  # the law fitted on the smaller points

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def extrapolation_check(
    df: pd.DataFrame,
    fit: Callable[[pd.DataFrame], _Fit],
    by: str,
    y: str,
    holdout: float = 0.25,
) -> ExtrapolationCheck:
    """Refit on the rows whose ``by`` is below the top ``holdout`` fraction of its distinct values.

    ``fit`` maps a frame to a fitted law (e.g. ``lambda d: fit_power_law(d, "N", "loss")``); the
    relative errors ``predicted / actual - 1`` of ``y`` are measured on the held-out rows.
    """
    rows = usable_rows(df, [by, y], positive=[by, y], what=f"extrapolation check by {by}", warn=False)
    key = np.round(np.log(rows[by].to_numpy()), 6)  # equal up to float noise (e.g. C = 6ND) -> one value
    values = np.unique(key)
    n_out = max(1, math.ceil(holdout * len(values)))
    if len(values) - n_out < 2:
        raise AnalysisError(f"extrapolation check by {by}: needs at least 3 distinct values, got {len(values)}")
    small, large = rows[key < values[-n_out]], rows[key >= values[-n_out]]
    law = fit(small)
    rel_in = law.predict_frame(small) / small[y].to_numpy() - 1
    rel_out = law.predict_frame(large) / large[y].to_numpy() - 1
    return ExtrapolationCheck(by, len(small), len(large), float(small[by].max()), float(large[by].min()),
                              float(large[by].max()), float(np.mean(np.abs(rel_in))),
                              float(np.mean(np.abs(rel_out))), float(np.max(np.abs(rel_out))), law.params)
