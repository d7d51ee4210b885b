"""`images`: procedural images with spatial structure, no files.

Each class owns a few random 2-D sinusoids per channel; an image is its class texture shifted by a random
offset plus Gaussian noise. Recognising a class needs translation-invariant local features: a CNN's job.
"""
from __future__ import annotations

import math

import torch
from omegaconf import DictConfig

from harness.config import positive
from harness.data.base import Dataset, DataShape, DataSpec

WAVES_PER_CLASS = 3


def images_shape(cfg: DictConfig) -> DataShape:
    """The task's spec and training size from its config alone."""
    size, chans = positive("data.image_size", cfg.image_size), positive("data.channels", cfg.channels)
    spec = DataSpec(kind="image", loss="ce", n_outputs=positive("data.n_classes", cfg.n_classes),
                    image_shape=(chans, size, size))
    positive("data.val_samples", cfg.val_samples)
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

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, n_cls, (n,), generator=g)
        shift = torch.randint(0, size, (n, 2), generator=g).float()
        f = freqs[y]                                                     # (n, C, W, 2)
        py = (grid[None, :] - shift[:, :1])[:, None, None, :, None]      # (n, 1, 1, H, 1)
        px = (grid[None, :] - shift[:, 1:])[:, None, None, None, :]      # (n, 1, 1, 1, W)
        angle = 2 * math.pi / size * (f[..., 0, None, None] * py + f[..., 1, None, None] * px)
        img = torch.sin(angle + phases[y][..., None, None]).sum(2) / WAVES_PER_CLASS ** 0.5
        return img + float(cfg.noise) * torch.randn(img.shape, generator=g), y

    return Dataset(spec, make(n_train), make(n_val))
