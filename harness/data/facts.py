"""`facts`: key → value records with Zipf-distributed keys: a task whose scaling law and floor are known.

Each record is `key_len` key symbols then one value symbol. Keys are drawn from a Zipf law over the
K = alphabet^key_len keys, p(rank r) ∝ r^-(1 + zipf_a) (ranks assigned to keys by a random permutation, so a
key's spelling says nothing of its frequency); each key's value is a fixed random function of the key
(`task_seed` draws both: the task instance), replaced by a uniform random value with probability `noise`.
Only value tokens are scored (key targets are -100, ignored by the loss): a model must memorise the table.

Theory (Hutter 2021, "Learning curve theory"; Michaud et al. 2023, the quantization model):
  - the floor is the noise's entropy, exactly, for V values and p = 1 - ε + ε/V:
        floor = -p ln p - (V - 1)(ε/V) ln(ε/V)
  - the data exponent: a key unseen after D records costs ~ln V nats; P(unseen) falls as D^-a/(1+a), so
        L - floor ∝ D^-β,  β = a / (1 + a)
  - the parameter exponent: capacity stores the most frequent keys first, so L - floor ∝ N^-α, α ≈ a.
Exact evaluation: the true next-value law at a value position is known from the key in the input, so
`truth(x)` gives it and `val_loss` is the cross-entropy against it (no sampling noise from the drawn value).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from harness.config import fail, positive
from harness.data.base import IGNORE, Dataset, DataShape, DataSpec, token_windows


def noise_entropy(values: int, noise: float) -> float:
    """Entropy (nats) of a value that is right with probability 1 - ε + ε/V, else uniform: the task's floor."""
    p, q = 1 - noise + noise / values, noise / values
    return -p * math.log(p) - (values - 1) * (q * math.log(q) if q > 0 else 0.0)


class Facts:
    """One task instance: the Zipf law over keys, the key → value table, and record sampling."""

    def __init__(self, alphabet: int, key_len: int, values: int, zipf_a: float, noise: float, task_seed: int):
        self.alphabet, self.key_len, self.values, self.noise = alphabet, key_len, values, noise
        self.n_keys = alphabet ** key_len
        rng = np.random.default_rng([task_seed, 17])
        self.key_of_rank = rng.permutation(self.n_keys)
        self.table = rng.integers(values, size=self.n_keys)
        weights = np.arange(1, self.n_keys + 1, dtype=np.float64) ** -(1 + zipf_a)
        self.cdf = np.cumsum(weights / weights.sum())
        self.place = alphabet ** np.arange(key_len - 1, -1, -1)

    @property
    def record_len(self) -> int:
        return self.key_len + 1

    def records(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """`n` records as tokens, shape (n, key_len + 1): key symbols < alphabet, then alphabet + value."""
        ranks = np.minimum(np.searchsorted(self.cdf, rng.random(n)), self.n_keys - 1)
        keys = self.key_of_rank[ranks]
        vals = self.table[keys]
        noisy = rng.random(n) < self.noise
        vals[noisy] = rng.integers(self.values, size=int(noisy.sum()))
        return np.concatenate([(keys[:, None] // self.place) % self.alphabet, self.alphabet + vals[:, None]], axis=1)

    def windows(self, batch: int, seq_len: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch` windows of `seq_len` inputs, each starting at a record boundary (a record cut by the window's
        end is only keys, unscored); targets scored at values only."""
        per = seq_len // self.record_len + 1
        tokens = torch.from_numpy(self.records(batch * per, rng).reshape(batch, -1)[:, :seq_len + 1].copy())
        return tokens[:, :-1], targets(tokens[:, 1:], self.alphabet)

    def truth(self, x: torch.Tensor) -> torch.Tensor:
        """True next-token law (B, T, V) at every position whose last `key_len` inputs spell a key (only the
        value positions are read: the others are masked by the targets)."""
        k = self.key_len
        key = torch.zeros_like(x)
        for i in range(k):  # key at position t: x[t-k+1 .. t]
            key[:, k - 1:] += x[:, i:x.shape[1] - k + 1 + i] * int(self.place[i])
        right = torch.as_tensor(self.table, device=x.device)[key.clamp(0, self.n_keys - 1)]
        probs = torch.zeros(*x.shape, self.alphabet + self.values, device=x.device)
        probs[..., self.alphabet:] = self.noise / self.values
        probs.scatter_add_(-1, (self.alphabet + right).unsqueeze(-1),
                           torch.full((*x.shape, 1), 1 - self.noise, device=x.device))
        return probs


def targets(next_tokens: torch.Tensor, alphabet: int) -> torch.Tensor:
    """Next tokens with every key symbol replaced by IGNORE: only values are scored."""
    return torch.where(next_tokens >= alphabet, next_tokens, torch.full_like(next_tokens, IGNORE))


class FactsStream:
    """Fresh training windows for every batch: no record is ever repeated (a run's `seed` draws them)."""

    def __init__(self, facts: Facts, seq_len: int):
        self.facts, self.seq_len = facts, seq_len

    def sampler(self, seed: int, device: torch.device) -> "FactsSampler":
        return FactsSampler(self, seed, device)


class FactsSampler:
    """The position in a `FactsStream`: its numpy generator."""

    def __init__(self, stream: FactsStream, seed: int, device: torch.device):
        self.stream, self.device = stream, device
        self.rng = np.random.default_rng([seed, 2])

    def next(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.stream.facts.windows(batch_size, self.stream.seq_len, self.rng)
        return x.to(self.device), y.to(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


def facts_shape(cfg: DictConfig) -> DataShape:
    """Every key checked and the spec worked out, without drawing the task (a stream: no training split)."""
    alphabet, key_len = positive("data.alphabet", cfg.alphabet), positive("data.key_len", cfg.key_len)
    values, seq_len = positive("data.n_values", cfg.n_values), positive("data.seq_len", cfg.seq_len)
    positive("data.zipf_a", cfg.zipf_a, integer=False)
    if not 0 <= float(cfg.noise) < 1:
        fail("data.noise", cfg.noise, "must be in [0, 1): the probability that a value is replaced at random")
    if alphabet ** key_len > 2 ** 24:
        fail("data.key_len", key_len, f"alphabet**key_len = {alphabet ** key_len:.1e} keys is too many (max 2**24)")
    if cfg.train_tokens != "stream":
        fail("data.train_tokens", cfg.train_tokens, "facts streams fresh records: use `stream`")
    token_windows(positive("data.val_tokens", cfg.val_tokens), seq_len, "val")
    return DataShape(DataSpec(kind="tokens", loss="ce", n_outputs=alphabet + values, seq_len=seq_len), math.inf)


def build_facts(cfg: DictConfig, seed: int) -> Dataset:
    shape = facts_shape(cfg)
    alphabet, key_len, values, task_seed = int(cfg.alphabet), int(cfg.key_len), int(cfg.n_values), int(cfg.task_seed)
    zipf_a, noise, seq_len = float(cfg.zipf_a), float(cfg.noise), shape.spec.seq_len
    facts = Facts(alphabet, key_len, values, zipf_a, noise, task_seed)
    n_val = int(cfg.val_tokens) // seq_len
    # one validation set per task instance (not per run seed): every run of a study is scored on the same records
    vx, vy = facts.windows(n_val, seq_len, np.random.default_rng([task_seed, 1]))
    # as streams whose window at i * seq_len gives back row i (Dataset._take reads targets one token later)
    val = (torch.cat([vx.reshape(-1), vx[:1, 0]]), torch.cat([torch.tensor([IGNORE]), vy.reshape(-1)]))
    floor = noise_entropy(values, noise)
    info = {"loss_floor": floor, "entropy_rate": floor, "theory_data_exponent": zipf_a / (1 + zipf_a),
            "theory_param_exponent": zipf_a}
    spec = dataclasses.replace(shape.spec, info=info)
    empty = torch.zeros(0, dtype=torch.long)
    return Dataset(spec, (empty, empty), val, FactsStream(facts, seq_len), truth=facts.truth)
