"""Forecasts: the LR rule, calibrated intervals, the Markov floor, fresh data, and the smoke study end to end."""
import itertools
import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.forecast import fit_lr_rule, forecast, place_targets, score
from harness import compose
from harness.data import build_data
from harness.data.markov import entropy_rate, stationary, transition_probs, window_floor

TRUE = {"E": 1.8, "A": 60.0, "B": 300.0, "alpha": 0.35, "beta": 0.4}


def law(n, d):
    return TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]


def ladder(rng, sigma):
    """IsoFLOP ladder from the known law with log-normal noise: 4 budgets over 27x, 5 sizes each."""
    rows = []
    for c, m in itertools.product([1e13, 3e13, 1e14, 2.7e14], [0.35, 0.6, 1, 1.7, 2.9]):
        n = math.sqrt(c / 120) * m
        d = c / (6 * n)
        rows.append({"params": n, "tokens": d, "budget": c, "size_mult": m,
                     "val_loss": law(n, d) * math.exp(rng.normal(0, sigma))})
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_intervals_cover_the_seed_mean_at_close_to_their_nominal_rate():
    sigma, trials, covered = 0.01, 20, {"approach3": 0}
    for t in range(trials):
        rng = np.random.default_rng(t)
        runs = ladder(rng, sigma)
        target = place_targets(runs, [10])
        measured = law(target[0]["params"], target[0]["tokens"]) * math.exp(rng.normal(0, sigma / math.sqrt(2)))
        got = forecast(runs, target, sigma, seeds=2, bootstrap=25, seed=t, laws=tuple(covered), lobo=False)
        table = pd.DataFrame({"target": [0], "val_loss": [measured]})
        for row in score(got["forecasts"], table, floor=TRUE["E"]):
            if row["law"] in covered:
                covered[row["law"]] += row["covered"]
    # nominal 90%: over 20 trials a calibrated interval covers 15-20 times with 96% probability
    assert covered["approach3"] >= 15, covered  # (the frontier law through IsoFLOP minima covered 14/20: biased minima)


def test_approach3_forecast_recovers_the_law_and_its_floor():
    runs = ladder(np.random.default_rng(0), 0.002)
    target = place_targets(runs, [10])
    got = forecast(runs, target, 0.002, seeds=2, bootstrap=0, floor=TRUE["E"])
    a3 = next(f for f in got["forecasts"] if f["law"] == "approach3")
    truth = law(target[0]["params"], target[0]["tokens"])
    assert a3["predicted"] == pytest.approx(truth, rel=0.01)
    assert abs(got["E_vs_floor"]["rel_error"]) < 0.05
    assert a3["lobo_rel_std"] < 0.02  # dropping one budget barely moves a well-posed forecast
    assert target[0]["sized_by"] == "IsoFLOP N_opt(C)"


def test_lr_rule_recovers_the_exponent_and_warns_at_the_grid_edge():
    rows = []
    for n, lr in itertools.product([1e4, 4e4, 1.6e5], [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2]):
        best = 4e-3 * (n / 4e4) ** -0.5
        rows.append({"size_mult": n, "params": n, "optim.lr": lr, "status": "ok",
                     "val_loss": 3 + 0.1 * math.log(lr / best) ** 2})
    rule = fit_lr_rule(pd.DataFrame(rows))
    assert rule.exponent == pytest.approx(-0.5, abs=0.02)
    assert rule.lr(4e4) == pytest.approx(4e-3, rel=0.05)
    assert not rule.warnings
    edge = fit_lr_rule(pd.DataFrame([r for r in rows if r["optim.lr"] >= 4e-3]))  # 1.6e5's best (2e-3) now off-grid
    assert any("N=160,000 is at the grid's edge (0.004)" in w for w in edge.warnings)


def test_a_run_trains_at_the_rule_of_its_size_and_length():
    from harness.train import peak_lr

    cfg = compose(["optim.lr=1e-2", "optim.lr_exponent=-0.5", "optim.lr_ref_params=1000",
                   "optim.lr_tokens_exponent=-0.25", "optim.lr_ref_tokens=1e6"]).optim
    assert peak_lr(cfg, 4000, 16e6) == pytest.approx(1e-2 * 0.5 * 0.5)
    assert peak_lr(compose([]).optim, 4000, 16e6) == float(compose([]).optim.lr)  # no rule: optim.lr


def test_lr_rule_in_size_and_length_recovers_both_exponents_and_leaves_edges_out():
    rows = []
    for c, n, lr in itertools.product([1e12, 4e12], [1e4, 4e4, 1.6e5], [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2]):
        d = c / (6 * n)
        best = 4e-3 * (n / 4e4) ** -0.5 * (d / 1e7) ** -0.3
        rows.append({"budget": c, "size_mult": n, "params": n, "tokens": d, "optim.lr": lr, "status": "ok",
                     "val_loss": 3 + 0.1 * math.log(lr / best) ** 2})
    rule = fit_lr_rule(pd.DataFrame(rows))
    assert rule.exponent == pytest.approx(-0.5, abs=0.03) and rule.tokens_exponent == pytest.approx(-0.3, abs=0.03)
    assert rule.lr(4e4, 1e7) == pytest.approx(4e-3, rel=0.05)
    assert "optim.lr_tokens_exponent" in " ".join(rule.overrides())
    # the smallest model at the short budget wants 1.6e-2 * ... > the grid's top: that grid is left out
    top = fit_lr_rule(pd.DataFrame([r for r in rows if r["optim.lr"] <= 8e-3]))
    assert top.best.at_edge.any() and "leaves the edge points out" in top.warnings[-1]
    assert top.exponent == pytest.approx(-0.5, abs=0.05)
    rising = fit_lr_rule(pd.DataFrame([{**r, "val_loss": 3 + 0.1 * math.log(r["optim.lr"] / (4e-3 * (r["params"] / 4e4) ** -0.5
                                                                                 * (r["tokens"] / 1e7) ** 0.4)) ** 2}
                                       for r in rows]))
    assert rising.tokens_exponent == 0 and "rose with the run's length" in rising.warnings[-1]


def test_window_floor_is_the_bayes_loss_of_a_window():
    """Enumerate every window of a small order-2 chain: the true conditional's mean loss equals the formula."""
    probs = transition_probs(3, 2, 0.7, 0.5, chain_seed=1).double()
    pi, T = stationary(probs), 4
    total = 0.0
    for seq in itertools.product(range(3), repeat=T + 1):
        p_seq = pi[seq[0], seq[1]].item() * math.prod(probs[seq[i - 2], seq[i - 1], seq[i]].item() for i in range(2, T + 1))
        # loss of predicting seq[1] from seq[0] (marginal of the pair), then each later token from its 2 predecessors
        p_first = pi[seq[0]].sum().item()
        total -= p_seq * math.log(pi[seq[0], seq[1]].item() / p_first)
        total -= p_seq * sum(math.log(probs[seq[i - 2], seq[i - 1], seq[i]].item()) for i in range(2, T + 1))
    assert window_floor(probs, T) == pytest.approx(total / T, rel=1e-6)  # pi by power iteration
    assert window_floor(probs, T) > entropy_rate(probs)


def test_streamed_markov_never_repeats_and_is_reproducible():
    d = build_data(compose(["data=markov_zipf_small", "data.seq_len=16", "data.val_tokens=2000"]).data, 0)
    a, b = d.sampler(3), d.sampler(3)
    xa, ya = a.next(8)
    assert torch.equal(xa, b.next(8)[0]) and torch.equal(xa[:, 1:], ya[:, :-1])
    state = a.state_dict()
    after = a.next(8)[0]
    b.load_state_dict(state)
    assert torch.equal(after, b.next(8)[0])  # the checkpointable position resumes the same stream
    assert not torch.equal(after, xa)
    assert d.n_train == math.inf and d.spec.info["loss_floor"] == pytest.approx(d.spec.info["entropy_rate"])


def test_epoch_sampler_reads_each_window_once_per_epoch():
    d = build_data(compose(["data=markov", "data.train_tokens=1601", "data.seq_len=16", "data.val_tokens=500"]).data, 0)
    s = d.sampler(0)
    windows = torch.cat([s.next(20)[0] for _ in range(5)])  # 100 windows = one epoch
    assert len({tuple(w.tolist()) for w in windows}) == d.n_train == 100
    assert torch.equal(torch.cat([w for w in windows]).sort().values, d.train[0][:1600].sort().values)


def harness(*args, cwd=None):
    env = {**os.environ, "WANDB_SILENT": "true"}
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_a_fresh_data_run_that_would_repeat_tokens_fails_in_one_line(tmp_path):
    out = harness("data=markov", "data.train_tokens=20000", "data.seq_len=16", "trainer.max_tokens=50000",
                  "trainer.fresh_data=true", "logger=none", f"out_dir={tmp_path}")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: data.train_tokens=") and "epochs" in lines[0]
    assert not any(tmp_path.rglob("result.json"))


def test_epochs_are_recorded_and_can_set_the_budget(tmp_path):
    from harness import run

    cfg = compose(["model=transformer", "model.d_model=16", "model.n_layers=1", "data=markov", "data.train_tokens=4097",
                   "data.seq_len=16", "data.val_tokens=1000", "trainer.batch_size=16", "trainer.max_epochs=2",
                   "logger=none", f"out_dir={tmp_path}"])
    result = run(cfg)
    assert result.status == "ok"
    assert result.metrics["steps"] == 32 and result.metrics["epochs"] == pytest.approx(2.0)


@pytest.mark.slow
def test_smoke_forecast_preregisters_keeps_and_scores(tmp_path, capsys):
    common = ["scale=smoke", f"out_dir={tmp_path}", "logger=none", "bootstrap=50", "grid.smoke.target_lrs=[1,0.5]"]

    def forecast_cli(*args):  # the training steps, as a user runs them
        env = {**os.environ, "WANDB_SILENT": "true", "OPENBLAS_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, "-m", "analysis.forecast_study", *common, *args],
                             capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr[-3000:]
        return out

    def fit_step(*args):  # register and score train nothing: in this process (the suite's time)
        from analysis.forecast_study import main

        main([*common, *args])
        return subprocess.CompletedProcess(args, 0, capsys.readouterr().out, "")

    study = tmp_path / "forecast"
    for step in ("lr", "ladder", "noise"):
        forecast_cli(f"step={step}")
    fit_step("step=register")
    registered = (study / "forecast.json").read_text()
    stages = [json.loads(p.read_text())["config"]["stage"] for p in study.glob("*/result.json")]
    assert "target" not in stages and stages.count("ladder") == 20  # written before any target run existed
    assert len(json.loads(registered)["fitted_run_ids"]) == 20
    target = json.loads(registered)["targets"][0]  # its LRs written down before it trains
    assert target["lr_mults"] == [1.0, 0.5] and target["lrs"][1] == pytest.approx(target["lrs"][0] / 2)
    forecast_cli("step=targets")
    peaks = sorted(json.loads(p.read_text())["settings"]["lr_peak"] for p in study.glob("*/result.json")
                   if json.loads(p.read_text())["config"]["stage"] == "target")
    assert peaks == pytest.approx(sorted(target["lrs"] * 2))  # 2 seeds at each LR, each at the LR registered
    out = fit_step("step=register")  # a target run exists: the forecast is kept, never refitted
    assert (study / "forecast.json").read_text() == registered and "kept the forecast" in out.stdout
    out = fit_step("step=score")
    assert out.stdout.count("target 10x") == 5  # one verdict line per law, each saying whether the test is valid
    assert out.stdout.count("valid test") + out.stdout.count("INVALID TEST") == 5
    fits = json.loads((study / "report" / "fits.json").read_text())
    rows = {f["law"]: f for f in fits["forecasts"]}
    assert set(rows) == {"approach3", "no_offset", "frontier", "approach2", "approach3_floor"}  # the chain's floor is known
    for f in rows.values():
        assert f["measured"] is not None and f["rel_error"] is not None and f["covered"] in (True, False)
        assert {"predicted", "interval90", "reducible_rel_error"} <= set(f) and f["valid"] in (True, False)
    assert abs(rows["approach3"]["rel_error"]) < 0.1
    by_lr = {b["lr_mult"]: b["mean"] for b in rows["approach3"]["by_lr"]}  # scored at the better of its two LRs
    assert set(by_lr) == {1.0, 0.5} and rows["approach3"]["measured"] == pytest.approx(min(by_lr.values()))
    assert rows["approach3"]["rule_lr_measured"] == pytest.approx(by_lr[1.0])
    assert (study / "report" / "report.md").exists() and (study / "report" / "figures" / "forecast.png").exists()


def test_a_registered_forecast_is_a_law_harness_cost_plans_from_with_intervals(tmp_path):
    from analysis.cost import load_law, plan_cost
    from harness.jsonsafe import json_ready

    runs = ladder(np.random.default_rng(1), 0.005)
    got = forecast(runs, place_targets(runs, [10]), 0.005, seeds=2, bootstrap=20, laws=("approach3",), lobo=False)
    path = tmp_path / "forecast.json"
    path.write_text(json.dumps(json_ready({"laws": got["laws"]})))
    law = load_law(path)
    assert len(law.samples) >= 15 and law.fit_range["C"][1] == pytest.approx((runs.params * runs.tokens * 6).max())
    plan = plan_cost(path, compute=100 * law.fit_range["C"][1], gpu="H100", gpus=8).to_dict()
    lo, hi = plan["predicted_loss_interval90"]
    assert lo < plan["predicted_loss"] < hi


@pytest.mark.parametrize("ladder", ["cosine", "branches"])
def test_forecast_plan_times_every_stage_and_runs_nothing(tmp_path, monkeypatch, capsys, ladder):
    from analysis.forecast_study import main

    monkeypatch.setenv("SCALING_LAB_CACHE", str(tmp_path / "cache"))
    main(["scale=smoke", "step=plan", f"ladder={ladder}", f"out_dir={tmp_path / 'runs'}", "calibrate=false"])
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip().endswith("s")
            and line.split()[0] in ("lr", "ladder", "noise", "target", "total")}
    assert set(rows) == {"lr", "ladder", "noise", "target", "total"}, out
    assert all(int(r[1]) > 0 and float(r[2]) > 0 and float(r[3].rstrip("s")) > 0 for r in rows.values())
    assert "isoflop size" in out and ("shared trunk" in out) == (ladder == "branches")
    assert not (tmp_path / "runs").exists()  # nothing trained, not even a study folder


def test_branch_runs_are_charged_from_the_shorter_runs_decay_start():
    from omegaconf import OmegaConf

    from analysis.forecast_plan import branch_fractions

    cfg = OmegaConf.create({"seed": 0, "optim": {"lr": 1e-2, "decay_fraction": 0.2},
                            "trainer": {"branch": True, "batch_size": 16}})
    plans = [{"params": 1000, "steps": 100}, {"params": 1000, "steps": 300}, {"params": 2000, "steps": 300}]
    assert branch_fractions([cfg] * 3, plans) == [1.0, pytest.approx(220 / 300), 1.0]


def test_a_target_tried_at_several_lrs_is_scored_at_its_best_and_an_edge_best_is_flagged():
    registered = [{"law": "approach3", "target": "10x", "predicted": 1.0, "interval90": [0.9, 1.1]}]
    runs = pd.DataFrame({"target": ["10x"] * 6, "lr_mult": [1, 1, 1 / 3, 1 / 3, 1 / 9, 1 / 9],
                         "val_loss": [1.30, 1.32, 1.02, 1.04, 1.10, 1.12]})
    row = score(registered, runs, floor=0.5)[0]
    assert row["measured"] == pytest.approx(1.03) and row["lr_mult"] == pytest.approx(1 / 3) and row["seeds"] == 2
    assert row["rule_lr_measured"] == pytest.approx(1.31) and not row["lr_at_edge"]
    assert row["rel_error"] == pytest.approx(1.0 / 1.03 - 1)
    lowest = score(registered, runs.assign(val_loss=[1.3, 1.3, 1.2, 1.2, 1.0, 1.0]), floor=0.5)[0]
    assert lowest["lr_mult"] == pytest.approx(1 / 9) and lowest["lr_at_edge"]
    one = score(registered, runs[runs.lr_mult == 1], floor=0.5)[0]  # the rule's LR alone: no edge to speak of
    assert one["measured"] == pytest.approx(1.31) and not one["lr_at_edge"]


def test_the_plan_counts_each_target_at_each_of_its_lrs(tmp_path, monkeypatch, capsys):
    from analysis.forecast_study import main

    monkeypatch.setenv("SCALING_LAB_CACHE", str(tmp_path / "cache"))
    runs = {}
    for lrs in ("[1]", "[1,0.3333,0.1111]"):
        main(["scale=smoke", "step=plan", f"out_dir={tmp_path / 'runs'}", "calibrate=false", f"grid.smoke.target_lrs={lrs}"])
        out = capsys.readouterr().out
        runs[lrs] = int(next(line.split()[1] for line in out.splitlines() if line.split()[:1] == ["target"]))
    assert runs["[1,0.3333,0.1111]"] == 3 * runs["[1]"] == 6  # 2 seeds x 3 LRs
