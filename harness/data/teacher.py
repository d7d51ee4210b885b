"""`teacher`: Gaussian inputs labelled by a fixed random two-layer tanh network (the classic student-teacher task)."""
from __future__ import annotations

import torch
from omegaconf import DictConfig

from harness.config import choose, positive
from harness.data.base import Dataset, DataShape, DataSpec


def teacher_shape(cfg: DictConfig) -> DataShape:
    """The task's spec and training size from its config alone."""
    task = choose("data.task", cfg.task, ["classification", "regression"])
    n_out = positive("data.n_classes", cfg.n_classes) if task == "classification" else 1
    spec = DataSpec(kind="vector", loss="ce" if task == "classification" else "mse", n_outputs=n_out,
                    input_dim=positive("data.input_dim", cfg.input_dim))
    positive("data.teacher_hidden", cfg.teacher_hidden)
    positive("data.val_samples", cfg.val_samples)
    return DataShape(spec, positive("data.train_samples", cfg.train_samples))


def build_teacher(cfg: DictConfig, seed: int) -> Dataset:
    shape = teacher_shape(cfg)
    spec, task, n_train, n_val = shape.spec, cfg.task, shape.n_train, int(cfg.val_samples)
    d, hidden, n_out = spec.input_dim, int(cfg.teacher_hidden), spec.n_outputs
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(d, hidden, generator=g) / d ** 0.5
    w2 = torch.randn(hidden, n_out, generator=g) / hidden ** 0.5 * 3.0  # sharper decision boundaries

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, d, generator=g)
        out = torch.tanh(x @ w1) @ w2
        if task == "classification":
            return x, out.argmax(-1)
        return x, out + float(cfg.noise) * torch.randn(n, 1, generator=g)

    return Dataset(spec, make(n_train), make(n_val))
