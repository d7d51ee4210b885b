"""`deep_teacher`: Gaussian inputs labelled by a fixed random *deep* tanh network, a function built by composition.

Each of `teacher_depth` layers is tanh(gain · W h / sqrt(width)); a gain above 1 keeps every layer nonlinear,
so the target is a composition of many nonlinear maps (what depth is claimed to be good for). The regression
target is standardised to unit variance, so losses compare across seeds; the loss floor is `noise`².
"""
from __future__ import annotations

import torch
from omegaconf import DictConfig

from harness.config import positive
from harness.data.base import Dataset, DataSpec


def build_deep_teacher(cfg: DictConfig, seed: int) -> Dataset:
    d = positive("data.input_dim", cfg.input_dim)
    width = positive("data.teacher_width", cfg.teacher_width)
    depth = positive("data.teacher_depth", cfg.teacher_depth)
    gain = positive("data.gain", cfg.gain, integer=False)
    n_train = positive("data.train_samples", cfg.train_samples)
    n_val = positive("data.val_samples", cfg.val_samples)
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

    spec = DataSpec(kind="vector", loss="mse", n_outputs=1, input_dim=d)
    return Dataset(spec, make(n_train), make(n_val))
