"""Scaling-law lab harness: one Hydra config trains and measures an MLP, CNN, RNN or Transformer.

Python API: `compose(overrides) -> DictConfig`, `run(cfg) -> RunResult`, plus
`harness.models.build_model` and `harness.data.build_data`.
"""
from harness.config import ConfigError, compose

# `run` and `RunResult` import torch; load them on first use so torch-free modules (harness.hardware,
# harness.efficiency) stay light for the analysis package.


def __getattr__(name: str):
    if name in ("RunResult", "run"):
        from harness import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


__all__ = ["ConfigError", "RunResult", "compose", "run"]
