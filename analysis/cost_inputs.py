"""Checking a cost plan's inputs: one-line errors naming the key, numbers, the memory knobs, the MFU choice."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from analysis.tables import AnalysisError
from harness.efficiency import MfuModel, constant, fit_mfu
from harness.memory import OPTIMIZERS, PRECISIONS, SHARDING

DEFAULT_MFU = 0.4  # when neither mfu= nor mfu_from= is given: typical of tuned large dense training (PaLM: 46%)


class CostError(AnalysisError):
    """Bad input to a plan; the message is one line naming the key."""


def bad(key: str, value: Any, why: str, valid: Iterable[Any] | None = None) -> CostError:
    """The error for ``key=value``: '<key>=<value>: <why> (valid: ...)'."""
    msg = f"{key}={value}: {why}"
    return CostError(msg + (f" (valid: {', '.join(map(str, valid))})" if valid is not None else ""))


def check_memory_knobs(precision: str, optimizer: str, sharding: str) -> None:
    """One-line CostErrors for the memory model's choices (``harness.memory``)."""
    for key, value, valid in (("precision", precision, PRECISIONS), ("optimizer", optimizer, OPTIMIZERS),
                              ("sharding", sharding, SHARDING)):
        if value not in valid:
            raise bad(key, value, "unknown", valid)


def number(key: str, value: Any, allow_none: bool = True, integer: bool = False, minimum: float = 0.0,
           strict: bool = True) -> Any:
    """``value`` as a float (an int with ``integer``) above ``minimum`` (at or above unless ``strict``);
    None stays None when ``allow_none``."""
    if value is None:
        if allow_none:
            return None
        raise bad(key, value, "is required")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise bad(key, value, "must be a number") from None
    if not np.isfinite(x) or (x <= minimum if strict else x < minimum):
        raise bad(key, value, f"must be {'>' if strict else '≥'} {minimum:g}")
    if integer:
        if x != int(x):
            raise bad(key, value, "must be a whole number")
        return int(x)
    return x


def resolve_mfu(mfu: float | None, mfu_from: str | Path | pd.DataFrame | None, device: str = "cuda") -> MfuModel:
    """The efficiency model: a given MFU, one fitted on a collected study, or the documented default."""
    if mfu is not None and mfu_from is not None:
        raise bad("mfu", mfu, "give mfu= or mfu_from=, not both")
    if mfu is not None:
        m = number("mfu", mfu)
        if m > 1:
            raise bad("mfu", mfu, "must be a fraction in (0, 1]")
        return constant(m, "given (mfu=)")
    if mfu_from is None:
        return constant(DEFAULT_MFU, "default: typical of tuned large dense training (PaLM reported 46%)")
    if isinstance(mfu_from, pd.DataFrame):
        table, source = mfu_from, "the given table"
    else:
        path = Path(mfu_from).expanduser()
        if path.is_dir():
            path = path / "results.parquet"
        try:
            table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        except (OSError, ValueError, ImportError) as e:
            raise bad("mfu_from", mfu_from, f"unreadable table ({type(e).__name__})") from None
        source = str(path)
    try:
        return fit_mfu(table, "mfu", device=device, source=source)
    except ValueError as e:
        raise bad("mfu_from", mfu_from, str(e)) from None
