"""Studies: every sweep's smoke scale runs in parallel, resumes after SIGKILL, isolates failures."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.collect import collect
from harness.config import group_options
from harness.identity import run_id
from harness.study import study_configs

STUDIES = group_options("sweep")
EXPECTED_RUNS = {"params": 12, "data": 10, "isoflop": 15, "batch_lr": 24, "devices": 4, "attention": 12,
                 "architectures": 10, "seqlen": 6, "demo": 5, "dp": 6, "forecast": 20, "claim_activations": 8,
                 "claim_vanishing_gradients": 9, "claim_depth": 6, "claim_cnn_sharing": 6, "claim_long_range": 8,
                 "claim_schedule": 8}


def harness(*args, timeout=600, **kwargs):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def statuses(study_dir: Path) -> dict[str, str]:
    return {p.parent.name: json.loads(p.read_text())["status"] for p in study_dir.glob("*/result.json")}


def test_every_study_has_a_question_a_command_and_a_smoke_size():
    assert set(EXPECTED_RUNS) == set(STUDIES)
    for name in STUDIES:
        text = (Path("sweeps") / f"{name}.yaml").read_text()
        assert "# Question:" in text and f"sweep={name}" in text


@pytest.mark.slow
@pytest.mark.parametrize("study", ["params", "attention"])  # the rest run end to end elsewhere, or expand below
def test_smoke_study_runs_under_joblib_and_collects(study, tmp_path):
    out = harness("-m", f"sweep={study}", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"out_dir={tmp_path}",
                  "logger=none")
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"study {study}: {EXPECTED_RUNS[study]} runs: ok={EXPECTED_RUNS[study]}" in out.stdout
    table = collect(tmp_path / study)
    assert len(table) == EXPECTED_RUNS[study] == table["run_id"].nunique()
    assert (table["status"] == "ok").all() and (table["env.threads"] == 1).all()  # 2 cores / 2 jobs


@pytest.mark.parametrize("study", ["data", "isoflop", "architectures", "seqlen"])
def test_smoke_study_expands_to_its_runs_and_each_passes_the_checks(study, tmp_path):
    # what the StudyCallback checks before a study starts (config, data, model, budget), without training:
    # the suite's 10-minute budget trains params and attention end to end instead of every study
    _, configs = study_configs([f"sweep={study}", "scale=smoke", f"out_dir={tmp_path}"])
    assert len(configs) == EXPECTED_RUNS[study] == len({run_id(c) for c in configs})


@pytest.mark.parametrize("overrides", [["sweep=architectures"], ["sweep=forecast", "stage=lr", "optim.schedule=wsd"]])
def test_a_job_composed_once_per_group_choice_is_hydras_composition(overrides, tmp_path):
    # job_configs composes once per distinct group choice and applies each job's values as Hydra does
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from harness.config import CONF_DIR
    from harness.study import compose_job, expand_jobs, primary_config

    jobs, composed = expand_jobs(primary_config([*overrides, "scale=smoke", f"out_dir={tmp_path}"])), {}
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        for job in jobs:
            cfg = compose_job(job, composed)
            assert OmegaConf.to_container(cfg) == OmegaConf.to_container(compose("config", overrides=job)), job
            assert OmegaConf.is_struct(cfg)
    assert len(composed) < len(jobs)


def test_batch_lr_study_isolates_divergence(tmp_path):
    out = harness("-m", "sweep=batch_lr", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"out_dir={tmp_path}",
                  "logger=none")
    assert out.returncode == 0, out.stderr[-2000:]
    table = collect(tmp_path / "batch_lr")
    assert len(table) == 24
    # the contract harness.study relies on (hydra-core is pinned): the jobs it expands and validates up front
    # are exactly the jobs Hydra's sweeper launched
    _, configs = study_configs(["sweep=batch_lr", f"out_dir={tmp_path}", "logger=none"])
    assert set(table["run_id"]) == {run_id(c) for c in configs}
    diverged = table[table.status == "diverged"]
    assert len(diverged) >= 1 and (diverged["optim.lr"] >= 0.3).all()  # SGD + momentum 0.9, no clipping
    assert (table[table["optim.lr"] <= 0.1].status == "ok").all()
    assert "diverged=" in out.stdout


def test_devices_study_under_submitit_local_skips_absent_cuda(tmp_path):
    pytest.importorskip("submitit")
    out = harness("-m", "sweep=devices", "hydra/launcher=submitit_local", f"out_dir={tmp_path}", "logger=none")
    assert out.returncode == 0, out.stderr[-2000:]
    table = collect(tmp_path / "devices")
    assert len(table) == 4
    cuda = table[table.device == "cuda"]
    import torch
    if not torch.cuda.is_available():
        assert (cuda.status == "skipped").all() and cuda.reason.str.contains("cuda").all()
    assert (table[table.device == "cpu"].status == "ok").all()


def test_killed_study_resumes_with_every_run_once(tmp_path):
    args = [sys.executable, "-m", "harness", "-m", "sweep=params", f"out_dir={tmp_path}", "logger=none",
            "grid.smoke.steps=10"]
    study = tmp_path / "params"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and list(statuses(study).values()).count("ok") < 3:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = statuses(study)
    finished = {rid for rid, s in before.items() if s == "ok"}
    assert 3 <= len(finished) < 12
    stamps = {rid: (study / rid / "result.json").stat().st_mtime_ns for rid in finished}
    out = harness(*args[3:])
    assert out.returncode == 0, out.stderr[-2000:]
    after = statuses(study)
    assert len(after) == 12 and set(after.values()) == {"ok"}
    assert all((study / rid / "result.json").stat().st_mtime_ns == stamps[rid] for rid in finished)
    assert len(list(study.glob("*/result.json"))) == 12 == len(collect(study))


@pytest.mark.parametrize("override, key", [("model.bogus=1,2", "model.bogus"), ("scale=huge", "scale=huge"),
                                           ("model=mlp,resnet", "model=resnet")])
def test_bad_study_fails_before_any_run(override, key, tmp_path):
    out = harness("-m", "sweep=params", override, f"out_dir={tmp_path}")
    assert out.returncode == 2 and key in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not list(tmp_path.rglob("result.json"))


def test_plan_lists_every_run_with_flops_time_and_memory(tmp_path):
    out = subprocess.run([sys.executable, "-c", "from harness.plan import main; main()", "sweep=params",
                          "scale=cpu"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert len(lines) == 24 and "total:" in out.stdout and "MiB" in lines[0]


def test_plan_warns_about_runs_that_do_not_fit(tmp_path):
    out = subprocess.run([sys.executable, "-c", "from harness.plan import main; main()", "sweep=attention",
                          "scale=gpu", "mem_gib=1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "warning: run" in out.stderr


def test_collect_skips_unreadable_results_with_a_warning(tmp_path):
    from harness import compose, run
    from conftest import small

    for lr in ("1e-2", "2e-2"):
        run(compose(small("mlp", tmp_path, f"optim.lr={lr}", "trainer.max_steps=3")))
    broken = tmp_path / "single" / "broken"
    broken.mkdir()
    (broken / "result.json").write_text("{not json")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        table = collect(tmp_path / "single")
    assert len(table) == 2 and set(table["optim.lr"]) == {0.01, 0.02}
    assert {"run_id", "status", "reason", "model.name", "val_loss", "tokens_per_s", "env.torch"} <= set(table.columns)


def test_study_exits_nonzero_only_when_every_run_failed(tmp_path):
    from harness import compose
    from harness.identity import run_id
    from harness.results import write_result
    from harness.study import StudyCallback

    configs = [compose([f"out_dir={tmp_path}", f"seed={i}"]) for i in range(2)]
    callback = StudyCallback()
    callback.configs = configs
    def record(cfg, status):
        write_result(tmp_path / "single" / run_id(cfg), {"run_id": run_id(cfg), "status": status, "config": {},
                                                        "metrics": {"train_loss": 1.0}})

    for cfg in configs:
        record(cfg, "failed")
    with pytest.raises(SystemExit) as stop:
        callback.on_multirun_end(configs[0])
    assert stop.value.code == 1
    record(configs[1], "skipped")
    callback.on_multirun_end(configs[0])  # one ok run: the study succeeds
