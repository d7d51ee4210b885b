"""Chinchilla approach 3: L(N, D) = E + A/N^alpha + B/D^beta, fitted as Hoffmann et al. and Epoch AI do.

Recipe (Hoffmann et al. 2022, App. D.2; Besiroglu et al. 2024):

- parameters in log form, theta = (e, a, b, alpha, beta) with E = exp(e), A = exp(a), B = exp(b);
- prediction by log-sum-exp: log L_hat = LSE(a - alpha log N, b - beta log D, e);
- objective: Huber loss with delta = 1e-3 of log L_hat - log L, summed over points;
- starts: the grid alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}
  (4,500 points), every one minimised to convergence, the best kept.

How each start is minimised (all at once, then the best few polished with L-BFGS-B) is described in
``analysis.robustfit``. Bootstrap intervals resample the points with replacement and refit each
replica from the full-data optimum and the next best distinct local optima of the grid search.

The law's maths (evaluation, the compute-optimal allocation under C = 6 N D, the frontier, intervals) is in
``analysis.laws``; this module fits it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from analysis.laws import (
    INTERVAL,
    allocation_constant,
    chinchilla_loss,
    exponents,
    optimal_allocation,
    percentile_interval,
)
from analysis.robustfit import (
    HUBER_DELTA,
    LogSumExpModel,
    bootstrap_refits,
    default_workers,
    fit_from_starts,
)
from analysis.tables import need, usable_rows
from harness.flops import training_flops

PARAMS = ("E", "A", "B", "alpha", "beta")
HOFFMANN = {"E": 1.69337, "A": 406.401, "B": 410.723, "alpha": 0.33917, "beta": 0.28491}
EPOCH = {"E": 1.82, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def chinchilla_grid() -> np.ndarray:
    """The 4,500 starts of the recipe as rows (e, a, b, alpha, beta)."""
    e = np.arange(-1.0, 1.01, 0.5)
    ab = np.arange(0.0, 25.1, 5.0)
    exps = np.arange(0.0, 2.01, 0.5)
    return np.array(list(itertools.product(e, ab, ab, exps, exps)))


def to_theta(params: Mapping[str, float]) -> np.ndarray:
    """(e, a, b, alpha, beta) from natural parameters E, A, B, alpha, beta."""
    return np.array([np.log(params["E"]), np.log(params["A"]), np.log(params["B"]), params["alpha"], params["beta"]])


def chinchilla_objective(params: Mapping[str, float], N, D, loss, delta: float = HUBER_DELTA) -> float:
    """The recipe's objective at ``params``: summed Huber (``delta``) of log L_hat - log L."""
    log_n, log_d = np.log(np.asarray(N, dtype=float)), np.log(np.asarray(D, dtype=float))
    model = LogSumExpModel(_design(log_n, log_d), np.log(np.asarray(loss, dtype=float)), delta)
    return float(model.value(to_theta(params)[None])[0])


def _design(log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    z, o = np.zeros_like(log_n), np.ones_like(log_n)
    return np.stack([
        np.stack([z, o, z, -log_n, z], axis=1),  # a - alpha log N
        np.stack([z, z, o, z, -log_d], axis=1),  # b - beta log D
        np.stack([o, z, z, z, z], axis=1),  # e
    ])


def _natural(theta: np.ndarray) -> dict[str, float]:
    e, a, b, alpha, beta = map(float, theta)
    return {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)), "alpha": alpha, "beta": beta}


@dataclass
class ChinchillaFit:
    """A fitted L(N, D) = E + A/N^alpha + B/D^beta.

    ``ci`` maps each of E, A, B, alpha, beta and the allocation exponents a, b
    to a (low, high) interval when the fit was bootstrapped, else is empty;
    ``samples`` holds the bootstrap replicas' parameters; ``fit_range`` the (min, max) of the fitted
    runs' N, D and C = 6ND (what a plan far beyond them measures its distance by).
    """

    params: dict[str, float]
    objective: float
    n_points: int
    columns: tuple[str, str, str]
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: pd.DataFrame | None = None
    level: float = INTERVAL
    fit_range: dict[str, tuple[float, float]] = field(default_factory=dict)

    def predict(self, N, D) -> np.ndarray:
        """Predicted loss at N parameters and D tokens."""
        return chinchilla_loss(self.params, N, D)

    def predict_frame(self, df: pd.DataFrame) -> np.ndarray:
        """Predictions for the fit's N and D columns of ``df``."""
        n, d, _ = self.columns
        return self.predict(df[n].to_numpy(dtype=float), df[d].to_numpy(dtype=float))

    @property
    def exponents(self) -> tuple[float, float]:
        """(a, b) = (beta/(alpha+beta), alpha/(alpha+beta)): N_opt proportional to C^a and D_opt to C^b."""
        a, b = exponents(self.params)
        return float(a), float(b)

    @property
    def G(self) -> float:
        """(alpha A / (beta B))^(1/(alpha+beta)): N_opt = G (C/6)^a."""
        return float(allocation_constant(self.params))

    def optimal_allocation(self, C) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) minimising the loss at compute C = 6 N D (``analysis.laws.optimal_allocation``)."""
        return optimal_allocation(self.params, C)

    def tokens_per_param(self, C) -> np.ndarray:
        """D_opt / N_opt at compute C."""
        n, d = self.optimal_allocation(C)
        return d / n

    def to_dict(self) -> dict:
        """Plain numbers for fits.json."""
        a, b = self.exponents
        return {"law": "L = E + A/N^alpha + B/D^beta", "params": self.params, "objective": self.objective,
                "n_points": self.n_points, "exponents": {"a": a, "b": b}, "G": self.G,
                "ci_level": self.level, "ci": {k: list(v) for k, v in self.ci.items()},
                "bootstrap": 0 if self.samples is None else len(self.samples),
                "samples": None if self.samples is None else {k: self.samples[k].tolist() for k in PARAMS},
                "fit_range": {k: list(v) for k, v in self.fit_range.items()}}


def _starts(starts: Iterable[Mapping[str, float]] | np.ndarray | None) -> np.ndarray:
    if starts is None:
        return chinchilla_grid()
    if isinstance(starts, np.ndarray):
        return np.atleast_2d(starts).astype(float)
    return np.array([to_theta(s) for s in starts])


def fit_chinchilla(
    df: pd.DataFrame,
    n: str = "N",
    d: str = "D",
    loss: str = "loss",
    bootstrap: int = 0,
    seed: int = 0,
    starts: Iterable[Mapping[str, float]] | np.ndarray | None = None,
    delta: float = HUBER_DELTA,
    level: float = INTERVAL,
    workers: int | None = None,
) -> ChinchillaFit:
    """Fit L(N, D) = E + A/N^alpha + B/D^beta to the columns ``n``, ``d``, ``loss`` of ``df``.

    ``starts``: None for the recipe's 4,500-point grid, else dicts of natural
    parameters (E, A, B, alpha, beta) or an array of rows (e, a, b, alpha, beta).
    ``bootstrap`` > 0 adds ``level`` percentile intervals from that many refits
    on resampled points (seeded by ``seed``). ``workers`` processes share the
    starts (default: the CPUs available; results agree up to rounding).
    """
    workers = workers or default_workers()
    rows = usable_rows(df, [n, d, loss], positive=[n, d, loss], what="chinchilla fit")
    need(len(rows), len(PARAMS), "chinchilla fit (5 parameters)")
    log_n, log_d = np.log(rows[n].to_numpy()), np.log(rows[d].to_numpy())
    model = LogSumExpModel(_design(log_n, log_d), np.log(rows[loss].to_numpy()), delta)
    theta, objective, endpoints = fit_from_starts(model, _starts(starts), workers=workers)
    N, D = np.exp(log_n), np.exp(log_d)
    fit_range = {k: (float(v.min()), float(v.max())) for k, v in (("N", N), ("D", D), ("C", training_flops(N, D)))}
    fit = ChinchillaFit(_natural(theta), objective, len(rows), (n, d, loss), level=level, fit_range=fit_range)
    if bootstrap > 0:
        reps = bootstrap_refits(model, endpoints, bootstrap, np.random.default_rng(seed), workers)
        samples = pd.DataFrame([_natural(t) for t in reps])
        samples["a"], samples["b"] = exponents(samples)
        fit.samples = samples
        fit.ci = {k: percentile_interval(samples[k], level) for k in samples.columns}
    return fit
