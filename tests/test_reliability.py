"""Bad input, odd files, signals and races: nothing misleading, nothing duplicated, nothing outside out_dir.

Each test is one case of docs/reliability.md.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import small
from harness import ConfigError, compose, run
from harness.collect import collect
from harness.identity import run_id
from harness.study import StudyCallback, study_configs, summarise
from harness.train import DIVERGE_FACTOR, divergence


def cli(*args, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def one_line(out) -> str:
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
    return lines[0]


# ---- 1. divergence by a rule -------------------------------------------------------------------------------

def test_divergence_rule():
    assert divergence(float("nan"), 2.0) and divergence(float("inf"), None)
    assert divergence(DIVERGE_FACTOR * 2.0 + 0.1, 2.0) and not divergence(DIVERGE_FACTOR * 2.0 - 0.1, 2.0)
    assert not divergence(1e9, None)  # the first step sets the reference


def test_lstm_whose_loss_explodes_without_nan_ends_diverged(runs):
    res = run(compose(small("lstm", runs, "optim.lr=1e6", "trainer.max_steps=10")))
    assert res.status == "diverged" and "first step" in res.reason, res.reason
    saved = json.loads((res.run_dir / "result.json").read_text())
    assert saved["status"] == "diverged" and saved["metrics"]["diverged_step"] == len(res.history) + 1 <= 10


# ---- 4. result files validated on read --------------------------------------------------------------------

def _break(run_dir: Path, how: str) -> None:
    result = run_dir / "result.json"
    if how == "list":
        result.write_text("[1]")
    elif how == "status_only":
        result.write_text('{"status": "ok"}')
    elif how == "no_history":
        (run_dir / "history.parquet").unlink()
    elif how == "truncated":
        result.write_text(result.read_text()[:50])


@pytest.mark.parametrize("how", ["list", "status_only", "no_history", "truncated"])
def test_incomplete_result_is_retrained_and_never_collected(how, runs, caplog):
    args = small("mlp", runs, "trainer.max_steps=3")
    first = run(compose(args))
    _break(first.run_dir, how)
    cfg = compose(args)
    assert summarise([cfg])["missing"] == 1  # the study counts it as unfinished, and does not abort
    with pytest.warns(UserWarning, match="incomplete"):
        assert collect(runs / "single").empty
    again = run(cfg)
    assert again.status == "ok" and not again.reused
    assert "not a complete result" in caplog.text or "unreadable" in caplog.text
    assert run(cfg).reused and len(collect(runs / "single")) == 1


def test_force_with_a_non_object_result_retrains(runs):
    args = small("mlp", runs, "trainer.max_steps=3")
    first = run(compose(args))
    (first.run_dir / "result.json").write_text("[1]")
    assert run(compose(args + ["force=true"])).status == "ok"


# ---- 7. signals -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_the_run_failed_interrupted_and_the_rerun_resumes_its_wandb_id(sig, runs):
    from wandb_offline import config_and_summary

    args = small("mlp", runs, "trainer.max_steps=100000", "logger=wandb")
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline, start_size = time.time() + 90, None
    while time.time() < deadline:  # until training logs rows: the wandb file grows
        files = list(runs.rglob("run-*.wandb"))
        size = files[0].stat().st_size if files else None
        start_size = start_size or size
        if size and size > start_size + 4096:
            break
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"interrupted ({sig.name}): run " in lines[0] and "recorded as failed" in lines[0], err
    [result] = runs.rglob("result.json")
    saved = json.loads(result.read_text())
    assert saved["status"] == "failed" and saved["reason"] == f"interrupted ({sig.name})"
    [wandb_file] = result.parent.rglob("run-*.wandb")
    assert config_and_summary(wandb_file)[1]["status"] == "failed"  # the wandb run was finished
    rid = result.parent.name
    import harness.runner as runner

    def crash(*a, **k):  # the retrain only needs to start: it must write into the same wandb run
        raise RuntimeError("stop")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "train", crash)
        again = run(compose(args))
    assert again.run_id == rid and again.status == "failed" and "stop" in again.reason
    offline = list((result.parent / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and offline[0].name.endswith(rid)  # one wandb run, with the run's id


# ---- 3. one claim per run folder --------------------------------------------------------------------------

def test_two_studies_at_once_train_every_run_once(tmp_path):
    args = ["-m", "sweep=params", "grid.smoke.params='2e3,4e3'", "grid.smoke.models=mlp", "grid.smoke.steps=30",
            f"out_dir={tmp_path}", "logger=wandb", "threads=1"]
    procs = [subprocess.Popen([sys.executable, "-m", "harness", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    text = "\n".join(outs)
    assert text.count("] - ok ") == 2 and text.count("] - reused ") == 2, text  # two runs, each trained once
    for run_dir in (tmp_path / "params").glob("*/result.json"):
        assert len(list(run_dir.parent.glob("wandb/offline-run-*"))) == 1


def test_a_lock_left_by_a_killed_process_is_stale(runs):
    cfg = compose(small("mlp", runs, "trainer.max_steps=3"))
    run_dir = runs / "single" / run_id(cfg)
    run_dir.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(600)",
                               str(run_dir / ".lock")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    t0 = time.time()
    assert run(cfg).status == "ok" and time.time() - t0 < 60


def test_a_held_lock_makes_the_second_runner_wait(runs, caplog):
    import threading

    from harness.runner import claim

    cfg = compose(small("mlp", runs, "trainer.max_steps=3"))
    run_dir = runs / "single" / run_id(cfg)
    released = threading.Event()
    with claim(run_dir, "test"):
        threading.Timer(1.0, released.set).start()
        done = []
        worker = threading.Thread(target=lambda: done.append(run(cfg)))
        worker.start()
        released.wait()
        assert not done and not (run_dir / "result.json").exists()  # it waits for the holder
    worker.join(60)
    assert done[0].status == "ok" and "being trained by another process" in caplog.text


def test_sigterm_while_waiting_for_another_process_is_one_line_and_records_nothing(runs, tmp_path):
    from harness.runner import claim

    args = small("mlp", runs, "trainer.max_steps=3")
    run_dir = runs / "single" / run_id(compose(args))
    log = tmp_path / "out.txt"
    with claim(run_dir, "test"), open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "harness", *args], stdout=out, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 90
        while time.time() < deadline and "waiting for it" not in log.read_text():
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err.strip() == "interrupted (SIGTERM): the same command resumes (finished runs are kept)", err
    assert not (run_dir / "result.json").exists()


# ---- 6. study is a folder name, every write under out_dir -------------------------------------------------

@pytest.mark.parametrize("study", ["/abs/path", "../../x", "a/b", "..", "${oc.env:ESCAPE_TO}"])
def test_study_must_be_a_folder_name(study, runs, monkeypatch):
    monkeypatch.setenv("ESCAPE_TO", "../../escaped")
    with pytest.raises(ConfigError, match="study=.*folder name"):
        run(compose(small("mlp", runs, f"study={study}")))
    assert not runs.exists()


def test_study_path_fails_in_one_line_from_the_cli_single_and_multirun(tmp_path):
    out_dir = tmp_path / "a" / "runs"
    single = cli("model=mlp", "study=../../x", f"out_dir={out_dir}")
    multi = cli("-m", "sweep=params", "study=../../x", f"out_dir={out_dir}")
    for out in (single, multi):
        assert out.returncode == 2 and "study=../../x" in one_line(out)
    assert not any(tmp_path.rglob("*.*"))  # no file anywhere, inside out_dir or out


# ---- 2. run identity covers the corpus --------------------------------------------------------------------

def text_run(runs, corpus, *extra):
    return ["model=transformer", "model.d_model=32", "model.n_layers=1", "model.n_heads=2", "data=text",
            f"data.path={corpus}", "data.seq_len=32", f"out_dir={runs}", "trainer.max_steps=3", "trainer.batch_size=8",
            "logger=none", "threads=1", "trainer.eval_samples=16", *extra]


def test_a_changed_corpus_is_a_new_run(runs, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"the quick brown fox jumps over the lazy dog. " * 4000)
    args = text_run(runs, corpus)
    first = run(compose(args))
    assert first.status == "ok" and run(compose(args)).reused
    corpus.write_bytes(b"pack my box with five dozen liquor jugs, now! " * 4000)
    second = run(compose(args))
    assert not second.reused and second.run_id != first.run_id
    assert second.metrics["corpus_sha256"] != first.metrics["corpus_sha256"]


def test_text_without_a_path_is_one_config_error(runs):
    with pytest.raises(ConfigError, match=r"data.path=\?\?\?: a value is required"):
        run(compose(["data=text", f"out_dir={runs}"]))


@pytest.mark.parametrize("content, why", [(b"", "empty"), (b"x" * 1200, "too small")])
def test_empty_or_tiny_corpus_names_the_path(content, why, runs, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(content)
    with pytest.raises(ConfigError, match=f"data.path={corpus}: .*{why}"):
        run(compose(text_run(runs, corpus)))


# ---- 5. overrides that would be ignored fail; one expansion for plan and study ----------------------------

def test_grid_list_given_unquoted_fails_and_quoted_plans_what_the_study_runs(tmp_path):
    with pytest.raises(ConfigError, match="quote"):
        study_configs(["sweep=params", "grid.smoke.params=2e3,4e3", f"out_dir={tmp_path}"])
    overrides = ["sweep=params", "grid.smoke.params='2e3,4e3'", f"out_dir={tmp_path}"]
    primary, planned = study_configs(overrides)
    assert len(planned) == 4  # 2 models x 2 sizes
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.types import RunMode

    from harness.config import CONF_DIR

    hydra = Hydra.create_main_hydra2("harness", create_config_search_path(str(CONF_DIR)))
    launched = hydra.compose_config("config", overrides, run_mode=RunMode.MULTIRUN)  # what `harness -m` gets
    callback = StudyCallback()
    callback.on_multirun_start(launched)
    assert sorted(map(run_id, callback.configs)) == sorted(map(run_id, planned))


def test_a_sweep_over_a_label_would_duplicate_runs_and_fails(tmp_path):
    with pytest.raises(ConfigError, match="same run"):
        study_configs(["sweep=params", "logger=wandb,none", f"out_dir={tmp_path}"])


@pytest.mark.parametrize("args, match", [
    (["+trainer.max_stepz=5"], "trainer.max_stepz=5: unknown key"),
    (["optim.warmup_steps=-5"], "optim.warmup_steps=-5: must be >= 0"),
    (["trainer.max_steps=null", "trainer.max_tokens=1e30"], "trainer.max_tokens=1e.30: budget is .* years"),
    (["model.n_heads=0"], "model.n_heads=0: must be positive"),
    (["model.n_heads=-4"], "model.n_heads=-4: must be positive"),
    (["seed=abc"], "seed=abc: must be a whole number"),
    (["model.target_params=1e15"], "model.target_params=.*more than this machine's memory"),
])
def test_bad_value_is_one_config_error_and_writes_nothing(args, match, runs):
    with pytest.raises(ConfigError, match=match):
        run(compose(small("transformer", runs, *args)))
    assert not runs.exists()


# ---- 8. tracebacks where a line belongs -------------------------------------------------------------------

@pytest.mark.parametrize("overrides, match", [
    (["sweep=params", "trainer.max_stepz=5"], r"trainer.max_stepz=5: unknown key \(valid: batch_size"),
    (["sweep=params", "optim.lr=[1,2"], r"optim.lr=\[1,2: cannot parse"),
    (["sweep=params", "hydra/launcher=joblb"], r"hydra/launcher/joblb' \(valid: basic, joblib"),
    (["sweep=params", "scale=smoke,cpu"], "one scale at a time"),
])
def test_multirun_typo_is_one_line(overrides, match, tmp_path):
    from harness.study import primary_config

    with pytest.raises(ConfigError, match=match) as error:
        study_configs([*overrides, f"out_dir={tmp_path}"]) if "scale" in overrides[1] else primary_config(overrides)
    assert "\n" not in str(error.value)


def test_multirun_typo_from_the_cli_is_one_line(tmp_path):
    out = cli("-m", "sweep=params", "trainer.max_stepz=5", f"out_dir={tmp_path}")
    assert out.returncode == 2 and "trainer.max_stepz=5: unknown key" in one_line(out)


def test_full_disk_is_one_line(runs):
    """ENOSPC on every write: one line naming the file, exit 1, instead of four chained tracebacks."""
    script = ("import errno, sys, harness.results as r\n"
              "def full(path, text): raise OSError(errno.ENOSPC, 'No space left on device', str(path))\n"
              "r.write_atomic = full\n"
              "from harness.cli import main; sys.argv = ['harness', *sys.argv[1:]]; main()\n")
    out = subprocess.run([sys.executable, "-c", script, *small("mlp", runs, "trainer.max_steps=3")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "result.json: No space left on device" in one_line(out)


def analyze(argv, capsys) -> tuple[int, str]:
    from analysis.cli import main

    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize("table, extra, match", [
    ("identical", [], "'N' has the single value"),
    ("one_d", [], "'D' has the single value 1e\\+08"),
    ("binary", [], "not a readable CSV"),
    ("random", [], "not a readable CSV"),
    ("good", ["bootstrap=-5"], "bootstrap=-5: must be a whole number >= 0"),
])
def test_chinchilla_cli_bad_points_are_one_line(table, extra, match, tmp_path, capsys):
    import re

    path = tmp_path / "points.csv"
    if table in ("binary", "random"):
        import random

        path.write_bytes(bytes(range(256)) * 8 if table == "binary" else random.Random(0).randbytes(3000))
    else:
        n = [1e6] * 10 if table == "identical" else [1e5, 3e5, 1e6, 3e6, 1e7, 3e7] * (2 if table == "good" else 1)
        d = [2e7] * 10 if table == "identical" else [1e8] * 6 + ([1e9] * 6 if table == "good" else [])
        path.write_text("N,D,loss\n" + "".join(f"{a},{b},{2 + 400 / a ** 0.34 + 400 / b ** 0.28}\n"
                                               for a, b in zip(n, d)))
    code, err = analyze(["chinchilla", path, *extra], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and re.search(match, err), err


def test_study_report_with_a_negative_bootstrap_is_one_line(tmp_path, capsys):
    code, err = analyze([tmp_path, "bootstrap=-5"], capsys)
    assert code == 2 and err.strip() == "error: bootstrap=-5: must be a whole number >= 0 (0 = no intervals)"
