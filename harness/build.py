"""Config -> (data, model, settings) without training (`check_config`: a run, a study's up-front validation,
`harness-plan`), and what a run trains (`build_run`: the model's real weights). Datasets are cached per data
config, so a study's jobs build each task once per process; `harness-plan` asks for the data's shape only
(`shape_only`), so it never makes data."""
from __future__ import annotations

import functools
import json
from typing import Any

import psutil
import torch
from omegaconf import DictConfig, OmegaConf

from harness.analyses import ANALYSIS_NAMES
from harness.branches import decay_start
from harness.config import choose, fail, positive
from harness.data import DataShape, Dataset, build_data, data_identity, data_shape
from harness.distributed import world_size
from harness.flops import training_flops
from harness.models import build_model
from harness.models.layers import count_params
from harness.settings import RunSettings, epochs
from harness.train import budget_steps, check_step_cap, check_training, peak_lr, warmup_steps


MAX_SEED = 2 ** 32 - 1  # torch's CPU generator keeps a seed's low 32 bits: 2^32 would repeat seed 0


@functools.lru_cache(maxsize=4)  # a study re-uses few datasets; each can be tens of MB
def _data(data_json: str, seed: int, content: str | None) -> Dataset:  # content: a changed corpus is rebuilt
    return build_data(OmegaConf.create(json.loads(data_json)), seed)


def check_config(cfg: DictConfig,
                 shape_only: bool = False) -> tuple[Dataset | DataShape, torch.nn.Module, RunSettings]:
    """Check a run's config without training: its data, its model on the meta device, its resolved settings.

    Returns (data, model, settings); raises ConfigError for any bad key or value. `shape_only`: the data's
    spec and size from its config (`harness.data.data_shape`) instead of the data itself.
    """
    choose("device", cfg.device, ["auto", "cpu", "cuda", "mps"])
    if not 0 <= cfg.seed <= MAX_SEED:
        fail("seed", cfg.seed, f"must be a whole number in [0, {MAX_SEED}]")
    if cfg.threads != "auto":
        positive("threads", cfg.threads)
    positive("peak_flops_per_s", cfg.peak_flops_per_s, allow_none=True, integer=False)
    check_analyses(cfg.get("analyses"))
    if shape_only:
        data = data_shape(cfg.data)
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
    return data, model, resolve_settings(cfg, data, model)


def build_run(cfg: DictConfig) -> tuple[Dataset, torch.nn.Module, RunSettings]:
    """What a run trains: `check_config`'s data and settings, and the model with its initial weights on the CPU."""
    data, _, settings = check_config(cfg)
    torch.manual_seed(cfg.seed)  # after the data: same seed, same initial weights
    with torch.device("cpu"):
        model = build_model(cfg.model, data.spec)
    return data, model, settings


def resolve_settings(cfg: DictConfig, data: Dataset | DataShape, model: torch.nn.Module) -> RunSettings:
    """Check the trainer/optim keys and resolve the settings of a run of `model` on `data` (either may be
    shapes only: a meta-device model, a `DataShape`); ConfigError names the first bad key."""
    tcfg = cfg.trainer
    batch = positive("trainer.batch_size", tcfg.batch_size)
    if batch > data.n_train:
        fail("trainer.batch_size", batch, f"larger than the training set ({data.n_train} examples)")
    check_training(cfg)
    convention = choose("trainer.flops_per_token", tcfg.flops_per_token, ["analytic", "6N"])
    tpe = data.spec.tokens_per_example
    budget_flops = training_flops(count_params(model), tpe) if convention == "6N" else model.flops_per_example()
    steps = check_step_cap(tcfg, budget_steps(tcfg, batch, tpe, budget_flops, data.unique_train_tokens))
    tokens = steps * batch * tpe
    if tcfg.fresh_data and epochs(tokens, data) > 1:
        fail("data.train_tokens", data.unique_train_tokens, f"the run reads {tokens:,} tokens, "
             f"{epochs(tokens, data):.2f} epochs, but trainer.fresh_data=true forbids repeats: "
             "raise data.train_tokens (markov: `stream`) or lower the budget")
    world, accum = world_size(cfg), int(tcfg.grad_accum)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return RunSettings(
        world_size=world, grad_accum=accum, micro_batch=batch // (world * accum), batch_size=batch,
        tokens_per_step=batch * tpe, steps=steps, tokens=tokens, lr_peak=peak_lr(cfg.optim, trainable, tokens),
        schedule=str(cfg.optim.schedule), warmup_steps=warmup_steps(cfg.optim, steps),
        decay_start=decay_start(steps, float(cfg.optim.decay_fraction)) if cfg.optim.schedule == "wsd" else None,
        precision=str(tcfg.precision), compile=bool(tcfg.compile),
        eval_samples=int(tcfg.eval_samples))


def check_analyses(names: Any) -> None:
    """A study's report sections (`analyses`) must exist: a typo fails at study start, not after the runs."""
    for name in names or []:
        choose("analyses", name, ANALYSIS_NAMES)
