"""Models registered by name, and the size search behind `model.target_params`.

Every model class takes (config, data spec, width) in `from_config`, names its width knob in `width_key`,
and reports `flops_per_example()` (training FLOPs, forward + backward; see harness.flops).
"""
from __future__ import annotations

import json

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from harness.config import choose, fail, positive
from harness.data import DataSpec
from harness.models.cnn import CNN
from harness.models.layers import count_params
from harness.models.mlp import MLP
from harness.models.rnn import RNNLM
from harness.models.transformer import Transformer

MODELS: dict[str, type[nn.Module]] = {"mlp": MLP, "cnn": CNN, "rnn": RNNLM, "transformer": Transformer}
DATA_KINDS = {"mlp": ("vector", "image"), "cnn": ("image",), "rnn": ("tokens",), "transformer": ("tokens",)}
TARGET_TOLERANCE = 0.05
MAX_WIDTH = 1 << 16
_COUNTS: dict[tuple, int] = {}  # (class, model config, task shape, width, knobs) -> parameters


def build_model(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """Build the model named by `cfg.name` for the task `spec`, sized by `cfg.target_params` if set."""
    name = choose("model.name", cfg.name, MODELS)
    if spec.kind not in DATA_KINDS[name]:
        fail("model", name, f"cannot train on {spec.kind} data; it takes {'/'.join(DATA_KINDS[name])} tasks")
    cls = MODELS[name]
    if cfg.get("target_params") is None:
        return cls.from_config(cfg, spec, positive(f"model.{cls.width_key}", cfg[cls.width_key]))
    # Sizing is a search over one width knob; the other knobs (depth, heads, ...) stay as configured.
    target = positive("model.target_params", cfg.target_params)
    return _fit_width(cls, cfg, spec, target)


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(total, non-embedding) trainable parameters."""
    total = count_params(model)
    non_emb = model.non_embedding_params() if hasattr(model, "non_embedding_params") else total
    return total, non_emb


def _counter(cls, cfg: DictConfig, spec: DataSpec):
    """count(width, **knobs): parameters at `width`, memoised: a study's jobs repeat the same searches (and
    `harness-plan` checks each job twice: when it expands the study and when it estimates the run) and sizes
    of one model share their counts. The config is serialised once per search, without `target_params`, which no
    model reads."""
    knobs = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "target_params"}
    shape = (cls, json.dumps(knobs, sort_keys=True),
             (spec.kind, spec.n_outputs, spec.input_dim, spec.image_shape, spec.seq_len))

    def count(width: int, **kw) -> int:
        key = (*shape, width, tuple(sorted(kw.items())))
        if key not in _COUNTS:
            with torch.device("meta"):  # no memory: just the shapes
                _COUNTS[key] = count_params(cls.from_config(cfg, spec, width, **kw))
        return _COUNTS[key]

    return count


def _fit_width(cls, cfg: DictConfig, spec: DataSpec, target: int) -> nn.Module:
    """Largest width whose count is <= target (bisection; counts grow with width), then the closer neighbour.

    Transformers move in steps of n_heads, so the MLP width d_ff is then tuned unit by unit to land on target.
    """
    step = positive("model.n_heads", cfg.n_heads) if cls is Transformer else getattr(cls, "width_step", 1)
    lo, hi = 1, int(MAX_WIDTH // step)
    count = _counter(cls, cfg, spec)
    smallest, largest = count(step), None
    if smallest > target * (1 + TARGET_TOLERANCE):
        fail("model.target_params", target, f"unreachable for model={cfg.name} at this depth and task: "
             f"the smallest width gives {smallest:,} parameters")
    while lo < hi:  # invariant: count(lo * step) <= target or lo == 1
        mid = (lo + hi + 1) // 2
        if count(mid * step) <= target:
            lo = mid
        else:
            hi = mid - 1
    candidates = [lo * step, min(lo + 1, int(MAX_WIDTH // step)) * step]
    width = min(candidates, key=lambda w: abs(count(w) - target))
    extra = {}
    if cls is Transformer:
        width = lo * step
        base = count(width, d_ff=1)
        per_unit = count(width, d_ff=2) - base
        extra["d_ff"] = max(1, round((target - base) / per_unit) + 1)
    model = cls.from_config(cfg, spec, width, **extra)
    got = count_params(model)
    if abs(got - target) > TARGET_TOLERANCE * target:
        largest = count(MAX_WIDTH)
        fail("model.target_params", target, f"unreachable for model={cfg.name}: closest count is {got:,} "
             f"(range {smallest:,} to {largest:,})")
    return model
