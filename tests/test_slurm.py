"""Studies on a real SLURM (single node, started by tests/slurm/cluster.sh): a smoke study, a 2-task
data-parallel run, a run cancelled half-way that resumes from its checkpoint when the study is re-run, and a
preempted run that checkpoints, requeues itself through submitit and resumes."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import small
from harness.config import compose
from harness.runner import run

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.xdist_group("slurm")]  # one scheduler: one worker
ROOT = Path(__file__).parent.parent


def harness(*args, wait=True, timeout=300):
    cmd = [sys.executable, "-m", "harness", "-m", *args, "hydra/launcher=slurm_cpu"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def results(out_dir) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(out_dir).rglob("result.json"))]


def job_of(out_dir) -> str | None:
    """The SLURM job id of the study in `out_dir` (submitit's folder is named after it): only this test's job
    is signalled, never another session's on the same cluster."""
    found = sorted(p.name for p in Path(out_dir).rglob(".submitit/*") if p.is_dir())
    return found[0] if found else None


def test_smoke_study_runs_to_completion_under_slurm(slurm_cluster, runs):
    out = harness(*small("mlp", runs, "trainer.max_steps=5", "seed=0,1"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "study single: 2 runs: ok=2" in out.stdout
    assert [r["status"] for r in results(runs)] == ["ok", "ok"]


def test_two_task_job_trains_one_data_parallel_run(slurm_cluster, runs, tmp_path):
    args = small("transformer", runs, "trainer.max_steps=10", "trainer.checkpoint_every=0")
    out = harness(*args, "dist.nproc=2")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    [record] = results(runs)
    assert record["status"] == "ok" and record["settings"]["world_size"] == 2
    one = run(compose(args[:-1] + [f"out_dir={tmp_path}/one"]))
    history = pd.read_parquet(Path(runs) / "single" / record["run_id"] / "history.parquet")
    a, b = one.history["train_loss"].to_numpy(), history["train_loss"].to_numpy()
    assert (abs(a - b) <= 1e-5 * abs(a)).all()


def first_checkpoint(runs, timeout: float = 180) -> Path | None:
    """The run's checkpoint file once it is written (non-empty), or None after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = list(Path(runs).rglob("checkpoint.pt"))
        if found and found[0].stat().st_size:
            return found[0]
        time.sleep(0.5)
    return None


def test_cancelled_job_resumes_from_its_checkpoint(slurm_cluster, runs, tmp_path):
    # long enough that a quiet machine cannot finish between the first checkpoint and the scancel
    args = small("transformer", runs, "trainer.max_steps=3000", "trainer.checkpoint_every=20")
    proc = harness(*args, wait=False)
    ckpt = first_checkpoint(runs)
    assert ckpt is not None, "no checkpoint within 180 s"
    job = job_of(runs)
    subprocess.run(["scancel", job], check=True)
    deadline = time.time() + 60
    while time.time() < deadline and subprocess.run(["squeue", "-h", "-j", job], capture_output=True,
                                                    text=True).stdout.strip():
        time.sleep(0.5)
    # Without accounting (no sacct) submitit cannot learn that the job was cancelled: stop the waiting launcher.
    proc.kill()
    proc.communicate(timeout=60)
    [record] = results(runs)
    assert record["status"] in ("running", "failed")  # not finished: cancelled half-way

    out = harness(*args)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    logs = "".join(p.read_text(errors="replace") for p in Path(runs).rglob("*_log.*"))
    assert "resuming from step" in logs  # the second job continued from the checkpoint, not from step 0
    [record] = results(runs)
    assert record["status"] == "ok" and not ckpt.exists() and record["metrics"]["resumed_from_step"] >= 20
    # that a resumed run ends where an uninterrupted one does (1e-6) is tests/test_checkpoint.py's SIGKILL test


def test_gpu_request_on_a_cpu_cluster_fails_in_one_line(slurm_cluster, runs):
    out = subprocess.run([sys.executable, "-m", "harness", "-m", *small("mlp", runs), "hydra/launcher=slurm",
                          "hydra.launcher.partition=null"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "sbatch refused" in lines[0] and "Traceback" not in out.stderr, out.stderr


def test_preempted_job_checkpoints_requeues_itself_and_resumes(slurm_cluster, runs):
    """A preemption half-way (SIGTERM, then SIGUSR2: the signal submitit asks sbatch to send before the time
    limit, --signal=USR2@90): the run saves at the end of its step, submitit requeues the job (scontrol
    requeue), the requeued job resumes from the checkpoint, and the study ends with the run ok, every step
    trained once."""
    args = small("transformer", runs, "trainer.max_steps=3000", "trainer.checkpoint_every=20")
    proc = harness(*args, wait=False)
    job = job_of(runs) if first_checkpoint(runs) else None
    assert job is not None, "no checkpoint within 180 s"
    for sig in ("TERM", "USR2"):  # a preemption as submitit's own Job._interrupt() sends it
        subprocess.run(["scancel", f"--signal={sig}", job], check=True)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert "study single: 1 runs: ok=1" in out
    [record] = results(runs)
    assert record["status"] == "ok"
    resumed = record["metrics"]["resumed_from_step"]
    assert resumed and 20 <= resumed < 3000, resumed  # continued where the first attempt saved, not from 0
    history = pd.read_parquet(Path(runs) / "single" / record["run_id"] / "history.parquet")
    assert list(history["step"]) == list(range(1, 3001))  # every step once
    shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    assert "Restarts=1" in shown, shown  # SLURM requeued the job once
    logs = "".join(p.read_text(errors="replace") for p in Path(runs).rglob("*_log.*"))
    assert "Requeued job" in logs or "resuming from step" in logs
