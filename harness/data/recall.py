"""`recall`: the answer is the token `lag` steps back, the test of how far back a sequence model can learn.

Each example is `lag + 1` tokens: a random token to remember, then `lag` distractors, either the blank token 0
(`distractors: blank`, the classic copy-memory setting: only memory is tested) or uniform random tokens
(`random`: the model must also ignore what it sees). Only the last position has a target, the first token (the
one `lag` steps before the last input); every other target is IGNORE, which cross-entropy skips, so the loss is
the recall loss alone: ln(vocab_size − 1) at chance (tokens to remember are 1 … vocab_size − 1), 0 when solved.
"""
from __future__ import annotations

import torch
from omegaconf import DictConfig

from harness.config import choose, fail, positive
from harness.data.base import IGNORE, Dataset, DataShape, DataSpec


class RecallDataset(Dataset):
    """Fixed sequences (N, T) with per-position targets: examples are rows, not windows of one stream."""

    def _check_sizes(self) -> None:  # rows are whole examples: no stream to cut windows from
        pass

    @property
    def n_train(self) -> float:
        return len(self.train[0])

    def take_train(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = idx.to(self.device)
        return self.train[0][idx], self.train[1][idx]

    def val_batches(self, n_examples: int, batch_size: int):
        x, y = self.val[0][:n_examples], self.val[1][:n_examples]
        for i in range(0, len(x), batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]

    def to(self, device: torch.device) -> "RecallDataset":
        moved = RecallDataset(self.spec, tuple(t.to(device) for t in self.train), tuple(t.to(device) for t in self.val))
        moved.device = device
        return moved


def recall_shape(cfg: DictConfig) -> DataShape:
    """The task's spec and training size from its config alone."""
    lag = positive("data.lag", cfg.lag)
    vocab = positive("data.vocab_size", cfg.vocab_size)
    if vocab < 3:
        fail("data.vocab_size", vocab, "needs a blank and at least 2 tokens to remember (>= 3)")
    choose("data.distractors", cfg.distractors, ["blank", "random"])
    positive("data.val_samples", cfg.val_samples)
    spec = DataSpec(kind="tokens", loss="ce", n_outputs=vocab, seq_len=lag + 1)
    return DataShape(spec, positive("data.train_samples", cfg.train_samples))


def build_recall(cfg: DictConfig, seed: int) -> Dataset:
    shape = recall_shape(cfg)
    spec, lag, vocab = shape.spec, shape.spec.seq_len - 1, shape.spec.n_outputs
    blank, n_train, n_val = cfg.distractors == "blank", int(shape.n_train), int(cfg.val_samples)
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.zeros(n, lag + 1, dtype=torch.long) if blank else torch.randint(0, vocab, (n, lag + 1), generator=g)
        x[:, 0] = torch.randint(1, vocab, (n,), generator=g)
        y = torch.full_like(x, IGNORE)
        y[:, -1] = x[:, 0]
        return x, y

    return RecallDataset(spec, make(n_train), make(n_val))
