"""Bad input, odd files, signals and races: nothing misleading, nothing duplicated, nothing outside out_dir.

Each test is one case of docs/reliability.md.
"""
import contextlib
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
from harness.collect import collect, save
from harness.identity import run_id
from harness.study import StudyCallback, study_configs, summarise
from harness.train import DIVERGE_CONFIRM, DIVERGE_FACTOR, DIVERGE_WINDOW, DivergenceCheck, divergence


def cli(*args, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def one_line(out) -> str:
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
    return lines[0]


# ---- 1. divergence by a rule -------------------------------------------------------------------------------

def test_divergence_rule():
    assert divergence(float("nan"), 2.0) and divergence(float("inf"), 2.0)
    assert divergence(DIVERGE_FACTOR * 2.0 + 0.1, 2.0) and not divergence(DIVERGE_FACTOR * 2.0 - 0.1, 2.0)
    check, vals = DivergenceCheck(reference=1.0), []

    def val():
        vals.append(1)
        return 1.0  # the validation loss says the model is fine

    # single examples 70x the reference (the batch-size-1 case), even several in a row, are no divergence
    assert not any(check.train(x, val) for x in [0.03, 2.2, 70.0, 0.1, 70.0, 70.0, 70.0, 70.0, 0.2] * 4)
    assert vals  # the training losses raised a suspicion, which the validation loss did not confirm
    assert DivergenceCheck(1.0).train(float("nan"), val)  # NaN/inf at any step, the first included


def test_a_blow_up_is_caught_and_a_transient_excursion_is_not():
    blown = DivergenceCheck(reference=1.0)
    steps = [blown.train(1e6, lambda: 1e6) for _ in range(DIVERGE_WINDOW * DIVERGE_CONFIRM)]
    assert not any(steps[:-1]) and "validation loss 1e+06 above 4 x" in steps[-1]
    back = DivergenceCheck(reference=1.0)
    excursion = iter([5.0, 0.9])  # confirmed once, then the model recovered
    assert not any(back.train(x, lambda: next(excursion)) for x in [9.0] * DIVERGE_WINDOW * DIVERGE_CONFIRM)
    assert back.final(DIVERGE_FACTOR * 1.01) and not back.final(DIVERGE_FACTOR * 0.99) and back.final(float("nan"))


def test_batch_size_1_regression_is_not_marked_diverged(runs):
    """Was: 4 of 6 seeds `diverged` (2.159 above 4 x first step's 0.02929 at step 2)."""
    statuses = {run(compose(["model=mlp", "data.task=regression", "trainer.batch_size=1", "trainer.max_steps=60",
                             f"seed={seed}", "logger=none", f"out_dir={runs}", "threads=1"])).reason
                for seed in range(6)}
    assert statuses == {None}, statuses


@pytest.mark.parametrize("lr", ["1e4", "1e38"])
def test_the_last_update_is_checked(lr, runs):
    """Was: `ok` with val_loss 5.4e16 (lr 1e4) or null (lr 1e38) after a single step."""
    res = run(compose(small("mlp", runs, "trainer.max_steps=1", f"optim.lr={lr}", "optim.warmup_steps=10")))
    assert res.status == "diverged" and "validation loss" in res.reason, res.reason
    assert res.metrics["diverged_step"] == 1


@pytest.mark.parametrize("optim", ["adamw", "sgd"])
def test_an_update_beyond_float32_ends_diverged(optim, runs):
    """Was: `failed` with `RuntimeError: value cannot be converted to type float without overflow` (torch refuses
    the optimizer's step: Adam's first is 10 x the LR)."""
    res = run(compose(small("mlp", runs, "trainer.max_steps=3", f"optim={optim}", "optim.lr=1e39",
                            "optim.warmup_steps=0")))
    assert res.status == "diverged" and res.reason.startswith("update not finite (lr 1e+39: "), res.reason
    saved = json.loads((res.run_dir / "result.json").read_text())
    assert saved["status"] == "diverged" and saved["metrics"]["diverged_step"] == 1


def test_lstm_whose_loss_explodes_without_nan_ends_diverged(runs):
    res = run(compose(small("lstm", runs, "optim.lr=1e6", "trainer.max_steps=10")))
    assert res.status == "diverged" and "at initialisation" in res.reason, res.reason
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


def test_an_ok_run_with_an_unreadable_history_is_left_out_of_the_table_with_a_warning(runs):
    """Was: harness-collect kept the row, no warning."""
    res = run(compose(small("mlp", runs, "trainer.max_steps=2")))
    (res.run_dir / "history.parquet").write_bytes(b"PAR1 not a parquet file")
    with pytest.warns(UserWarning, match=r"history.parquet is unreadable"):
        assert collect(runs / "single").empty
    assert not run(compose(small("mlp", runs, "trainer.max_steps=2"))).reused  # and the run is retrained


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


@pytest.mark.parametrize("link", ["run", "study"])
def test_a_run_folder_replaced_by_a_symlink_out_of_out_dir_is_refused(link, runs, tmp_path):
    """Was: with force=true the run wrote into the symlink's target and deleted a traceback.txt there."""
    args = small("mlp", runs, "trainer.max_steps=2", "force=true")
    res = run(compose(args))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "traceback.txt").write_text("keep me")
    target = res.run_dir if link == "run" else res.run_dir.parent
    import shutil

    shutil.rmtree(target)
    target.symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="outside out_dir"):
        run(compose(args))
    out = cli(*args)
    assert out.returncode == 2 and "outside out_dir" in one_line(out)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["traceback.txt"]
    assert (elsewhere / "traceback.txt").read_text() == "keep me"


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
    (["seed=4294967296"], r"seed=4294967296: must be a whole number in \[0, 4294967295\]"),  # repeated seed 0
    (["seed=99999999999999999999"], r"seed=99999999999999999999: must be a whole number in \[0, 4294967295\]"),
    (["optim.betas=[2,0.9]"], r"optim.betas=\[2.0, 0.9\]: must be two numbers in \[0, 1\)"),
    (["optim=sgd", "optim.momentum=-1"], r"optim.momentum=-1: must be in \[0, 1\)"),
])
def test_bad_value_is_one_config_error_and_writes_nothing(args, match, runs):
    with pytest.raises(ConfigError, match=match):
        run(compose(small("transformer", runs, *args)))
    assert not runs.exists()


def test_a_seed_out_of_range_is_one_line_from_the_cli(tmp_path):
    out = cli("model=mlp", "seed=99999999999999999999", f"out_dir={tmp_path}", "logger=none")
    assert out.returncode == 2
    assert "seed=99999999999999999999: must be a whole number in [0, 4294967295]" in one_line(out)


def test_a_run_no_longer_than_its_timing_warmup_says_it_timed_every_step(runs, caplog):
    res = run(compose(small("mlp", runs, "trainer.max_steps=2", "trainer.timing_warmup_steps=3")))
    assert res.metrics["timed_steps"] == 2 and res.metrics["warmup_s"] == 0
    assert "the speed metrics time every step, warm-up included" in caplog.text
    longer = run(compose(small("mlp", runs, "trainer.max_steps=5", "trainer.timing_warmup_steps=3")))
    assert longer.metrics["timed_steps"] == 2 and longer.metrics["warmup_s"] > 0


def test_results_are_written_with_the_process_umask(runs):
    """Was: result.json, history.parquet, results.* 0600 under umask 022 (the atomic writer's tempfile)."""
    from harness.results import write_atomic

    previous = os.umask(0o022)
    try:
        res = run(compose(small("mlp", runs, "trainer.max_steps=2")))
        save(collect(runs / "single"), runs / "single" / "results")
        os.umask(0o077)
        write_atomic(runs / "private.txt", "x")
    finally:
        os.umask(previous)
    for path in (res.run_dir / "result.json", res.run_dir / "history.parquet", runs / "single" / "results.parquet",
                 runs / "single" / "results.csv"):
        assert oct(path.stat().st_mode & 0o777) == oct(0o644), path
    assert oct((runs / "private.txt").stat().st_mode & 0o777) == oct(0o600)
    assert not list(runs.rglob(".*.*"))  # no temporary file left


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


@pytest.mark.parametrize("args, match", [
    (["out_dir=FILE"], "out_dir=FILE: .* is a file, not a folder"),
    (["out_dir=FILE/sub"], "out_dir=FILE/sub: .* is a file, not a folder"),
    (["study=" + "a" * 300], "study=a{20}...: is 300 characters, a folder name has at most 255"),
])
def test_an_out_dir_that_is_a_file_or_a_long_study_is_one_line(args, match, tmp_path):
    """Was: NotADirectoryError / 'File name too long' tracebacks."""
    import re

    (tmp_path / "afile").write_text("")
    args = [a.replace("FILE", str(tmp_path / "afile")) for a in args]
    for mode in ([], ["-m"]):
        out = cli(*mode, "model=mlp", "logger=none", f"out_dir={tmp_path / 'runs'}", *args)
        assert out.returncode == 2 and re.search(match.replace("FILE", re.escape(str(tmp_path / "afile"))),
                                                 one_line(out)), out.stderr


@contextlib.contextmanager
def small_disk(path: Path, options: str):
    """A 3 MB tmpfs at `path` (root only): a full or read-only disk for real, wandb's own files included."""
    path.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=3m,{options}", "tmpfs", str(path)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_read_only_out_dir_is_one_line(tmp_path):
    """Was: a PermissionError / OSError traceback."""
    with small_disk(tmp_path / "ro", "ro") as ro:
        out = cli("model=mlp", "logger=none", f"out_dir={ro}/runs")
        assert out.returncode == 2 and f"out_dir={ro}/runs: {ro} is not writable" in one_line(out)


def test_a_full_disk_with_wandb_on_is_one_line(tmp_path):
    """Was: the one line, then 60 lines of wandb's '--- Logging error ---' as its log files failed too."""
    with small_disk(tmp_path / "disk", "rw") as disk:
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "fill").write_bytes(b"\0" * (free - 40 * 1024))  # room for the run folder, not for wandb's files
        env = {k: v for k, v in os.environ.items() if k != "WANDB_SILENT"}
        out = subprocess.run([sys.executable, "-m", "harness", "model=mlp", "trainer.max_steps=20", "logger=wandb",
                              f"out_dir={disk}/runs"], capture_output=True, text=True, timeout=300, env=env)
        assert out.returncode == 1 and "No space left on device" in one_line(out)


@pytest.mark.parametrize("content", [b"PAR1 garbage", b""])
@pytest.mark.parametrize("command", [[], ["chinchilla"]])
def test_a_corrupt_or_empty_parquet_given_to_harness_analyze_is_one_line(content, command, tmp_path, capsys):
    """Was: a pyarrow ArrowInvalid traceback."""
    path = tmp_path / "results.parquet"
    path.write_bytes(content)
    code, err = analyze([*command, path], capsys)
    assert code == 2 and err.count("\n") == 1 and "not a readable CSV or Parquet table" in err, err


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
    ("tied", [], "D = 100·N in all 6 usable rows, so A/N\\^alpha cannot be told apart"),  # was TypeError: complex
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
        d = [100 * x for x in n] if table == "tied" else d
        path.write_text("N,D,loss\n" + "".join(f"{a},{b},{2 + 400 / a ** 0.34 + 400 / b ** 0.28}\n"
                                               for a, b in zip(n, d)))
    code, err = analyze(["chinchilla", path, *extra], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and re.search(match, err), err


def test_study_report_with_a_negative_bootstrap_is_one_line(tmp_path, capsys):
    code, err = analyze([tmp_path, "bootstrap=-5"], capsys)
    assert code == 2 and err.strip() == "error: bootstrap=-5: must be a whole number >= 0 (0 = no intervals)"


@pytest.mark.parametrize("law, match", [
    ({"E": -1.0, "A": 400, "B": 400, "alpha": 0.34, "beta": 0.28}, "E = -1: a law needs E >= 0"),  # was planned
    ({"E": 1.7, "A": 400, "B": 400, "alpha": -0.34, "beta": 0.28}, "alpha = -0.34"),  # was a traceback
    ({"E": 1.7, "A": -400, "B": 400, "alpha": 0.34, "beta": 0.28}, "A = -400"),  # was a traceback
])
def test_cost_refuses_a_law_that_is_not_one_in_one_line(law, match, tmp_path, capsys):
    from analysis.cost_cli import main

    path = tmp_path / "law.json"
    path.write_text(json.dumps(law))
    assert main([f"law={path}", "compute=1e21", "gpu=H100", "gpus=64"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: law={path}: ") and match in err, err


def test_reanalysing_a_study_reuses_its_wandb_run(tmp_path):
    """Was: each harness-analyze added another offline run, so `wandb sync` uploaded duplicates."""
    from analysis.report import Report, log_wandb

    report = Report("params", tmp_path / "report", 3, {"ok": 3}, [], {})
    first, again = log_wandb(report, "offline"), log_wandb(report, "offline")
    assert first and first == again
    assert len(list((tmp_path / "report" / "wandb").glob("offline-run-*"))) == 1
    other = log_wandb(Report("params", tmp_path / "other", 3, {"ok": 3}, [], {}), "offline")
    assert other and other != first  # another report folder is another report


def _descendants_gone(procs, timeout=10.0) -> list:
    import psutil

    deadline = time.time() + timeout
    while time.time() < deadline:
        alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return []
        time.sleep(0.1)
    return [(p.pid, p.cmdline()[:4]) for p in alive]


@pytest.mark.parametrize("sig, group", [(signal.SIGTERM, False), (signal.SIGINT, True)])
def test_a_signal_to_harness_forecast_stops_every_process_it_started(sig, group, tmp_path):
    """Was: SIGTERM killed the parent silently while its stage kept training; Ctrl-C (SIGINT to the terminal's
    process group) printed a 37-line traceback and left joblib workers training."""
    import psutil

    proc = subprocess.Popen([sys.executable, "-m", "analysis.forecast_study", "scale=smoke", f"out_dir={tmp_path}",
                             "logger=none", "grid.smoke.lr.flops=4e11"],  # lr-stage runs of minutes
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not any('"running"' in r.read_text() for r in tmp_path.rglob("result.json")):
        time.sleep(0.2)
    time.sleep(1)
    tree = psutil.Process(proc.pid).children(recursive=True)
    assert len(tree) >= 2  # the stage and its joblib workers
    os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err[-3000:]
    assert err.strip().splitlines() == [f"interrupted ({sig.name}): harness-forecast stopped with every process it "
                                         "started; the same command resumes (finished runs are kept)"], err[-3000:]
    assert not _descendants_gone(tree)
    results = [json.loads(r.read_text()) for r in tmp_path.rglob("result.json")]
    assert results and not [r for r in results if r["status"] == "running"]
    assert any((r["reason"] or "").startswith("interrupted (") for r in results)


def test_sigterm_to_a_study_under_joblib_records_its_workers_runs_and_leaves_none_behind(tmp_path):
    """Was: joblib killed its workers with the study, their runs left `running`, or they trained on."""
    import psutil

    proc = subprocess.Popen([sys.executable, "-m", "harness", "-m", *small("mlp", tmp_path, "trainer.max_steps=100000",
                             "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and sum('"running"' in r.read_text() for r in tmp_path.rglob("result.json")) < 2:
        time.sleep(0.2)
    time.sleep(1)
    tree = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert proc.returncode == 143 and len(lines) == 1 and lines[0].startswith("interrupted (SIGTERM): "), err[-3000:]
    assert not _descendants_gone(tree)
    reasons = [json.loads(r.read_text())["reason"] for r in tmp_path.rglob("result.json")]
    assert reasons == ["interrupted (SIGTERM)"] * 2, reasons


def test_forecast_score_before_any_stage_is_one_line(tmp_path, capsys):
    """Was: an AnalysisError traceback."""
    from analysis.forecast_study import main

    with pytest.raises(SystemExit) as exc:
        main(["step=score", f"out_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.strip() == (f"error: step=score: no forecast.json in {tmp_path / 'forecast'}: "
                                                   "run the steps before it first")


def test_ctrl_c_during_harness_plan_is_one_line(tmp_path):
    """Was: a KeyboardInterrupt traceback (also harness-collect and harness-cost, below)."""
    code = ("import time, harness.plan as plan\n"
            "def estimate(cfg):\n    print('planning', flush=True)\n    time.sleep(60)\n"
            f"plan.estimate = estimate\nplan.main(['sweep=demo', 'scale=smoke', 'out_dir={tmp_path}'])")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "planning\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip() == "interrupted (SIGINT): harness-plan stopped; run it again", err


@pytest.mark.parametrize("command, entry, work, args, then", [
    ("harness-collect", "harness.collect", "harness.collect.collect", ["runs"], "run it again"),
    ("harness-cost", "analysis.cost_cli", "analysis.cost_cli.plan_cost", ["law=hoffmann2022", "compute=1e21"],
     "run it again"),
    ("harness-claims", "analysis.claims.cli", "analysis.claims.report.run_claims", ["scale=smoke"],
     "the same command resumes (finished runs are kept)")])
def test_ctrl_c_in_a_command_is_one_line(command, entry, work, args, then, monkeypatch, capsys, tmp_path):
    import importlib

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    monkeypatch.setattr(work, interrupted)
    # in-process: the children this test process already has (wandb's service, pytest-xdist's) are not the command's
    monkeypatch.setattr("harness.children.psutil.Process.children", lambda *_, **__: [])
    monkeypatch.setattr("harness.children.stop_children", lambda *_, **__: None)
    with pytest.raises(SystemExit) as exc:
        importlib.import_module(entry).main(args)
    assert exc.value.code == 130 and capsys.readouterr().err == f"interrupted (SIGINT): {command} stopped; {then}\n"


def test_ctrl_c_during_harness_analyze_is_one_line(tmp_path):
    """Was: a KeyboardInterrupt traceback."""
    n = [1e5, 3e5, 1e6, 3e6, 1e7, 3e7] * 2
    d = [1e8] * 6 + [1e9] * 6
    path = tmp_path / "points.csv"
    path.write_text("N,D,loss\n" + "".join(f"{a},{b},{2 + 400 / a ** 0.34 + 400 / b ** 0.28}\n" for a, b in zip(n, d)))
    proc = subprocess.Popen([sys.executable, "-m", "analysis.cli", "chinchilla", str(path), "bootstrap=100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)  # imported and fitting
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    import re

    assert proc.returncode == 130, err
    assert re.fullmatch(r"interrupted \(SIGINT\): harness-analyze stopped( with every process it started)?; run it again",
                        err.strip()), err
