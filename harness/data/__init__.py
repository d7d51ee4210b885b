"""Built-in tasks, registered by name. Every task makes its data in memory from `seed`; nothing is downloaded.

A task is a `Dataset`: fixed train and validation tensors plus a `spec` the model builders read.
Token tasks serve random windows of a token stream; vector and image tasks serve random examples.
"""
from __future__ import annotations

from typing import Callable

from omegaconf import DictConfig

from harness.config import choose
from harness.data.base import Dataset, DataShape, DataSpec
from harness.data.deep_teacher import build_deep_teacher, deep_teacher_shape
from harness.data.facts import build_facts, facts_shape
from harness.data.images import build_images, images_shape
from harness.data.markov import build_markov, markov_shape
from harness.data.recall import build_recall, recall_shape
from harness.data.teacher import build_teacher, teacher_shape
from harness.data.text import build_pycode, build_text, pycode_shape, text_identity, text_shape

TASKS: dict[str, Callable[[DictConfig, int], Dataset]] = {
    "teacher": build_teacher,
    "deep_teacher": build_deep_teacher,
    "images": build_images,
    "markov": build_markov,
    "facts": build_facts,
    "pycode": build_pycode,
    "text": build_text,
    "recall": build_recall,
}

# The same tasks' spec and training size from the config alone (no data made): what `harness-plan` needs.
# No shape depends on the run's seed: it draws examples, never a task's size or its held-out split.
SHAPES: dict[str, Callable[[DictConfig], DataShape]] = {
    "teacher": teacher_shape,
    "deep_teacher": deep_teacher_shape,
    "images": images_shape,
    "markov": markov_shape,
    "facts": facts_shape,
    "pycode": pycode_shape,
    "text": text_shape,
    "recall": recall_shape,
}


# Part of the run id beyond the config: for tasks that read files, a hash of the content read; for order-1
# chains, the exact validation loss (val_loss changed meaning, so runs recorded before it are never reused).
IDENTITY: dict[str, Callable[[DictConfig], str | None]] = {
    "text": text_identity,
    "markov": lambda cfg: "val_loss=exact" if int(cfg.order) == 1 else None,
}


def data_identity(cfg: DictConfig) -> str | None:
    """What identifies the data beyond its config (a corpus's content hash, ...), or None."""
    identity = IDENTITY.get(cfg.name)
    return identity(cfg) if identity else None


def build_data(cfg: DictConfig, seed: int = 0) -> Dataset:
    """Build the task named by `cfg.name` (the `data` config group) deterministically from `seed`."""
    return TASKS[choose("data.name", cfg.name, TASKS)](cfg, seed)


def data_shape(cfg: DictConfig) -> DataShape:
    """The task's spec and training size (`spec`, `n_train`, `unique_train_tokens`) without making its data."""
    return SHAPES[choose("data.name", cfg.name, TASKS)](cfg)


__all__ = ["DataShape", "Dataset", "DataSpec", "SHAPES", "TASKS", "build_data", "data_identity", "data_shape"]
