"""The task interface shared by all built-in data."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from harness.config import fail


@dataclass
class DataSpec:
    """What a model builder needs to know about a task."""

    kind: str                          # "vector" | "image" | "tokens"
    loss: str                          # "ce" (cross-entropy, nats) | "mse"
    n_outputs: int                     # classes, vocabulary size, or 1 for regression
    input_dim: int = 0                 # vector tasks
    image_shape: tuple[int, int, int] = (0, 0, 0)  # (channels, height, width)
    seq_len: int = 0                   # token tasks
    info: dict[str, Any] = field(default_factory=dict)  # recorded in metrics (entropy_rate, corpus_sha256, ...)

    @property
    def tokens_per_example(self) -> int:
        """Tokens per example: the window length for token tasks, 1 for vector and image tasks."""
        return self.seq_len if self.kind == "tokens" else 1


class Dataset:
    """Examples (`x`, `y`) for train and validation. For token tasks `x` holds one stream per split."""

    def __init__(self, spec: DataSpec, train: tuple[torch.Tensor, torch.Tensor],
                 val: tuple[torch.Tensor, torch.Tensor]):
        self.spec, self.train, self.val = spec, train, val
        self.device = torch.device("cpu")
        self._check_sizes()

    def _check_sizes(self) -> None:
        if self.spec.kind == "tokens":
            for split, (stream, _) in (("train", self.train), ("val", self.val)):
                if len(stream) <= self.spec.seq_len + 1:
                    fail("data.seq_len", self.spec.seq_len,
                         f"longer than the {split} split ({len(stream)} tokens)")

    @property
    def n_train(self) -> int:
        """Distinct training examples (token tasks: distinct window start positions)."""
        x = self.train[0]
        return len(x) - self.spec.seq_len if self.spec.kind == "tokens" else len(x)

    def to(self, device: torch.device) -> "Dataset":
        """A copy on the training device (moved once, so batches need no host copy); self is unchanged."""
        moved = Dataset(self.spec, tuple(t.to(device) for t in self.train), tuple(t.to(device) for t in self.val))
        moved.device = device
        return moved

    def batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A random training batch drawn with `generator` (on the CPU, so seeds give identical runs)."""
        idx = torch.randint(0, self.n_train, (batch_size,), generator=generator).to(self.device)
        return self._take(self.train, idx)

    def val_batches(self, n_examples: int, batch_size: int):
        """The fixed validation examples, the first `n_examples` of the split, in batches."""
        x = self.val[0]
        total = len(x) - self.spec.seq_len if self.spec.kind == "tokens" else len(x)
        if self.spec.kind == "tokens":  # non-overlapping windows
            starts = torch.arange(0, total, self.spec.seq_len, device=self.device)
        else:
            starts = torch.arange(total, device=self.device)
        starts = starts[:n_examples]
        for i in range(0, len(starts), batch_size):
            yield self._take(self.val, starts[i:i + batch_size])

    def _take(self, split: tuple[torch.Tensor, torch.Tensor], idx: torch.Tensor):
        x, y = split
        if self.spec.kind != "tokens":
            return x[idx], y[idx]
        window = idx[:, None] + torch.arange(self.spec.seq_len + 1, device=self.device)
        tokens = x[window]
        return tokens[:, :-1], tokens[:, 1:]
