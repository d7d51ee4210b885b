"""The task interface shared by all built-in data: a `Dataset` and the `Sampler` that reads it in order.

Training reads without replacement: each epoch is a fresh seeded permutation of the examples (token tasks:
of the non-overlapping next-token windows of the stream), so `epochs` = tokens seen / unique tokens says
exactly how often a token was repeated. A task may instead stream fresh examples (`markov` with
`train_tokens: stream`): then no token is ever repeated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch

from harness.config import fail

IGNORE = -100  # a target that is not scored (F.cross_entropy's ignore_index)


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


@dataclass
class DataShape:
    """What a task's config implies without making its data: the spec and the training split's size, for
    `harness-plan` and up-front checks (same `n_train` and `unique_train_tokens` as the built `Dataset`)."""

    spec: DataSpec
    n_train: float                     # distinct training examples (token tasks: windows); inf for a stream

    @property
    def unique_train_tokens(self) -> float:
        """Tokens (vector/image tasks: examples) a run can read before one repeats; inf for a stream."""
        return self.n_train * self.spec.tokens_per_example


def token_windows(n_tokens: int, seq_len: int, split: str) -> int:
    """Non-overlapping next-token windows in a stream of `n_tokens`; a stream too short for one window fails
    naming data.seq_len (the rule `Dataset` applies to its splits)."""
    if n_tokens <= seq_len + 1:
        fail("data.seq_len", seq_len, f"longer than the {split} split ({n_tokens} tokens)")
    return (n_tokens - 1) // seq_len


class Sampler(Protocol):
    """Yields training batches in a fixed order; its state is the data position a checkpoint saves."""

    def next(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class StreamSource(Protocol):
    """A task that generates fresh training examples instead of holding a fixed training split."""

    def sampler(self, seed: int, device: torch.device) -> Sampler: ...


class Dataset:
    """Examples (`x`, `y`) for train and validation. For token tasks `x` holds one stream per split and `y`
    the targets' stream (the same stream, or a copy with unscored positions set to -100).

    With a `stream` the training split is generated on demand (never repeated) and `train` is empty.
    """

    def __init__(self, spec: DataSpec, train: tuple[torch.Tensor, torch.Tensor],
                 val: tuple[torch.Tensor, torch.Tensor], stream: StreamSource | None = None,
                 truth: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 val_shifted: tuple[torch.Tensor, torch.Tensor] | None = None):
        self.spec, self.train, self.val, self.stream = spec, train, val, stream
        self.truth = truth  # inputs (B, T) -> the source's true next-token law (B, T, V), where it is known
        self.val_shifted = val_shifted  # images with data.eval_shift: the validation images moved that far
        self.device = torch.device("cpu")
        self._check_sizes()

    def _check_sizes(self) -> None:
        if self.spec.kind == "tokens":
            splits = (("val", self.val),) if self.stream else (("train", self.train), ("val", self.val))
            for split, (stream, _) in splits:
                token_windows(len(stream), self.spec.seq_len, split)

    @property
    def n_train(self) -> float:
        """Distinct training examples (token tasks: non-overlapping windows); inf for a stream."""
        if self.stream is not None:
            return math.inf
        x = self.train[0]
        return token_windows(len(x), self.spec.seq_len, "train") if self.spec.kind == "tokens" else len(x)

    @property
    def unique_train_tokens(self) -> float:
        """Tokens (vector/image tasks: examples) a run can read before one repeats; inf for a stream."""
        return self.n_train * self.spec.tokens_per_example

    def to(self, device: torch.device) -> "Dataset":
        """A copy on the training device (moved once, so batches need no host copy); self is unchanged."""
        shifted = tuple(t.to(device) for t in self.val_shifted) if self.val_shifted is not None else None
        moved = Dataset(self.spec, tuple(t.to(device) for t in self.train), tuple(t.to(device) for t in self.val),
                        self.stream, self.truth, shifted)
        moved.device = device
        return moved

    def shifted(self) -> "Dataset | None":
        """The task with `val_shifted` as its validation split (what val_accuracy_shifted is measured on), or None
        where the task has no shifted split."""
        if self.val_shifted is None:
            return None
        view = Dataset(self.spec, self.train, self.val_shifted)
        view.device = self.device
        return view

    def sampler(self, seed: int) -> Sampler:
        """The training batches of a run with this `seed`: same seed, same batches."""
        if self.stream is not None:
            return self.stream.sampler(seed, self.device)
        return EpochSampler(self, seed)

    def take_train(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training examples `idx` (token tasks: window numbers)."""
        if self.spec.kind == "tokens":
            idx = idx * self.spec.seq_len
        return self._take(self.train, idx.to(self.device))

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
        return x[window][:, :-1], y[window][:, 1:]  # y: the same stream, or one with unscored targets masked


class EpochSampler:
    """Examples without replacement: a fresh seeded permutation per epoch (the generator stays on the CPU)."""

    def __init__(self, data: Dataset, seed: int):
        self.data, self.n = data, int(data.n_train)
        self.gen = torch.Generator().manual_seed(seed)
        self.perm, self.pos = torch.randperm(self.n, generator=self.gen), 0

    def next(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        parts, need = [], batch_size
        while need:
            if self.pos == self.n:
                self.perm, self.pos = torch.randperm(self.n, generator=self.gen), 0
            take = self.perm[self.pos:self.pos + need]
            self.pos += len(take)
            need -= len(take)
            parts.append(take)
        return self.data.take_train(parts[0] if len(parts) == 1 else torch.cat(parts))

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
        self.perm, self.pos = state["perm"].clone(), int(state["pos"])
