"""Approach-3 fit speed: ours vs the PyPI `chinchilla` 0.2.0 fitter, side by side in one run (`make bench`).

Both start from the full 4,500-point grid on the same ~250 synthetic runs (Epoch AI's parameters, 1.5%
log-normal noise, 9 IsoFLOP budgets x 28 sizes) with Huber delta = 1e-3. The peer is set up as its
docs and the reference README say: `param_grid` in the order e, a, b, alpha, beta (it reads the grid
positionally), `log_huber` with delta 1e-3 (its default is 1.0), `fit(parallel=True)` (a process
pool of cpu_count() workers). Its objective is a mean; both endpoints are compared under the summed
objective. The last test measures how often the 95% bootstrap intervals cover the true parameters.
These tests are skipped unless benchmarks are enabled (`--benchmark-enable`).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from analysis import EPOCH, HOFFMANN, chinchilla_loss, chinchilla_objective, fit_chinchilla

GRID = {"e": [-1.0, -0.5, 0.0, 0.5, 1.0], "a": [0.0, 5.0, 10.0, 15.0, 20.0, 25.0],
        "b": [0.0, 5.0, 10.0, 15.0, 20.0, 25.0], "alpha": [0.0, 0.5, 1.0, 1.5, 2.0],
        "beta": [0.0, 0.5, 1.0, 1.5, 2.0]}


def bench_points(seed: int = 0) -> pd.DataFrame:
    """252 runs: 9 budgets from 1e18 to 1e22 FLOPs, 28 sizes over 2.4 decades around each optimum."""
    rng = np.random.default_rng(seed)
    budgets = np.geomspace(1e18, 1e22, 9)
    N = np.concatenate([0.1 * np.sqrt(C / 6) * np.geomspace(10 ** -1.2, 10 ** 1.2, 28) for C in budgets])
    D = np.repeat(budgets, 28) / (6 * N)
    loss = chinchilla_loss(EPOCH, N, D) * np.exp(rng.normal(0, 0.015, N.size))
    return pd.DataFrame({"C": 6 * N * D, "N": N, "D": D, "loss": loss})


def peer_loss(y_true, y_pred):
    from chinchilla._metrics import log_huber

    return log_huber(y_true, y_pred, delta=1e-3)


def fit_peer(df: pd.DataFrame, project_dir) -> dict:
    from chinchilla import Chinchilla

    df[["C", "N", "D", "loss"]].to_csv(project_dir / "df.csv", index=False)
    cc = Chinchilla(str(project_dir), param_grid=GRID, loss_fn=peer_loss, log_level=40)
    cc.fit(parallel=True)
    return cc.get_params()


@pytest.fixture
def enabled(benchmark):
    if benchmark.disabled:
        pytest.skip("benchmarks run with --benchmark-enable (make bench)")
    return benchmark


def test_grid_fit_is_20x_faster_than_peer_with_no_worse_objective(enabled, tmp_path):
    pytest.importorskip("chinchilla")
    df = bench_points()
    ours = enabled.pedantic(fit_chinchilla, args=(df,), rounds=3, iterations=1)
    t_ours = enabled.stats.stats.median
    t0 = time.perf_counter()
    peer = fit_peer(df, tmp_path)
    t_peer = time.perf_counter() - t0
    f_ours, f_peer = ours.objective, chinchilla_objective(peer, df.N, df.D, df.loss)
    enabled.extra_info.update(peer_s=t_peer, ours_median_s=t_ours, speedup=t_peer / t_ours,
                              objective_ours=f_ours, objective_peer=f_peer, n_points=len(df))
    print(f"\n{len(df)} points, 4500 starts: chinchilla 0.2.0 {t_peer:.1f} s, ours median {t_ours:.2f} s "
          f"(min {enabled.stats.stats.min:.2f}) -> {t_peer / t_ours:.1f}x; summed objective ours {f_ours:.10g}, "
          f"peer {f_peer:.10g}\nours {ours.params}\npeer {peer}")
    assert f_ours <= f_peer * (1 + 1e-9)
    assert t_peer / t_ours >= 20


def test_1000_bootstrap_refits_within_two_minutes(enabled):
    df = bench_points()
    fit = enabled.pedantic(fit_chinchilla, args=(df,), kwargs={"bootstrap": 1000, "seed": 0}, rounds=1, iterations=1)
    elapsed = enabled.stats.stats.max
    print(f"\ngrid fit + 1000 bootstrap refits on {len(df)} points: {elapsed:.1f} s; 95% intervals "
          + ", ".join(f"{k} [{lo:.4g}, {hi:.4g}]" for k, (lo, hi) in fit.ci.items()))
    assert len(fit.samples) == 1000 and np.isfinite(fit.samples[["alpha", "beta"]].to_numpy()).all()
    assert elapsed < 120


def coverage_points(seed: int) -> pd.DataFrame:
    """45 runs from Hoffmann et al.'s law, 1% log-normal noise: 5 budgets 1e18-1e22, N over 100x around N_opt."""
    p = HOFFMANN
    al, be = p["alpha"], p["beta"]
    G = (al * p["A"] / (be * p["B"])) ** (1 / (al + be))
    budgets = np.geomspace(1e18, 1e22, 5)
    N = np.concatenate([G * (C / 6) ** (be / (al + be)) * np.geomspace(0.1, 10, 9) for C in budgets])
    D = np.repeat(budgets, 9) / (6 * N)
    loss = chinchilla_loss(p, N, D) * np.exp(np.random.default_rng(seed).normal(0, 0.01, N.size))
    return pd.DataFrame({"N": N, "D": D, "loss": loss})


def coverage(trials: int, refits: int = 200) -> dict[str, float]:
    truth = {**HOFFMANN, "a": HOFFMANN["beta"] / (HOFFMANN["alpha"] + HOFFMANN["beta"])}
    truth["b"] = 1 - truth["a"]
    hits = dict.fromkeys(truth, 0)
    for seed in range(trials):
        fit = fit_chinchilla(coverage_points(seed), bootstrap=refits, seed=seed)
        for k, v in truth.items():
            hits[k] += fit.ci[k][0] <= v <= fit.ci[k][1]
    return {k: h / trials for k, h in hits.items()}


def test_bootstrap_interval_coverage_over_100_seeds(enabled):
    rates = enabled.pedantic(coverage, args=(100,), rounds=1, iterations=1)
    enabled.extra_info.update(rates)
    print("\ncoverage of the true parameters by 95% intervals (200 refits, 100 seeds): "
          + ", ".join(f"{k} {v:.2f}" for k, v in rates.items()))
    assert min(rates.values()) >= 0.85
