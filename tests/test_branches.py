"""Cooldown branches: WSD runs of one size share their constant-LR trunk and equal independent runs."""
import json

import pytest

from conftest import small
from harness.branches import TRUNKS, decay_start
from harness.config import ConfigError, compose
from harness.runner import run
from harness.train import check_training, lr_schedule

WSD = ["optim.schedule=wsd", "optim.min_lr_ratio=0", "optim.decay_fraction=0.25"]


def test_wsd_holds_the_peak_then_decays_linearly_over_its_last_fraction():
    cfg = compose(small("mlp", "runs", *WSD, "optim.warmup_steps=10")).optim
    factor = lr_schedule(cfg, 100)
    assert decay_start(100, 0.25) == 75
    assert factor(4) == pytest.approx(0.5) and factor(40) == factor(74) == 1.0
    assert factor(75) == 1.0 and factor(85) == pytest.approx(0.6) and factor(99) == pytest.approx(0.04)


def test_branches_start_from_the_shared_trunk_and_equal_an_independent_run(runs):
    branch = small("transformer", runs, *WSD, "trainer.branch=true")
    short = run(compose([*branch, "trainer.max_steps=16"]))
    long = run(compose([*branch, "trainer.max_steps=40"]))
    alone = run(compose([*small("transformer", runs / "alone", *WSD), "trainer.max_steps=40"]))
    assert short.status == long.status == alone.status == "ok"
    assert short.metrics["trunk_step"] is None and long.metrics["trunk_step"] == decay_start(16, 0.25) == 12
    assert long.metrics["val_loss"] == pytest.approx(alone.metrics["val_loss"], rel=1e-5)
    assert long.history["train_loss"].tolist() == pytest.approx(alone.history["train_loss"].tolist(), rel=1e-5)
    settings = json.loads((long.run_dir / "result.json").read_text())["settings"]
    assert settings["schedule"] == "wsd" and settings["decay_start"] == 30  # recorded where the decay began
    saved = sorted(p.name for p in long.run_dir.parent.glob(f"{TRUNKS}/*/step_*.pt"))
    assert saved == ["step_12.pt", "step_30.pt"]  # each branch saved its own decay start, in one trunk
    again = run(compose([*branch, "trainer.max_steps=40"]))
    assert again.run_dir == long.run_dir and again.metrics == long.metrics  # a finished branch is reused


@pytest.mark.parametrize("bad, why", [
    (["optim.schedule=cosine"], "optim.schedule=wsd"),
    (["optim.warmup_fraction=0.1"], "optim.warmup_steps"),
    (["optim.lr_tokens_exponent=-0.1", "optim.lr_ref_tokens=1e5"], "lr_tokens_exponent=0"),
])
def test_a_branch_whose_trunk_would_depend_on_its_length_is_refused_in_one_line(runs, bad, why):
    cfg = compose(small("mlp", runs, *WSD, "trainer.branch=true", *bad))
    with pytest.raises(ConfigError, match=why) as e:
        check_training(cfg)
    assert "trainer.branch" in str(e.value) and "\n" not in str(e.value)
