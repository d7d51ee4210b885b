"""Recurrent language model: token embedding, a stack of RNN / LSTM / GRU layers, a linear head."""
from __future__ import annotations

from torch import nn

from harness import flops
from harness.config import choose
from harness.data import DataSpec

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RNNLM(nn.Module):
    width_key = "hidden"

    def __init__(self, spec: DataSpec, hidden: int, depth: int, cell: str = "lstm",
                 embed_dim: int | None = None, act: str = "tanh"):
        super().__init__()
        self.cell = choose("model.cell", cell, CELLS)
        self.embed_dim, self.hidden, self.depth = embed_dim or hidden, hidden, depth
        self.seq_len, self.vocab = spec.seq_len, spec.n_outputs
        self.embed = nn.Embedding(self.vocab, self.embed_dim)
        kwargs = {"nonlinearity": choose("model.activation", act, ["tanh", "relu"])} if self.cell == "rnn" else {}
        self.rnn = CELLS[self.cell](self.embed_dim, hidden, depth, batch_first=True, **kwargs)
        self.head = nn.Linear(hidden, self.vocab)

    @classmethod
    def from_config(cls, cfg, spec: DataSpec, width: int) -> "RNNLM":
        return cls(spec, width, cfg.depth, cfg.cell, cfg.embed_dim, cfg.activation)

    def forward(self, x):
        out, _ = self.rnn(self.embed(x))
        return self.head(out)

    def non_embedding_params(self) -> int:
        return sum(p.numel() for p in self.parameters()) - self.embed.weight.numel()

    def flops_per_example(self) -> int:
        """Per token: sum over layers of gates * 6 * h * (d_in + h) (harness.flops.recurrent) + 6 * h * V head.

        Times seq_len. Gate nonlinearities and the elementwise cell update are not counted.
        """
        per_token = sum(flops.recurrent(self.cell, self.embed_dim if i == 0 else self.hidden, self.hidden)
                        for i in range(self.depth))
        return (per_token + flops.linear(self.hidden, self.vocab)) * self.seq_len
