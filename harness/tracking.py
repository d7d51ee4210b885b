"""Weights & Biases logging: one wandb run per harness run, offline by default, always finished.

History keys are grouped with units (train/loss, perf/tokens_per_s, mem/peak_rss_mib, attn/flops_share).
A wandb failure is reported once and logging stops; it never touches the local result.
The wandb id is the run id: a retrained run (killed, crashed, interrupted, forced) resumes the same wandb
run online, and offline its earlier attempt's folder is replaced, so `wandb sync` uploads one run per run.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

HISTORY_KEYS = {"train_loss": "train/loss", "val_loss": "val/loss", "lr": "train/lr",
                "grad_norm": "train/grad_norm", "step_time_s": "perf/step_time_s",
                "data_time_s": "perf/data_time_s", "tokens_per_s": "perf/tokens_per_s",
                "mem_mib": "mem/rss_mib"}  # on CUDA mem_mib is allocated GPU memory
SUMMARY_GROUPS = {"attn_": "attn/", "peak_mem": "mem/", "mfu": "perf/", "per_s": "perf/",
                  "time_s": "perf/", "flops": "perf/", "loss": "final/"}


def summary_key(metric: str) -> str:
    """'attn_flops_share' -> 'attn/flops_share', 'tokens_per_s' -> 'perf/tokens_per_s', ..."""
    for marker, group in SUMMARY_GROUPS.items():
        if marker in metric:
            return group + (metric[len(marker):] if metric.startswith("attn_") else metric)
    return "run/" + metric


def flatten(cfg: dict, prefix: str = "") -> dict[str, Any]:
    """{'model': {'name': 'mlp'}} -> {'model.name': 'mlp'}."""
    flat = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            flat.update(flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


class Tracker:
    """Thin guard around a wandb run; every call is a no-op once logging is off or has failed."""

    def __init__(self, cfg: DictConfig, run_dir: Path, run_id: str):
        self.run = None
        lcfg = cfg.logger
        if lcfg.name == "none" or lcfg.get("mode") == "disabled":
            return
        try:
            import wandb

            settings = wandb.Settings(silent=True, console="off", x_disable_stats=True)
            wandb_dir = Path(lcfg.dir or run_dir)
            for stale in (wandb_dir / "wandb").glob(f"offline-run-*-{run_id}"):  # an earlier attempt of this run
                shutil.rmtree(stale, ignore_errors=True)
            self.run = wandb.init(
                project=lcfg.project, entity=lcfg.entity, group=lcfg.group, job_type=lcfg.job_type,
                tags=list(lcfg.tags), name=f"{cfg.study}-{run_id}", id=run_id, resume="allow",
                mode=lcfg.mode, dir=str(wandb_dir), reinit="create_new", settings=settings,
                config=flatten(OmegaConf.to_container(cfg, resolve=True)))
        except Exception as e:  # noqa: BLE001 - wandb may fail in many ways; the run must go on
            self._disable(e)

    def _disable(self, error: Exception) -> None:
        log.warning("wandb logging disabled: %s", str(error).splitlines()[0] if str(error) else type(error).__name__)
        self.run = None

    def log(self, row: dict[str, Any], step: int) -> None:
        if self.run is None:
            return
        try:
            self.run.log({HISTORY_KEYS.get(k, k): v for k, v in row.items() if v is not None and k != "step"},
                         step=step)
        except Exception as e:  # noqa: BLE001
            self._disable(e)

    def finish(self, status: str, metrics: dict[str, Any]) -> None:
        if self.run is None:
            return
        try:
            self.run.summary.update({summary_key(k): v for k, v in metrics.items() if v is not None})
            self.run.summary["status"] = status
            if metrics.get("peak_mem_bytes"):
                self.run.summary["mem/peak_rss_mib"] = metrics["peak_mem_bytes"] / 2 ** 20
            self.run.finish(exit_code=0 if status in ("ok", "skipped") else 1)
        except Exception as e:  # noqa: BLE001
            self._disable(e)
        self.run = None

