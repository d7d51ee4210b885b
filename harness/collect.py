"""`harness-collect STUDY_DIR`: every run's result.json -> one tidy table (Parquet + CSV), one row per run.

Columns: run_id, status, reason, the flattened config as asked (`model.name`, `optim.lr`, ...), the settings
the run resolved and used as `settings.*` (`settings.lr_peak`: the LR it trained at, after any LR rule;
`settings.steps`, `settings.micro_batch`, ...; `harness.settings.RunSettings`), every metric under its name in
`harness.metric_table` (`val_loss`, `tokens_per_s`, ...), and `env.*`. Unreadable or incomplete
result files (see `harness.results.check_result`) are skipped with a warning.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd

from harness.children import command
from harness.config import bad_input_exits, command_args, exit_bad_input, key_values
from harness.metric_table import SUMMARY, unit
from harness.results import RESULT, atomic, inspect_result, write_atomic
from harness.tracking import flatten

ORDER = {name: i for i, name in enumerate(SUMMARY)}
SHOWN = ["model.name", "model.cell", "params", "trainer.batch_size", "settings.lr_peak", "data.seq_len", "tokens",
         "train_loss", "val_loss", "tokens_per_s", "mfu", "peak_mem_bytes", "status"]


def collect(study_dir: str | Path) -> pd.DataFrame:
    """One row per run directory under `study_dir` that holds a readable result.json."""
    rows, bad = [], []
    for path in sorted(Path(study_dir).glob(f"*/{RESULT}")):
        result, problem = inspect_result(path.parent)
        if result is None:
            bad.append(f"{path} ({problem})")
            continue
        row = {"run_id": result["run_id"], "status": result["status"], "reason": result.get("reason")}
        row.update(flatten(result.get("config") or {}))
        row.update(flatten(result.get("settings") or {}, "settings."))
        metrics = result.get("metrics") or {}
        row.update(sorted(metrics.items(), key=lambda kv: ORDER.get(kv[0], len(ORDER))))  # the table's order
        row.update(flatten(result.get("env") or {}, "env."))
        rows.append(row)
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable or incomplete result file(s): {'; '.join(bad[:5])}", stacklevel=2)
    return pd.DataFrame(rows)


def save(table: pd.DataFrame, stem: Path) -> list[Path]:
    """Write `stem`.parquet and `stem`.csv atomically; list-valued cells become JSON text."""
    table = table.map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
    stem.parent.mkdir(parents=True, exist_ok=True)
    with atomic(stem.with_suffix(".parquet")) as tmp:
        table.to_parquet(tmp, index=False)
    write_atomic(stem.with_suffix(".csv"), table.to_csv(index=False))
    return [stem.with_suffix(".parquet"), stem.with_suffix(".csv")]


def summary_table(table: pd.DataFrame) -> str:
    """The columns a person reads first, formatted for the terminal, each metric with its unit."""
    cols = [c for c in SHOWN if c in table.columns and table[c].notna().any()]
    shown = table[cols].rename(columns=lambda c: f"{c} [{unit(c)}]" if unit(c) not in (None, "count", "1") else c)
    return shown.to_string(index=False, float_format=lambda x: f"{x:.4g}")


@command("harness-collect", then="run it again")
def main(argv: list[str] | None = None) -> None:
    """`harness-collect STUDY_DIR [out=PATH]` (or study_dir=STUDY_DIR): the table, printed and saved (out: the
    path without suffix, default STUDY_DIR/results)."""
    argv = command_args(argv, main.__doc__)
    if argv is None:
        return
    with bad_input_exits():
        args, _ = key_values(argv, ("study_dir", "out"), positional="study_dir")
    if "study_dir" not in args:
        exit_bad_input("study_dir: a study folder is required (harness-collect runs/NAME)")
    study = Path(args["study_dir"])
    if not study.is_dir():
        exit_bad_input(f"study_dir={study}: no such directory")
    table = collect(study)
    if table.empty:
        exit_bad_input(f"study_dir={study}: no result.json files found")
    paths = save(table, Path(args["out"]) if "out" in args else study / "results")
    print(summary_table(table))
    counts = table["status"].value_counts().to_dict()
    print(f"{len(table)} runs ({', '.join(f'{k}={v}' for k, v in counts.items())}) -> {paths[0]}, {paths[1]}")


if __name__ == "__main__":
    main()
