"""Data parallelism: 2 gloo ranks on the CPU train the same run as one process, step for step."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import small
from harness.config import ConfigError, compose
from harness.identity import run_id
from harness.distributed import World, launched_world, shard
from harness.runner import run

PARITY = ["trainer.max_steps=20", "trainer.checkpoint_every=0"]


def test_two_gloo_ranks_reproduce_one_process_at_every_step(runs):
    one = run(compose(small("transformer", runs, *PARITY)))
    two = run(compose(small("transformer", runs, *PARITY, "dist.nproc=2")))
    assert one.status == two.status == "ok" and one.run_id != two.run_id
    a, b = one.history["train_loss"].to_numpy(), two.history["train_loss"].to_numpy()
    assert len(a) == len(b) == 20
    assert (abs(a - b) <= 1e-5 * abs(a)).all(), abs(a - b) / abs(a)
    assert two.metrics["val_loss"] == pytest.approx(one.metrics["val_loss"], rel=1e-5)
    m, used = two.metrics, json.loads((two.run_dir / "result.json").read_text())["settings"]
    assert used["world_size"] == 2 and used["micro_batch"] * used["grad_accum"] == 8 and m["allreduce_s"] > 0
    assert m["tokens_per_s"] == pytest.approx(16 * 32 / m["step_time_s"])  # global, not per rank
    assert m["peak_mem_bytes"] > 0
    assert not list((two.run_dir.parent).glob("*/checkpoint.pt"))


def test_grad_accum_with_two_ranks_matches_one_process(runs):
    args = ["trainer.max_steps=6", "trainer.checkpoint_every=0", "trainer.batch_size=16"]
    one = run(compose(small("mlp", runs, *args)))
    two = run(compose(small("mlp", runs, *args, "dist.nproc=2", "trainer.grad_accum=2")))
    a, b = one.history["train_loss"].to_numpy(), two.history["train_loss"].to_numpy()
    assert (abs(a - b) <= 1e-5 * abs(a)).all()


def test_batch_that_does_not_divide_among_ranks_fails_in_one_line(runs):
    with pytest.raises(ConfigError, match=r"trainer.batch_size=18: must be divisible by dist.nproc x trainer.grad_accum = 4 x 1"):
        run(compose(small("mlp", runs, "trainer.batch_size=18", "dist.nproc=4")))


def test_world_size_is_part_of_the_run_id_only_above_one(runs):
    base = compose(small("mlp", runs))
    assert run_id(base) == run_id(compose(small("mlp", runs, "dist.nproc=1", "dist.timeout_s=60")))
    assert run_id(base) != run_id(compose(small("mlp", runs, "dist.nproc=2")))


def test_each_rank_takes_its_slice_of_the_global_batch(monkeypatch):
    import torch
    x = torch.arange(8)
    assert shard((x, x), World(1, 2))[0].tolist() == [4, 5, 6, 7]
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert launched_world() == World(1, 2, 1, 2)


@pytest.mark.slow
def test_torchrun_gives_the_same_result_as_dist_nproc(runs, tmp_path):
    args = small("transformer", runs, *PARITY)
    spawned = run(compose(args + ["dist.nproc=2"]))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "harness", *args, f"out_dir={tmp_path}/torchrun"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    [result] = Path(tmp_path / "torchrun").rglob("result.json")
    record = json.loads(result.read_text())
    assert record["run_id"] == spawned.run_id and record["settings"]["world_size"] == 2
    history = pd.read_parquet(result.parent / "history.parquet")
    assert (history["train_loss"].to_numpy() == spawned.history["train_loss"].to_numpy()).all()


# ---- a failure on any rank: the run ends failed with that rank's traceback, and never hangs ------------

FAULT_ARGS = ["trainer.max_steps=30", "trainer.checkpoint_every=0"]


def spawned_with_fault(runs, monkeypatch, fault, *extra):
    """A `dist.nproc=2` run whose rank (faults.py) fails as `fault` says; (result, seconds taken)."""
    import faults
    import harness.runner as runner_module

    monkeypatch.setenv(faults.VAR, fault)
    monkeypatch.setattr(runner_module, "_rank_main", faults.rank_main)
    t0 = time.perf_counter()
    result = run(compose(small("mlp", runs, *FAULT_ARGS, "dist.nproc=2", *extra)))
    return result, time.perf_counter() - t0


def recorded(result) -> tuple[dict, str]:
    record = json.loads((result.run_dir / "result.json").read_text())
    trace = (result.run_dir / "traceback.txt").read_text() if (result.run_dir / "traceback.txt").exists() else ""
    return record, trace


def test_a_failure_on_rank_1_of_a_spawned_run_is_recorded_with_its_traceback(runs, monkeypatch):
    result, _ = spawned_with_fault(runs, monkeypatch, "1:3:raise")
    record, trace = recorded(result)
    assert result.status == record["status"] == "failed"
    assert record["reason"] == result.reason == "rank 1 failed: RuntimeError: injected fault on rank 1 at step 3"
    assert trace.startswith("rank 1 of 2:\n") and "in log_then_fail" in trace  # rank 1's own stack
    assert json.loads((result.run_dir / "failure.rank1.json").read_text())["rank"] == 1


def test_a_failure_on_rank_1_under_torchrun_is_recorded_with_its_traceback(runs):
    import faults
    args = small("mlp", runs, *FAULT_ARGS)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent), faults.VAR: "1:3:raise"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          faults.__file__, *args], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    [path] = Path(runs).rglob("result.json")
    record = json.loads(path.read_text())
    assert record["status"] == "failed", record["reason"]
    assert record["reason"] == "rank 1 failed: RuntimeError: injected fault on rank 1 at step 3"
    assert (path.parent / "traceback.txt").read_text().startswith("rank 1 of 2:\n")


@pytest.mark.slow
def test_a_rank_that_hangs_fails_the_run_after_dist_timeout_s(runs, monkeypatch):
    """Rank 1 stops answering (sleeps) after step 3: rank 0's next all-reduce gives up after dist.timeout_s.

    The timeout bounds every collective, the rendezvous and the first broadcast included, so it must exceed
    how far apart the two ranks start on a loaded machine: 20 s, not less."""
    result, took = spawned_with_fault(runs, monkeypatch, "1:3:hang", "dist.timeout_s=20")
    record, _ = recorded(result)
    assert result.status == record["status"] == "failed"
    assert record["reason"].startswith("rank 0 failed: RuntimeError: "), record["reason"]
    assert "Timed out waiting 20000ms" in record["reason"]  # gloo gave up after dist.timeout_s, not at the sleep's end
    assert took < 300, took


def test_a_rank_that_dies_without_a_traceback_fails_the_run(runs, monkeypatch):
    """Rank 1 is SIGKILLed (the OOM killer, a lost node) after step 3: the run ends failed, naming it."""
    result, _ = spawned_with_fault(runs, monkeypatch, "1:3:die")
    record, trace = recorded(result)
    assert result.status == record["status"] == "failed"
    assert record["reason"].startswith("rank 1 failed: Signal 9 (SIGKILL)"), record["reason"]
    assert trace.startswith("rank 0 of 2:\n")  # rank 1 left none; rank 0's: its peer closed the connection
