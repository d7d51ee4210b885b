"""Chinchilla approach 3: recovery, global optimum from one start, summed Huber objective, allocation, inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar

from analysis import EPOCH, HOFFMANN, DataWarning, InsufficientDataError, chinchilla_grid, chinchilla_loss
from analysis import chinchilla_objective, fit_chinchilla


def isoflop_points(params: dict, noise: float = 0.0, seed: int = 0, budgets=np.geomspace(1e18, 1e22, 5),
                   sizes: int = 9) -> pd.DataFrame:
    """Runs on an IsoFLOP grid around the law's own optimum (N over a 100x range per budget, D = C/6N)."""
    rng = np.random.default_rng(seed)
    al, be = params["alpha"], params["beta"]
    G = (al * params["A"] / (be * params["B"])) ** (1 / (al + be))
    N = np.concatenate([G * (C / 6) ** (be / (al + be)) * np.geomspace(0.1, 10, sizes) for C in budgets])
    D = np.repeat(budgets, sizes) / (6 * N)
    loss = chinchilla_loss(params, N, D) * np.exp(rng.normal(0, noise, N.size))
    return pd.DataFrame({"N": N, "D": D, "loss": loss})


def summed_huber(params: dict, df: pd.DataFrame, delta: float = 1e-3) -> float:
    r = np.log(chinchilla_loss(params, df.N, df.D)) - np.log(df.loss)
    a = np.abs(r)
    return float(np.where(a <= delta, 0.5 * r ** 2, delta * (a - 0.5 * delta)).sum())


def test_grid_is_the_recipe():
    grid = chinchilla_grid()
    assert grid.shape == (4500, 5) and len(np.unique(grid, axis=0)) == 4500
    e, a, b, al, be = (np.unique(c) for c in grid.T)
    assert e.tolist() == [-1, -0.5, 0, 0.5, 1] and a.tolist() == b.tolist() == [0, 5, 10, 15, 20, 25]
    assert al.tolist() == be.tolist() == [0, 0.5, 1, 1.5, 2]


def test_recovers_hoffmann_parameters_without_noise():
    fit = fit_chinchilla(isoflop_points(HOFFMANN))
    for k in ("alpha", "beta"):
        assert abs(fit.params[k] - HOFFMANN[k]) < 1e-3
    for k in ("E", "A", "B"):
        assert fit.params[k] == pytest.approx(HOFFMANN[k], rel=5e-3)
    assert fit.objective < 1e-12


def test_objective_is_the_summed_huber_of_log_residuals():
    df = isoflop_points(EPOCH, noise=0.01, seed=3)
    fit = fit_chinchilla(df, starts=[HOFFMANN])
    assert fit.objective == pytest.approx(summed_huber(fit.params, df), rel=1e-9)
    assert chinchilla_objective(fit.params, df.N, df.D, df.loss) == pytest.approx(fit.objective, rel=1e-9)
    # the optimum beats the truth and nearby points of the same objective
    assert fit.objective <= summed_huber(EPOCH, df)
    for k in fit.params:
        assert fit.objective <= summed_huber({**fit.params, k: fit.params[k] * 1.001}, df)


OTHER = {"E": 2.5, "A": 2000.0, "B": 300.0, "alpha": 0.5, "beta": 0.25}


@pytest.mark.parametrize("truth", [OTHER, EPOCH], ids=["other", "epoch"])
def test_single_start_at_hoffmann_reaches_the_grid_optimum(truth):
    """Data from other parameters: one start at Hoffmann's published values must not stall there."""
    df = isoflop_points(truth, noise=0.01, seed=1)
    grid = fit_chinchilla(df)
    single = fit_chinchilla(df, starts=[HOFFMANN])
    assert summed_huber(HOFFMANN, df) > 2 * grid.objective  # the start is not the optimum
    assert single.objective == pytest.approx(grid.objective, rel=1e-9)
    for k in HOFFMANN:
        assert single.params[k] == pytest.approx(grid.params[k], rel=1e-4)


def test_worker_processes_do_not_change_the_fit():
    df = isoflop_points(EPOCH, noise=0.01, seed=5)
    serial = fit_chinchilla(df, starts=chinchilla_grid()[::3], workers=1)
    forked = fit_chinchilla(df, starts=chinchilla_grid()[::3], workers=2)
    assert forked.objective == pytest.approx(serial.objective, rel=1e-12)
    for k, v in serial.params.items():
        assert forked.params[k] == pytest.approx(v, rel=1e-8)


def test_bootstrap_intervals_cover_the_truth_in_most_seeded_trials():
    """90% intervals (the default level) from 100 refits, 4 noisy data sets (1% noise, 45 runs each).

    Measured at 95% with 200 refits over 100 seeds: coverage per parameter 0.96-0.99 (docs/bench_fits.md);
    this quick version asks for 3 of 4 trials per parameter.
    """
    truth = {**HOFFMANN, "a": HOFFMANN["beta"] / (HOFFMANN["alpha"] + HOFFMANN["beta"])}
    truth["b"] = 1 - truth["a"]
    covered = dict.fromkeys(truth, 0)
    for seed in range(4):
        fit = fit_chinchilla(isoflop_points(HOFFMANN, noise=0.01, seed=seed), bootstrap=100, seed=seed)
        assert set(fit.ci) == set(truth) and len(fit.samples) == 100
        estimate = dict(fit.params, a=fit.exponents[0], b=fit.exponents[1])
        for k, v in truth.items():
            lo, hi = fit.ci[k]
            assert lo <= estimate[k] <= hi
            covered[k] += lo <= v <= hi
    assert min(covered.values()) >= 3, covered


def test_closed_form_allocation_matches_brute_force():
    fit = fit_chinchilla(isoflop_points(EPOCH, noise=0.005, seed=2), starts=[EPOCH])
    a, b = fit.exponents
    assert a + b == pytest.approx(1.0)
    for C in (1e18, 1e21, 1e24):
        res = minimize_scalar(lambda logn: fit.predict(np.exp(logn), C / (6 * np.exp(logn))),
                              bounds=(0, 40), method="bounded", options={"xatol": 1e-10})
        n_opt, d_opt = fit.optimal_allocation(C)
        assert n_opt == pytest.approx(np.exp(res.x), rel=1e-5)
        assert d_opt == pytest.approx(C / (6 * n_opt), rel=1e-12)
        assert fit.tokens_per_param(C) == pytest.approx(d_opt / n_opt)
    n1, _ = fit.optimal_allocation(1e20)
    n2, _ = fit.optimal_allocation(1e22)
    assert np.log(n2 / n1) / np.log(100) == pytest.approx(a)


def test_epoch_tokens_per_parameter_is_about_twenty():
    """Besiroglu et al.: about 20 tokens per parameter at the optimum (Chinchilla's scale, C ~ 5.8e23)."""
    fit = fit_chinchilla(isoflop_points(EPOCH), starts=[EPOCH])
    assert 15 < fit.tokens_per_param(5.76e23) < 30


def test_bad_rows_are_dropped_with_a_counting_warning_and_columns_are_named_by_the_caller():
    df = isoflop_points(HOFFMANN).rename(columns={"N": "params", "D": "tokens", "loss": "val_loss"})
    df["status"] = "ok"
    df.loc[0, "val_loss"] = np.nan
    df.loc[1, "val_loss"] = np.inf
    df.loc[2, "status"] = "diverged"
    with pytest.warns(DataWarning, match=r"dropped 3 of 45 rows \(1 not ok; 2 with NaN/inf"):
        fit = fit_chinchilla(df, n="params", d="tokens", loss="val_loss", starts=[HOFFMANN])
    assert fit.n_points == 42 and abs(fit.params["alpha"] - HOFFMANN["alpha"]) < 1e-6


def test_too_few_points_is_a_one_line_error():
    df = isoflop_points(HOFFMANN).head(4)
    with pytest.raises(InsufficientDataError) as err:
        fit_chinchilla(df)
    assert str(err.value) == "chinchilla fit (5 parameters) needs at least 5 usable points, got 4"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(InsufficientDataError):
            fit_chinchilla(isoflop_points(HOFFMANN).assign(loss=np.nan))
