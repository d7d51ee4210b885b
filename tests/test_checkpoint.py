"""Checkpoints: a run killed half-way resumes from its last checkpoint and ends where an uninterrupted run ends."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import small
from harness.checkpoint import CHECKPOINT, parse_every
from harness.config import ConfigError, compose
from harness.identity import run_id
from harness.runner import run


def test_interval_is_steps_or_seconds_and_bad_values_fail_in_one_line():
    assert parse_every(50) == ("steps", 50)
    assert parse_every("90s") == ("seconds", 90.0)
    assert parse_every("2m") == ("seconds", 120.0)
    assert parse_every(0) is None and parse_every(None) is None
    for bad in ("soon", -3, "1.5", "-2s"):
        with pytest.raises(ConfigError, match="trainer.checkpoint_every"):
            parse_every(bad)


def test_checkpoint_settings_do_not_change_the_run_id(runs):
    a = compose(small("mlp", runs))
    b = compose(small("mlp", runs, "trainer.checkpoint_every=7", "trainer.keep_checkpoint=true"))
    assert run_id(a) == run_id(b)


def test_finished_run_removes_its_checkpoint_unless_kept(runs):
    res = run(compose(small("mlp", runs, "trainer.max_steps=12", "trainer.checkpoint_every=5")))
    assert res.status == "ok" and res.metrics["checkpoints"] == 2 and not (res.run_dir / CHECKPOINT).exists()
    kept = run(compose(small("mlp", runs, "trainer.max_steps=12", "trainer.checkpoint_every=5",
                             "trainer.keep_checkpoint=true", "seed=1")))
    state = torch.load(kept.run_dir / CHECKPOINT, weights_only=False)
    assert state["loop"]["steps"] == 10 and {"model", "optimizer", "rng", "data"} <= set(state)


def test_interrupted_run_resumes_from_its_checkpoint_in_process(runs, monkeypatch):
    """Interrupted at step 13 of 20 (checkpoint at 10): the re-run trains steps 11-20 only, same losses."""
    args = small("transformer", runs, "trainer.max_steps=20", "trainer.checkpoint_every=5")
    reference = run(compose(args + [f"out_dir={runs}/ref"]))

    cfg = compose(args)
    import harness.runner as runner_module
    real_train = runner_module.train

    trained = []

    def train_until(stop):
        def wrapped(*a, **k):
            on_log = a[6]

            def log_and_stop(row):
                trained.append(row["step"])
                on_log(row)
                if row["step"] == stop:
                    raise KeyboardInterrupt
            return real_train(*a[:6], log_and_stop, *a[7:], **k)
        return wrapped

    monkeypatch.setattr(runner_module, "train", train_until(13))
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    assert torch.load(Path(runs) / "single" / run_id(cfg) / CHECKPOINT, weights_only=False)["loop"]["steps"] == 10
    monkeypatch.setattr(runner_module, "train", train_until(None))
    trained.clear()
    again = run(cfg)
    assert trained == list(range(11, 21))  # from the checkpoint, not from step 0
    assert again.status == "ok" and not again.reused
    assert list(again.history["step"]) == list(reference.history["step"])  # the history before 10 kept
    ref, got = reference.history["train_loss"].to_numpy(), again.history["train_loss"].to_numpy()
    assert abs(got - ref).max() <= 1e-6 * abs(ref).max()
    assert again.metrics["val_loss"] == pytest.approx(reference.metrics["val_loss"], rel=1e-6)
    assert not (again.run_dir / CHECKPOINT).exists()


@pytest.mark.slow
def test_sigkilled_run_resumes_and_reaches_the_uninterrupted_final_loss(runs):
    """A real SIGKILL half-way: the re-run continues from the checkpoint (not step 0), same final loss."""
    args = small("transformer", runs, "trainer.max_steps=300", "trainer.checkpoint_every=20")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rid = run_id(compose(args))
    ckpt = Path(runs) / "single" / rid / CHECKPOINT
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and torch.load(ckpt, weights_only=False)["loop"]["steps"] >= 40:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed; raise max_steps"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((ckpt.parent / "result.json").read_text())["status"] == "running"
    killed_at = torch.load(ckpt, weights_only=False)["loop"]["steps"]
    assert 40 <= killed_at < 300

    resumed = run(compose(args))
    reference = run(compose(args + [f"out_dir={runs}/ref"]))
    assert resumed.status == reference.status == "ok"
    history = pd.read_parquet(resumed.run_dir / "history.parquet")
    assert list(history["step"]) == list(range(1, 301))
    assert resumed.metrics["train_loss"] == pytest.approx(reference.metrics["train_loss"], rel=1e-6)
    assert resumed.metrics["val_loss"] == pytest.approx(reference.metrics["val_loss"], rel=1e-6)


def test_sigterm_checkpoints_at_the_step_boundary_then_records_the_interruption(runs, monkeypatch):
    """scancel/kill send SIGTERM: the run saves at the end of the step, is recorded as interrupted, resumes there."""
    import harness.runner as runner_module
    real_train = runner_module.train
    trained = []

    def train_with_sigterm_at(step):
        def wrapped(*a, **k):
            on_log = a[6]

            def log_and_signal(row):
                trained.append(row["step"])
                on_log(row)
                if row["step"] == step:
                    os.kill(os.getpid(), signal.SIGTERM)
            return real_train(*a[:6], log_and_signal, *a[7:], **k)
        return wrapped

    cfg = compose(small("mlp", runs, "trainer.max_steps=30", "trainer.checkpoint_every=0"))
    monkeypatch.setattr(runner_module, "train", train_with_sigterm_at(13))
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    run_dir = Path(runs) / "single" / run_id(cfg)
    assert torch.load(run_dir / CHECKPOINT, weights_only=False)["loop"]["steps"] == 13
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "failed" and "SIGTERM" in record["reason"]
    trained.clear()
    monkeypatch.setattr(runner_module, "train", train_with_sigterm_at(None))
    assert run(cfg).status == "ok" and trained == list(range(14, 31))


def test_sigusr2_after_sigterm_replaces_it_and_the_same_signal_twice_goes_through(tmp_path):
    """A preemption (SIGTERM, then SIGUSR2) ends in the requeue after the save; a repeated signal does not wait."""
    from harness.checkpoint import Checkpointer
    calls = []
    old = {s: signal.signal(s, lambda n, f: calls.append(n)) for s in (signal.SIGUSR2, signal.SIGTERM)}
    try:
        with Checkpointer(tmp_path, 0, save_files=False) as ckpt:
            for sig in (signal.SIGTERM, signal.SIGUSR2, signal.SIGTERM):
                os.kill(os.getpid(), sig)
            assert calls == [] and ckpt.due(1)
            ckpt.save(None, None, None, {"steps": 1})
            assert calls == [signal.SIGUSR2]
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            assert calls == [signal.SIGUSR2, signal.SIGTERM]
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def test_in_a_submitit_job_sigterm_is_left_to_submitit(runs):
    """submitit bypasses SIGTERM (a kill, preemption or requeue follows): the run does not stop itself on it."""
    from harness.runner import interruptible
    calls = []

    class Handler:  # stands for submitit.core.job_environment.SignalHandler
        def bypass(self, signum, frame):
            calls.append(signum)
    Handler.__module__ = "submitit.core.job_environment"
    old = signal.signal(signal.SIGTERM, Handler().bypass)
    try:
        with interruptible():
            os.kill(os.getpid(), signal.SIGTERM)
        assert calls == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, old)
