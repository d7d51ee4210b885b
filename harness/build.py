"""Config -> (data, model, steps), without training: shared by a run, a study's up-front validation and
`harness-plan`. Datasets are cached per data config, so a study's jobs build each task once per process;
`harness-plan` asks for the data's shape only (`shape_only`), so it never makes data."""
from __future__ import annotations

import functools
import json
import math
from typing import Any

import psutil
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from harness.analyses import ANALYSIS_NAMES
from harness.config import choose, fail, positive
from harness.data import DataShape, Dataset, build_data, data_identity, data_shape
from harness.flops import training_flops
from harness.models import build_model
from harness.models.layers import count_params
from harness.train import budget_steps, check_step_cap, check_training


MAX_SEED = 2 ** 32 - 1  # torch's CPU generator keeps a seed's low 32 bits: 2^32 would repeat seed 0


@functools.lru_cache(maxsize=4)  # a study re-uses few datasets; each can be tens of MB
def _data(data_json: str, seed: int, content: str | None) -> Dataset:  # content: a changed corpus is rebuilt
    return build_data(OmegaConf.create(json.loads(data_json)), seed)


def check_config(cfg: DictConfig, materialize: bool = False,
                 shape_only: bool = False) -> tuple[Dataset | DataShape, torch.nn.Module, int]:
    """Build data and the model (on the meta device unless `materialize`), and turn the budget into steps.

    Returns (data, model, steps); raises ConfigError for any bad key or value. `shape_only`: the data's
    spec and size from its config (`harness.data.data_shape`) instead of the data itself.
    """
    choose("device", cfg.device, ["auto", "cpu", "cuda", "mps"])
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not 0 <= cfg.seed <= MAX_SEED:
        fail("seed", cfg.seed, f"must be a whole number in [0, {MAX_SEED}]")
    if cfg.threads != "auto":
        positive("threads", cfg.threads)
    positive("peak_flops_per_s", cfg.peak_flops_per_s, allow_none=True, integer=False)
    check_analyses(cfg.get("analyses"))
    if shape_only:
        data = data_shape(cfg.data, int(cfg.seed))
    else:
        data = _data(json.dumps(OmegaConf.to_container(cfg.data, resolve=True), sort_keys=True), int(cfg.seed),
                     data_identity(cfg.data))
    with torch.device("meta"):  # shapes only: check the weights fit before allocating them
        model = build_model(cfg.model, data.spec)
    weights = count_params(model) * 4
    if weights > psutil.virtual_memory().total:
        key = "model.target_params" if cfg.model.get("target_params") is not None else "model"
        fail(key, cfg.model.get("target_params") or cfg.model.name, f"{count_params(model):.3g} parameters need "
             f"{weights / 2 ** 30:.3g} GiB for fp32 weights alone, more than this machine's memory")
    if materialize:
        torch.manual_seed(cfg.seed)  # after the data: same seed, same initial weights
        with torch.device("cpu"):
            model = build_model(cfg.model, data.spec)
    batch = positive("trainer.batch_size", cfg.trainer.batch_size)
    if batch > data.n_train:
        fail("trainer.batch_size", batch, f"larger than the training set ({data.n_train} examples)")
    check_training(cfg)
    convention = choose("trainer.flops_per_token", cfg.trainer.flops_per_token, ["analytic", "6N"])
    tpe = data.spec.tokens_per_example
    budget_flops = training_flops(count_params(model), tpe) if convention == "6N" else model.flops_per_example()
    steps = check_step_cap(cfg.trainer, budget_steps(cfg.trainer, batch, tpe, budget_flops, data.unique_train_tokens))
    if cfg.trainer.fresh_data and epochs(steps * batch * tpe, data) > 1:
        fail("data.train_tokens", data.unique_train_tokens, f"the run reads {steps * batch * tpe:,} tokens, "
             f"{epochs(steps * batch * tpe, data):.2f} epochs, but trainer.fresh_data=true forbids repeats: "
             "raise data.train_tokens (markov: `stream`) or lower the budget")
    return data, model, steps


def check_analyses(names: Any) -> None:
    """A study's report sections (`analyses`) must exist: a typo fails at study start, not after the runs."""
    if not names:
        return
    if not isinstance(names, (ListConfig, list)):
        fail("analyses", names, "must be a list of analysis names", ANALYSIS_NAMES)
    for name in names:
        choose("analyses", name, ANALYSIS_NAMES)


def epochs(tokens: float, data: Dataset | DataShape) -> float:
    """Passes over the unique training data that `tokens` tokens (examples) make; 1 for a stream, whose
    tokens are each read once."""
    unique = data.unique_train_tokens
    return 1.0 if math.isinf(unique) else tokens / unique
