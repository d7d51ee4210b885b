"""`deep_teacher`: Gaussian inputs labelled by a fixed random *deep* tanh network, a function built by composition.

Each of `teacher_depth` layers is tanh(gain · W h / sqrt(width)); a gain above 1 keeps every layer nonlinear,
so the target is a composition of many nonlinear maps (what depth is claimed to be good for). The regression
target is standardised to unit variance, so losses compare across seeds; the loss floor is `noise`².
"""
from __future__ import annotations

import torch
from omegaconf import DictConfig

from harness.config import positive
from harness.data.base import Dataset, DataShape, DataSpec


def deep_teacher_shape(cfg: DictConfig) -> DataShape:
    """The task's spec and training size from its config alone."""
    for key in ("teacher_width", "teacher_depth", "val_samples"):
        positive(f"data.{key}", cfg[key])
    positive("data.gain", cfg.gain, integer=False)
    spec = DataSpec(kind="vector", loss="mse", n_outputs=1, input_dim=positive("data.input_dim", cfg.input_dim))
    return DataShape(spec, positive("data.train_samples", cfg.train_samples))


def build_deep_teacher(cfg: DictConfig, seed: int) -> Dataset:
    shape = deep_teacher_shape(cfg)
    spec, d, n_train, n_val = shape.spec, shape.spec.input_dim, int(shape.n_train), int(cfg.val_samples)
    width, depth, gain = int(cfg.teacher_width), int(cfg.teacher_depth), float(cfg.gain)
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(a, width, generator=g) * gain / a ** 0.5 for a in [d] + [width] * (depth - 1)]
    head = torch.randn(width, 1, generator=g) / width ** 0.5

    def teacher(x: torch.Tensor) -> torch.Tensor:
        for w in weights:
            x = torch.tanh(x @ w)
        return x @ head

    scale = teacher(torch.randn(4096, d, generator=g)).std()

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, d, generator=g)
        return x, teacher(x) / scale + float(cfg.noise) * torch.randn(n, 1, generator=g)

    return Dataset(spec, make(n_train), make(n_val))
