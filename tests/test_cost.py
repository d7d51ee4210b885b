"""harness-cost: memory, FLOPs and money against public figures; laws from fits.json; MFU from a study; bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis import HOFFMANN, ChinchillaFit, chinchilla_loss
from analysis.cost import (
    CostError,
    idle_cost_per_day,
    load_law,
    plan_cost,
)
from analysis.cost_cli import main
from analysis.laws import compute_for_loss, optimal_allocation, tokens_for_params
from harness.efficiency import fit_mfu, wall_mfu
from harness.hardware import gpu_key, gpu_memory, gpu_peak
from harness.memory import memory_per_gpu, min_gpus

GB = 1e9


# --- sanity rows from public figures -----------------------------------------------------------------------


def test_seventy_billion_parameters_in_fp16_are_140_gb():
    assert memory_per_gpu(70e9, precision="fp16")["weights"] == pytest.approx(140 * GB)


@pytest.mark.parametrize("sharding, per_gpu_gb", [("none", 120), ("optimizer", 31.4), ("gradients", 16.6),
                                                  ("full", 1.9)])
def test_zero_paper_memory_for_7_5b_adam_mixed_precision_on_64_gpus(sharding, per_gpu_gb):
    mem = memory_per_gpu(7.5e9, gpus=64, precision="bf16", optimizer="adam", sharding=sharding, activations=False)
    assert mem["total"] / GB == pytest.approx(per_gpu_gb, abs=0.05)
    if sharding == "none":
        assert (mem["weights"], mem["gradients"], mem["optimizer"]) == (2 * 7.5e9, 2 * 7.5e9, 12 * 7.5e9)


def test_chinchilla_70b_on_1_4t_tokens_is_5_9e23_flops_without_a_law():
    plan = plan_cost(params=70e9, tokens=1.4e12, gpu="A100", gpus=1024, mfu=0.5, usd_per_gpu_hour=2)
    d = plan.to_dict()
    assert d["flops"] == pytest.approx(5.88e23, rel=1e-3)
    assert "6·N·D" in d["flops_convention"]
    assert d["predicted_loss"] is None and not any(k.endswith("interval90") for k in d)
    hours = 5.88e23 / (312e12 * 0.5) / 3600
    assert d["gpu_hours"] == pytest.approx(hours, rel=1e-3)
    assert d["days"] == pytest.approx(hours / 1024 / 24, rel=1e-3)
    assert d["usd"] == pytest.approx(2 * hours, rel=1e-3)


def test_seed_example_1000_gpus_at_50_vs_90_percent_loses_tens_of_thousands_a_day():
    assert idle_cost_per_day(1000, 2.0, 0.5, 0.9) == pytest.approx(19_200)
    assert idle_cost_per_day(1000, 3.0, 0.5, 0.9) == pytest.approx(28_800)
    plan = plan_cost(params=7e9, tokens=1.4e11, gpu="H100", gpus=1000, mfu=0.5, usd_per_gpu_hour=2.5)
    row = plan.utilisation.set_index("MFU").loc["50%"]
    assert row["USD lost per day vs 90%"] == pytest.approx(24_000)
    table = plan.utilisation
    assert list(table["MFU"]) == ["30%", "50%", "70%", "90%"]  # the plan's own MFU is one of them
    assert (np.diff(table["days"]) < 0).all() and table["USD extra vs 90%"].iloc[-1] == 0


def test_fewest_gpus_follow_the_sharding():
    cap = gpu_memory("H100")
    assert min_gpus(70e9, cap, sharding="none", activations=False) is None  # 1.1 TB of state on one GPU
    n = min_gpus(70e9, cap, sharding="full", activations=False)
    assert n == int(np.ceil(16 * 70e9 / cap))
    assert memory_per_gpu(70e9, gpus=n, sharding="full", activations=False)["total"] <= cap


def test_checkpointing_cuts_activations():
    full = memory_per_gpu(7e9, layers=32, d_model=4096, seq_len=4096)["activations"]
    ckpt = memory_per_gpu(7e9, layers=32, d_model=4096, seq_len=4096, checkpointing=True)["activations"]
    assert full == 32 * 34 * 4096 * 4096 and ckpt < full / 10


def test_gpu_table_is_shared_with_the_harness():
    assert gpu_key("NVIDIA H100 80GB HBM3") == "H100" and gpu_key("NVIDIA H100 PCIe") == "H100 PCIe"
    assert gpu_peak("NVIDIA A100-SXM4-40GB", "bf16") == 312e12 and gpu_memory("NVIDIA A100-SXM4-40GB") == 40 * 2 ** 30
    code = ("import sys, analysis, analysis.cost, harness.hardware, harness.efficiency; "
            "assert 'torch' not in sys.modules, 'torch loaded'; "
            "import harness.metrics as m, harness.hardware as h; assert m.gpu_peak is h.gpu_peak")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the law along its frontier ------------------------------------------------------------------------------


def _p(params=HOFFMANN):
    return {k: np.array([v]) for k, v in params.items()}


def test_frontier_helpers_invert_each_other():
    fit = ChinchillaFit(dict(HOFFMANN), 0.0, 0, ("N", "D", "loss"))
    n, d = optimal_allocation(_p(), 1e22)
    assert (n[0], d[0]) == pytest.approx(tuple(x for x in fit.optimal_allocation(1e22)), rel=1e-9)
    assert tokens_for_params(_p(), n)[0] == pytest.approx(d[0], rel=1e-9)
    target = float(chinchilla_loss(HOFFMANN, n, d)[0])
    assert compute_for_loss(_p(), target)[0] == pytest.approx(1e22, rel=1e-9)
    assert np.isnan(compute_for_loss(_p(), HOFFMANN["E"] - 0.1)[0])


def test_published_law_by_name_plans_compute_and_loss_targets():
    plan = plan_cost("hoffmann2022", compute=1e21, gpu="H100", gpus=64, usd_per_gpu_hour=2.5).to_dict()
    n, d = ChinchillaFit(dict(HOFFMANN), 0.0, 0, ("N", "D", "loss")).optimal_allocation(1e21)
    assert (plan["params"], plan["tokens"]) == pytest.approx((float(n), float(d)), rel=1e-9)
    assert plan["predicted_loss"] == pytest.approx(float(chinchilla_loss(HOFFMANN, n, d)), rel=1e-9)
    assert plan["compute_per_halving"] == pytest.approx(2 ** (1 / (0.33917 * 0.28491 / (0.33917 + 0.28491))))
    by_loss = plan_cost("epoch2024", loss=2.2, sharding="full").to_dict()
    assert by_loss["predicted_loss"] == pytest.approx(2.2, rel=1e-9)
    assert by_loss["gpus"] == by_loss["gpus_min"] >= 1


# --- a fits.json written by the report -------------------------------------------------------------------------


def _fitted(n_boot: int = 40, seed: int = 0) -> ChinchillaFit:
    """A fit as fit_chinchilla returns it, with bootstrap replicas scattered around Hoffmann's law."""
    rng = np.random.default_rng(seed)
    samples = pd.DataFrame({k: v * np.exp(rng.normal(0, 0.03, n_boot)) for k, v in HOFFMANN.items()})
    return ChinchillaFit(dict(HOFFMANN), 0.01, 20, ("params", "tokens", "val_loss"), samples=samples,
                         fit_range={"N": (1e4, 3e5), "D": (1e6, 1e8), "C": (1e12, 1e14)})


@pytest.fixture
def fits_json(tmp_path):
    from analysis.report import Report, Section, write

    sec = Section("Chinchilla approach 3", numbers={"chinchilla": _fitted().to_dict(), "allocation": []})
    write(Report("isoflop", tmp_path, 20, {"ok": 20}, [Section("IsoFLOP (approach 2) and frontier"), sec],
                 {"loss": "val_loss", "N": "params", "D": "tokens", "C": "flops_total"}))
    return tmp_path / "fits.json"


def test_plan_1000x_beyond_the_largest_fitted_run_from_fits_json(fits_json, tmp_path):
    law = load_law(fits_json)
    assert law.samples is not None and len(law.samples) == 40 and law.fit_range["C"] == (1e12, 1e14)
    assert "Chinchilla approach 3" in law.source
    plan = plan_cost(fits_json, compute=1000 * law.fit_range["C"][1], gpu="H100", gpus=8, usd_per_gpu_hour=2.5)
    d = plan.to_dict()
    assert d["C_over_fitted_max"] == pytest.approx(1000)
    assert "1,000× the largest fitted" in d["notes"][0]
    for name in ("params", "tokens", "predicted_loss", "memory_per_gpu_bytes"):
        lo, hi = d[f"{name}_interval90"]
        assert lo <= hi, name
    lo, hi = d["predicted_loss_interval90"]
    assert lo < d["predicted_loss"] < hi
    assert "flops_interval90" not in d and "usd_interval90" not in d  # C and a constant MFU fix the cost
    by_size = plan_cost(fits_json, params=1e9, gpus=8).to_dict()  # compute-optimal tokens: C is uncertain
    for name in ("tokens", "flops", "gpu_hours", "days", "usd"):
        lo, hi = by_size[f"{name}_interval90"]
        assert lo < by_size[name] < hi, name
    assert set(d["memory_per_gpu_bytes"]) >= {"weights", "gradients", "optimizer", "activations"}
    figures = plan.plot(tmp_path / "plots")
    assert [f.suffix for f in figures] == [".png", ".svg"] and all(f.stat().st_size > 1000 for f in figures)


def test_a_flat_law_and_an_absurd_allocation_are_flagged():
    flat = {"E": 0.01, "A": 3.4, "B": 1.0, "alpha": 0.004, "beta": 0.02}
    notes = plan_cost(flat, compute=1e21, mfu=0.4).notes
    assert any(n.startswith("suspect law") for n in notes)
    assert any("tokens per parameter is far from" in n for n in plan_cost(params=1e3, tokens=1e12).notes)
    assert not any(n.startswith("suspect") for n in plan_cost("hoffmann2022", compute=1e21).notes)


def test_real_fit_writes_samples_and_range_that_the_planner_reads(tmp_path):
    from analysis import fit_chinchilla

    N, D = np.meshgrid(np.geomspace(1e4, 1e6, 5), np.geomspace(1e6, 1e8, 4))
    df = pd.DataFrame({"N": N.ravel(), "D": D.ravel()})
    df["loss"] = chinchilla_loss(HOFFMANN, df.N, df.D) * np.exp(np.random.default_rng(1).normal(0, 0.002, len(df)))
    fit = fit_chinchilla(df, starts=[HOFFMANN], bootstrap=8, workers=1)
    (tmp_path / "fits.json").write_text(json.dumps({"laws": {"approach3": fit.to_dict()}}))
    (tmp_path / "report").mkdir()
    (tmp_path / "fits.json").rename(tmp_path / "report" / "fits.json")
    law = load_law(tmp_path)  # a study folder: its report/fits.json
    assert len(law.samples) == 8 and law.fit_range["C"][1] == pytest.approx(6e14)
    assert law.params == pytest.approx(fit.params)


def test_older_fits_json_without_range_uses_its_allocation_table(tmp_path):
    d = _fitted().to_dict()
    del d["fit_range"], d["samples"]
    path = tmp_path / "fits.json"
    path.write_text(json.dumps({"sections": [{"title": "Chinchilla approach 3", "chinchilla": d,
                                              "allocation": [{"C (6ND)": 5e13}]}]}))
    out = plan_cost(path, compute=5e16, mfu=0.3).to_dict()
    assert out["C_over_fitted_max"] == pytest.approx(1000) and "predicted_loss_interval90" not in out


# --- measured efficiency ---------------------------------------------------------------------------------------


def _study(tmp_path) -> pd.DataFrame:
    rows = [{"model.name": "transformer", "params": n, "mfu": 0.01 * (n / 1e4) ** 0.5, "status": "ok",
             "env.device": "cpu", "flops_total": 1e12, "peak_flops_per_s": 1e11, "wall_s": 100.0}
            for n in (1e4, 4e4, 1.6e5)]
    rows.append({"model.name": "lstm", "params": 1e4, "mfu": 0.002, "status": "ok", "env.device": "cpu"})
    rows.append({"model.name": "transformer", "params": 1e5, "mfu": 0.9, "status": "diverged"})
    table = pd.DataFrame(rows)
    table.to_parquet(tmp_path / "results.parquet")
    return table


def test_mfu_is_fitted_against_size_and_clamped_outside_it(tmp_path):
    model = fit_mfu(_study(tmp_path))
    t = model.curves["transformer"]
    assert t.slope == pytest.approx(0.5) and t.params_range == (1e4, 1.6e5) and t.n_runs == 3
    assert model.predict(4e4, "transformer") == (pytest.approx(0.02), "")
    value, note = model.predict(1e9, "transformer")
    assert value == pytest.approx(0.04) and "outside the measured" in note
    assert model.predict(1e4, "lstm")[0] == pytest.approx(0.002)  # one size: its median
    assert wall_mfu(_study(tmp_path)).iloc[0] == pytest.approx(0.1)


def test_plan_takes_mfu_from_a_collected_study(tmp_path):
    _study(tmp_path)
    plan = plan_cost(params=1e9, tokens=2e10, mfu_from=tmp_path / "results.parquet", gpus=8).to_dict()
    assert plan["mfu"] == pytest.approx(0.04)
    assert any("MFU extrapolated" in n for n in plan["notes"])
    assert "results.parquet" in plan["mfu_source"] and "no cuda runs in it: measured on cpu" in plan["mfu_source"]
    assert plan["utilisation"][0]["MFU"] == "0.04 (this plan)"  # then the 30/50/70/90% rows


# --- the command line ------------------------------------------------------------------------------------------


def test_cli_prints_the_plan_with_intervals_and_json(fits_json, capsys):
    assert main([f"law={fits_json}", "compute=1e21", "gpu=H100", "gpus=64", "usd_per_gpu_hour=2.5"]) == 0
    out = capsys.readouterr().out
    assert "predicted loss" in out and "bootstrap replicas" in out and "Utilisation" in out
    loss_line = next(line for line in out.splitlines() if "predicted loss" in line)
    assert "[" in loss_line
    assert main(["law=hoffmann2022", "compute=1e21", "gpu=H100", "gpus=64", "usd_per_gpu_hour=2.5", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("params", "tokens", "flops", "predicted_loss", "gpu_hours", "days", "usd", "gpus_min",
                "memory_per_gpu_bytes", "flops_convention"):
        assert key in d
    assert main(["law=epoch2024", "params=7e9", "--markdown"]) == 0
    assert "| GPU-hours |" in capsys.readouterr().out


@pytest.mark.parametrize("args, key", [
    (["law=hoffmann2022", "compute=1e21", "gpu=V100"], "gpu=V100"),
    (["law=hoffmann2022", "compute=1e21", "usd_per_gpu_hour=-1"], "usd_per_gpu_hour=-1"),
    (["law=hoffmann2022", "loss=1.5"], "loss=1.5"),
    (["law=hoffmann2022", "compute=1e21", "sharding=zero9"], "sharding=zero9"),
    (["law=hoffmann2022", "compute=1e21", "colour=red"], "colour=red"),
    (["compute=1e21"], "law="),
    (["law=hoffmann2022", "compute=1e21", "params=1e9"], "target="),
])
def test_bad_input_is_one_line_and_exit_2(args, key, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {key}")


def test_law_file_without_the_needed_fields_is_one_line(tmp_path, capsys):
    (tmp_path / "fits.json").write_text(json.dumps({"sections": [{"title": "x", "power_law": {"alpha": 0.3}}]}))
    assert main([f"law={tmp_path / 'fits.json'}", "compute=1e21"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "E, A, B, alpha, beta" in err
    with pytest.raises(CostError, match="law=nope"):
        load_law("nope")


def test_harness_plan_times_from_the_studys_own_runs(tmp_path):
    from harness.plan import DEFAULT_EFFICIENCY, recorded_efficiency

    assert recorded_efficiency(tmp_path / "absent") == {}
    for i, n in enumerate((1e4, 1e5)):
        run = tmp_path / f"r{i}"
        run.mkdir()
        metrics = {"params": n, "flops_total": 1e10 * n / 1e4, "peak_flops_per_s": 1e11, "wall_s": 10.0,
                   "mfu": 0.1, "train_loss": 1.0}
        pd.DataFrame({"train_loss": [1.0]}).to_parquet(run / "history.parquet")
        (run / "result.json").write_text(json.dumps({"run_id": f"r{i}", "status": "ok", "metrics": metrics,
                                                     "config": {"model": {"name": "transformer"}},
                                                     "env": {"device": "cpu"}}))
    recorded = recorded_efficiency(tmp_path)
    assert set(recorded) == {"cpu"}  # no cuda runs: a cuda plan keeps its default
    model = recorded["cpu"]
    assert model.column == "wall_mfu" and model.predict(1e4, "transformer")[0] == pytest.approx(0.01)
    assert model.predict(1e5, "transformer")[0] == pytest.approx(0.1)
    low, high = (DEFAULT_EFFICIENCY["cpu"].predict(n, "transformer")[0] for n in (1e4, 1e6))
    assert 0.001 < low < 0.3 and low < high < 1  # tiny CPU models: far below the old constant 0.3, rising with size
