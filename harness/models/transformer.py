"""Decoder-only Transformer in the GPT-2 / nanoGPT mould: learned positions, pre-LayerNorm blocks with
residuals, multi-head causal attention, a GELU (or chosen activation) MLP, tied input/output embeddings.

`attention="sdpa"` calls torch's fused scaled_dot_product_attention; `attention="manual"` builds the
(batch, heads, T, T) score matrix explicitly, so its O(T^2) memory shows up in the measurements.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from harness import flops
from harness.config import choose, fail, positive
from harness.data import DataSpec
from harness.models.layers import activation

ATTENTION = ("sdpa", "manual")


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, impl: str, dropout: float = 0.0):
        super().__init__()
        self.n_heads, self.impl, self.dropout = n_heads, impl, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, C // self.n_heads).permute(2, 0, 3, 1, 4)
        if self.impl == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.dropout if self.training else 0.0)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))          # (B, H, T, T)
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            att = F.dropout(scores.masked_fill(mask, float("-inf")).softmax(-1), self.dropout, self.training)
            y = att @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, act: str, impl: str, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, impl, dropout)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), activation(act), nn.Linear(d_ff, d_model), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    width_key = "d_model"

    def __init__(self, spec: DataSpec, d_model: int, n_layers: int, n_heads: int, d_ff: int,
                 act: str = "gelu", attention: str = "sdpa", dropout: float = 0.0):
        super().__init__()
        choose("model.attention", attention, ATTENTION)
        if not 0 <= dropout < 1:
            fail("model.dropout", dropout, "must be in [0, 1)")
        n_heads, n_layers = positive("model.n_heads", n_heads), positive("model.n_layers", n_layers)
        if d_model % n_heads:
            fail("model.d_model", d_model, f"must be divisible by model.n_heads={n_heads}")
        self.d_model, self.n_layers, self.n_heads, self.d_ff = d_model, n_layers, n_heads, d_ff
        self.seq_len, self.vocab = spec.seq_len, spec.n_outputs
        self.tok = nn.Embedding(self.vocab, d_model)
        self.pos = nn.Embedding(self.seq_len, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff, act, attention, dropout) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, self.vocab, bias=False)
        self.head.weight = self.tok.weight  # tied: the output layer reuses the token embedding
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)) and m.weight.is_meta:
            return  # shapes only (sizing, planning): nothing to initialise
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    @classmethod
    def from_config(cls, cfg, spec: DataSpec, width: int, d_ff: int | None = None) -> "Transformer":
        return cls(spec, width, cfg.n_layers, cfg.n_heads, d_ff or int(cfg.mlp_ratio * width),
                   cfg.activation, cfg.attention, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(x.size(1), device=x.device)
        h = self.drop(self.tok(x) + self.pos(pos))
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_f(h))

    def non_embedding_params(self) -> int:
        """Kaplan's N: all parameters but the token and position embeddings (the tied head is the token table)."""
        return sum(p.numel() for p in self.parameters()) - self.tok.weight.numel() - self.pos.weight.numel()

    def attention_flops_per_example(self) -> int:
        """n_layers * 12 * T * d per token (harness.flops.attention_scores), times T tokens."""
        return self.n_layers * flops.attention_scores(self.seq_len, self.d_model) * self.seq_len

    def flops_per_example(self) -> int:
        """Per token: n_layers * (6 * block weights + 12 * T * d) + 6 * d * V for the output head; times T.

        Equals nanoGPT's 6N + 12 L H Q T with N the parameters that take part in matmuls.
        """
        dense, attn = flops.transformer_block(self.d_model, self.d_ff, self.seq_len)
        return (self.n_layers * (dense + attn) + flops.linear(self.d_model, self.vocab)) * self.seq_len
