"""Cooldown branches (warmup-stable-decay, Hägele et al. 2024): runs that differ only in length share one trunk.

A `optim.schedule=wsd` run holds its peak LR until the last `optim.decay_fraction` of its steps, then decays
linearly. Before that point it is the same run as every longer one with the same model, data, seed and
optimizer: same weights, same batches, same LR. With `trainer.branch=true` such runs share that constant-LR
trunk: each saves the trunk's state at the step its own decay starts, in `<study>/trunks/<id>/step_<S>.pt`,
and a longer run starts from the latest saved step at or before its own decay, instead of from step 0. Each
branch is still an ordinary run of the study (its own folder, `result.json`, resume and reuse), equal to an
independent run of its length, so a ladder gets several token counts per size for about the cost of one run.

A lock per trunk makes a run that needs the trunk wait while another extends it (a joblib study trains two
branches of one size at once); trunk files stay after the study, for the longer branches of a later re-run.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from harness.checkpoint import load_state, save_state

log = logging.getLogger("harness")
TRUNKS = "trunks"
# Keys that set a run's length (or only its outputs), not its trunk: runs that differ in them share one.
LENGTH_KEYS = ("max_steps", "max_tokens", "max_flops", "max_epochs", "checkpoint_every", "keep_checkpoint",
               "eval_every", "log_every")


def decay_start(steps: int, decay_fraction: float) -> int:
    """The first step of a WSD run's decay: the last `decay_fraction` of its `steps` decay (at least one step)."""
    return steps - max(1, round(decay_fraction * steps))


def trunk_id(cfg: DictConfig, model: torch.nn.Module, lr_peak: float) -> str:
    """Hash of what the trunk computes: model (its parameter shapes, not the size asked for), data, optimizer
    (with the peak LR it resolved to), trainer settings other than the length, seed and ranks."""
    whole = OmegaConf.to_container(cfg, resolve=True)
    model_cfg = {k: v for k, v in whole["model"].items() if k != "target_params"}
    trainer = {k: v for k, v in whole["trainer"].items() if k not in LENGTH_KEYS}
    shapes = [(name, list(p.shape)) for name, p in model.named_parameters()]
    key = {"model": model_cfg, "shapes": shapes, "data": whole["data"], "optim": whole["optim"], "lr_peak": lr_peak,
           "trainer": trainer, "seed": whole["seed"], "dist": whole.get("dist")}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


class Trunk:
    """The saved trunk states of one group of branches, in `<study_dir>/trunks/<id>/`."""

    def __init__(self, study_dir: Path, ident: str):
        self.dir = Path(study_dir) / TRUNKS / ident
        self._lock: Any = None

    def __enter__(self) -> "Trunk":
        """Hold the trunk's lock: no other run reads or extends it meanwhile."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.dir / "lock", "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # released by the OS if this process dies
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def path(self, step: int) -> Path:
        return self.dir / f"step_{step}.pt"

    def saved_steps(self) -> list[int]:
        found = (re.fullmatch(r"step_(\d+)\.pt", p.name) for p in self.dir.glob("step_*.pt"))
        return sorted(int(m.group(1)) for m in found if m)

    def restore(self, model: torch.nn.Module, opt: torch.optim.Optimizer, data_state: Any, until: int) -> dict | None:
        """Load the latest trunk state at or before step `until`; its loop state, or None (start at step 0)."""
        for step in reversed([s for s in self.saved_steps() if s <= until]):
            loop = load_state(self.path(step), model, opt, data_state)
            if loop is not None:
                log.info("%s: branching from the trunk at step %d", self.dir.name, step)
                return loop
        return None

    def save(self, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer, data_state: Any,
             loop: dict) -> None:
        """Save the trunk's state after `step` steps (once: an existing file is the same state)."""
        if not self.path(step).exists():
            save_state(self.path(step), model, opt, data_state, loop)
