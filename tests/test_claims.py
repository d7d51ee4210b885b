"""harness-claims: every claim's rule both holds and fails on synthetic numbers (no training), bad input is one
line with exit 2, the recall task scores only its answer, and (slow) `scale=smoke` judges every claim and resumes."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.claims import ORDER, VERDICTS, all_claims, costs, nets, sequences, training

ROOT = Path(__file__).resolve().parent.parent


def verdict(rule, m) -> str:
    return rule(m).verdict


# ---- one holding and one failing case per rule ---------------------------------------------------------------


def test_activations_rule():
    base = {"linear_optimum": 1.0, "seed_spread": 0.01}
    holds = {**base, "gap_to_linear": {"identity": 0.02, "relu": -0.5, "gelu": -0.4, "tanh": -0.3}}
    assert verdict(nets.rule_activations, holds) == "holds"
    no_gain = {**base, "gap_to_linear": {"identity": 0.0, "relu": 0.01, "gelu": 0.0, "tanh": -0.01}}
    assert verdict(nets.rule_activations, no_gain) == "does not hold"
    undertrained = {**base, "gap_to_linear": {"identity": 0.01, "relu": 0.5, "gelu": 0.4, "tanh": 0.3}}
    assert verdict(nets.rule_activations, undertrained) == "inconclusive"


def _ratios(sigmoid: float, tanh: float, relu: float) -> dict:
    return {"gradient_ratio": {"sigmoid": {2: 1.0, 32: sigmoid}, "tanh": {2: 1.0, 32: tanh},
                               "relu": {2: 1.0, 32: relu}}, "loss_at_budget": {}}


def test_vanishing_gradients_rule():
    assert verdict(nets.rule_vanishing_gradients, _ratios(1e-9, 1e-4, 0.5)) == "holds"
    assert verdict(nets.rule_vanishing_gradients, _ratios(1e-9, 0.4, 0.5)) == "holds with a correction"
    assert verdict(nets.rule_vanishing_gradients, _ratios(0.3, 0.4, 0.5)) == "does not hold"


def test_depth_rule_and_paired_gain():
    import pandas as pd

    table = pd.DataFrame({"seed": [0, 0, 1, 1], "model.depth": [1, 3, 1, 3], "val_loss": [1.0, 0.8, 2.0, 1.7]})
    gain, spread = nets.paired_gain(table, "model.depth", 1)
    assert gain[3] == pytest.approx(0.25) and spread == pytest.approx(0.1)
    m = {"loss_by_depth": {1: 0.5, 3: 0.3, 6: 0.35}, "gain_over_one_layer": {1: 0, 3: 0.2, 6: 0.15}, "gain_spread": 0.02}
    assert verdict(nets.rule_depth, m) == "holds"
    m["gain_over_one_layer"] = {1: 0, 3: -0.2, 6: -0.15}
    assert verdict(nets.rule_depth, m) == "does not hold"
    m["gain_over_one_layer"] = {1: 0, 3: 0.01}
    assert verdict(nets.rule_depth, m) == "inconclusive"


def test_cnn_sharing_rule_and_interpolation():
    import pandas as pd

    rows = pd.DataFrame({"params": [1e3, 1e4], "val_accuracy": [0.4, 0.8]})
    assert nets.params_to_reach(rows, 0.6) == pytest.approx(10 ** 3.5)
    assert math.isnan(nets.params_to_reach(rows, 0.9))
    m = {"target_accuracy": 0.8, "params_needed": {"mlp": 3e4, "cnn": 2e3}, "eval_shift": 3,
         "accuracy_in_place": {"mlp": 0.95, "cnn": 0.95}, "accuracy_shifted": {"mlp": 0.3, "cnn": 0.9}}
    assert verdict(nets.rule_cnn_sharing, m) == "holds"
    fails = {**m, "params_needed": {"mlp": 1e3, "cnn": 2e3}, "accuracy_shifted": {"mlp": 0.9, "cnn": 0.85}}
    assert verdict(nets.rule_cnn_sharing, fails) == "does not hold"
    assert verdict(nets.rule_cnn_sharing, {**m, "accuracy_shifted": {"mlp": 0.9, "cnn": 0.9}}) == "holds with a correction"
    assert verdict(nets.rule_cnn_sharing, {**m, "accuracy_shifted": {"mlp": None, "cnn": 0.9}}) == "inconclusive"


def _recall(rnn: dict, lstm: dict, transformer: dict) -> dict:
    return {"chance_accuracy": 0.125, "accuracy": {"rnn": rnn, "lstm": lstm, "gru": lstm, "transformer": transformer},
            "rnn_gradient_decay_per_step": 0.5}


def test_long_range_rule():
    solved, fails = 0.95, 0.13
    holds = _recall({5: solved, 200: fails}, {5: solved, 200: solved}, {5: solved, 200: solved})
    assert verdict(sequences.rule_long_range, holds) == "holds"
    rnn_too = _recall({5: solved, 200: solved}, {5: solved, 200: solved}, {5: solved, 200: solved})
    assert verdict(sequences.rule_long_range, rnn_too) == "does not hold"
    short = _recall({5: solved, 20: fails}, {5: solved, 20: solved}, {5: solved, 20: solved})
    assert verdict(sequences.rule_long_range, short) == "inconclusive"
    gated_fail = _recall({5: solved, 200: fails}, {5: solved, 200: fails}, {5: solved, 200: solved})
    assert verdict(sequences.rule_long_range, gated_fail) == "holds with a correction"


def _lengths(*ratios: float) -> dict:
    return {"by_length": [{"seq_len": 32 * 2 ** i, "device": "cuda", "ratio": r} for i, r in enumerate(ratios)]}


def test_parallelism_rule():
    assert verdict(sequences.rule_parallelism, _lengths(1.0, 2.0, 4.0)) == "holds"
    assert verdict(sequences.rule_parallelism, _lengths(0.5, 0.4, 0.1)) == "does not hold"
    assert verdict(sequences.rule_parallelism, _lengths(0.5, 1.2, 0.9)) == "holds with a correction"


def test_attention_cost_rule():
    cpu = {"device": "cpu", "memory_measured": False}
    assert verdict(sequences.rule_attention_cost, {**cpu, "exponents": {"manual_time": 1.9}}) == "holds"
    assert verdict(sequences.rule_attention_cost, {**cpu, "exponents": {"manual_time": 1.1}}) == "does not hold"
    gpu = {"device": "cuda", "memory_measured": True,
           "exponents": {"manual_time": 1.9, "manual_memory": 2.0, "sdpa_memory": 1.0}}
    assert verdict(sequences.rule_attention_cost, gpu) == "holds with a correction"


def test_clean_scaling_rule_is_decided_by_the_transformer_against_the_lstm():
    tf = {"alpha": 0.3, "loo_mean_abs_rel_error": 0.02, "loo_max_abs_rel_error": 0.04}
    lstm = {"alpha": 0.1, "loo_mean_abs_rel_error": 0.03, "loo_max_abs_rel_error": 0.05}
    cnn_bad = {"alpha": 0.2, "loo_mean_abs_rel_error": 1.4, "loo_max_abs_rel_error": 3.9}
    rule = training.rule_clean_scaling
    assert verdict(rule, {"architectures": {"transformer": tf, "rnn": lstm, "cnn": cnn_bad}}) == "holds"
    steeper = {**lstm, "alpha": 0.5}  # the LSTM does not flatten earlier
    assert verdict(rule, {"architectures": {"transformer": tf, "rnn": steeper}}) == "holds with a correction"
    jump = {**tf, "loo_max_abs_rel_error": 0.12}  # one size off the law (a phase change)
    assert verdict(rule, {"architectures": {"transformer": jump, "rnn": lstm}}) == "holds with a correction"
    assert verdict(rule, {"architectures": {"transformer": {**tf, "loo_mean_abs_rel_error": 0.3}, "rnn": lstm}}) \
        == "does not hold"
    assert verdict(rule, {"architectures": {"transformer": {**tf, "alpha": -0.1}}}) == "does not hold"
    assert verdict(rule, {"architectures": {"rnn": lstm}}) == "inconclusive"


def test_batch_lr_rule():
    assert verdict(training.rule_batch_lr, {"gamma": 0.9}) == "holds"
    assert verdict(training.rule_batch_lr, {"gamma": 0.5}) == "holds with a correction"
    assert verdict(training.rule_batch_lr, {"gamma": 0.05}) == "does not hold"


def test_lr_extremes_rule():
    m = {"highest_status": "diverged", "loss_highest": None, "loss_best": 1.0, "loss_lowest": 1.5,
         "lowest_still_falling": True, "lr_highest": 3.0, "lr_lowest": 1e-3, "lr_best": 0.1}
    assert verdict(training.rule_lr_extremes, m) == "holds"
    m.update(highest_status="ok", loss_highest=1.05, loss_lowest=1.02)
    assert verdict(training.rule_lr_extremes, m) == "does not hold"
    assert training._still_falling([4.0, 3.0, 2.0, 1.0]) and not training._still_falling([1.0, 1.0, 1.0, 1.0])


def test_schedule_rule():
    loss = {"constant": 2.0, "warmup only": 1.9, "cosine only": 1.9, "warmup + cosine": 1.8}
    m = {"loss": loss, "gain_over_constant": {"warmup + cosine": 0.2}, "gain_spread": 0.01}
    assert verdict(training.rule_schedule, m) == "holds"
    assert verdict(training.rule_schedule, {**m, "gain_over_constant": {"warmup + cosine": -0.2}}) == "does not hold"
    assert verdict(training.rule_schedule, {**m, "gain_spread": 0.2}) == "inconclusive"


def test_epochs_rule():
    rows = [{"epochs": 8, "penalty": 0.03}, {"epochs": 32, "penalty": 0.1}]
    assert verdict(training.rule_epochs, {"repeated": rows}) == "holds"
    rows = [{"epochs": 2, "penalty": 0.01}, {"epochs": 32, "penalty": 0.1}]
    assert verdict(training.rule_epochs, {"repeated": rows}) == "holds with a correction"
    rows = [{"epochs": 2, "penalty": 0.0}, {"epochs": 16, "penalty": -0.01}]
    assert verdict(training.rule_epochs, {"repeated": rows}) == "does not hold"
    assert verdict(training.rule_epochs, {"repeated": [{"epochs": 4, "penalty": 0.0}]}) == "inconclusive"


def test_gpu_speedup_rule():
    m = {"gpu": "H100", "by_size": [{"params": 1e5, "speedup": 5.0}, {"params": 1e8, "speedup": 90.0}]}
    assert verdict(costs.rule_gpu_speedup, m) == "holds"
    m["by_size"][1]["speedup"] = 0.8
    assert verdict(costs.rule_gpu_speedup, m) == "does not hold"


def test_memory_70b_rule_and_measurement(tmp_path):
    from analysis.claims.lab import Lab

    m, figure = costs.measure_memory_70b(Lab("smoke", tmp_path))
    assert m["weights_gb"] == pytest.approx(140) and figure.exists()
    assert verdict(costs.rule_memory_70b, m) == "holds"
    assert verdict(costs.rule_memory_70b, {**m, "weights_gb": 70.0}) == "does not hold"


def test_utilisation_cost_rule_and_measurement(tmp_path):
    from analysis.claims.lab import Lab

    m, _ = costs.measure_utilisation_cost(Lab("smoke", tmp_path))
    assert m["usd_lost_per_day"] == pytest.approx([19_200, 28_800])  # 1000 GPUs × 24 h × $2–3 × 0.4
    assert verdict(costs.rule_utilisation_cost, {"usd_lost_per_day": [31e3, 48e3]}) == "holds"
    assert verdict(costs.rule_utilisation_cost, m) == "holds with a correction"
    assert verdict(costs.rule_utilisation_cost, {"usd_lost_per_day": [1e3, 2e3]}) == "does not hold"


def test_diminishing_returns_rule():
    m = {"gamma": 0.155, "hoffmann2022_compute_per_halving": 87.9}
    v = costs.rule_diminishing_returns(m)
    assert v.verdict == "holds with a correction" and "87.9×" in v.because
    assert verdict(costs.rule_diminishing_returns, {**m, "gamma": 0.0}) == "does not hold"
    assert verdict(costs.rule_diminishing_returns, {**m, "gamma": float("nan")}) == "inconclusive"


def test_judge_records_blocked_and_crashed_claims_and_write_merges(tmp_path):
    from analysis.claims import Blocked, Claim, Verdict
    from analysis.claims.lab import Lab
    from analysis.claims.report import judge, write

    lab = Lab("smoke", tmp_path)

    def blocked(lab):
        raise Blocked("no GPU")

    def broken(lab):
        raise ZeroDivisionError("bug")

    ok = Claim("memory_70b", "c", "t", lambda lab: ({"x": 1}, None), lambda m: Verdict("holds", "x = 1"))
    entry, crashed = judge(ok, lab)
    assert (entry["verdict"], entry["measured"], crashed) == ("holds", {"x": 1}, False)
    entry, crashed = judge(Claim("gpu_speedup", "c", "t", blocked, ok.rule), lab)
    assert (entry["verdict"], entry["because"], crashed) == ("blocked", "no GPU", False)
    broken_entry, crashed = judge(Claim("depth", "c", "t", broken, ok.rule), lab)
    assert broken_entry["verdict"] == "inconclusive" and crashed
    write(lab, [entry, broken_entry])
    path, report = write(lab, [judge(ok, lab)[0]])  # one claim re-judged: the others' entries stay
    assert [e["name"] for e in json.loads(path.read_text())] == ["depth", "gpu_speedup", "memory_70b"]
    assert "**blocked** | no GPU" in report.read_text()
    with pytest.raises(ValueError):
        Verdict("probably", "")


def test_every_claim_is_registered_in_order():
    assert list(all_claims()) == list(ORDER)


# ---- probes, the recall task, the command line --------------------------------------------------------------


def test_gradient_probes_show_decay():
    assert nets.gradient_ratio("sigmoid", 16, seeds=1) < 0.1 * nets.gradient_ratio("relu", 16, seeds=1)
    rnn, attention = sequences.input_gradients("rnn", 30, seeds=1), sequences.input_gradients("transformer", 30, seeds=1)
    assert rnn[-1] < 1e-3 * rnn[0] and attention[-1] > 0.1 * attention[0]


def test_recall_task_scores_only_the_answer():
    from omegaconf import OmegaConf

    from harness.data import build_data
    from harness.data.recall import IGNORE

    data = build_data(OmegaConf.load(ROOT / "conf" / "data" / "recall.yaml"), 0)
    x, y = data.take_train(data.sampler(0).perm[:4])
    assert x.shape == (4, 21) and (y[:, -1] == x[:, 0]).all() and (y[:, :-1] == IGNORE).all()
    assert data.spec.seq_len == 21 and len(next(data.val_batches(8, 8))[0]) == 8


def test_accuracy_scores_only_the_answer_and_shifted_images_move_the_texture():
    import torch
    from omegaconf import OmegaConf

    from harness.data import build_data
    from harness.train import evaluate

    recall = build_data(OmegaConf.load(ROOT / "conf" / "data" / "recall.yaml"), 0)

    class Oracle(torch.nn.Module):  # right at the answer, wrong everywhere else (which is not scored)
        def forward(self, x):
            return torch.nn.functional.one_hot(x[:, :1].expand_as(x), 9).float() * 10

    off = torch.autocast("cpu", enabled=False)
    assert evaluate(Oracle(), recall, 64, 16, off).accuracy == 1.0
    cfg = OmegaConf.merge(OmegaConf.load(ROOT / "conf" / "data" / "images.yaml"),
                          {"train_samples": 100, "val_samples": 40, "noise": 0, "max_shift": 0, "eval_shift": 3})
    images = build_data(cfg, 0)
    x, y = images.train
    assert torch.allclose(x, x[torch.argmax((y[:, None] == y[None]).int(), 1)])  # in place: one image per class
    moved = images.shifted().val[0]
    assert torch.equal(moved, torch.roll(images.val[0], (3, 3), dims=(2, 3))) and not torch.allclose(moved, images.val[0])
    assert build_data(OmegaConf.load(ROOT / "conf" / "data" / "images.yaml"), 0).shifted() is None


def _claims(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_SILENT": "true"}
    return subprocess.run([sys.executable, "-m", "analysis.claims.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd)


@pytest.mark.parametrize("arg, key", [("scale=huge", "scale=huge"), ("claim=nope", "claim=nope"),
                                      ("nokey", "nokey=: expected key=value")])
def test_bad_input_is_one_line_exit_2(arg, key):
    p = _claims(arg)
    assert p.returncode == 2 and p.stderr.startswith(f"error: {key}") and len(p.stderr.splitlines()) == 1


@pytest.mark.parametrize("sweep", sorted(p.stem for p in (ROOT / "sweeps").glob("claim_*.yaml")))
@pytest.mark.parametrize("scale", ["smoke", "cpu"])
def test_claim_sweeps_expand_and_pass_the_checks(sweep, scale, tmp_path):
    from harness.study import study_configs

    _, configs = study_configs([f"sweep={sweep}", f"scale={scale}", f"out_dir={tmp_path}"])
    assert len(configs) >= 6 and all(c.study == sweep for c in configs)


# ---- end to end ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smoke_judges_every_claim_and_resumes(tmp_path):
    p = _claims("scale=smoke", f"out_dir={tmp_path}")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    entries = json.loads((tmp_path / "claims" / "claims.json").read_text())
    assert [e["name"] for e in entries] == list(ORDER)
    for e in entries:
        assert e["verdict"] in VERDICTS and e["because"], e
        assert not e["because"].startswith(("measurement failed", "no numbers")), e
        assert e["verdict"] == "blocked" or (tmp_path / "claims" / e["figure"]).exists(), e
    assert "| activations |" in (tmp_path / "claims" / "report.md").read_text()
    results = sorted((tmp_path / "claims").glob("*/*/result.json"))
    stamps = [r.stat().st_mtime_ns for r in results]
    # a re-run resumes: one claim's study again (every study resumes the same way; all of them cost the suite ~1 min)
    again = _claims("scale=smoke", "claim=activations", f"out_dir={tmp_path}")
    assert again.returncode == 0
    assert [r.stat().st_mtime_ns for r in results] == stamps  # no run retrained
    assert sorted((tmp_path / "claims").glob("*/*/result.json")) == results
    assert [e["name"] for e in json.loads((tmp_path / "claims" / "claims.json").read_text())] == list(ORDER)
