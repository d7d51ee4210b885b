"""A run's settings, resolved once from its config and its data and model: what the run actually uses.

`harness.build.check_config` resolves them (`resolve_settings`); training (`harness.train`), measuring
(`harness.runner`), planning (`harness.plan`) and `result.json` (its `settings`, collected as `settings.*`
columns) read them instead of recomputing them. The config says what was asked (`optim.lr`); the settings say
what ran (`lr_peak`, after the size/length rule).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from harness.data import DataShape, Dataset


@dataclass(frozen=True)
class RunSettings:
    """The resolved numbers a run trains with."""

    world_size: int       # ranks (dist.nproc; a launcher's world is written there first)
    grad_accum: int       # micro-steps per optimizer step
    micro_batch: int      # examples per rank per micro-step: batch_size / (world_size x grad_accum)
    batch_size: int       # examples per optimizer step, all ranks together
    tokens_per_step: int  # batch_size x tokens per example
    steps: int            # optimizer steps the budget gives (at most harness.train.MAX_STEPS)
    tokens: int           # steps x tokens_per_step: what the run reads
    lr_peak: float        # the LR after warmup: optim.lr after the size/length rule (harness.train.peak_lr)
    schedule: str         # optim.schedule
    warmup_steps: int     # from optim.warmup_fraction of the steps, else optim.warmup_steps
    decay_start: int | None  # optim.schedule=wsd: the first step of the decay (a branch's point); else None
    precision: str        # fp32 or bf16 autocast
    compile: bool         # torch.compile of the training steps
    eval_samples: int     # validation examples per evaluation

    def record(self) -> dict[str, Any]:
        """The settings as result.json's `settings`."""
        return asdict(self)


def epochs(tokens: float, data: Dataset | DataShape) -> float:
    """Passes over the unique training data that `tokens` tokens (examples) make; 1 for a stream, whose
    tokens are each read once."""
    unique = data.unique_train_tokens
    return 1.0 if math.isinf(unique) else tokens / unique
