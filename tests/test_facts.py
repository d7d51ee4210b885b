"""The exact-floor task (`facts`), exact evaluation, the floor-fixed law, the invalid-test guard and task_seed."""
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from analysis.forecast import FLOOR_LAW, forecast, place_targets, validity
from harness import compose
from harness.data import build_data
from harness.data.base import IGNORE, Dataset, DataSpec
from harness.data.facts import noise_entropy
from harness.data.markov import _Chain, sample_chain, transition_probs
from harness.train import evaluate

from test_forecast import TRUE, ladder, law


def facts(*overrides):
    return build_data(compose(["data=facts", "data.val_tokens=8192", *overrides]).data, 0)


class Table(nn.Module):
    """A 'model' whose next-token logits depend on the current token only: logits[x]."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = nn.Parameter(logits)

    def forward(self, x):
        return self.logits[x]


def test_facts_scores_values_only_and_its_floor_is_the_noise_entropy():
    d = facts()
    x, y = next(iter(d.val_batches(8, 8)))
    cfg = compose(["data=facts"]).data
    alphabet, k, t = int(cfg.alphabet), int(cfg.key_len), int(cfg.seq_len)
    scored = y != IGNORE
    values = (t - k) // (k + 1) + 1  # whole records of k + 1 tokens whose value lands among the t targets
    assert (y[scored] >= alphabet).all() and scored.float().mean() == pytest.approx(values / t)
    p = d.truth(x)
    assert torch.allclose(p[scored].sum(-1), torch.ones(int(scored.sum())))
    exact = -(p * p.clamp_min(1e-12).log()).sum(-1)[scored].mean()
    assert float(exact) == pytest.approx(d.spec.info["loss_floor"], rel=1e-5)  # the truth reaches the floor exactly
    assert d.spec.info["loss_floor"] == pytest.approx(noise_entropy(16, 0.05))
    assert d.spec.info["theory_data_exponent"] == pytest.approx(0.5 / 1.5)
    # the drawn values disagree with the noise-free table about as often as the noise says
    wrong = (p[scored].argmax(-1) != y[scored]).float().mean()
    assert 0.01 < float(wrong) < 0.12


def test_task_seed_draws_a_new_instance_and_run_seed_only_the_training_records():
    a, b, c = facts(), facts("data.task_seed=1"), build_data(compose(["data=facts", "data.val_tokens=8192"]).data, 5)
    xa, xb, xc = (next(iter(d.val_batches(4, 4)))[0] for d in (a, b, c))
    assert torch.equal(xa, xc) and not torch.equal(xa, xb)  # one validation set per instance, shared by run seeds
    assert not torch.equal(a.sampler(0).next(4)[0], a.sampler(1).next(4)[0])


def test_exact_and_sampled_losses_agree_in_expectation_and_exact_has_less_spread():
    """A fixed model scored on 16 independent validation draws of one order-1 chain: the exact loss keeps the
    variance from which contexts were drawn and loses the variance of the drawn next tokens."""
    probs = transition_probs(16, 1, 0.3, 1.0, chain_seed=0)
    chain = _Chain(probs)
    model = Table(torch.randn(16, 16, generator=torch.Generator().manual_seed(0)))
    exact, sampled = [], []
    for s in range(16):
        val = sample_chain(chain, 4097, np.random.default_rng(s))
        d = Dataset(DataSpec(kind="tokens", loss="ce", n_outputs=16, seq_len=32), (val, val), (val, val),
                    truth=lambda x: probs[x])
        e, smp, _ = evaluate(model, d, 128, 32, torch.autocast("cpu", enabled=False))
        exact.append(e)
        sampled.append(smp)
    exact, sampled = np.array(exact), np.array(sampled)
    se = sampled.std(ddof=1) / math.sqrt(len(sampled))
    assert abs(exact.mean() - sampled.mean()) < 3 * se + 1e-3
    assert exact.std(ddof=1) < 0.85 * sampled.std(ddof=1)


def test_a_facts_run_records_exact_and_sampled_val_loss(tmp_path):
    from harness import run

    res = run(compose(["model=transformer", "data=facts", "data.val_tokens=4096", "model.d_model=32",
                       "model.n_layers=1", "model.n_heads=2", "trainer.batch_size=8", "trainer.max_steps=30",
                       "trainer.eval_samples=32", "optim.lr=1e-2", "logger=none", f"out_dir={tmp_path}"]))
    m = res.metrics
    assert res.status == "ok" and m["val_loss_sampled"] is not None
    assert m["loss_floor"] < m["val_loss"] < math.log(64)  # above the floor, below the uniform guess
    assert res.history["val_loss_sampled"].notna().any()


def test_floor_law_recovers_exponents_with_E_fixed():
    runs = ladder(np.random.default_rng(0), 0.002)
    target = place_targets(runs, [10])
    got = forecast(runs, target, 0.002, seeds=2, bootstrap=0, floor=TRUE["E"])
    fixed = got["laws"][FLOOR_LAW]["params"]
    assert fixed["E"] == TRUE["E"]
    assert fixed["alpha"] == pytest.approx(TRUE["alpha"], rel=0.1) and fixed["beta"] == pytest.approx(TRUE["beta"], rel=0.1)
    row = next(f for f in got["forecasts"] if f["law"] == FLOOR_LAW)
    assert row["predicted"] == pytest.approx(law(target[0]["params"], target[0]["tokens"]), rel=0.01)
    assert "approach3" in got["laws"]  # the free fit stays beside it


def test_guard_marks_targets_that_do_not_beat_cheaper_runs_or_leave_the_support():
    runs = ladder(np.random.default_rng(0), 0.002)
    t = place_targets(runs, [10])[0]
    truth = law(t["params"], t["tokens"])
    assert validity(t, truth, runs, 0.002) == (True, None)
    ok, why = validity(t, float(runs.val_loss.min()) * 1.001, runs, 0.002)
    assert not ok and "not below the best cheaper ladder run" in why
    ok, why = validity({**t, "params": 10 * runs.params.max()}, truth, runs, 0.002)
    assert not ok and "outside the ladder's support" in why


def test_harness_forecast_task_seed_studies_and_refusals(tmp_path):
    from analysis.forecast_study import Forecast

    f = Forecast("smoke", "facts", str(tmp_path), [], task_seed=2)
    assert f.study == "forecast_facts_s2" and "data.task_seed=2" in f.base
    assert int(f.config("stage=target").data.task_seed) == 2
    out = subprocess.run([sys.executable, "-m", "analysis.forecast_study", "task=pycode", "task_seed=1",
                          f"out_dir={tmp_path}"], capture_output=True, text=True)
    assert out.returncode == 2 and "task_seed" in out.stderr and len(out.stderr.strip().splitlines()) == 1
