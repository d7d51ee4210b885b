"""Built-in tasks, registered by name. Every task makes its data in memory from `seed`; nothing is downloaded.

A task is a `Dataset`: fixed train and validation tensors plus a `spec` the model builders read.
Token tasks serve random windows of a token stream; vector and image tasks serve random examples.
"""
from __future__ import annotations

from typing import Callable

from omegaconf import DictConfig

from harness.config import choose
from harness.data.base import Dataset, DataSpec
from harness.data.deep_teacher import build_deep_teacher
from harness.data.images import build_images
from harness.data.markov import build_markov
from harness.data.recall import build_recall
from harness.data.teacher import build_teacher
from harness.data.text import build_pycode, build_text, text_identity

TASKS: dict[str, Callable[[DictConfig, int], Dataset]] = {
    "teacher": build_teacher,
    "deep_teacher": build_deep_teacher,
    "images": build_images,
    "markov": build_markov,
    "pycode": build_pycode,
    "text": build_text,
    "recall": build_recall,
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


__all__ = ["Dataset", "DataSpec", "TASKS", "build_data", "data_identity"]
