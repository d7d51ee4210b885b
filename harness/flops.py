"""Analytic training FLOPs (forward + backward) per example, one formula per block.

Convention (Kaplan et al. 2020; nanoGPT's estimate_mfu): a matmul of an (m x k) by (k x n) matrix costs
2mkn FLOPs forward and twice that backward (grad of input and grad of weight), so a weight matrix of P
entries applied to one vector costs 6P training FLOPs. Elementwise ops, norms, softmax and pooling are not
counted; neither are they by torch.utils.flop_counter.FlopCounterMode, which the tests compare against.
"""
from __future__ import annotations

FWD_BWD = 3  # backward costs two forwards


def linear(d_in: int, d_out: int) -> int:
    """One dense layer on one vector: 6 * d_in * d_out."""
    return 2 * FWD_BWD * d_in * d_out


def conv2d(c_in: int, c_out: int, kernel: int, h_out: int, w_out: int) -> int:
    """A k x k convolution: 6 * k^2 * c_in * c_out per output pixel."""
    return linear(kernel * kernel * c_in, c_out) * h_out * w_out


def recurrent(cell: str, d_in: int, hidden: int) -> int:
    """One time step of an RNN layer: gates x 6 * hidden * (d_in + hidden); gates = 1 rnn, 3 gru, 4 lstm."""
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    return gates * linear(d_in + hidden, hidden)


def attention_scores(seq_len: int, d_model: int) -> int:
    """Attention's own matmuls per token and layer: QK^T and A.V, 2 * 2 * T * d forward, 12 * T * d in all.

    This is nanoGPT's and torchtitan's 12*L*H*Q*T term (no discount for the causal mask), twice
    Kaplan et al.'s 2*n_ctx*d_attn forward count, which halves for causality.
    """
    return 2 * FWD_BWD * 2 * seq_len * d_model


def transformer_block(d_model: int, d_ff: int, seq_len: int) -> tuple[int, int]:
    """One decoder block per token: (dense FLOPs of QKV, output and MLP weights, attention-score FLOPs)."""
    dense = linear(d_model, 3 * d_model) + linear(d_model, d_model) + linear(d_model, d_ff) + linear(d_ff, d_model)
    return dense, attention_scores(seq_len, d_model)


def training_flops(params, tokens):
    """C = 6·N·D: the scaling-law compute of training N parameters on D tokens (Kaplan et al. 2020;
    Hoffmann et al. 2022), i.e. `linear`'s 6 FLOPs per weight per token, attention and elementwise ops
    left out. Works on numbers, numpy arrays and pandas columns alike."""
    return 2 * FWD_BWD * params * tokens


def tokens_for(compute, params):
    """D = C / (6·N): the tokens that spend `compute` on `params` parameters (inverse of `training_flops`)."""
    return compute / training_flops(params, 1)
