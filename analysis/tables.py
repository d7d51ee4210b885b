"""Input handling shared by every fit: column checks, dropping unusable rows, loading tables."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd


class AnalysisError(ValueError):
    """Bad input for an analysis; the message is one line meant for the user."""


class InsufficientDataError(AnalysisError):
    """Fewer usable points than the fit has parameters (or than it needs to say anything)."""


class DataWarning(UserWarning):
    """Rows were dropped before a fit."""


def require_columns(df: pd.DataFrame, columns: Iterable[str], what: str = "table") -> None:
    """Raise a one-line AnalysisError naming the columns ``df`` lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        have = ", ".join(map(str, df.columns[:12])) + (", ..." if len(df.columns) > 12 else "")
        raise AnalysisError(f"{what}: missing column(s) {', '.join(map(repr, missing))} (have: {have})")


def usable_rows(
    df: pd.DataFrame,
    columns: Iterable[str],
    positive: Iterable[str] = (),
    what: str = "fit",
    warn: bool = True,
) -> pd.DataFrame:
    """The rows of ``df`` that a fit can use, with a warning saying how many were dropped.

    Dropped: runs whose ``status`` column (if any) is not ``ok``, rows with a
    missing, NaN or infinite value in ``columns``, and rows whose ``positive``
    columns are not > 0 (they are taken in log space).
    """
    columns, positive = list(columns), list(positive)
    require_columns(df, columns + [c for c in positive if c not in columns], what)
    keep = pd.Series(True, index=df.index)
    reasons = []
    if "status" in df.columns:
        ok = df["status"].astype(str).eq("ok")
        if (~ok).any():
            reasons.append(f"{int((~ok).sum())} not ok")
        keep &= ok
    values = df[columns].apply(pd.to_numeric, errors="coerce").astype(float)
    finite = np.isfinite(values.to_numpy()).all(axis=1)
    bad = keep & ~finite
    if bad.any():
        reasons.append(f"{int(bad.sum())} with NaN/inf in {'/'.join(columns)}")
    keep &= finite
    if positive:
        pos = (values[positive].to_numpy() > 0).all(axis=1)
        bad = keep & ~pos
        if bad.any():
            reasons.append(f"{int(bad.sum())} with non-positive {'/'.join(positive)}")
        keep &= pos
    if reasons and warn:
        warnings.warn(f"{what}: dropped {int((~keep).sum())} of {len(df)} rows ({'; '.join(reasons)})",
                      DataWarning, stacklevel=3)
    out = df.loc[keep].copy()
    out[columns] = values.loc[keep]
    return out


def need(n_have: int, n_need: int, what: str, noun: str = "usable points") -> None:
    """Raise InsufficientDataError unless ``n_have >= n_need``."""
    if n_have < n_need:
        raise InsufficientDataError(f"{what} needs at least {n_need} {noun}, got {n_have}")


def load_table(path: str | Path) -> pd.DataFrame:
    """A study table: a ``.parquet``/``.csv`` file, or a study directory (collected by the harness)."""
    path = Path(path)
    if not path.exists():
        raise AnalysisError(f"{path}: no such file or directory")
    if path.is_dir():
        from harness.collect import collect  # only study directories need the harness

        table = collect(path)
        table.attrs["study_dir"] = str(path)  # analyses that read per-run histories (the dp study) find them here
    elif path.suffix == ".parquet":
        table = pd.read_parquet(path)
    elif path.suffix == ".csv":
        try:
            table = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            table = pd.DataFrame()
    else:
        raise AnalysisError(f"{path}: expected a study directory, a .parquet or a .csv file")
    if table.empty:
        raise AnalysisError(f"{path}: no rows")
    return table

