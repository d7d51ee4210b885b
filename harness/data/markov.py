"""`markov`: a random order-k Markov chain over `vocab_size` tokens with a known entropy rate.

Each context of k tokens has a next-token distribution drawn from Dirichlet(concentration). The entropy
rate H = sum_s pi(s) H(P(.|s)) (nats/token), with pi the stationary distribution over contexts, is the
lowest loss any model can reach: the run records it so a fitted loss floor E can be compared with it.
"""
from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig

from harness.config import fail, positive
from harness.data.base import Dataset, DataSpec

CHAIN_LENGTH, MAX_CHAINS = 1024, 4096  # chains sampled side by side, then concatenated


def entropy_rate(probs: torch.Tensor, iters: int = 500) -> float:
    """Entropy rate of an order-k chain; `probs` has shape (V,)*k + (V,), its last axis the next token."""
    k = probs.dim() - 1
    pi = torch.full(probs.shape[:-1], 1.0 / probs[..., 0].numel(), dtype=torch.float64)
    p64 = probs.double()
    for _ in range(iters):  # power iteration: pi'(s2..sk, c) = sum_s1 pi(s1..sk) P(c | s1..sk)
        pi = (pi.unsqueeze(-1) * p64).sum(0) if k > 0 else pi
    cond = -(p64 * torch.log(p64.clamp_min(1e-300))).sum(-1)
    return float((pi * cond).sum())


def sample_chain(probs: torch.Tensor, n_tokens: int, g: torch.Generator) -> torch.Tensor:
    """`n_tokens` tokens from the chain: many chains side by side (numpy, one thread), concatenated.

    Each chain starts from a uniform context and is CHAIN_LENGTH long, so start-up effects are small.
    """
    V, k = probs.shape[-1], probs.dim() - 1
    cum = probs.reshape(-1, V).cumsum(-1).numpy()
    chains = max(1, min(MAX_CHAINS, n_tokens // CHAIN_LENGTH))
    length = -(-n_tokens // chains) + k
    rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,), generator=g)))
    out = np.empty((chains, length), dtype=np.int64)
    out[:, :k] = rng.integers(0, V, (chains, k))
    u = rng.random((length, chains, 1))
    weights = V ** np.arange(k - 1, -1, -1)
    for t in range(k, length):
        ctx = out[:, t - k:t] @ weights
        out[:, t] = np.minimum((u[t] > cum[ctx]).sum(-1), V - 1)
    return torch.from_numpy(out[:, k:].reshape(-1)[:n_tokens].copy())


def build_markov(cfg: DictConfig, seed: int) -> Dataset:
    V = positive("data.vocab_size", cfg.vocab_size)
    k = positive("data.order", cfg.order)
    seq_len = positive("data.seq_len", cfg.seq_len)
    n_train = positive("data.train_tokens", cfg.train_tokens)
    n_val = positive("data.val_tokens", cfg.val_tokens)
    alpha = positive("data.concentration", cfg.concentration, integer=False)
    if V ** (k + 1) > 5e7:
        fail("data.order", k, f"vocab_size**(order+1) = {V ** (k + 1):.1e} transition entries is too large (max 5e7)")
    g = torch.Generator().manual_seed(seed)
    gamma = torch.distributions.Gamma(torch.tensor(alpha), torch.tensor(1.0))
    torch.manual_seed(seed)  # Gamma sampling uses the global generator
    probs = gamma.sample((V,) * (k + 1)).clamp_min(1e-12)
    probs /= probs.sum(-1, keepdim=True)
    stream = sample_chain(probs, n_train + n_val, g)
    train, val = stream[:n_train], stream[n_train:]
    spec = DataSpec(kind="tokens", loss="ce", n_outputs=V, seq_len=seq_len,
                    info={"entropy_rate": entropy_rate(probs), "unique_train_tokens": n_train})
    return Dataset(spec, (train, train), (val, val))
