"""The config's resolvers, in one place: `register()` (called through `harness.config.register` before Hydra
composes: the `harness` command, its jobs, `compose`, the study code) makes them known to OmegaConf.

- `${isoflop_params:C,r,m}` (sweeps/forecast.yaml): a size around a FLOP budget's expected optimum;
- `${dp_batch:per_rank,world}`, `${dp_lr:lr,rule,world}` (sweeps/dp.yaml): the dp study's global batch and LR.

A bad argument raises ValueError with a one-line `key=value: why` message (harness.config.resolved keeps it).
"""
from __future__ import annotations

import math
from typing import Any

from omegaconf import OmegaConf

from harness.flops import tokens_for

LR_RULES = {"none": lambda n: 1.0, "linear": lambda n: float(n), "sqrt": lambda n: float(n) ** 0.5}


def isoflop_params(compute: float, tokens_per_param: float, multiple: float = 1.0) -> int:
    """`${isoflop_params:C,r,m}`: m times the size N with D = r N tokens at compute C = 6 N D, N = sqrt(C / 6r).

    Lets a study place its sizes around each FLOP budget's expected optimum (IsoFLOP ladders).
    """
    return max(1, round(math.sqrt(tokens_for(float(compute), float(tokens_per_param))) * float(multiple)))


def dp_batch(per_rank: Any, world: Any) -> int:
    """`${dp_batch:per_rank,world}`: the global batch of `world` ranks of `per_rank` examples each."""
    return int(per_rank) * int(world)


def dp_lr(lr: Any, rule: str, world: Any) -> float:
    """`${dp_lr:lr,rule,world}`: the LR scaled for `world` ranks by an LR rule (none, linear, sqrt)."""
    if rule not in LR_RULES:
        raise ValueError(f"dp.rule={rule}: unknown LR scaling rule (valid: {', '.join(LR_RULES)})")
    return float(lr) * LR_RULES[rule](int(world))


RESOLVERS = {"isoflop_params": isoflop_params, "dp_batch": dp_batch, "dp_lr": dp_lr}


def register() -> None:
    """Make every resolver known to OmegaConf (again: replacing is harmless)."""
    for name, resolver in RESOLVERS.items():
        OmegaConf.register_new_resolver(name, resolver, replace=True)
