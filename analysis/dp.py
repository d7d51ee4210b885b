"""The `dp` study: data-parallel world size x LR scaling rule, with the per-rank batch fixed.

Per run: the loss at the shared token budget, the time to a target loss (the largest final training loss
of the study's ok runs, so every run reaches it: the first step of history.parquet at or below it, in
cumulative step time) and the scaling efficiency recorded by the run.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.tables import InsufficientDataError

COLUMNS = ["dist.nproc", "dp.rule", "optim.lr", "trainer.batch_size", "steps", "val_loss", "train_loss",
           "time_to_target_s", "tokens_per_s", "scaling_efficiency"]


def time_to_target(history: pd.DataFrame, target: float) -> float | None:
    """Seconds of training until the training loss first reaches `target` (None if never)."""
    reached = (history["train_loss"] <= target).to_numpy().nonzero()[0]
    if not len(reached):
        return None
    return float(history["step_time_s"].cumsum().iloc[reached[0]])


def dp_table(table: pd.DataFrame, study_dir: str | Path | None = None) -> tuple[pd.DataFrame, float]:
    """One row per (world size, rule): loss at the budget, time to the target loss, speed; and the target."""
    if "dp.rule" not in table.columns:
        raise InsufficientDataError("no dp.rule column: not a dp study")
    ok = table[table["status"] == "ok"].copy()
    if "dist.nproc" not in ok.columns:
        ok["dist.nproc"] = 1
    if len(ok) < 2:
        raise InsufficientDataError(f"{len(ok)} ok runs; the dp study needs at least 2")
    target = float(ok["train_loss"].max())
    times = []
    for _, row in ok.iterrows():
        path = Path(study_dir) / row["run_id"] / "history.parquet" if study_dir else None
        times.append(time_to_target(pd.read_parquet(path), target) if path and path.exists() else None)
    ok["time_to_target_s"] = times
    for col in COLUMNS:
        if col not in ok.columns:
            ok[col] = None
    rows = ok[COLUMNS].sort_values(["dp.rule", "dist.nproc"]).reset_index(drop=True)
    return rows, target
