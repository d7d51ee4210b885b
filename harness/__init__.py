"""Scaling-law lab harness: one Hydra config trains and measures an MLP, CNN, RNN or Transformer.

Python API: `compose(overrides) -> DictConfig`, `run(cfg) -> RunResult`, plus
`harness.models.build_model` and `harness.data.build_data`.
"""
from harness.config import ConfigError, compose
from harness.runner import RunResult, run

__all__ = ["ConfigError", "RunResult", "compose", "run"]
