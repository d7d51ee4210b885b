"""The one result writer: result.json, history.parquet, traceback.txt, all through one atomic writer.

Statuses: ok | diverged | oom | skipped | failed, plus `running` while a run is in progress, so a run
killed half-way leaves a file that says so and is retrained on resume. Never a file that says ok early.
Every read is validated (`inspect_result`): a file that is not a complete result counts as unfinished.
"""
from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pyarrow.parquet as pq

from harness.jsonsafe import json_ready

FINISHED = ("ok", "diverged", "skipped")  # statuses a resumed study does not retrain
STATUSES = ("ok", "diverged", "oom", "skipped", "failed")
RESULT, HISTORY, TRACEBACK = "result.json", "history.parquet", "traceback.txt"
REQUIRED = {"run_id": str, "status": str, "config": dict, "metrics": dict}  # key -> type of a complete result


@contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """A temporary path in `path`'s folder to write; fsynced and renamed over `path` only when the block
    succeeds, so a reader sees the old file or the whole new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}"
    # Not tempfile.mkstemp: its files are 0600; created like open() does, the file gets the process umask.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (see `atomic`)."""
    with atomic(path) as tmp:
        tmp.write_text(text)


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
    if result["status"] == "ok":
        try:
            pq.read_metadata(run_dir / HISTORY)  # the footer: a truncated or overwritten file fails here
        except Exception as e:  # noqa: BLE001 - any reader error means the history cannot be used
            return f"status ok but {HISTORY} is unreadable ({type(e).__name__})"
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
    with atomic(run_dir / HISTORY) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)
