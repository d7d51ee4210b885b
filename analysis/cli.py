"""`harness-analyze`: fit scaling laws and write a study report.

    harness-analyze runs/params --out reports/params     # fits + figures + report.md + fits.json (+ wandb)
    harness-analyze runs/forecast                        # a forecast study: its pre-registered forecasts, scored
    harness-analyze results.parquet                      # the same from a collected table (.parquet / .csv)
    harness-analyze chinchilla points.csv                # columns N, D, loss -> the fitted law as JSON
    harness-analyze chinchilla points.csv --bootstrap 1000 --plot frontier.png

Bad input (missing, binary or unparsable file, missing columns, too few points, a single N or D value, a
negative --bootstrap) exits with status 2 and a one-line error.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.data import AnalysisError, load_table, usable_rows
from analysis.laws import INTERVAL
from harness.children import command
from harness.jsonsafe import json_ready


def _load(path: str) -> pd.DataFrame:
    """load_table, with a file that is not a table (binary, not UTF-8, ragged) as a one-line AnalysisError naming it."""
    try:
        return load_table(path)
    except (UnicodeDecodeError, pd.errors.ParserError, pa.ArrowException) as e:  # Arrow: a corrupt or empty Parquet
        why = "undecodable bytes" if isinstance(e, UnicodeDecodeError) else str(e).strip().splitlines()[0]
        raise AnalysisError(f"{path}: not a readable CSV or Parquet table ({why})") from None


def _chinchilla(argv: list[str]) -> int:
    from analysis.chinchilla import PARAMS, fit_chinchilla

    p = argparse.ArgumentParser(prog="harness-analyze chinchilla",
                                description="Fit L(N, D) = E + A/N^alpha + B/D^beta; print it as JSON.")
    p.add_argument("points", help="a .csv or .parquet table of runs")
    p.add_argument("--n", default="N", help="column of parameter counts (default N)")
    p.add_argument("--d", default="D", help="column of training tokens (default D)")
    p.add_argument("--loss", default="loss", help="column of losses (default loss)")
    p.add_argument("--bootstrap", type=int, default=0, help=f"bootstrap refits for {INTERVAL:.0%}% intervals (default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", help="write the compute-optimal frontier here (PNG, and SVG beside it)")
    args = p.parse_args(argv)
    if args.bootstrap < 0:
        raise AnalysisError(f"--bootstrap={args.bootstrap}: must be >= 0 (0 = no intervals)")
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

    p = argparse.ArgumentParser(prog="harness-analyze", description=__doc__.splitlines()[0])
    p.add_argument("study", help="a study folder (e.g. runs/params) or its collected .parquet / .csv table")
    p.add_argument("--out", help="report folder (default: STUDY/report, or report/ beside the table)")
    p.add_argument("--name", help="study name (default: the table's `study` column)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap refits per fit (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wandb", choices=("offline", "online", "disabled"), default="offline",
                   help="log figures and fits to the study's wandb group (default offline)")
    args = p.parse_args(argv)
    if args.bootstrap < 0:
        raise AnalysisError(f"--bootstrap={args.bootstrap}: must be >= 0 (0 = no intervals)")
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


@command("harness-analyze", then="run it again")
def main(argv: list[str] | None = None) -> None:
    """Entry point of `harness-analyze`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    default_format = warnings.formatwarning
    warnings.formatwarning = lambda message, *args, **kwargs: f"warning: {message}\n"  # one line, no source
    try:
        code = _chinchilla(argv[1:]) if argv[:1] == ["chinchilla"] else _study(argv)
    except (AnalysisError, OSError, pd.errors.ParserError) as e:
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        code = 2
    finally:
        warnings.formatwarning = default_format
    sys.exit(code)


if __name__ == "__main__":
    main()
