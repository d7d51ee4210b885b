"""SLURM through submitit (Hydra's submitit launcher): check a study's job request with `sbatch --test-only`
before anything is submitted, so a request the cluster refuses (a GPU on a node without one, an unknown
partition, too much memory) ends in one line instead of submitit's traceback.

Preemption and time limits are submitit's: the launcher's `checkpoint()` requeues the job (up to
`max_num_timeout` times) and `harness.checkpoint.Checkpointer` saves the run first.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.config import ConfigError

# Hydra launcher key -> sbatch option (what submitit writes into its #SBATCH lines).
OPTIONS = {"partition": "partition", "qos": "qos", "account": "account", "constraint": "constraint",
           "exclude": "exclude", "gres": "gres", "nodes": "nodes", "tasks_per_node": "ntasks-per-node",
           "cpus_per_task": "cpus-per-task", "gpus_per_node": "gpus-per-node", "gpus_per_task": "gpus-per-task",
           "cpus_per_gpu": "cpus-per-gpu", "mem_per_gpu": "mem-per-gpu", "mem_per_cpu": "mem-per-cpu"}


def submitit_handles(sig: int) -> bool:
    """Whether `sig` is handled by submitit, i.e. this process is a submitit job.

    submitit binds SIGUSR2 to checkpoint-and-requeue and lets SIGTERM through (`bypass`): under SLURM a
    SIGTERM announces a kill (scancel, end of KillWait), a preemption (followed by SIGUSR2) or a requeue, so
    the job saves and carries on instead of stopping itself.
    """
    owner = getattr(signal.getsignal(sig), "__self__", None)
    return type(owner).__module__.startswith("submitit.")


def is_slurm(launcher: DictConfig | None) -> bool:
    return launcher is not None and "SlurmLauncher" in str(launcher.get("_target_", ""))


def sbatch_args(launcher: DictConfig) -> list[str]:
    """The resource options of the launcher config as sbatch arguments."""
    params: dict[str, Any] = OmegaConf.to_container(launcher, resolve=True)
    args = [f"--{flag}={params[key]}" for key, flag in OPTIONS.items() if params.get(key) not in (None, "")]
    if params.get("mem_gb"):
        args.append(f"--mem={params['mem_gb']}G")
    if params.get("timeout_min"):
        args.append(f"--time={params['timeout_min']}")
    for key, value in (params.get("additional_parameters") or {}).items():
        args.append(f"--{key.replace('_', '-')}={value}")
    return args


def preflight(launcher: DictConfig) -> None:
    """Ask `sbatch --test-only` whether the cluster accepts the job request; ConfigError (one line) if not."""
    if shutil.which("sbatch") is None:
        raise ConfigError("hydra/launcher=slurm: sbatch not found (no SLURM client on this machine)")
    args = sbatch_args(launcher)
    try:
        out = subprocess.run(["sbatch", "--test-only", *args, "--wrap=true"], capture_output=True, text=True,
                             timeout=60)
    except subprocess.TimeoutExpired:
        raise ConfigError("hydra/launcher=slurm: sbatch --test-only did not answer in 60 s (is slurmctld up?)") from None
    if out.returncode != 0:
        why = " ".join((out.stderr or out.stdout).split()) or f"exit code {out.returncode}"
        hint = " (no GPU on this cluster? use hydra/launcher=slurm_cpu)" if "gres" in why.lower() or "gpu" in why.lower() else ""
        raise ConfigError(f"hydra/launcher=slurm: sbatch refused the job ({' '.join(args)}): {why}{hint}")
