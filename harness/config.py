"""Config flow: Hydra composes a DictConfig; `validate` checks it once; builders read it.

`ConfigError` is the one exception for bad input: the CLI prints its one-line message and exits 2.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
# Keys that place or label a run but do not change what it computes: excluded from run_id.
NON_IDENTITY_KEYS = ("out_dir", "force", "logger", "study", "scale", "grid", "hydra")


def isoflop_params(compute: float, tokens_per_param: float, multiple: float = 1.0) -> int:
    """`${isoflop_params:C,r,m}`: m times the size N with D = r N tokens at compute C = 6 N D, N = sqrt(C / 6r).

    Lets a study place its sizes around each FLOP budget's expected optimum (IsoFLOP ladders).
    """
    return max(1, round(math.sqrt(float(compute) / (6.0 * float(tokens_per_param))) * float(multiple)))


OmegaConf.register_new_resolver("isoflop_params", isoflop_params, replace=True)


class ConfigError(ValueError):
    """Bad user input; the message names the key and, where finite, the valid values."""


def fail(key: str, value: Any, why: str, valid: Iterable[Any] | None = None) -> None:
    """Raise a one-line ConfigError for `key=value`."""
    msg = f"{key}={value}: {why}"
    if valid is not None:
        msg += f" (valid: {', '.join(map(str, valid))})"
    raise ConfigError(msg)


def choose(key: str, value: Any, valid: Iterable[str]) -> str:
    """Return `value` if it is one of `valid`, else raise naming the options."""
    valid = list(valid)
    if value not in valid:
        fail(key, value, "unknown value", valid)
    return value


def positive(key: str, value: Any, allow_none: bool = False, integer: bool = True) -> Any:
    """Check a positive size; numbers written as 2e5 are accepted for integer keys."""
    if value is None and allow_none:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        fail(key, value, "must be a positive number")
    if not number > 0 or number != number or number == float("inf"):
        fail(key, value, "must be positive")
    if integer:
        if number != int(number):
            fail(key, value, "must be a whole number")
        return int(number)
    return number


def group_options(group: str) -> list[str]:
    """Names of the options of a config group (conf/<group>/*.yaml)."""
    folder = CONF_DIR / group  # conf/sweep is a link to sweeps/: listdir follows it, Path.glob does not
    return sorted(name[:-5] for name in os.listdir(folder) if name.endswith(".yaml"))


def compose(overrides: list[str] | None = None) -> DictConfig:
    """Compose the run config from conf/ with Hydra overrides, as the `harness` command would."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    check_group_choices(overrides or [])
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        return hydra_compose("config", overrides=list(overrides or []))


def check_group_choices(overrides: Iterable[str]) -> None:
    """Fail in one line on `group=unknown` before Hydra prints its multi-line error."""
    for ov in overrides:
        key, sep, value = ov.lstrip("+~").partition("=")
        if not sep or "/" in key or "." in key or not (CONF_DIR / key).is_dir():
            continue
        for choice in value.split(","):
            if choice and choice != "null" and choice not in group_options(key):
                fail(key, choice, "unknown option", group_options(key))


def run_id(cfg: DictConfig) -> str:
    """Hash of the resolved config that defines what a run computes (output paths and labels excluded)."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in NON_IDENTITY_KEYS:
        data.pop(key, None)
    blob = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
