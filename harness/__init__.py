"""Scaling-law lab harness: one Hydra config trains and measures an MLP, CNN, RNN or Transformer.

Python API: `compose(overrides) -> DictConfig`, `run(cfg) -> RunResult`, plus
`harness.models.build_model` and `harness.data.build_data`. Names load lazily, so importing a light
module (e.g. `harness.results` from `analysis`) does not import torch and the whole harness.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.config import ConfigError, compose
    from harness.runner import RunResult, run

__all__ = ["ConfigError", "RunResult", "compose", "run"]
_HOME = {"ConfigError": "harness.config", "compose": "harness.config", "RunResult": "harness.runner", "run": "harness.runner"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(_HOME[name]), name)
