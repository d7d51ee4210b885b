"""`images`: procedural images with spatial structure, no files.

Each class owns a few random 2-D sinusoids per channel; an image is its class texture shifted by a random
offset plus Gaussian noise. Recognising a class needs translation-invariant local features: a CNN's job.

`max_shift` bounds the offset (0: every texture in place), and `eval_shift` adds a validation split moved that
many more pixels along both axes, scored as val_accuracy_shifted: with `max_shift: 0` it tests whether a model
recognises a class at a position it never saw in training (translation invariance).
"""
from __future__ import annotations

import math

import torch
from omegaconf import DictConfig

from harness.config import non_negative, positive
from harness.data.base import Dataset, DataShape, DataSpec

WAVES_PER_CLASS = 3


def images_shape(cfg: DictConfig) -> DataShape:
    """The task's spec and training size from its config alone."""
    size, chans = positive("data.image_size", cfg.image_size), positive("data.channels", cfg.channels)
    spec = DataSpec(kind="image", loss="ce", n_outputs=positive("data.n_classes", cfg.n_classes),
                    image_shape=(chans, size, size))
    positive("data.val_samples", cfg.val_samples)
    if cfg.get("max_shift") is not None:
        non_negative("data.max_shift", cfg.max_shift)
    non_negative("data.eval_shift", cfg.get("eval_shift", 0))
    return DataShape(spec, positive("data.train_samples", cfg.train_samples))


def build_images(cfg: DictConfig, seed: int) -> Dataset:
    shape = images_shape(cfg)
    spec, n_train, n_val = shape.spec, shape.n_train, int(cfg.val_samples)
    (chans, size, _), n_cls = spec.image_shape, spec.n_outputs
    g = torch.Generator().manual_seed(seed)
    # Integer frequencies keep textures periodic on the grid, so shifts wrap around cleanly.
    freqs = torch.randint(1, max(2, size // 4) + 1, (n_cls, chans, WAVES_PER_CLASS, 2), generator=g).float()
    freqs *= torch.where(torch.rand(freqs.shape, generator=g) < 0.5, -1.0, 1.0)
    phases = 2 * math.pi * torch.rand(n_cls, chans, WAVES_PER_CLASS, generator=g)
    grid = torch.arange(size).float()
    span = size if cfg.get("max_shift") is None else min(size, int(cfg.max_shift) + 1)  # offsets 0 … span − 1

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, n_cls, (n,), generator=g)
        shift = torch.randint(0, span, (n, 2), generator=g).float()
        f = freqs[y]                                                     # (n, C, W, 2)
        py = (grid[None, :] - shift[:, :1])[:, None, None, :, None]      # (n, 1, 1, H, 1)
        px = (grid[None, :] - shift[:, 1:])[:, None, None, None, :]      # (n, 1, 1, 1, W)
        angle = 2 * math.pi / size * (f[..., 0, None, None] * py + f[..., 1, None, None] * px)
        img = torch.sin(angle + phases[y][..., None, None]).sum(2) / WAVES_PER_CLASS ** 0.5
        return img + float(cfg.noise) * torch.randn(img.shape, generator=g), y

    train, val = make(n_train), make(n_val)
    moved = int(cfg.get("eval_shift", 0))
    # Textures are periodic on the grid, so rolling an image moves its texture: the same as a larger offset.
    shifted = (torch.roll(val[0], (moved, moved), dims=(2, 3)), val[1]) if moved else None
    return Dataset(spec, train, val, val_shifted=shifted)
