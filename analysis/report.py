"""A study table -> fits, figures (PNG + SVG), report.md and fits.json; optionally a wandb run.

The sections are the analyses the runs' config declares (its ``analyses`` list, from the study's sweep file,
see `analysis.registry`); an empty list runs every analysis the columns allow. A table collected before that
key existed takes the list from the sweep file named like its study. Column roles: `analysis.columns`.
An analysis that lacks data is reported as skipped with the reason; one that fails unexpectedly is reported
as an error; neither stops the others.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.columns import ANALYSES, declared_analyses
from analysis.laws import INTERVAL
from analysis.registry import check_names, plan
from analysis.sections import Analysis, Context, Section
from analysis.tables import AnalysisError, InsufficientDataError
from harness.jsonsafe import json_ready


@dataclass
class Report:
    """Everything ``report.md`` and ``fits.json`` are written from."""

    study: str
    out_dir: Path
    n_runs: int
    status_counts: dict[str, int]
    sections: list[Section]
    columns: dict[str, str]

    @property
    def figures(self) -> list[Path]:
        return [p for s in self.sections for p in s.figures]

    def to_dict(self) -> dict:
        sections = [{"title": s.title, "status": s.status, "reason": s.reason, "headline": s.headline,
                     "figures": [p.name for p in s.figures], **s.numbers} for s in self.sections]
        return json_ready({"study": self.study, "n_runs": self.n_runs, "status_counts": self.status_counts,
                           "columns": self.columns, "sections": sections})


def analyses_for(table: pd.DataFrame, study: str) -> list[str] | None:
    """The analyses the runs declare; for a table collected before the ``analyses`` key, the list in the sweep
    file named ``study`` (if there is one); None: choose by the columns."""
    if ANALYSES in table.columns:
        return declared_analyses(table)
    from harness.config import CONF_DIR, group_options

    if study not in group_options("sweep"):
        return None
    from omegaconf import OmegaConf

    return list(OmegaConf.load(CONF_DIR / "sweep" / f"{study}.yaml").get(ANALYSES) or []) or None


def _run(title: str, analysis: Analysis, ctx: Context) -> Section:
    sec = Section(title)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            analysis(ctx, sec)
        notes = sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)})
        sec.lines += [f"\nNote: {n}" for n in notes]
    except (AnalysisError, np.linalg.LinAlgError) as e:
        sec.status, sec.reason = "skipped", str(e)
    except Exception as e:  # noqa: BLE001 - one failed analysis must not cost the rest of the report
        sec.status, sec.reason = "error", f"{type(e).__name__}: {e}"
        warnings.warn(f"{title}: {sec.reason}", stacklevel=2)
    return sec


def study_name(table: pd.DataFrame, default: str = "study") -> str:
    """The table's study (its most common ``study`` value), else ``default``."""
    if "study" in table.columns and table["study"].notna().any():
        return str(table["study"].mode().iloc[0])
    return default


def analyze(table: pd.DataFrame, out_dir: str | Path, study: str | None = None, bootstrap: int = 200,
            seed: int = 0, analyses: list[str] | None = None) -> Report:
    """Run the study's analyses on ``table`` and write report.md, fits.json and figures/ under ``out_dir``.

    ``analyses``: names from `analysis.registry.ANALYSES` (default: what the table's runs declare).
    An unknown name raises AnalysisError before anything is written.
    """
    if table.empty:
        raise InsufficientDataError("the study table has no rows")
    study = study or study_name(table)
    names = check_names(analyses if analyses is not None else analyses_for(table, study) or [])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(table, out_dir, bootstrap, seed)
    sections = [_run(title, fn, ctx) for title, fn in plan(ctx, names)]
    counts = table["status"].value_counts().to_dict() if "status" in table.columns else {"unknown": len(table)}
    report = Report(study, out_dir, len(table), {str(k): int(v) for k, v in counts.items()}, sections,
                    ctx.roles.to_dict())
    write(report)
    return report


def write(report: Report) -> tuple[Path, Path]:
    """Write report.md and fits.json into the report's folder, each atomically (the harness's writer)."""
    from harness.results import write_atomic

    md = report.out_dir / "report.md"
    fits = report.out_dir / "fits.json"
    write_atomic(fits, json.dumps(report.to_dict(), indent=2) + "\n")
    write_atomic(md, markdown(report))
    return md, fits


def markdown(report: Report) -> str:
    """The report as markdown, figures linked relative to the report's folder."""
    counts = ", ".join(f"{k}: {v}" for k, v in report.status_counts.items())
    cols = report.columns
    out = [f"# Study `{report.study}`", "",
           f"{report.n_runs} runs ({counts}). Loss = `{cols['loss']}`, N = `{cols['N']}`, D = `{cols['D']}`, "
           f"C = `{cols['C']}`. Intervals in brackets are {INTERVAL:.0%} bootstrap percentile intervals unless stated.", "",
           "| analysis | status | result |", "|---|---|---|"]
    out += [f"| {s.title} | {s.status} | {s.headline if s.status == 'ok' else s.reason} |" for s in report.sections]
    for s in report.sections:
        out += ["", f"## {s.title}", ""]
        if s.status != "ok":
            out.append(f"*{s.status}*: {s.reason}")
            continue
        out += s.lines
        for p in s.figures:
            rel = p.relative_to(report.out_dir).as_posix()
            if p.suffix == ".png":
                out += ["", f"![{s.title}]({rel}) ([SVG]({rel[:-4]}.svg))"]
    return "\n".join(out) + "\n"


def log_wandb(report: Report, mode: str = "offline", project: str = "scaling-lab",
              wandb_dir: str | Path | None = None) -> str | None:
    """Log the figures and the fit table to a wandb run in the study's group (job_type "analysis").

    Returns the run's id, or None when disabled or when wandb failed (a warning says why); the
    local report is written before and never depends on this.
    """
    if mode == "disabled":
        return None
    try:
        import wandb

        from harness.tracking import drop_offline, open_wandb

        # One wandb run per report folder, whatever the number of re-runs: resumed online, replaced offline.
        where = f"{report.study}\0{Path(report.out_dir).resolve()}"
        run_id = "analysis-" + hashlib.sha256(where.encode()).hexdigest()[:12]
        drop_offline(Path(wandb_dir or report.out_dir), run_id)
        run = open_wandb(Path(wandb_dir or report.out_dir), project=project, group=report.study, job_type="analysis",
                         mode=mode, name=f"{report.study}-analysis", id=run_id, resume="allow",
                         config={"study": report.study, "n_runs": report.n_runs, **report.columns})
        try:
            rows = [[s.title, s.status, s.headline or s.reason] for s in report.sections]
            run.log({"fits": wandb.Table(columns=["analysis", "status", "result"], data=rows),
                     **{f"figures/{p.stem}": wandb.Image(str(p)) for p in report.figures if p.suffix == ".png"}})
            run.summary.update({f"{s.title}/status": s.status for s in report.sections})
        finally:
            run.finish()
        return run.id
    except Exception as e:  # noqa: BLE001 - wandb may fail in many ways; the report is already on disk
        warnings.warn(f"wandb logging failed: {type(e).__name__}: {e}", stacklevel=2)
        return None
