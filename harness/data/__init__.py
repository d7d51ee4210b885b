"""Built-in tasks, registered by name. Every task makes its data in memory from `seed`; nothing is downloaded.

A task is a `Dataset`: fixed train and validation tensors plus a `spec` the model builders read.
Token tasks serve random windows of a token stream; vector and image tasks serve random examples.
"""
from __future__ import annotations

from typing import Callable

from omegaconf import DictConfig

from harness.config import choose
from harness.data.base import Dataset, DataShape, DataSpec
from harness.data.facts import build_facts, facts_shape
from harness.data.images import build_images, images_shape
from harness.data.markov import build_markov, markov_shape
from harness.data.teacher import build_teacher, teacher_shape
from harness.data.text import build_pycode, build_text, pycode_shape, text_identity, text_shape

TASKS: dict[str, Callable[[DictConfig, int], Dataset]] = {
    "teacher": build_teacher,
    "images": build_images,
    "markov": build_markov,
    "facts": build_facts,
    "pycode": build_pycode,
    "text": build_text,
}

# The same tasks' spec and training size from the config alone (no data made): what `harness-plan` needs.
SHAPES: dict[str, Callable[[DictConfig, int], DataShape]] = {
    "teacher": lambda cfg, seed: teacher_shape(cfg),
    "images": lambda cfg, seed: images_shape(cfg),
    "markov": lambda cfg, seed: markov_shape(cfg),
    "facts": lambda cfg, seed: facts_shape(cfg),
    "pycode": pycode_shape,
    "text": text_shape,
}


# Tasks that read files: a hash of the content read, part of the run id (built-in tasks are defined by config).
IDENTITY: dict[str, Callable[[DictConfig], str]] = {"text": text_identity}


def data_identity(cfg: DictConfig) -> str | None:
    """The content hash of the files the data config reads, or None for a task made from its config alone."""
    identity = IDENTITY.get(cfg.name)
    return identity(cfg) if identity else None


def build_data(cfg: DictConfig, seed: int = 0) -> Dataset:
    """Build the task named by `cfg.name` (the `data` config group) deterministically from `seed`."""
    return TASKS[choose("data.name", cfg.name, TASKS)](cfg, seed)


def data_shape(cfg: DictConfig, seed: int = 0) -> DataShape | Dataset:
    """The task's spec and training size (`spec`, `n_train`, `unique_train_tokens`) without making its data;
    a task with no shape function is built (the same three attributes)."""
    name = choose("data.name", cfg.name, TASKS)
    return SHAPES[name](cfg, seed) if name in SHAPES else TASKS[name](cfg, seed)


__all__ = ["DataShape", "Dataset", "DataSpec", "SHAPES", "TASKS", "build_data", "data_identity", "data_shape"]
