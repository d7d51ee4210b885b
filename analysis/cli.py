"""`harness-analyze`: fit scaling laws and write a study report.

    harness-analyze runs/params out=reports/params       # fits + figures + report.md + fits.json (+ wandb)
    harness-analyze runs/forecast                        # a forecast study: its pre-registered forecasts, scored
    harness-analyze results.parquet                      # the same from a collected table (.parquet / .csv)
    harness-analyze chinchilla points.csv                # columns N, D, loss -> the fitted law as JSON
    harness-analyze chinchilla points.csv bootstrap=1000 --plot frontier.png

Keys: a study (a study folder or its collected table; `study=` or the first bare argument), out (report
folder, default STUDY/report), name (study name), bootstrap (refits per fit, default 200), seed,
wandb=offline|online|disabled. `chinchilla`: points (the table), n, d, loss (column names, default N, D,
loss), bootstrap (default 0), seed, --plot FILE. Bad input (missing, binary or unparsable file, missing
columns, too few points, a single N or D value, a negative bootstrap) exits 2 with a one-line error.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.laws import INTERVAL
from analysis.tables import AnalysisError, load_table, usable_rows
from harness.children import command
from harness.config import EXIT_BAD_INPUT, EXIT_OK, ConfigError, command_args, key_values
from harness.jsonsafe import json_ready

WANDB_MODES = ("offline", "online", "disabled")


def _load(path: str) -> pd.DataFrame:
    """load_table, with a file that is not a table (binary, not UTF-8, ragged) as a one-line AnalysisError naming it."""
    try:
        return load_table(path)
    except (UnicodeDecodeError, pd.errors.ParserError, pa.ArrowException) as e:  # Arrow: a corrupt or empty Parquet
        why = "undecodable bytes" if isinstance(e, UnicodeDecodeError) else str(e).strip().splitlines()[0]
        raise AnalysisError(f"{path}: not a readable CSV or Parquet table ({why})") from None


def _chinchilla(argv: list[str]) -> int:
    from analysis.chinchilla import PARAMS, fit_chinchilla

    own, _ = key_values(argv, ("points", "n", "d", "loss", "bootstrap", "seed"), positional="points",
                        valued_flags=("plot",))
    if "points" not in own:
        raise AnalysisError("points: a .csv or .parquet table of runs is required (harness-analyze chinchilla FILE)")
    args = SimpleNamespace(points=own["points"], n=own.get("n", "N"), d=own.get("d", "D"), loss=own.get("loss", "loss"),
                 bootstrap=_count("bootstrap", own.get("bootstrap", 0)), seed=_count("seed", own.get("seed", 0)),
                 plot=own.get("plot"))
    table = _load(args.points)
    rows = usable_rows(table, [args.n, args.d, args.loss], positive=[args.n, args.d, args.loss],
                       what="chinchilla fit", warn=False)
    for col, term in ((args.n, "A/N^alpha"), (args.d, "B/D^beta")):
        values = rows[col].unique()
        if len(rows) >= len(PARAMS) and len(values) < 2:  # the term is a constant, indistinguishable from E
            raise AnalysisError(f"chinchilla fit: column {col!r} has the single value {values[0]:g} in {len(rows)} "
                                f"usable rows, so {term} cannot be told apart from E; need runs at 2+ values of "
                                f"both {args.n} and {args.d} (one {args.d}: fit a power law in {args.n} instead)")
    if len(rows) >= len(PARAMS):  # N and D each take 2+ values here
        log_n, log_d = np.log(rows[args.n].to_numpy(float)), np.log(rows[args.d].to_numpy(float))
        (k, c), residual, *_ = np.polyfit(log_n, log_d, 1, full=True)
        if residual.size and residual[0] < 1e-12 * len(rows):
            # D a fixed function of N (a fixed tokens-per-parameter ratio): the fit trades alpha against beta freely
            tie = f"{args.d} = {math.exp(c):.3g}·{args.n}" + (f"^{k:.3g}" if abs(k - 1) > 1e-6 else "")
            raise AnalysisError(f"chinchilla fit: {tie} in all {len(rows)} usable rows, so A/N^alpha cannot be told "
                                f"apart from B/D^beta; need runs at 2+ values of {args.d} per {args.n} "
                                "(e.g. an IsoFLOP study)")
    fit = fit_chinchilla(table, args.n, args.d, args.loss, bootstrap=args.bootstrap, seed=args.seed)
    if args.plot:
        from analysis.plots import plot_frontier

        from harness.flops import training_flops

        C = training_flops(table[args.n].astype(float), table[args.d].astype(float))
        plot_frontier(fit, Path(args.plot).with_suffix(""), C_range=(float(np.nanmin(C)), float(np.nanmax(C))))
    json.dump(json_ready(fit.to_dict()), sys.stdout, indent=2)
    print()
    return 0


def _study(argv: list[str]) -> int:
    from analysis.report import analyze, log_wandb, study_name

    own, _ = key_values(argv, ("study", "out", "name", "bootstrap", "seed", "wandb"), positional="study")
    if "study" not in own:
        raise AnalysisError("study: a study folder or its collected table is required (harness-analyze runs/NAME)")
    if own.get("wandb", "offline") not in WANDB_MODES:
        raise AnalysisError(f"wandb={own['wandb']}: unknown (valid: {', '.join(WANDB_MODES)})")
    args = SimpleNamespace(study=own["study"], out=own.get("out"), name=own.get("name"),
                 bootstrap=_count("bootstrap", own.get("bootstrap", 200)), seed=_count("seed", own.get("seed", 0)),
                 wandb=own.get("wandb", "offline"))
    src = Path(args.study)
    out = Path(args.out) if args.out else (src if src.is_dir() else src.parent) / "report"
    if src.is_dir() and (src / "forecast.json").exists():  # a forecast study: score its pre-registered forecasts
        from analysis.forecast import verdict
        from analysis.forecast_report import write_report

        scored = write_report(src, out, bootstrap=args.bootstrap)
        for row in scored["forecasts"]:
            print(verdict(row))
        for note in scored["warnings"]:
            print(f"warning: {note}")
        print(f"{scored['study']}: {len(scored['forecasts'])} forecasts -> {out / 'report.md'}, {out / 'fits.json'}")
        return 0
    table = _load(args.study)
    report = analyze(table, out, study=args.name or study_name(table, src.stem), bootstrap=args.bootstrap,
                     seed=args.seed)
    ok = sum(s.status == "ok" for s in report.sections)
    print(f"{report.study}: {ok}/{len(report.sections)} analyses ok, {len(report.figures)} figure files "
          f"-> {out / 'report.md'}, {out / 'fits.json'}")
    for s in report.sections:
        if s.status != "ok":
            print(f"  {s.status}: {s.title}: {s.reason}")
    run_id = log_wandb(report, args.wandb, wandb_dir=out)
    if run_id:
        print(f"wandb ({args.wandb}): run {run_id} in group {report.study} -> {out / 'wandb'}")
    return 0


def _count(key: str, value: Any) -> int:
    """A whole number >= 0 (bootstrap=0: no intervals), else a one-line error naming the key."""
    try:
        n = int(str(value))
    except ValueError:
        n = -1
    if n < 0:
        raise AnalysisError(f"{key}={value}: must be a whole number >= 0" + (" (0 = no intervals)"
                                                                              if key == "bootstrap" else ""))
    return n


@command("harness-analyze", then="run it again")
def main(argv: list[str] | None = None) -> None:
    """Entry point of `harness-analyze`."""
    argv = command_args(argv, __doc__)
    if argv is None:
        sys.exit(EXIT_OK)
    default_format = warnings.formatwarning
    warnings.formatwarning = lambda message, *args, **kwargs: f"warning: {message}\n"  # one line, no source
    try:
        code = _chinchilla(argv[1:]) if argv[:1] == ["chinchilla"] else _study(argv)
    except (AnalysisError, ConfigError, OSError, pd.errors.ParserError) as e:
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    finally:
        warnings.formatwarning = default_format
    sys.exit(code)


if __name__ == "__main__":
    main()
