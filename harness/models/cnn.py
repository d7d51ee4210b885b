"""Convolutional network: `depth` blocks of conv (same padding) + activation + 2x2 max-pool, channels
doubling per block, then global average pooling and a linear classifier.

For `target_params` the base width may be fractional (block i gets round(base * 2^i) channels), so the
count moves in fine steps even for small networks.
"""
from __future__ import annotations

from torch import nn

from harness import flops
from harness.config import fail
from harness.data import DataSpec
from harness.models.layers import activation


class CNN(nn.Module):
    width_key = "channels"
    width_step = 0.125

    def __init__(self, spec: DataSpec, channels: float, depth: int, kernel: int = 3, act: str = "relu"):
        super().__init__()
        c_in, size, _ = spec.image_shape
        if size >> depth < 1:
            fail("model.depth", depth, f"{depth} pooling blocks shrink a {size}x{size} image below 1 pixel")
        self.plan = []  # (c_in, c_out, output side) per conv, for the FLOPs count
        layers: list[nn.Module] = []
        for i in range(depth):
            c = max(1, round(channels * 2 ** i))
            layers += [nn.Conv2d(c_in, c, kernel, padding=kernel // 2), activation(act), nn.MaxPool2d(2)]
            self.plan.append((c_in, c, size))
            c_in, size = c, size // 2
        self.kernel, self.head_in, self.n_out = kernel, c_in, spec.n_outputs
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, spec.n_outputs))

    @classmethod
    def from_config(cls, cfg, spec: DataSpec, width: int) -> "CNN":
        return cls(spec, width, cfg.depth, cfg.kernel_size, cfg.activation)

    def forward(self, x):
        return self.head(self.features(x))

    def flops_per_example(self) -> int:
        """sum over convs of 6 * k^2 * c_in * c_out * H * W (see harness.flops.conv2d), plus the classifier."""
        convs = sum(flops.conv2d(a, b, self.kernel, s, s) for a, b, s in self.plan)
        return convs + flops.linear(self.head_in, self.n_out)
