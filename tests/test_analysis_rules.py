"""LR/batch rule, throughput saturation, attention scaling, device and architecture tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import (
    InsufficientDataError,
    architecture_ratio,
    device_speedup,
    fit_attention,
    fit_lr_batch,
    throughput_vs_batch,
    throughput_vs_params,
)
from analysis.lr_batch import best_lr

pytestmark = pytest.mark.filterwarnings("ignore::analysis.DataWarning")  # diverged runs are dropped on purpose


def lr_grid(gamma: float, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Loss a parabola in log LR around lr_opt = 3e-4 (B/16)^gamma; runs far above the optimum diverge."""
    rng = np.random.default_rng(seed)
    rows = []
    for B in (16, 32, 64, 128, 256, 512):
        lr_opt = 3e-4 * (B / 16) ** gamma
        for lr in np.geomspace(1e-5, 1e-1, 17):
            diverged = lr > 8 * lr_opt
            loss = np.nan if diverged else 1.8 + 0.05 * np.log(lr / lr_opt) ** 2 + rng.normal(0, noise)
            rows.append({"trainer.batch_size": B, "optim.lr": lr, "val_loss": loss,
                         "status": "diverged" if diverged else "ok", "tokens_per_s": 1e5 * B / (B + 64)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("gamma,verdict", [(1.0, "linear"), (0.5, "square-root")])
def test_lr_batch_rule_recovers_gamma(gamma, verdict):
    fit = fit_lr_batch(lr_grid(gamma))
    assert fit.gamma == pytest.approx(gamma, abs=1e-6)
    assert fit.coefficient * 16 ** gamma == pytest.approx(3e-4, rel=1e-6)
    assert set(fit.best["method"]) == {"parabola"}
    assert fit.verdict.startswith(f"closer to {verdict}")
    noisy = fit_lr_batch(lr_grid(gamma, noise=0.002, seed=1))
    lo, hi = noisy.ci["gamma"]
    assert lo < gamma < hi and f"contains {verdict}" in noisy.verdict


def test_best_lr_falls_back_to_the_best_run_at_the_edge_of_the_sweep():
    lr = np.array([1e-4, 3e-4, 1e-3, 3e-3])
    assert best_lr(lr, np.array([1.0, 1.1, 1.2, 1.3])) == (1e-4, 1.0, "best run")
    v, _, method = best_lr(lr, np.array([1.3, 1.0, 1.1, 1.4]))
    assert method == "parabola" and 1e-4 < v < 1e-3


def test_throughput_saturates_where_the_curve_flattens():
    curve = throughput_vs_batch(lr_grid(1.0), fraction=0.8)
    # 1e5 * B / (B + 64) reaches 80% of its value at B=512 (88.9%) from B = 256 on (80%)
    assert curve.saturation_batch == 256 and curve.metric == "tokens_per_s"
    assert curve.table["fraction_of_max"].iloc[-1] == 1.0


def attention_runs(mem_sdpa_k: float = 1.0) -> pd.DataFrame:
    rows = []
    for impl, scale in (("manual", 3.0), ("sdpa", 1.0)):
        for n in (128, 256, 512, 1024, 2048, 4096):
            t = scale * 1e-9 * n ** 2
            rows.append({"model.attention": impl, "data.seq_len": n, "attn_time_s": t, "model.n_layers": 4,
                         "step_time_s": 4 * t + 4 * t * 1000 / n,  # attention's time share: n / (n + 1000)
                         # a fixed process baseline plus the part that grows with n
                         "peak_mem_bytes": 5e8 + 8.0 * n ** (2 if impl == "manual" else mem_sdpa_k),
                         "attn_flops_share": n / (n + 640)})
    return pd.DataFrame(rows)


def test_attention_exponents_and_crossovers_are_recovered():
    fit = fit_attention(attention_runs())
    k = fit.exponents.set_index(["impl", "metric"])["k"]
    assert k["manual", "time"] == pytest.approx(2.0, abs=1e-9) and k["sdpa", "time"] == pytest.approx(2.0, abs=1e-9)
    # memory is fitted above the shortest length's peak, which removes the baseline (and a little of the growth)
    assert k["manual", "memory"] == pytest.approx(2.0, abs=0.03)
    assert k["sdpa", "memory"] == pytest.approx(1.0, abs=0.1)
    assert set(fit.exponents["n_min"]) == {1024.0}  # the longer half of the 6 lengths
    n50 = fit.crossover.set_index(["impl", "share"])["n_50"]
    assert n50["manual", "flops"] == pytest.approx(640, rel=1e-9)
    assert n50["sdpa", "time"] == pytest.approx(1000, rel=1e-9)
    assert fit.crossover["inside"].all()


def test_attention_without_memory_column_skips_that_metric():
    fit = fit_attention(attention_runs().drop(columns="peak_mem_bytes"))
    assert set(fit.exponents["metric"]) == {"time"}
    assert "manual memory" in fit.skipped


def test_attention_memory_that_never_rises_above_the_shortest_length_is_skipped_not_a_crash():
    runs = attention_runs().assign(peak_mem_bytes=5e8)  # CPU resident-set noise: flat memory at every length
    fit = fit_attention(runs)
    assert set(fit.exponents["metric"]) == {"time"} and "sdpa memory" in fit.skipped


def test_device_speedup_and_architecture_ratio_tables():
    devices = pd.DataFrame([{"model.name": "mlp", "params": N, "device": d, "samples_per_s": s * 1e8 / N}
                            for N in (1e4, 1e5) for d, s in (("cpu", 1.0), ("cuda", 25.0))])
    table = device_speedup(devices)
    assert table["speedup"].tolist() == pytest.approx([25.0, 25.0]) and table["params"].tolist() == [1e4, 1e5]
    with pytest.raises(InsufficientDataError, match="both cpu and cuda"):
        device_speedup(devices[devices.device == "cpu"])
    arch = pd.DataFrame([{"model.name": m, "model.cell": c, "data.seq_len": n, "tokens_per_s": tps(n)}
                         for n in (64, 256) for m, c, tps in (("rnn", "lstm", lambda n: 1e3),
                                                              ("transformer", None, lambda n: 8e3 * 64 / n),
                                                              ("rnn", "gru", lambda n: 5.0))])
    ratio = architecture_ratio(arch)
    assert ratio["ratio"].tolist() == pytest.approx([8.0, 2.0])
    table, slopes = throughput_vs_params(devices)
    assert len(table) == 4 and slopes["device"].tolist() == ["cpu", "cuda"]
    assert slopes["slope"].tolist() == pytest.approx([-1.0, -1.0]) and set(slopes["metric"]) == {"samples_per_s"}
