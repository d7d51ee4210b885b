"""Where a run executes: the torch device for `device=`, the CPU threads for `threads=`, and the record of
the environment (versions, hardware, git commit) kept in every result."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from harness.config import choose, positive
from harness.metrics import cpu_name


def resolve_device(name: str) -> tuple[torch.device | None, str | None]:
    """The torch device for `device=`; (None, reason) when the requested device is absent."""
    choose("device", name, ["auto", "cpu", "cuda", "mps"])
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu"), None
    if name == "cuda" and not torch.cuda.is_available():
        return None, "device=cuda requested but no CUDA GPU is available"
    if name == "mps" and not torch.backends.mps.is_available():
        return None, "device=mps requested but MPS is not available"
    return torch.device(name), None


def resolve_threads(value: Any) -> int:
    """threads=N, or auto: the cores divided among the jobs a launcher runs at once (`parallelism`)."""
    if value != "auto":
        return positive("threads", value)
    try:
        from hydra.core.hydra_config import HydraConfig
        launcher = HydraConfig.get().launcher
    except ValueError:  # not inside a Hydra app (the Python API)
        return os.cpu_count() or 1
    return parallelism(launcher)[1]


def parallelism(launcher: Any) -> tuple[int, int]:
    """(jobs run at once, CPU threads per job) of a Hydra launcher config on this machine.

    joblib runs n_jobs at once (-1: one per core) and splits the cores among them; submitit gives each job
    cpus_per_task (default 1, so submitit_local's parallel jobs never oversubscribe) and its concurrency is
    the scheduler's, counted here as 1; the basic launcher runs one job at a time on every core.
    """
    cores = os.cpu_count() or 1
    target = str(launcher.get("_target_", "")) if launcher is not None else ""
    if "joblib" in target:
        n = int(launcher.get("n_jobs") or 1)
        jobs = cores if n < 1 else n
        return jobs, max(1, cores // jobs)
    if "submitit" in target:
        return 1, int(launcher.get("cpus_per_task") or 1)
    return 1, cores


def environment(device: torch.device, threads: int) -> dict[str, Any]:
    """Versions, hardware and the git commit, so a result can be traced to where it ran."""
    import hydra
    import omegaconf
    import pandas

    env = {"python": sys.version.split()[0], "torch": torch.__version__, "hydra": hydra.__version__,
           "omegaconf": omegaconf.__version__, "pandas": pandas.__version__, "platform": platform.platform(),
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
