"""Weights & Biases logging: one wandb run per harness run, offline by default, always finished.

Keys come from `harness.metric_table` (train/loss, perf/tokens_per_s, mem/peak_bytes, attn/flops_share).
A wandb failure is reported once and logging stops; it never touches the local result.
The wandb id is the run id: a retrained run (killed, crashed, interrupted, forced) resumes the same wandb
run online, and offline its earlier attempt's folder is replaced, so `wandb sync` uploads one run per run.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from harness.config import resolved
from harness.metric_table import wandb_key

log = logging.getLogger(__name__)

def flatten(cfg: dict, prefix: str = "") -> dict[str, Any]:
    """{'model': {'name': 'mlp'}} -> {'model.name': 'mlp'}."""
    flat = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            flat.update(flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def open_wandb(dir: Path, **init: Any) -> Any:
    """`wandb.init` with the lab's settings (quiet, no console capture, no system stats, one run per call),
    its folder created; shared by the runs' tracker and the analysis report. Raises what wandb raises."""
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")  # quiet from the first line, before settings apply
    dir.mkdir(parents=True, exist_ok=True)
    return wandb.init(dir=str(dir), reinit="create_new",
                      settings=wandb.Settings(silent=True, console="off", x_disable_stats=True), **init)


def drop_offline(dir: Path, run_id: str) -> None:
    """Remove an earlier attempt's offline folder of wandb run `run_id` under `dir`, which the new attempt
    replaces: `wandb sync` would upload each folder as another copy of the run."""
    for stale in (dir / "wandb").glob(f"offline-run-*-{run_id}"):
        shutil.rmtree(stale, ignore_errors=True)


class Tracker:
    """Thin guard around a wandb run; every call is a no-op once logging is off or has failed."""

    def __init__(self, cfg: DictConfig, settings: dict[str, Any], run_dir: Path, run_id: str):
        """A wandb run whose config is the run's config and its resolved `settings` (as `settings.*`)."""
        self.run = None
        lcfg = cfg.logger
        if lcfg.name == "none" or lcfg.get("mode") == "disabled":
            return
        try:
            wandb_dir = Path(lcfg.dir or run_dir)
            drop_offline(wandb_dir, run_id)
            self.run = open_wandb(
                project=lcfg.project, entity=lcfg.entity, group=lcfg.group, job_type=lcfg.job_type,
                tags=list(lcfg.tags), name=f"{cfg.study}-{run_id}", id=run_id, resume="allow",
                mode=lcfg.mode, dir=wandb_dir, config={**flatten(resolved(cfg)), **flatten(settings, "settings.")})
        except Exception as e:  # noqa: BLE001 - wandb may fail in many ways; the run must go on
            self._disable(e)

    def _disable(self, error: Exception) -> None:
        log.warning("wandb logging disabled: %s", str(error).splitlines()[0] if str(error) else type(error).__name__)
        self.run = None

    def log(self, row: dict[str, Any], step: int) -> None:
        if self.run is None:
            return
        try:
            self.run.log({wandb_key(k, per_step=True): v for k, v in row.items() if v is not None and k != "step"},
                         step=step)
        except Exception as e:  # noqa: BLE001
            self._disable(e)

    def finish(self, status: str, metrics: dict[str, Any]) -> None:
        if self.run is None:
            return
        try:
            self.run.summary.update({wandb_key(k): v for k, v in metrics.items() if v is not None})
            self.run.summary["status"] = status
            self.run.finish(exit_code=0 if status in ("ok", "skipped") else 1)
        except Exception as e:  # noqa: BLE001
            self._disable(e)
        self.run = None

