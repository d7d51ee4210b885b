"""The column conventions of a study table (as `harness-collect` writes it): which column plays which role.

Loss is ``val_loss`` (else ``train_loss``, ``loss``), N is ``params``, D is ``tokens`` (``samples`` for tasks
without tokens), C is ``flops_total``; the runs' ``analyses`` config key names the report's sections. Config
columns hold what was asked (``optim.lr``), ``settings.*`` what the run used (``settings.lr_peak``: the LR after
any LR rule).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

LOSS = ("val_loss", "train_loss", "loss")
TOKENS = ("tokens", "samples")
PARAMS = "params"
FLOPS = "flops_total"
ANALYSES = "analyses"  # the config key (and so the column) a study declares its analyses in


@dataclass(frozen=True)
class Roles:
    """The column of each quantity a fit reads."""

    loss: str
    N: str
    D: str
    C: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def roles(table: pd.DataFrame) -> Roles:
    """The roles in ``table``: the first candidate column that has values (the first name if none has)."""
    return Roles(first_with_values(table, LOSS) or LOSS[0], PARAMS, first_with_values(table, TOKENS) or TOKENS[0],
                 FLOPS)


def first_with_values(table: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` that is a column with at least one numeric value."""
    for c in names:
        if c in table.columns and pd.to_numeric(table[c], errors="coerce").notna().any():
            return c
    return None


def varies(table: pd.DataFrame, col: str, at_least: int = 3) -> bool:
    """Whether ``col`` takes ``at_least`` distinct numeric values (enough to fit along it)."""
    return col in table.columns and pd.to_numeric(table[col], errors="coerce").nunique() >= at_least


def label(column: str, value: Any) -> str:
    """'transformer' for model names, 'target_params=3e+04' for other columns."""
    if column == "model.name":
        return str(value)
    return f"{column.rsplit('.', 1)[-1]}={value:g}" if isinstance(value, (int, float)) else f"{value}"


def groups(table: pd.DataFrame, by: tuple[str, ...] = ("model.name", "model.cell")) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) per model name and per combination of the other ``by`` columns that vary."""
    keys = [c for c in by if c in table.columns and (c == "model.name" or table[c].nunique() > 1)]
    if not keys:
        return [("all", table)]
    table = table.assign(**{k: table[k].fillna("-") for k in keys})
    return [(", ".join(label(k, v) for k, v in zip(keys, key) if v != "-"), g)
            for key, g in table.groupby(keys)]  # a list of keys: each key is a tuple


def declared_analyses(table: pd.DataFrame) -> list[str] | None:
    """The analyses the runs declare (their most common non-empty ``analyses`` value), else None.

    A cell is a list (a table collected in memory), a numpy array (a list column read back from Parquet) or
    JSON text (`harness-collect`'s files); None also when the column is missing (tables collected before the key).
    """
    if ANALYSES not in table.columns:
        return None
    declared = [tuple(_names(v)) for v in table[ANALYSES]]
    declared = [d for d in declared if d]
    return list(Counter(declared).most_common(1)[0][0]) if declared else None


def _names(cell: Any) -> list[str]:
    if isinstance(cell, str):
        cell = json.loads(cell) if cell.strip().startswith("[") else [cell]
    if isinstance(cell, (list, tuple, np.ndarray)):
        return [str(v) for v in cell]
    return []  # NaN / None: a run that declared nothing
