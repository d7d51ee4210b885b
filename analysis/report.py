"""A study table -> fits, figures (PNG + SVG), report.md and fits.json; optionally a wandb run.

The analyses follow the table's ``study`` column when it names a known study
(params, data, isoflop, batch_lr, devices, attention, architectures, seqlen); otherwise
every analysis the columns allow is tried. Loss is ``val_loss``, N is ``params``,
D is ``tokens`` (``samples`` for tasks without tokens), C is ``flops_total``.
An analysis that lacks data is reported as skipped with the reason; one that
fails unexpectedly is reported as an error; neither stops the others.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from analysis import plots
from analysis.chinchilla import ChinchillaFit, fit_chinchilla
from analysis.dp import dp_table
from analysis.data import AnalysisError, InsufficientDataError, json_ready
from analysis.isoflop import fit_isoflop
from analysis.lr_batch import fit_lr_batch, throughput_metric, throughput_vs_batch
from analysis.powerlaw import extrapolation_check, fit_power_law
from analysis.systems import (
    architecture_ratio,
    architecture_table,
    device_speedup,
    fit_attention,
    throughput_vs_params,
)

@dataclass
class Section:
    """One analysis: its markdown, its numbers for fits.json and its figures."""

    title: str
    status: str = "ok"  # ok | skipped | error
    reason: str = ""
    headline: str = ""
    lines: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)


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


class _Context:
    """The table, where figures go, and the column roles, shared by the analyses."""

    def __init__(self, table: pd.DataFrame, out_dir: Path, bootstrap: int, seed: int):
        self.table, self.out_dir, self.fig_dir = table, out_dir, out_dir / "figures"
        self.bootstrap, self.seed = bootstrap, seed
        self.loss = _first_with_values(table, ("val_loss", "train_loss", "loss")) or "val_loss"
        self.N = "params"
        self.D = _first_with_values(table, ("tokens", "samples")) or "tokens"
        self.C = "flops_total"
        self.chinchilla: ChinchillaFit | None = None

    def groups(self, by: tuple[str, ...] = ("model.name", "model.cell")) -> list[tuple[str, pd.DataFrame]]:
        """(label, rows) per model name and per combination of the other ``by`` columns that vary."""
        t = self.table
        keys = [c for c in by if c in t.columns and (c == "model.name" or t[c].nunique() > 1)]
        if not keys:
            return [("all", t)]
        t = t.assign(**{k: t[k].fillna("-") for k in keys})
        return [(", ".join(_label(k, v) for k, v in zip(keys, key) if v != "-"), g)
                for key, g in t.groupby(keys)]  # a list of keys: each key is a tuple

    def figure(self, name: str) -> Path:
        return self.fig_dir / "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def _label(column: str, value: Any) -> str:
    """'transformer' for model names, 'target_params=3e+04' for other columns."""
    if column == "model.name":
        return str(value)
    return f"{column.rsplit('.', 1)[-1]}={value:g}" if isinstance(value, (int, float)) else f"{value}"


def _first_with_values(table: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    for c in names:
        if c in table.columns and pd.to_numeric(table[c], errors="coerce").notna().any():
            return c
    return None


def _varies(table: pd.DataFrame, col: str, at_least: int = 3) -> bool:
    return col in table.columns and pd.to_numeric(table[col], errors="coerce").nunique() >= at_least


def _fmt(v: float) -> str:
    return "nan" if v is None or not np.isfinite(v) else f"{v:.4g}"


def _with_ci(v: float, ci: tuple[float, float] | None) -> str:
    return _fmt(v) + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "")


def _md_table(df: pd.DataFrame) -> list[str]:
    cols = list(df.columns)
    out = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        out.append("| " + " | ".join(_fmt(v) if isinstance(v, (float, np.floating)) else str(v) for v in row) + " |")
    return out


# --- analyses: each fills a Section or raises AnalysisError (-> skipped) ---------------------------------


def _power_laws(ctx: _Context, sec: Section, x: str, rows: pd.DataFrame, label: str) -> None:
    """Both forms, each with bootstrap intervals and an extrapolation check; skipped only if both fail."""
    fits, errors = {}, []
    sec.lines += ["| form | parameters (95% bootstrap interval) | objective | "
                  "extrapolation: mean / max abs. rel. error on the held-out largest |", "|---|---|---|---|"]
    for offset, form in ((True, "offset"), (False, "no_offset")):
        try:
            fit = fit_power_law(rows, x, ctx.loss, offset=offset, bootstrap=ctx.bootstrap, seed=ctx.seed)
        except AnalysisError as e:
            errors.append(e)
            sec.lines.append(f"| {ctx.loss} = {'E + ' if offset else ''}A * {x}^-alpha | skipped: {e} | | |")
            continue
        fits[offset] = fit
        params = ", ".join(f"{k} = {_with_ci(v, fit.ci.get(k))}" for k, v in fit.params.items())
        try:
            ex = extrapolation_check(rows, lambda d, o=offset: fit_power_law(d, x, ctx.loss, offset=o), x, ctx.loss)
            extra = (f"{ex.mean_abs_rel_error:.2%} / {ex.max_abs_rel_error:.2%} "
                     f"({ex.n_fit} fitted up to {_fmt(ex.fit_max)}, {ex.n_holdout} held out)")
            sec.numbers.setdefault("extrapolation", {})[form] = ex.to_dict()
        except AnalysisError as e:
            extra = f"skipped: {e}"
        sec.lines.append(f"| {fit.law} | {params} | {fit.objective:.3g} | {extra} |")
        sec.numbers[form] = fit.to_dict()
    if not fits:
        raise errors[0]
    main = fits.get(True) or fits[False]
    sec.headline = f"{main.law}, α = {_with_ci(main.params['alpha'], main.ci.get('alpha'))}"
    if True in fits:
        _entropy_note(ctx, sec, rows, fits[True].params["E"])
    sec.figures += plots.plot_power_law(rows, main, ctx.figure(f"{ctx.loss}_vs_{x}_{label}"), title=sec.title,
                                        extra=[f for f in fits.values() if f is not main])


def _entropy_note(ctx: _Context, sec: Section, rows: pd.DataFrame, E: float) -> None:
    if "entropy_rate" in rows.columns and pd.to_numeric(rows["entropy_rate"], errors="coerce").notna().any():
        h = float(pd.to_numeric(rows["entropy_rate"], errors="coerce").median())
        sec.lines.append(f"\nIrreducible loss E = {_fmt(E)} vs the data's entropy rate {_fmt(h)} nats/token "
                         f"(the true floor; E - H = {_fmt(E - h)}).")
        sec.numbers["entropy_rate"] = h


def _chinchilla(ctx: _Context, sec: Section) -> None:
    rows = ctx.table
    fit = fit_chinchilla(rows, ctx.N, ctx.D, ctx.loss, bootstrap=ctx.bootstrap, seed=ctx.seed)
    ctx.chinchilla = fit
    a, b = fit.exponents
    sec.lines += ["| parameter | value [" + f"{fit.level:.0%}" + " bootstrap interval] |", "|---|---|"]
    sec.lines += [f"| {k} | {_with_ci(v, fit.ci.get(k))} |" for k, v in fit.params.items()]
    sec.lines += [f"| a (N_opt ∝ C^a) | {_with_ci(a, fit.ci.get('a'))} |",
                  f"| b (D_opt ∝ C^b) | {_with_ci(b, fit.ci.get('b'))} |",
                  f"| G = (αA/(βB))^(1/(α+β)) | {_fmt(fit.G)} |", "",
                  f"Summed Huber objective (δ = 1e-3, log residuals): {fit.objective:.4g} "
                  f"over {fit.n_points} runs.", ""]
    C = 6 * pd.to_numeric(rows[ctx.N], errors="coerce") * pd.to_numeric(rows[ctx.D], errors="coerce")
    budgets = float(np.nanmax(C)) * np.array([1.0, 10.0, 100.0])
    n_opt, d_opt = fit.optimal_allocation(budgets)
    alloc = pd.DataFrame({"C (6ND)": budgets, "N_opt": n_opt, "D_opt": d_opt, "tokens per parameter": d_opt / n_opt,
                          "predicted loss": fit.predict(n_opt, d_opt)})
    sec.lines += ["Compute-optimal allocation at the largest budget run and 10x, 100x beyond it:", ""]
    sec.lines += _md_table(alloc)
    sec.numbers.update(chinchilla=fit.to_dict(), allocation=alloc.to_dict(orient="records"))
    try:
        by = _first_with_values(rows, ("trainer.max_flops",)) or "C = 6ND"  # budgets group runs exactly
        with_c = rows.assign(**{"C = 6ND": C})
        ex = extrapolation_check(with_c, lambda d: fit_chinchilla(d, ctx.N, ctx.D, ctx.loss), by, ctx.loss)
        sec.lines.append(f"\nExtrapolation: fitted on {ex.n_fit} runs with {by} ≤ {_fmt(ex.fit_max)}, the "
                         f"{ex.n_holdout} larger runs are predicted with mean / max abs. rel. error "
                         f"{ex.mean_abs_rel_error:.2%} / {ex.max_abs_rel_error:.2%}.")
        sec.numbers["extrapolation"] = ex.to_dict()
    except AnalysisError as e:
        sec.lines.append(f"\nExtrapolation check skipped: {e}")
    _entropy_note(ctx, sec, rows, fit.params["E"])
    sec.headline = (f"α = {_with_ci(fit.params['alpha'], fit.ci.get('alpha'))}, "
                    f"β = {_with_ci(fit.params['beta'], fit.ci.get('beta'))}, a = {_with_ci(a, fit.ci.get('a'))}")
    sec.figures += plots.plot_chinchilla(rows, fit, ctx.figure("chinchilla_loss_vs_C"))


def _isoflop(ctx: _Context, sec: Section) -> None:
    budget = _first_with_values(ctx.table, ("trainer.max_flops",))
    if budget is None:
        raise AnalysisError("no FLOP budget column (trainer.max_flops) with values")
    fit = fit_isoflop(ctx.table, ctx.N, ctx.loss, budget, d=ctx.D, bootstrap=ctx.bootstrap, seed=ctx.seed)
    a, b = fit.exponents
    sec.lines += [f"N_opt ∝ C^a with a = {_with_ci(a, fit.ci.get('a'))}; "
                  f"D_opt ∝ C^b with b = {_with_ci(b, fit.ci.get('b'))} "
                  f"({fit.level:.0%} bootstrap intervals, runs resampled within each budget).", ""]
    sec.lines += _md_table(fit.minima[["C", "N_opt", "D_opt", "loss_opt", "n_points"]]
                           .assign(tokens_per_param=fit.minima.D_opt / fit.minima.N_opt))
    for C, why in fit.skipped.items():
        sec.lines.append(f"\nBudget C = {C:.3g} skipped: {why}.")
    if ctx.chinchilla is not None:
        ca, cb = ctx.chinchilla.exponents
        sec.lines.append(f"\nApproach 3 on the same runs gives a = {_fmt(ca)}, b = {_fmt(cb)}.")
    sec.headline = f"a = {_with_ci(a, fit.ci.get('a'))}, b = {_with_ci(b, fit.ci.get('b'))}"
    sec.numbers["isoflop"] = fit.to_dict()
    sec.figures += plots.plot_isoflop(ctx.table, fit, ctx.figure("isoflop_profiles"))
    sec.figures += plots.plot_frontier(ctx.chinchilla, ctx.figure("compute_optimal_frontier"), isoflop=fit)


def _frontier_only(ctx: _Context, sec: Section) -> None:
    if ctx.chinchilla is None:
        raise AnalysisError("no approach-3 fit to draw a frontier from")
    C = 6 * pd.to_numeric(ctx.table[ctx.N], errors="coerce") * pd.to_numeric(ctx.table[ctx.D], errors="coerce")
    sec.figures += plots.plot_frontier(ctx.chinchilla, ctx.figure("compute_optimal_frontier"),
                                       C_range=(float(np.nanmin(C)), float(np.nanmax(C))))
    sec.headline = "N_opt(C), D_opt(C) from approach 3"


def _lr_batch(ctx: _Context, sec: Section) -> None:
    fit = fit_lr_batch(ctx.table, loss=ctx.loss)
    lo, hi = fit.ci["gamma"]
    gamma = _with_ci(fit.gamma, (lo, hi) if np.isfinite(lo) else None)
    sec.lines += [f"LR_opt = {_fmt(fit.coefficient)} · B^γ with γ = {gamma}: {fit.verdict}.", "",
                  "Best LR per batch size (parabola in log LR through the best ok run and its neighbours):", ""]
    sec.lines += _md_table(fit.best)
    sec.headline = f"γ = {_fmt(fit.gamma)}: {fit.verdict}"
    sec.numbers["lr_batch"] = fit.to_dict()
    sec.figures += plots.plot_lr_batch(ctx.table, fit, ctx.figure("lr_batch_heatmap"), loss=ctx.loss)


def _throughput_batch(ctx: _Context, sec: Section) -> None:
    curve = throughput_vs_batch(ctx.table)
    sec.lines += [f"{curve.metric} reaches {curve.fraction:.0%} of its maximum from batch size "
                  f"{curve.saturation_batch:g} on.", ""]
    sec.lines += _md_table(curve.table)
    sec.headline = f"saturates (≥{curve.fraction:.0%} of max) at batch {curve.saturation_batch:g}"
    sec.numbers["throughput_vs_batch"] = curve.to_dict()
    sec.figures += plots.plot_throughput_vs_batch(curve, ctx.figure("throughput_vs_batch"))


def _dp(ctx: _Context, sec: Section) -> None:
    rows, target = dp_table(ctx.table, ctx.table.attrs.get("study_dir"))
    sec.lines += [f"Per-rank batch fixed, same token budget for every run; target loss {_fmt(target)} (the largest "
                  "final training loss, so every run reaches it). time_to_target_s needs the study folder "
                  "(its histories).", ""]
    sec.lines += _md_table(rows)
    best = rows.dropna(subset=["val_loss"]).sort_values("val_loss").iloc[0]
    sec.headline = (f"best loss at the budget: world {best['dist.nproc']:g}, rule {best['dp.rule']} "
                    f"(val_loss {_fmt(best['val_loss'])})")
    sec.numbers["dp"] = {"target_loss": target, "rows": rows.to_dict(orient="records")}


def _attention(ctx: _Context, sec: Section) -> None:
    fit = fit_attention(ctx.table)
    if len(fit.exponents):
        sec.lines += ["Cost ∝ n^k over the longer sequence lengths:", ""]
        sec.lines += _md_table(fit.exponents)
    if len(fit.crossover):
        sec.lines += ["", "Sequence length where attention's share passes 50% (logit(share) linear in log n; "
                      "'inside' = within the measured lengths):", ""]
        sec.lines += _md_table(fit.crossover)
    sec.lines += [f"\nSkipped: {k}: {v}" for k, v in fit.skipped.items()]
    sec.headline = (", ".join(f"{r.impl} {r.metric} k = {r.k:.2f}" for r in fit.exponents.itertuples())
                    or "crossover only")
    sec.numbers["attention"] = fit.to_dict()
    if len(fit.exponents):
        sec.figures += plots.plot_attention(ctx.table, fit, ctx.figure("attention_vs_seq_len"))


def _devices(ctx: _Context, sec: Section) -> None:
    metric = throughput_metric(ctx.table)
    table = device_speedup(ctx.table, metric=metric)
    sec.lines += [f"Median {metric} per model on each device; speedup = cuda / cpu.", ""]
    sec.lines += _md_table(table)
    sec.headline = f"GPU/CPU speedup {_fmt(table['speedup'].min())}–{_fmt(table['speedup'].max())}×"
    sec.numbers["device_speedup"] = table.to_dict(orient="records")
    sec.figures += plots.plot_device_speedup(table, ctx.figure("device_speedup"), metric)


def _architectures(ctx: _Context, sec: Section) -> None:
    metric = throughput_metric(ctx.table)
    table = architecture_ratio(ctx.table, metric=metric)
    sec.lines += [f"Median {metric}; ratio = transformer / lstm.", ""]
    sec.lines += _md_table(table)
    sec.headline = f"transformer/lstm throughput {_fmt(table['ratio'].min())}–{_fmt(table['ratio'].max())}×"
    sec.numbers["lstm_vs_transformer"] = table.to_dict(orient="records")
    sec.figures += plots.plot_architectures(table, ctx.figure("lstm_vs_transformer"), metric)


def _architecture_table(ctx: _Context, sec: Section) -> None:
    table = architecture_table(ctx.table, loss=ctx.loss)
    sec.lines += ["Medians per architecture at each target size:", ""] + _md_table(table)
    sec.numbers["architectures"] = table.to_dict(orient="records")
    sec.headline = f"{table['arch'].nunique()} architectures"
    if ctx.loss in table.columns and table[ctx.loss].notna().any():
        size = "model.target_params" if "model.target_params" in table.columns else None
        groups = table.dropna(subset=[ctx.loss]).groupby(size) if size else [(None, table.dropna(subset=[ctx.loss]))]
        sec.headline += "; lowest loss: " + ", ".join(
            str(g.loc[g[ctx.loss].idxmin(), "arch"]) + (f" at {key:g}" if size else "") for key, g in groups)


def _throughput_params(ctx: _Context, sec: Section) -> None:
    table, slopes = throughput_vs_params(ctx.table)
    metric = throughput_metric(ctx.table)
    sec.lines += [f"{metric} ∝ params^slope per model and device (t-interval of the slope):", ""]
    sec.lines += _md_table(slopes) + ["", f"Median {metric} and MFU per run size:", ""] + _md_table(table)
    sec.headline = "; ".join(f"{' '.join(str(r[k]) for k in ('arch', 'device') if k in r)} "
                             f"∝ params^{_fmt(r['slope'])}" for r in slopes.to_dict("records")) or "no slope"
    sec.numbers["throughput_vs_params"] = {"slopes": slopes.to_dict(orient="records"),
                                           "table": table.to_dict(orient="records")}
    sec.figures += plots.plot_throughput_vs_params(table, ctx.figure("throughput_vs_params"), metric)


# --- which analyses a study gets -------------------------------------------------------------------------


Analysis = Callable[[_Context, Section], None]


def _epochs(ctx: _Context, sec: Section) -> None:
    """Repetition as a measured effect: each run that read its data more than once against the fresh-data run
    of the same size at the same tokens (the `data` study's data-limited variant)."""
    t = ctx.table
    if "epochs" not in t or not (pd.to_numeric(t["epochs"], errors="coerce") > 1).any():
        raise InsufficientDataError("no run read its data more than once (epochs <= 1 in every run)")
    key = [c for c in ("model.name", "model.target_params", ctx.D) if c in t]
    fresh = t[t["epochs"] <= 1].groupby(key)[ctx.loss].mean()
    rows = []
    for _, r in t[t["epochs"] > 1].sort_values(["epochs"]).iterrows():
        ref = fresh.get(tuple(r[k] for k in key))
        rows.append({"params": r["params"], "unique tokens": r.get("unique_train_tokens"), "tokens": r[ctx.D],
                     "epochs": r["epochs"], ctx.loss: r[ctx.loss], f"fresh-data {ctx.loss}": ref,
                     "penalty": None if ref is None or not np.isfinite(ref) else r[ctx.loss] / ref - 1})
    table = pd.DataFrame(rows)
    sec.lines += _md_table(table)
    sec.numbers["repetition"] = table.to_dict(orient="records")
    worst = table.dropna(subset=["penalty"]).sort_values("epochs").tail(1)
    sec.headline = (f"at {worst.epochs.iloc[0]:.3g} epochs the loss is {worst.penalty.iloc[0]:+.1%} vs fresh data"
                    if len(worst) else f"up to {table.epochs.max():.3g} epochs (no fresh-data run to compare)")
    sec.figures += plots.plot_epochs(t, ctx.figure("loss_vs_epochs"), ctx.loss)


def _power_law_plan(ctx: _Context, x: str, by: tuple[str, ...] = ("model.name", "model.cell")):
    return [(f"{ctx.loss} vs {x} ({label})", lambda c, s, x=x, rows=rows, lb=label: _power_laws(c, s, x, rows, lb))
            for label, rows in ctx.groups(by)]


def _plan(study: str, ctx: _Context) -> list[tuple[str, Analysis]]:
    t = ctx.table
    plans: dict[str, list[tuple[str, Analysis]]] = {
        "params": _power_law_plan(ctx, ctx.N),
        # one curve per model size and per amount of unique data (the data-limited variant)
        "data": [*_power_law_plan(ctx, ctx.D, ("model.name", "model.target_params", "data.train_tokens")),
                 ("Loss vs epochs (repeated data)", _epochs)],
        "isoflop": [("Chinchilla approach 3", _chinchilla), ("IsoFLOP (approach 2) and frontier", _isoflop)],
        "batch_lr": [("Learning rate vs batch size", _lr_batch), ("Throughput vs batch size", _throughput_batch)],
        "devices": [("GPU vs CPU", _devices), ("Throughput and MFU vs parameters", _throughput_params)],
        "attention": [("Attention cost vs sequence length", _attention)],
        "architectures": [("Architectures at matched size", _architecture_table),
                          *_power_law_plan(ctx, ctx.N),
                          ("LSTM vs Transformer", _architectures),
                          ("Throughput and MFU vs parameters", _throughput_params)],
        "seqlen": [("LSTM vs Transformer", _architectures)],
        "dp": [("Data parallel: LR scaling rules", _dp)],
    }
    if study in plans:
        return plans[study]
    plan = [p for x in (ctx.N, ctx.D, ctx.C) if _varies(t, x) for p in _power_law_plan(ctx, x, ("model.name",))]
    if _varies(t, ctx.N) and _varies(t, ctx.D):
        plan += [("Chinchilla approach 3", _chinchilla), ("Compute-optimal frontier", _frontier_only)]
    if _varies(t, "trainer.max_flops", 2):
        plan.append(("IsoFLOP (approach 2) and frontier", _isoflop))
    if _varies(t, "optim.lr", 2) and _varies(t, "trainer.batch_size", 2):
        plan.append(("Learning rate vs batch size", _lr_batch))
    if _varies(t, "trainer.batch_size", 2):
        plan.append(("Throughput vs batch size", _throughput_batch))
    if _varies(t, "params", 2) and _first_with_values(t, ("tokens_per_s", "samples_per_s")):
        plan.append(("Throughput and MFU vs parameters", _throughput_params))
    return plan or [("Loss vs parameters", lambda c, s: _power_laws(c, s, c.N, c.table, "all"))]


def _run(title: str, analysis: Analysis, ctx: _Context) -> Section:
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


def analyze(table: pd.DataFrame, out_dir: str | Path, study: str | None = None,
            bootstrap: int = 200, seed: int = 0) -> Report:
    """Run the study's analyses on ``table`` and write report.md, fits.json and figures/ under ``out_dir``."""
    if table.empty:
        raise InsufficientDataError("the study table has no rows")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    study = study or study_name(table)
    ctx = _Context(table, out_dir, bootstrap, seed)
    sections = [_run(title, fn, ctx) for title, fn in _plan(study, ctx)]
    counts = table["status"].value_counts().to_dict() if "status" in table.columns else {"unknown": len(table)}
    report = Report(study, out_dir, len(table), {str(k): int(v) for k, v in counts.items()}, sections,
                    {"loss": ctx.loss, "N": ctx.N, "D": ctx.D, "C": ctx.C})
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
           f"C = `{cols['C']}`. Intervals in brackets are 95% bootstrap percentile intervals unless stated.", "",
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

        wandb_dir = Path(wandb_dir or report.out_dir)
        wandb_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("WANDB_SILENT", "true")
        run = wandb.init(project=project, group=report.study, job_type="analysis", mode=mode,
                         name=f"{report.study}-analysis", dir=str(wandb_dir), reinit="create_new",
                         settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
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
