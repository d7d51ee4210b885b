"""`markov`: a random order-k Markov chain over `vocab_size` tokens with a known entropy rate.

The chain (drawn from `chain_seed`) is the task; the run's `seed` only draws its training tokens. Each
context of k tokens has a next-token distribution drawn from Dirichlet(concentration * V * q), where q is
a Zipf law over tokens (q_i ∝ (i+1)^-zipf; zipf = 0 is the symmetric Dirichlet(concentration)): frequent
tokens make frequent contexts, so a learner meets a long tail of rarer contexts as it sees more data.

The entropy rate H = sum_s pi(s) H(P(.|s)) (nats/token), pi the stationary distribution over contexts, is
the lowest loss any model can reach. A model that sees only a window of T tokens cannot use context before
the window, so its best mean loss over the window is slightly higher:
    loss_floor = (H(X_1..X_k) - H(X_1) + (T - k + 1) H) / T.
Both are recorded, so a fitted floor E and the reducible loss L - floor can be checked.

`train_tokens: stream` generates fresh training tokens for every batch (B chains continued from where the
last batch left them), so no token is ever repeated; a number fixes a training split of that many tokens.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from harness.config import fail, positive
from harness.data.base import Dataset, DataShape, DataSpec, token_windows

CHAIN_LENGTH, MAX_CHAINS = 1024, 4096  # chains sampled side by side, then concatenated


def stationary(probs: torch.Tensor, iters: int = 500) -> torch.Tensor:
    """Stationary distribution over contexts (shape (V,)*k) of an order-k chain, by power iteration."""
    pi = torch.full(probs.shape[:-1], 1.0 / probs[..., 0].numel(), dtype=torch.float64)
    p64 = probs.double()
    for _ in range(iters):  # pi'(s2..sk, c) = sum_s1 pi(s1..sk) P(c | s1..sk)
        pi = (pi.unsqueeze(-1) * p64).sum(0)
    return pi


def _entropy(p: torch.Tensor, dim=None) -> torch.Tensor:
    terms = -(p * torch.log(p.clamp_min(1e-300)))
    return terms.sum() if dim is None else terms.sum(dim)


def entropy_rate(probs: torch.Tensor) -> float:
    """Entropy rate of an order-k chain; `probs` has shape (V,)*k + (V,), its last axis the next token."""
    return float((stationary(probs) * _entropy(probs.double(), -1)).sum())


def window_floor(probs: torch.Tensor, seq_len: int) -> float:
    """Best mean next-token loss over a window of `seq_len` predictions, given only the window's tokens."""
    k = probs.dim() - 1
    pi = stationary(probs)
    first = pi.sum(tuple(range(1, k))) if k > 1 else pi
    head = float(_entropy(pi) - _entropy(first))  # H(X_2..X_k | X_1): the first k-1 predictions
    return (head + (seq_len - k + 1) * entropy_rate(probs)) / seq_len


class _Chain:
    """Draws tokens from the chain for many chains side by side (numpy, one thread)."""

    def __init__(self, probs: torch.Tensor):
        self.V, self.k = probs.shape[-1], probs.dim() - 1
        self.cum = probs.reshape(-1, self.V).cumsum(-1).numpy()
        self.ctx_cum = stationary(probs).reshape(-1).cumsum(0).numpy()
        self.weights = self.V ** np.arange(self.k - 1, -1, -1)

    def starts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """`n` contexts drawn from the stationary distribution (no burn-in needed)."""
        flat = np.minimum(np.searchsorted(self.ctx_cum, rng.random(n) * self.ctx_cum[-1]), len(self.ctx_cum) - 1)
        return np.stack([(flat // w) % self.V for w in self.weights], axis=1)

    def extend(self, ctx: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
        """`length` more tokens after the (chains, k) contexts `ctx`: (chains, k + length)."""
        out = np.empty((len(ctx), self.k + length), dtype=np.int64)
        out[:, :self.k] = ctx
        u = rng.random((length, len(ctx), 1))
        for t in range(self.k, self.k + length):
            c = out[:, t - self.k:t] @ self.weights
            out[:, t] = np.minimum((u[t - self.k] > self.cum[c]).sum(-1), self.V - 1)
        return out


def sample_chain(chain: _Chain, n_tokens: int, rng: np.random.Generator) -> torch.Tensor:
    """`n_tokens` tokens: up to MAX_CHAINS chains of about CHAIN_LENGTH tokens, concatenated."""
    chains = max(1, min(MAX_CHAINS, n_tokens // CHAIN_LENGTH))
    out = chain.extend(chain.starts(chains, rng), -(-n_tokens // chains), rng)
    return torch.from_numpy(out[:, chain.k:].reshape(-1)[:n_tokens].copy())


class MarkovStream:
    """Fresh training windows: row i of every batch continues chain i, so each token is read once."""

    def __init__(self, chain: _Chain, seq_len: int):
        self.chain, self.seq_len = chain, seq_len

    def sampler(self, seed: int, device: torch.device) -> "StreamSampler":
        return StreamSampler(self, seed, device)


class StreamSampler:
    """The position in a `MarkovStream`: the numpy generator and the current context of each chain."""

    def __init__(self, stream: MarkovStream, seed: int, device: torch.device):
        self.stream, self.device = stream, device
        self.rng = np.random.default_rng(seed)
        self.ctx = np.empty((0, stream.chain.k), dtype=np.int64)

    def next(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        chain = self.stream.chain
        if len(self.ctx) < batch_size:
            self.ctx = np.concatenate([self.ctx, chain.starts(batch_size - len(self.ctx), self.rng)])
        out = chain.extend(self.ctx[:batch_size], self.stream.seq_len + 1, self.rng)
        self.ctx[:batch_size] = out[:, -chain.k:]
        tokens = torch.from_numpy(out[:, chain.k:]).to(self.device)
        return tokens[:, :-1], tokens[:, 1:]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "ctx": self.ctx.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.ctx = np.array(state["ctx"], dtype=np.int64)


def transition_probs(V: int, k: int, alpha: float, zipf: float, chain_seed: int) -> torch.Tensor:
    """Next-token distributions, shape (V,)*k + (V,), each drawn from Dirichlet(alpha * V * q)."""
    q = torch.arange(1, V + 1, dtype=torch.float64) ** -zipf
    conc = (alpha * V * q / q.sum()).float()
    torch.manual_seed(chain_seed)  # Gamma sampling uses the global generator
    probs = torch.distributions.Gamma(conc, torch.ones(V)).sample((V,) * k).clamp_min(1e-12)
    return probs / probs.sum(-1, keepdim=True)


def markov_shape(cfg: DictConfig) -> DataShape:
    """Every key checked and the spec and training size worked out, without drawing the chain."""
    V = positive("data.vocab_size", cfg.vocab_size)
    k = positive("data.order", cfg.order)
    seq_len = positive("data.seq_len", cfg.seq_len)
    streaming = cfg.train_tokens == "stream"
    n_train = 0 if streaming else positive("data.train_tokens", cfg.train_tokens)
    token_windows(positive("data.val_tokens", cfg.val_tokens), seq_len, "val")
    positive("data.concentration", cfg.concentration, integer=False)
    if not float(cfg.get("zipf", 0.0)) >= 0:
        fail("data.zipf", cfg.zipf, "must be >= 0 (0 = no Zipf skew)")
    if V ** (k + 1) > 5e7:
        fail("data.order", k, f"vocab_size**(order+1) = {V ** (k + 1):.1e} transition entries is too large (max 5e7)")
    spec = DataSpec(kind="tokens", loss="ce", n_outputs=V, seq_len=seq_len)
    return DataShape(spec, math.inf if streaming else token_windows(n_train, seq_len, "train"))


def build_markov(cfg: DictConfig, seed: int) -> Dataset:
    shape = markov_shape(cfg)
    V, k, seq_len = shape.spec.n_outputs, int(cfg.order), shape.spec.seq_len
    streaming = math.isinf(shape.n_train)
    n_train, n_val, chain_seed = (0 if streaming else int(cfg.train_tokens)), int(cfg.val_tokens), int(cfg.chain_seed)
    probs = transition_probs(V, k, float(cfg.concentration), float(cfg.get("zipf", 0.0)), chain_seed)
    chain = _Chain(probs)
    val = sample_chain(chain, n_val, np.random.default_rng([chain_seed, 1]))  # one validation set per chain
    train = torch.zeros(0, dtype=torch.long) if streaming else sample_chain(chain, n_train, np.random.default_rng([seed, 2]))
    info = {"entropy_rate": entropy_rate(probs), "loss_floor": window_floor(probs, seq_len)}
    spec = dataclasses.replace(shape.spec, info=info)
    # order 1: every position's whole context is in the window, so its true next-token law is probs[token]
    truth = (lambda x: probs.to(x.device)[x]) if k == 1 else None
    return Dataset(spec, (train, train), (val, val), MarkovStream(chain, seq_len) if streaming else None, truth)
