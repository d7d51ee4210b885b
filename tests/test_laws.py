"""analysis.laws: the Chinchilla law's allocation, frontier and intervals, one replica or many at once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import EPOCH, HOFFMANN
from analysis import laws
from harness.flops import training_flops


def _replicas(n: int = 7, seed: int = 0) -> pd.DataFrame:
    """Laws scattered around Hoffmann's, as a bootstrap would give."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({k: v * np.exp(rng.normal(0, 0.05, n)) for k, v in HOFFMANN.items()})


@pytest.mark.parametrize("params", [HOFFMANN, EPOCH])
@pytest.mark.parametrize("C", [1e18, 1e21, 5.76e23])
def test_allocation_spends_the_budget_and_minimises_the_loss_on_a_grid(params, C):
    n_opt, d_opt = laws.optimal_allocation(params, C)
    assert training_flops(n_opt, d_opt) == pytest.approx(C, rel=1e-12)
    N = n_opt * np.geomspace(0.5, 2, 2001)  # the constant-compute line through the optimum
    grid_loss = laws.chinchilla_loss(params, N, C / training_flops(N, 1))
    assert N[np.argmin(grid_loss)] == pytest.approx(n_opt, rel=1e-3)
    best = laws.chinchilla_loss(params, n_opt, d_opt)
    assert best <= grid_loss.min() + 1e-12
    assert laws.frontier_loss(params, C) == pytest.approx(best, rel=1e-12)


def test_frontier_falls_as_a_power_of_compute_with_exponent_gamma():
    g = laws.frontier_exponent(HOFFMANN)
    assert g == pytest.approx(HOFFMANN["alpha"] * HOFFMANN["beta"] / (HOFFMANN["alpha"] + HOFFMANN["beta"]))
    r1, r2 = (laws.frontier_loss(HOFFMANN, c) - HOFFMANN["E"] for c in (1e20, 1e23))
    assert np.log(r1 / r2) / np.log(1e3) == pytest.approx(g, rel=1e-12)
    loss = float(laws.frontier_loss(HOFFMANN, 1e22))
    assert laws.compute_for_loss(HOFFMANN, loss) == pytest.approx(1e22, rel=1e-9)
    assert np.isnan(laws.compute_for_loss(HOFFMANN, HOFFMANN["E"] - 0.1))
    n_opt, d_opt = laws.optimal_allocation(HOFFMANN, 1e22)
    assert laws.tokens_for_params(HOFFMANN, n_opt) == pytest.approx(d_opt, rel=1e-9)


def test_no_optimum_without_positive_exponents():
    assert np.isnan(laws.frontier_loss({**HOFFMANN, "beta": -0.1}, 1e20))


def test_vectorised_replicas_equal_the_loop():
    samples, grid = _replicas(), np.geomspace(1e18, 1e24, 9)
    cols = laws.replicas(samples)
    rows = samples.to_dict("records")
    n_all, d_all = laws.optimal_allocation(cols, grid)
    assert n_all.shape == (len(samples), len(grid))
    for i, p in enumerate(rows):
        n, d = laws.optimal_allocation(p, grid)
        np.testing.assert_allclose(n_all[i], n, rtol=1e-12)
        np.testing.assert_allclose(d_all[i], d, rtol=1e-12)
        np.testing.assert_allclose(laws.frontier_loss(cols, grid)[i], laws.frontier_loss(p, grid), rtol=1e-12)
        np.testing.assert_allclose(laws.chinchilla_loss(cols, n_all, d_all)[i], laws.chinchilla_loss(p, n, d),
                                   rtol=1e-12)
    a, b = laws.exponents(samples)  # a DataFrame's columns work directly, one value per replica
    np.testing.assert_allclose(a + b, 1.0)
    np.testing.assert_allclose(laws.frontier_exponent(samples), [laws.frontier_exponent(p) for p in rows])


def test_power_law_with_and_without_offset():
    x = np.array([1.0, 10.0, 100.0])
    np.testing.assert_allclose(laws.power_law({"E": 1.0, "A": 2.0, "alpha": 1.0}, x), [3.0, 1.2, 1.02])
    np.testing.assert_allclose(laws.power_law({"A": 2.0, "alpha": 1.0}, x), [2.0, 0.2, 0.02])
    draws = laws.power_law(laws.replicas(pd.DataFrame({"A": [1.0, 2.0], "alpha": [0.0, 1.0]}), ("A", "alpha")), x)
    np.testing.assert_allclose(draws, [[1.0, 1.0, 1.0], [2.0, 0.2, 0.02]])


def test_interval_is_the_central_level_of_the_replicas():
    draws = np.arange(101.0)  # percentiles are the values themselves
    assert laws.INTERVAL == 0.90
    assert laws.percentile_interval(draws) == pytest.approx((5.0, 95.0))
    failed = np.append(draws, np.nan)  # a failed replica is ignored
    assert laws.percentile_interval(failed) == pytest.approx((5.0, 95.0))
    assert laws.percentile_interval(draws, 0.5) == pytest.approx((25.0, 75.0))
    assert all(np.isnan(laws.percentile_interval([np.nan])))
    lo, hi = laws.percentile_interval(np.stack([draws, 2 * draws], axis=1), axis=0)  # a band over a grid of 2 points
    np.testing.assert_allclose(lo, [5.0, 10.0])
    np.testing.assert_allclose(hi, [95.0, 190.0])
