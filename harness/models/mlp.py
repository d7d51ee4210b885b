"""Multi-layer perceptron: `depth` hidden layers of `width` units. Image inputs are flattened."""
from __future__ import annotations

import math

from torch import nn

from harness import flops
from harness.data import DataSpec
from harness.models.layers import activation


class MLP(nn.Module):
    width_key = "width"

    def __init__(self, spec: DataSpec, width: int, depth: int, act: str = "relu"):
        super().__init__()
        d_in = spec.input_dim or math.prod(spec.image_shape)
        self.dims = [d_in] + [width] * depth + [spec.n_outputs]
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(self.dims[:-1], self.dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < depth:
                layers.append(activation(act))
        self.net = nn.Sequential(*layers)

    @classmethod
    def from_config(cls, cfg, spec: DataSpec, width: int) -> "MLP":
        return cls(spec, width, cfg.depth, cfg.activation)

    def forward(self, x):
        return self.net(x)

    def flops_per_example(self) -> int:
        """sum over layers of 6 * d_in * d_out (see harness.flops.linear)."""
        return sum(flops.linear(a, b) for a, b in zip(self.dims[:-1], self.dims[1:]))
