"""A study is a Hydra multirun: the sweeper expands `hydra.sweeper.params` into jobs, a launcher runs them.

`StudyCallback` (registered in conf/config.yaml) validates every job before the first one starts, and
prints the summary (ok / diverged / oom / skipped / failed) at the end. `study_configs` composes the
primary config as Hydra's multirun does and expands it with the same `expand_jobs`: `harness-plan`
uses it, so the plan and the study see the same jobs.
"""
from __future__ import annotations

import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from harness.config import EXIT_FAILED, ConfigError, check_paths, exit_bad_input
from harness.identity import run_id
from harness.results import STATUSES, read_result
from harness.slurm import is_slurm, preflight

log = logging.getLogger("harness")


def expand_jobs(config: DictConfig) -> list[list[str]]:
    """The override list of every job, exactly as Hydra's basic sweeper will expand them (its private
    `split_arguments`; hydra-core is pinned and tests/test_studies.py checks the launched jobs match)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    grid = config.get("grid")
    if grid is not None and config.scale not in grid:
        raise ConfigError(f"scale={config.scale}: unknown preset for study {config.study} (valid: {', '.join(grid)})")
    params = config.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=True) if params is not None else {}
    task = list(config.hydra.overrides.task)
    args = [f"{k}={v}" for k, v in params.items()] + task
    overrides = OverridesParser.create().parse_overrides(args)
    for ov in overrides:  # a sweep over a preset or the scale would launch the same runs again
        key = ov.get_key_element()
        if ov.is_sweep_override() and key.startswith("grid."):
            raise ConfigError(f"{ov.input_line}: a preset value is one setting, not a sweep; quote the list: "
                              f"\"{key}='{ov.input_line.partition('=')[2]}'\"")
        if ov.is_sweep_override() and key == "scale":
            raise ConfigError(f"{ov.input_line}: a study runs one scale at a time")
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def primary_config(overrides: list[str]) -> DictConfig:
    """The config `harness -m OVERRIDES` starts from, composed as Hydra's multirun does (sweeps left to expand)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.types import RunMode

    from harness.config import CONF_DIR, check_overrides, hydra_error, register

    check_overrides(overrides)
    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        try:
            return GlobalHydra.instance().config_loader().load_configuration(
                "config", list(overrides), run_mode=RunMode.MULTIRUN)
        except HydraException as e:
            raise hydra_error(e, overrides) from None


def study_configs(overrides: list[str], shape_only: bool = False) -> tuple[DictConfig, list[DictConfig]]:
    """(primary config, checked job configs) of `harness -m OVERRIDES`: what `harness-plan` lists
    (`shape_only`: data checked from its config, never made; see `check_config`)."""
    from hydra import initialize_config_dir

    from harness.config import CONF_DIR

    primary = primary_config(overrides)
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        return primary, job_configs(expand_jobs(primary), shape_only)


def job_configs(jobs: list[list[str]], shape_only: bool = False) -> list[DictConfig]:
    """Compose each job's config (inside an initialised Hydra) and check it as a run would, without training.

    Raises ConfigError naming the first bad key or value.
    """
    from hydra.errors import HydraException

    from harness.build import check_config

    from harness.config import check_overrides, hydra_error

    configs, seen, composed = [], {}, {}
    for overrides in jobs:
        try:
            check_overrides(overrides)
            cfg = compose_job(overrides, composed)
        except HydraException as e:
            raise ConfigError(f"{hydra_error(e, overrides)} [job: {' '.join(overrides)}]") from None
        try:
            check_paths(cfg)
            check_config(cfg, shape_only=shape_only)
            where = (str(cfg.out_dir), str(cfg.study), run_id(cfg))
        except ConfigError as e:
            raise ConfigError(f"{e} [job: {' '.join(overrides)}]") from None
        if where in seen:  # e.g. a sweep over a label such as logger=...: one run would train twice
            differ = sorted(set(overrides) ^ set(seen[where]))
            raise ConfigError(f"jobs {' '.join(seen[where])} and {' '.join(overrides)} are the same run "
                              f"{where[2]}: they differ only in {', '.join(differ)}, which a run does not read")
        seen[where] = overrides
        configs.append(cfg)
    return configs


def compose_job(overrides: list[str], composed: dict[tuple, DictConfig]) -> DictConfig:
    """`hydra.compose("config", overrides)` (inside an initialised Hydra), composed once per distinct choice of
    config groups and other structural overrides (`composed`): a study's jobs differ in values of existing keys,
    applied to a copy as Hydra applies them after composing (its private `_apply_overrides_to_config`)."""
    import copy

    from hydra import compose
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    from harness.config import CONF_DIR

    def is_value(ov) -> bool:
        key = ov.key_or_group
        return (ov.type == OverrideType.CHANGE and ov.package is None and not ov.is_sweep_override()
                and key.partition(".")[0] != "hydra" and not (CONF_DIR / key).is_dir())

    parsed = OverridesParser.create().parse_overrides(overrides)
    structure = tuple(ov.input_line for ov in parsed if not is_value(ov))
    if structure not in composed:
        composed[structure] = compose("config", overrides=list(structure))
    cfg = copy.deepcopy(composed[structure])
    ConfigLoaderImpl._apply_overrides_to_config([ov for ov in parsed if is_value(ov)], cfg)
    return cfg


def summarise(configs: list[DictConfig]) -> Counter:
    """Count the statuses in the result files of a study's runs (missing or running: 'missing')."""
    counts: Counter = Counter()
    for cfg in configs:
        result = read_result(Path(cfg.out_dir) / str(cfg.study) / run_id(cfg)) or {}  # incomplete: missing
        counts[result.get("status") if result.get("status") in STATUSES else "missing"] += 1
    return counts


def format_summary(counts: Counter) -> str:
    return " ".join(f"{s}={counts[s]}" for s in (*STATUSES, "missing") if counts[s] or s == "ok")


class StudyCallback(Callback):
    """Hydra callback: validate all jobs at multirun start; summary and exit status at multirun end."""

    def __init__(self) -> None:
        self.configs: list[DictConfig] = []

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_paths(config)
            self.configs = job_configs(expand_jobs(config))
            if is_slurm(config.hydra.get("launcher")):
                preflight(config.hydra.launcher)
        except ConfigError as e:
            exit_bad_input(e)
        done = summarise(self.configs)
        finished = done["ok"] + done["diverged"] + done["skipped"]
        log.info("study %s (scale=%s): %d runs, %d already finished -> %s/%s/", config.study, config.scale,
                 len(self.configs), finished, config.out_dir, config.study)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        counts = summarise(self.configs)
        print(f"study {config.study}: {len(self.configs)} runs: {format_summary(counts)}", flush=True)
        if self.configs and counts["failed"] + counts["missing"] + counts["oom"] == len(self.configs):
            sys.exit(EXIT_FAILED)
