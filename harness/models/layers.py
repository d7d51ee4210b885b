"""Pieces shared by the models: the activation registry and parameter counting."""
from __future__ import annotations

from torch import nn

from harness.config import choose

ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


def activation(name: str, key: str = "model.activation") -> nn.Module:
    """The activation module called `name`; unknown names are a ConfigError listing the valid ones."""
    return ACTIVATIONS[choose(key, name, ACTIVATIONS)]()


def count_params(module: nn.Module) -> int:
    """Trainable parameters, each shared tensor counted once."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
