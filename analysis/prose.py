"""Numbers as report text: values, values with intervals, tables as markdown."""

from __future__ import annotations

import numpy as np
import pandas as pd


def fmt(v: float | None) -> str:
    """Four significant digits; 'nan' for a missing or infinite value."""
    return "nan" if v is None or not np.isfinite(v) else f"{v:.4g}"


def with_ci(v: float, ci: tuple[float, float] | None) -> str:
    """'0.31 [0.28, 0.34]', or the value alone without an interval."""
    return fmt(v) + (f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "")


def md_table(df: pd.DataFrame) -> list[str]:
    """The lines of a markdown table, floats formatted by `fmt`."""
    cols = list(df.columns)
    out = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        out.append("| " + " | ".join(fmt(v) if isinstance(v, (float, np.floating)) else str(v) for v in row) + " |")
    return out
