"""The one training-memory model (torch-free): bytes of weights, gradients, optimizer state and activations.

Used by `harness-plan` (this lab's runs) and `harness-cost` (a planned large run), so both count alike:

- per parameter, as the ZeRO paper (Rajbhandari et al. 2019) counts them: weights and gradients in the
  storage precision; the optimizer keeps its moments in fp32 (Adam/AdamW 2, SGD with momentum 1), plus an
  fp32 master copy of the weights when they are stored in 16 bits (mixed precision: Adam 2 + 2 + 12 bytes).
  This lab's runs store fp32 weights (bf16 is autocast only), so they count 4 + 4 + 8 (AdamW) or 4 + 4 + 4;
- `sharding` divides state over the GPUs: optimizer (ZeRO-1), gradients (ZeRO-2), full (ZeRO-3 / FSDP);
- a large Transformer's activations: 34·s·b·h bytes per layer at 16 bits (Korthikanti et al. 2022, attention
  scores not stored, as with SDPA / flash attention), twice that in fp32; with checkpointing each layer keeps
  only its 16-bit input (2·s·b·h) and one layer's activations live during recomputation.
  (`harness-plan` counts its own models' activations on the meta device instead.)

Memory is in bytes; printed in GiB (2^30), the unit allocators and `nvidia-smi` use. GB (10^9) appears only
where a vendor or paper states it (`harness.hardware`'s H200 141 GB, the ZeRO paper's figures).
"""
from __future__ import annotations

import math

from harness.hardware import GIB

PRECISIONS = ("bf16", "fp16", "fp32")
OPTIMIZERS = ("adam", "adamw", "sgd")
WEIGHT_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
MOMENTS = {"adam": 2, "adamw": 2, "sgd": 1}  # fp32 tensors of parameter size the optimizer keeps
SHARDING = ("none", "optimizer", "gradients", "full")
SHARDED = {"none": (), "optimizer": ("optimizer",), "gradients": ("optimizer", "gradients"),
           "full": ("optimizer", "gradients", "weights")}  # ZeRO stages 1, 2, 3 (FSDP full sharding)
ASPECT = 128  # d_model per layer when the shape is not given (Llama-7B 4096/32, GPT-3 12288/96)


def optimizer_bytes(optimizer: str, precision: str) -> int:
    """Optimizer-state bytes per parameter: 4 per fp32 moment, + 4 for the fp32 master copy of 16-bit weights."""
    return 4 * MOMENTS[optimizer] + (0 if precision == "fp32" else 4)


def state_bytes(params: float, optimizer: str, precision: str = "fp32", gpus: int = 1,
                sharding: str = "none") -> dict[str, float]:
    """Bytes of weights, gradients and optimizer state one GPU holds for ``params`` parameters stored in
    ``precision``, with ``sharding`` over ``gpus`` (none | optimizer | gradients | full)."""
    state = {"weights": WEIGHT_BYTES[precision] * params, "gradients": WEIGHT_BYTES[precision] * params,
             "optimizer": optimizer_bytes(optimizer, precision) * params}
    for part in SHARDED[sharding]:
        state[part] /= gpus
    return state


def model_shape(params: float, layers: int | None = None, d_model: int | None = None) -> tuple[int, int]:
    """(layers, d_model) with params ≈ 12·layers·d_model², filling in what is not given (d_model = 128·layers)."""
    if layers and d_model:
        return int(layers), int(d_model)
    if layers:
        return int(layers), max(1, round(math.sqrt(params / (12 * layers))))
    if d_model:
        return max(1, round(params / (12 * d_model ** 2))), int(d_model)
    L = max(1, round((params / (12 * ASPECT ** 2)) ** (1 / 3)))
    return L, max(1, round(math.sqrt(params / (12 * L))))


def transformer_activation_bytes(params: float, precision: str = "bf16", seq_len: int = 2048, micro_batch: int = 1,
                                 layers: int | None = None, d_model: int | None = None,
                                 checkpointing: bool = False) -> float:
    """Activations of ``micro_batch`` sequences of ``seq_len`` tokens: L·34·s·b·h (×2 in fp32), or with
    checkpointing L·2·s·b·h + one layer's 34·s·b·h (Korthikanti et al. 2022)."""
    L, h = model_shape(params, layers, d_model)
    sbh = seq_len * micro_batch * h
    per_layer = 34 * sbh * (2 if precision == "fp32" else 1)
    return L * 2 * sbh + per_layer if checkpointing else L * per_layer


def memory_per_gpu(params: float, gpus: int = 1, precision: str = "bf16", optimizer: str = "adam",
                   sharding: str = "none", seq_len: int = 2048, micro_batch: int = 1, layers: int | None = None,
                   d_model: int | None = None, checkpointing: bool = False,
                   activations: bool = True) -> dict[str, float]:
    """Bytes one GPU holds training a Transformer: weights, gradients, optimizer, activations and their total.

    Activations are per GPU for ``micro_batch`` sequences of ``seq_len`` tokens (not sharded)."""
    state = state_bytes(params, optimizer, precision, gpus, sharding)
    act = transformer_activation_bytes(params, precision, seq_len, micro_batch, layers, d_model,
                                       checkpointing) if activations else 0.0
    return {**state, "activations": act, "total": sum(state.values()) + act}


def min_gpus(params: float, capacity: float, **memory) -> int | None:
    """Fewest GPUs whose ``capacity`` bytes each hold the run (``memory``: `memory_per_gpu`'s keywords);
    None when no count does (what sharding leaves undivided does not fit)."""
    one = memory_per_gpu(params, gpus=1, **memory)
    divided = sum(one[part] for part in SHARDED[memory.get("sharding", "none")])
    fixed = one["total"] - divided
    if one["total"] <= capacity:
        return 1
    if fixed >= capacity or not divided:
        return None
    return max(1, math.ceil(divided / (capacity - fixed)))


def format_bytes(b: float | None) -> str:
    """Bytes as GiB (MiB below 0.1 GiB); '—' when unknown."""
    if b is None or not math.isfinite(b):
        return "—"
    return f"{b / GIB:,.1f} GiB" if b >= GIB / 10 else f"{b / 2 ** 20:,.1f} MiB"
