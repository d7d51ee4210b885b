"""Config -> (data, model, steps), without training: shared by a run, a study's up-front validation and
`harness-plan`. Datasets are cached per data config, so a study's jobs build each task once per process."""
from __future__ import annotations

import functools
import json
import math

import torch
from omegaconf import DictConfig, OmegaConf

from harness.config import choose, fail, positive
from harness.data import Dataset, build_data
from harness.models import build_model
from harness.models.layers import count_params
from harness.train import budget_steps, check_training


@functools.lru_cache(maxsize=4)  # a study re-uses few datasets; each can be tens of MB
def _data(data_json: str, seed: int) -> Dataset:
    return build_data(OmegaConf.create(json.loads(data_json)), seed)


def check_config(cfg: DictConfig, materialize: bool = False) -> tuple[Dataset, torch.nn.Module, int]:
    """Build data and the model (on the meta device unless `materialize`), and turn the budget into steps.

    Returns (data, model, steps); raises ConfigError for any bad key or value.
    """
    choose("device", cfg.device, ["auto", "cpu", "cuda", "mps"])
    if cfg.threads != "auto":
        positive("threads", cfg.threads)
    positive("peak_flops_per_s", cfg.peak_flops_per_s, allow_none=True, integer=False)
    data = _data(json.dumps(OmegaConf.to_container(cfg.data, resolve=True), sort_keys=True), int(cfg.seed))
    torch.manual_seed(cfg.seed)  # after the data: same seed, same initial weights
    with torch.device("cpu" if materialize else "meta"):
        model = build_model(cfg.model, data.spec)
    batch = positive("trainer.batch_size", cfg.trainer.batch_size)
    if batch > data.n_train:
        fail("trainer.batch_size", batch, f"larger than the training set ({data.n_train} examples)")
    check_training(cfg)
    convention = choose("trainer.flops_per_token", cfg.trainer.flops_per_token, ["analytic", "6N"])
    tpe = data.spec.tokens_per_example
    budget_flops = 6 * count_params(model) * tpe if convention == "6N" else model.flops_per_example()
    steps = budget_steps(cfg.trainer, batch, tpe, budget_flops, data.unique_train_tokens)
    if cfg.trainer.fresh_data and epochs(steps * batch * tpe, data) > 1:
        fail("data.train_tokens", data.unique_train_tokens, f"the run reads {steps * batch * tpe:,} tokens, "
             f"{epochs(steps * batch * tpe, data):.2f} epochs, but trainer.fresh_data=true forbids repeats: "
             "raise data.train_tokens (markov: `stream`) or lower the budget")
    return data, model, steps


def epochs(tokens: float, data: Dataset) -> float:
    """Passes over the unique training data that `tokens` tokens (examples) make; 1 for a stream, whose
    tokens are each read once."""
    unique = data.unique_train_tokens
    return 1.0 if math.isinf(unique) else tokens / unique
