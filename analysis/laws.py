"""The scaling laws' maths, in one place: evaluation, compute-optimal allocation, the frontier, intervals.

Every function takes its parameters as a mapping of name -> number or numpy array (a dict, a pandas row or
a DataFrame of bootstrap replicas), so one call evaluates the fitted law and all its replicas at once; the
arrays broadcast against N, D and C as numpy does (``replicas(samples)`` shapes them as a column for that).

- single-variable power law: y = E + A·x^−α (E = 0 for the Kaplan form);
- Chinchilla (Hoffmann et al. 2022, approach 3): L(N, D) = E + A/N^α + B/D^β;
- compute C = 6·N·D (``harness.flops.training_flops``); minimising L at fixed C gives
  N_opt = G·(C/6)^a, D_opt = (C/6)^b / G with a = β/(α+β), b = α/(α+β), G = (αA/(βB))^(1/(α+β));
- along that frontier L_opt(C) − E = K·(C/6)^−γ with γ = αβ/(α+β) and K = A·G^−α + B·G^β;
- intervals: the central ``INTERVAL`` (90%) of the bootstrap replicas, the lab's one level.
"""

from __future__ import annotations

import warnings
from typing import Mapping, Union

import numpy as np

from harness.flops import training_flops

INTERVAL = 0.90  # the one interval level of fits, forecasts, plans and their figures
FLOPS_PER_PARAM_TOKEN = float(training_flops(1, 1))  # 6: C = 6·N·D

Params = Mapping[str, Union[float, np.ndarray]]


def _f(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


def replicas(samples: Params, names: tuple[str, ...] = ("E", "A", "B", "alpha", "beta")) -> dict[str, np.ndarray]:
    """The named parameters of R replicas as (R, 1) columns, to broadcast against a grid of shape (G,) -> (R, G).

    Names absent from ``samples`` are left out (a power law without E)."""
    return {k: _f(samples[k]).reshape(-1, 1) for k in names if k in samples}


def power_law(p: Params, x) -> np.ndarray:
    """y = E + A·x^−α (E taken as 0 when ``p`` has none)."""
    return p.get("E", 0.0) + _f(p["A"]) * _f(x) ** -_f(p["alpha"])


def chinchilla_loss(p: Params, N, D) -> np.ndarray:
    """L(N, D) = E + A/N^α + B/D^β."""
    return _f(p["E"]) + _f(p["A"]) / _f(N) ** _f(p["alpha"]) + _f(p["B"]) / _f(D) ** _f(p["beta"])


def exponents(p: Params) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) = (β/(α+β), α/(α+β)): N_opt ∝ C^a, D_opt ∝ C^b."""
    al, be = _f(p["alpha"]), _f(p["beta"])
    return be / (al + be), al / (al + be)


def allocation_constant(p: Params) -> np.ndarray:
    """G = (αA/(βB))^(1/(α+β)), so that N_opt = G·(C/6)^a and D_opt = (C/6)^b / G."""
    al, be = _f(p["alpha"]), _f(p["beta"])
    return (al * _f(p["A"]) / (be * _f(p["B"]))) ** (1 / (al + be))


def optimal_allocation(p: Params, C, k: float = FLOPS_PER_PARAM_TOKEN) -> tuple[np.ndarray, np.ndarray]:
    """(N_opt, D_opt) minimising L(N, D) subject to C = k·N·D (k = 6): G·(C/k)^a and (C/k)^b / G."""
    a, b = exponents(p)
    G = allocation_constant(p)
    nd = _f(C) / k  # N·D at compute C
    return G * nd ** a, nd ** b / G


def frontier_exponent(p: Params) -> np.ndarray:
    """γ = αβ/(α+β): along the compute-optimal frontier L_opt(C) − E ∝ C^−γ."""
    al, be = _f(p["alpha"]), _f(p["beta"])
    return al * be / (al + be)


def frontier_coefficient(p: Params) -> np.ndarray:
    """K = A·G^−α + B·G^β: L_opt(C) = E + K·(C/6)^−γ."""
    G = allocation_constant(p)
    return _f(p["A"]) * G ** -_f(p["alpha"]) + _f(p["B"]) * G ** _f(p["beta"])


def frontier_loss(p: Params, C, k: float = FLOPS_PER_PARAM_TOKEN) -> np.ndarray:
    """L_opt(C) = L(N_opt(C), D_opt(C)) = E + K·(C/k)^−γ; NaN where α or β ≤ 0 (no optimum exists)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = _f(p["E"]) + frontier_coefficient(p) * (_f(C) / k) ** -frontier_exponent(p)
    ok = (_f(p["alpha"]) > 0) & (_f(p["beta"]) > 0)
    return np.where(ok, loss, np.nan)


def compute_for_loss(p: Params, loss: float, k: float = FLOPS_PER_PARAM_TOKEN) -> np.ndarray:
    """C at which L_opt(C) = ``loss``: k·(K / (loss − E))^(1/γ); NaN where ``loss`` is at or below E."""
    reducible = loss - _f(p["E"])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(reducible > 0, k * (frontier_coefficient(p) / reducible) ** (1 / frontier_exponent(p)),
                        np.nan)


def tokens_for_params(p: Params, N, k: float = FLOPS_PER_PARAM_TOKEN) -> np.ndarray:
    """D for which N is the compute-optimal size: N_opt(C) = N inverted, C/k = (N/G)^(1/a), D = (C/k)/N."""
    a, _ = exponents(p)
    N = _f(N)
    return (N / allocation_constant(p)) ** (1 / a) / N


def percentile_interval(draws, level: float = INTERVAL, axis: int | None = None):
    """The central ``level`` percentile interval (low, high) of ``draws``: percentiles 50(1 − level) and
    50(1 + level). NaN draws are ignored (a failed replica); ±inf are kept (an unbounded one opens that end).

    ``axis=None``: two floats over all draws (NaN, NaN when none is left); an axis: two arrays (draws of
    shape (replicas, G) with ``axis=0`` give a band over a grid of G points)."""
    q = [50 * (1 - level), 50 * (1 + level)]
    d = _f(draws)
    if axis is None and not (~np.isnan(d)).any():
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, inf − inf too
        lo, hi = np.nanpercentile(d, q, axis=axis)
    return (float(lo), float(hi)) if axis is None else (lo, hi)
