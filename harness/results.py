"""The one result writer: result.json (atomic), history.parquet, traceback.txt, and the environment record.

Statuses: ok | diverged | oom | skipped | failed, plus `running` while a run is in progress, so a run
killed half-way leaves a file that says so and is retrained on resume. Never a file that says ok early.
Every read is validated (`inspect_result`): a file that is not a complete result counts as unfinished.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from harness.jsonsafe import json_ready
from harness.metrics import cpu_name

FINISHED = ("ok", "diverged", "skipped")  # statuses a resumed study does not retrain
STATUSES = ("ok", "diverged", "oom", "skipped", "failed")
RESULT, HISTORY, TRACEBACK = "result.json", "history.parquet", "traceback.txt"
REQUIRED = {"run_id": str, "status": str, "config": dict, "metrics": dict}  # key -> type of a complete result


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_result(run_dir: Path, result: dict) -> None:
    write_atomic(run_dir / RESULT, json.dumps(json_ready(result), indent=2, default=str) + "\n")


def check_result(result: Any, run_dir: Path) -> str | None:
    """Why `result` (parsed result.json of `run_dir`) is not a complete result; None when it is."""
    if not isinstance(result, dict):
        return f"not a JSON object but {type(result).__name__}"
    for key, kind in REQUIRED.items():
        if not isinstance(result.get(key), kind):
            return f"'{key}' missing or not a {kind.__name__}"
    if result["status"] not in (*STATUSES, "running"):
        return f"unknown status {result['status']!r}"
    if result["run_id"] != run_dir.name:
        return f"run_id {result['run_id']!r} does not match its folder"
    if result["status"] == "ok" and "train_loss" not in result["metrics"]:
        return "status ok without metrics"
    if result["status"] == "ok" and not (run_dir / HISTORY).is_file():
        return f"status ok but {HISTORY} is missing"
    return None


def inspect_result(run_dir: Path) -> tuple[dict | None, str | None]:
    """(the run's complete result or None, why the file present is not one or None)."""
    path = run_dir / RESULT
    if not path.exists():
        return None, None
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return None, f"unreadable ({type(e).__name__})"
    problem = check_result(result, run_dir)
    return (None, problem) if problem else (result, None)


def read_result(run_dir: Path) -> dict | None:
    """The run's result.json if it is a complete result (see `check_result`), else None."""
    return inspect_result(run_dir)[0]


def write_history(run_dir: Path, rows: list[dict]) -> None:
    path = run_dir / HISTORY
    tmp = path.with_name(f".{HISTORY}.tmp")
    pd.DataFrame(rows).to_parquet(tmp, index=False)
    os.replace(tmp, path)


def environment(device: torch.device, threads: int) -> dict[str, Any]:
    """Versions, hardware and the git commit, so a result can be traced to where it ran."""
    import hydra
    import omegaconf

    env = {"python": sys.version.split()[0], "torch": torch.__version__, "hydra": hydra.__version__,
           "omegaconf": omegaconf.__version__, "pandas": pd.__version__, "platform": platform.platform(),
           "cpu": cpu_name(), "cpu_count": os.cpu_count(), "threads": threads, "device": str(device),
           "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
           "git_commit": _git_commit()}
    try:
        import wandb
        env["wandb"] = wandb.__version__
    except ImportError:
        env["wandb"] = None
    return env


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
