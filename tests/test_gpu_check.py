"""The GPU check script (tests/gpu_check.py) in its CPU smoke mode: every section, key and status it will
write on a GPU, with manual attention past an emulated memory cap recorded as `oom`."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ["devices", "mfu", "attention", "plan_memory", "cuda_tests"]


def check(out: Path, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SCALING_LAB_CACHE": str(out / "cache"), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "tests.gpu_check", "--out", str(out), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # ~30-40 s on 2 busy cores: 8 tiny runs and 10 attention shapes
def test_cpu_smoke_writes_every_section_and_records_oom_past_the_cap(tmp_path):
    proc = check(tmp_path, "--cpu-smoke", "--skip-compile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    s = report["sections"]
    assert report["mode"] == "cpu-smoke" and list(s) == SECTIONS
    assert s["cuda_tests"]["status"] == "skipped"
    assert all(s[k]["status"] == "ok" for k in SECTIONS[:-1]), {k: s[k].get("reason") for k in SECTIONS}

    rows = s["devices"]["rows"]
    assert {r["model"] for r in rows} == {"transformer", "lstm"} and len(rows) == 4
    assert all(r["cpu_status"] == r["gpu_status"] == "ok" and r["ratio"] == pytest.approx(1.0) for r in rows)

    mfu = s["mfu"]
    assert [v["compile"] for v in mfu["variants"]] == [False, True]
    assert mfu["variants"][1]["status"] == "skipped" and 0 < mfu["best_mfu"] < 1
    assert mfu["goal"] == 0.4 and isinstance(mfu["goal_met"], bool)

    att = s["attention"]
    status = {(r["impl"], r["n"]): r["status"] for r in att["rows"]}
    # 2 x 2 heads x 1024^2 fp32 scores = 16 MiB > the 8 MiB cap; 512 needs 4 MiB
    assert status[("manual", 512)] == "ok" and status[("manual", 1024)] == "oom"
    assert att["manual_oom_length"] == 1024 and all(status[("sdpa", n)] == "ok" for n in (64, 1024))
    ok = [r for r in att["rows"] if r["status"] == "ok"]
    assert all(r["attn_time_s"] > 0 and r["mem_bytes"] > 0 for r in ok)
    manual_mem = att["exponents"]["manual_memory"]["k"]
    assert 1.5 < manual_mem < 2.5  # the saved n x n matrices dominate
    assert "sdpa_time" in att["exponents"]

    plan = s["plan_memory"]
    assert plan["rows"] and all(r["estimate_bytes"] > 0 and r["measured_bytes"] > 0 for r in plan["rows"])
    assert plan["note"] and plan["all_within_goal"] is None  # CPU RSS: no verdict

    md = (tmp_path / "gpu_check.md").read_text()
    assert "| attention | ok |" in md and "| manual | 1024 |" in md


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_without_a_gpu_every_section_is_blocked_in_the_files(tmp_path):
    proc = check(tmp_path)
    assert proc.returncode == 1 and "no CUDA device" in proc.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert {s["status"] for s in report["sections"].values()} == {"blocked"} and list(report["sections"]) == SECTIONS
    assert "| mfu | blocked |" in (tmp_path / "gpu_check.md").read_text()
