"""End-to-end runs: every architecture learns, results are complete and atomic, faults are recorded."""
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import small
from harness import compose, run
from harness.metric_table import HISTORY, SUMMARY
from wandb_offline import config_and_summary, history

REQUIRED = ["params", "params_non_embedding", "train_loss", "val_loss", "steps", "samples", "tokens", "wall_s",
            "warmup_s", "step_time_s", "samples_per_s", "tokens_per_s", "flops_per_step", "flops_total",
            "achieved_flops_per_s", "peak_flops_per_s", "mfu", "peak_mem_bytes"]
ATTENTION = ["attn_flops_per_step", "attn_flops_share", "attn_matrix_bytes", "attn_time_s"]


@pytest.mark.parametrize("model", ["mlp", "cnn", "lstm", "gru", "rnn", "transformer"])
def test_every_architecture_learns_and_writes_a_complete_result(model, runs):
    res = run(compose(small(model, runs)))
    assert res.status == "ok", res.reason
    first = res.history["train_loss"].iloc[:5].mean()
    last = res.history["train_loss"].iloc[-5:].mean()
    assert last < 0.9 * first, f"{model}: loss {first:.3f} -> {last:.3f}"
    saved = json.loads((res.run_dir / "result.json").read_text())
    assert saved["status"] == "ok" and saved["run_id"] == res.run_id == res.run_dir.name
    keys = REQUIRED + (ATTENTION if model == "transformer" else [])
    missing = [k for k in keys if k not in saved["metrics"]]
    assert not missing
    m = saved["metrics"]
    assert m["tokens"] == m["samples"] * (32 if model in ("lstm", "gru", "rnn", "transformer") else 1)
    assert m["flops_total"] == m["flops_per_step"] * m["steps"] and 0 < m["mfu"] < 1
    assert saved["env"]["torch"] == torch.__version__ and saved["config"]["model"]["name"]
    history = pd.read_parquet(res.run_dir / "history.parquet")
    assert len(history) == m["steps"]
    # the metric table names everything a run writes, with bytes for memory
    assert not set(m) - set(SUMMARY) and not set(history.columns) - set(HISTORY)
    assert m["mem_kind"] == "rss" and history["mem_bytes"].min() > 2 ** 20


def test_markov_run_records_the_entropy_rate_and_beats_unigram(runs):
    res = run(compose(small("transformer", runs, "trainer.max_steps=80")))
    floor = res.metrics["entropy_rate"]
    assert floor < res.metrics["val_loss"] < math.log(16)


def test_same_seed_gives_an_identical_loss_curve(runs):
    a = run(compose(small("transformer", runs, "trainer.max_steps=10")))
    b = run(compose(small("transformer", runs, "trainer.max_steps=10", "force=true")))
    c = run(compose(small("transformer", runs, "trainer.max_steps=10", "seed=1")))
    assert a.history["train_loss"].tolist() == b.history["train_loss"].tolist()
    assert a.history["train_loss"].tolist() != c.history["train_loss"].tolist()


def test_finished_run_is_reused_and_force_retrains(runs):
    cfg = small("mlp", runs, "trainer.max_steps=5")
    first = run(compose(cfg))
    stamp = (first.run_dir / "result.json").stat().st_mtime_ns
    again = run(compose(cfg))
    assert again.reused and (first.run_dir / "result.json").stat().st_mtime_ns == stamp
    forced = run(compose(cfg + ["force=true"]))
    assert not forced.reused and (first.run_dir / "result.json").stat().st_mtime_ns != stamp


def test_run_id_ignores_output_location(runs, tmp_path):
    a = compose(small("mlp", runs))
    b = compose(small("mlp", tmp_path / "elsewhere", "force=true"))
    from harness.identity import run_id
    assert run_id(a) == run_id(b) != run_id(compose(small("mlp", runs, "optim.lr=0.5")))


def test_nan_loss_ends_the_run_as_diverged(runs):
    res = run(compose(small("mlp", runs, "optim.lr=1e12", "trainer.grad_clip=0", "optim=sgd", "optim.lr=1e12")))
    assert res.status == "diverged" and "step" in res.reason
    saved = json.loads((res.run_dir / "result.json").read_text())
    step = saved["metrics"]["diverged_step"]
    assert saved["status"] == "diverged" and 1 <= step < 40
    assert len(res.history) == step - 1  # the steps logged before the loss went non-finite


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_absent_device_is_recorded_as_skipped(runs):
    res = run(compose(small("mlp", runs, "device=cuda")))
    assert res.status == "skipped" and "cuda" in res.reason
    assert json.loads((res.run_dir / "result.json").read_text())["status"] == "skipped"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_run_reports_gpu_memory_and_peak(runs):
    res = run(compose(small("transformer", runs, "device=cuda")))
    assert res.status == "ok" and res.metrics["peak_mem_bytes"] > 0


def test_budgets_in_tokens_and_flops_become_steps(runs):
    res = run(compose(small("transformer", runs, "trainer.max_steps=null", "trainer.max_tokens=8192")))
    assert res.metrics["steps"] == 8192 // (16 * 32)
    per_step = res.metrics["flops_per_step"]
    res = run(compose(small("transformer", runs, "trainer.max_steps=null", f"trainer.max_flops={7.5 * per_step}")))
    assert res.metrics["steps"] == 7


def test_result_and_table_record_the_settings_the_run_used(runs):
    """The LR rule's peak LR, not optim.lr, is what the run trained at: settings.lr_peak in result.json and the table."""
    from harness.collect import collect

    cfg = compose(small("mlp", runs, "trainer.grad_accum=2", "trainer.max_steps=5", "optim.schedule=constant",
                        "optim.warmup_steps=0", "optim.lr_exponent=-0.5", "optim.lr_ref_params=100"))
    res = run(cfg)
    used = json.loads((res.run_dir / "result.json").read_text())["settings"]
    assert used["lr_peak"] == pytest.approx(float(cfg.optim.lr) * (res.metrics["params"] / 100) ** -0.5)
    assert res.history["lr"].max() == pytest.approx(used["lr_peak"])
    assert (used["steps"], used["batch_size"], used["grad_accum"], used["micro_batch"]) == (5, 16, 2, 8)
    assert used["tokens"] == res.metrics["tokens"] and used["world_size"] == 1
    row = collect(res.run_dir.parent).set_index("run_id").loc[res.run_id]
    assert row["settings.lr_peak"] == used["lr_peak"] != row["optim.lr"]


def test_grad_accumulation_and_bf16_run(runs):
    res = run(compose(small("mlp", runs, "trainer.grad_accum=4", "trainer.precision=bf16", "trainer.max_steps=5")))
    assert res.status == "ok" and res.metrics["samples"] == 5 * 16


def test_crash_is_recorded_as_failed_with_traceback(runs, monkeypatch):
    import harness.runner as harness_run

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(harness_run, "train", boom)
    res = run(compose(small("mlp", runs)))
    assert res.status == "failed" and "simulated crash" in res.reason
    assert "simulated crash" in (res.run_dir / "traceback.txt").read_text()


def test_wandb_offline_run_holds_the_history(runs):
    res = run(compose(small("mlp", runs, "logger=wandb", "trainer.max_steps=12")))
    files = list(res.run_dir.rglob("run-*.wandb"))
    assert len(files) == 1
    rows, deadline = history(files[0]), time.monotonic() + 60
    while len(rows) < 12 and time.monotonic() < deadline:  # wandb-core may still be flushing under heavy load
        time.sleep(1)
        rows = history(files[0])
    assert len(rows) == 12 and all("train/loss" in r and "perf/tokens_per_s" in r and r["mem/bytes"] > 0 for r in rows)
    assert rows[0]["train/loss"] == pytest.approx(res.history["train_loss"].iloc[0])
    config, summary = config_and_summary(files[0])
    assert config["model.name"] == "mlp" and summary["status"] == "ok"
    assert summary["final/val_loss"] == pytest.approx(res.metrics["val_loss"])
    assert summary["mem/peak_bytes"] == res.metrics["peak_mem_bytes"]
    assert not [k for k in summary if k.startswith("other/")], "a metric missing from harness.metric_table"


def test_wandb_failure_never_loses_the_result(runs):
    res = run(compose(small("mlp", runs, "logger=wandb", "logger.mode=bogus", "trainer.max_steps=3")))
    assert res.status == "ok" and (res.run_dir / "result.json").exists()


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, key", [
    (["model=resnet"], "model=resnet"),
    (["model=mlp", "model.activation=swish"], "model.activation"),
    (["model=mlp", "model.width=-3"], "model.width"),
    (["data.seq_len=5000000"], "data.seq_len"),
    (["model.target_params=10"], "model.target_params"),
    (["model=mlp", "trainer.batch_size=1000000"], "trainer.batch_size"),
    (["trainer.max_steps=5", "trainer.max_tokens=1000"], "contradictory"),
    (["optim.name=adam"], "optim.name"),
    (["model=cnn", "data=markov"], "model=cnn"),
    (["data=text", "data.path=/no/such/file"], "data.path"),
    (["model.nope=1"], "model.nope"),
])
def test_bad_input_fails_in_one_line_without_a_result(args, key, runs):
    out = cli(*args, f"out_dir={runs}")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in out.stderr, out.stderr
    assert not list(Path(runs).rglob("result.json"))


def test_full_error_shows_the_traceback(runs):
    out = cli("model=mlp", "model.width=-3", f"out_dir={runs}", env={"HYDRA_FULL_ERROR": "1"})
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_cli_single_run_writes_ok_result(runs):
    out = cli(*small("mlp", runs, "trainer.max_steps=5"))
    assert out.returncode == 0, out.stderr
    [result] = Path(runs).rglob("result.json")
    assert json.loads(result.read_text())["status"] == "ok"


def test_interrupted_run_is_recorded_as_failed_and_retrained(runs, monkeypatch):
    import harness.runner as harness_run

    real_train = harness_run.train

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(harness_run, "train", interrupt)
    cfg = compose(small("mlp", runs, "trainer.max_steps=5"))
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    [result] = Path(runs).rglob("result.json")
    assert json.loads(result.read_text())["status"] == "failed"
    monkeypatch.setattr(harness_run, "train", real_train)
    again = run(cfg)
    assert again.status == "ok" and not again.reused
