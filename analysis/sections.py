"""The report's analyses: each fits, draws and writes the prose of one section.

An analysis is ``fn(ctx, section)``: it fills the Section or raises AnalysisError (the section is then reported
as skipped). `analysis.registry` names them for the studies' ``analyses:`` lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from analysis import plots
from analysis.chinchilla import ChinchillaFit, fit_chinchilla
from analysis.columns import first_with_values, roles
from analysis.dp import dp_table
from analysis.isoflop import fit_isoflop
from analysis.laws import INTERVAL
from analysis.lr_batch import fit_lr_batch, throughput_metric, throughput_vs_batch
from analysis.powerlaw import extrapolation_check, fit_power_law
from analysis.prose import fmt, md_table, with_ci
from analysis.systems import architecture_ratio, architecture_table, device_speedup, fit_attention, throughput_vs_params
from analysis.tables import AnalysisError, InsufficientDataError
from harness.flops import training_flops


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


class Context:
    """What the analyses share: the table, the column roles, where figures go, and the approach-3 fit
    (``chinchilla`` leaves it for ``isoflop`` and ``frontier``)."""

    def __init__(self, table: pd.DataFrame, out_dir: Path, bootstrap: int, seed: int):
        self.table, self.out_dir, self.fig_dir = table, out_dir, out_dir / "figures"
        self.bootstrap, self.seed = bootstrap, seed
        self.roles = roles(table)
        self.loss, self.N, self.D, self.C = self.roles.loss, self.roles.N, self.roles.D, self.roles.C
        self.chinchilla: ChinchillaFit | None = None

    def figure(self, name: str) -> Path:
        """The path stem of a figure (a file-name-safe ``name`` under figures/)."""
        return self.fig_dir / "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)

    def compute(self) -> pd.Series:
        """C = 6ND of every run."""
        num = partial(pd.to_numeric, errors="coerce")
        return training_flops(num(self.table[self.N]), num(self.table[self.D]))


Analysis = Callable[[Context, Section], None]


def power_laws(ctx: Context, sec: Section, x: str, rows: pd.DataFrame, label: str) -> None:
    """Both forms, each with bootstrap intervals and an extrapolation check; skipped only if both fail."""
    fits, errors = {}, []
    sec.lines += [f"| form | parameters ({INTERVAL:.0%} bootstrap interval) | objective | "
                  "extrapolation: mean / max abs. rel. error on the held-out largest |", "|---|---|---|---|"]
    for offset, form in ((True, "offset"), (False, "no_offset")):
        try:
            fit = fit_power_law(rows, x, ctx.loss, offset=offset, bootstrap=ctx.bootstrap, seed=ctx.seed)
        except AnalysisError as e:
            errors.append(e)
            sec.lines.append(f"| {ctx.loss} = {'E + ' if offset else ''}A * {x}^-alpha | skipped: {e} | | |")
            continue
        fits[offset] = fit
        params = ", ".join(f"{k} = {with_ci(v, fit.ci.get(k))}" for k, v in fit.params.items())
        try:
            ex = extrapolation_check(rows, lambda d, o=offset: fit_power_law(d, x, ctx.loss, offset=o), x, ctx.loss)
            extra = (f"{ex.mean_abs_rel_error:.2%} / {ex.max_abs_rel_error:.2%} "
                     f"({ex.n_fit} fitted up to {fmt(ex.fit_max)}, {ex.n_holdout} held out)")
            sec.numbers.setdefault("extrapolation", {})[form] = ex.to_dict()
        except AnalysisError as e:
            extra = f"skipped: {e}"
        sec.lines.append(f"| {fit.law} | {params} | {fit.objective:.3g} | {extra} |")
        sec.numbers[form] = fit.to_dict()
    if not fits:
        raise errors[0]
    main = fits.get(True) or fits[False]
    sec.headline = f"{main.law}, α = {with_ci(main.params['alpha'], main.ci.get('alpha'))}"
    if True in fits:
        _entropy_note(sec, rows, fits[True].params["E"])
    sec.figures += plots.plot_power_law(rows, main, ctx.figure(f"{ctx.loss}_vs_{x}_{label}"), title=sec.title,
                                        extra=[f for f in fits.values() if f is not main])


def _entropy_note(sec: Section, rows: pd.DataFrame, E: float) -> None:
    if "entropy_rate" in rows.columns and pd.to_numeric(rows["entropy_rate"], errors="coerce").notna().any():
        h = float(pd.to_numeric(rows["entropy_rate"], errors="coerce").median())
        sec.lines.append(f"\nIrreducible loss E = {fmt(E)} vs the data's entropy rate {fmt(h)} nats/token "
                         f"(the true floor; E - H = {fmt(E - h)}).")
        sec.numbers["entropy_rate"] = h


def chinchilla(ctx: Context, sec: Section) -> None:
    rows = ctx.table
    fit = fit_chinchilla(rows, ctx.N, ctx.D, ctx.loss, bootstrap=ctx.bootstrap, seed=ctx.seed)
    ctx.chinchilla = fit
    a, b = fit.exponents
    sec.lines += ["| parameter | value [" + f"{fit.level:.0%}" + " bootstrap interval] |", "|---|---|"]
    sec.lines += [f"| {k} | {with_ci(v, fit.ci.get(k))} |" for k, v in fit.params.items()]
    sec.lines += [f"| a (N_opt ∝ C^a) | {with_ci(a, fit.ci.get('a'))} |",
                  f"| b (D_opt ∝ C^b) | {with_ci(b, fit.ci.get('b'))} |",
                  f"| G = (αA/(βB))^(1/(α+β)) | {fmt(fit.G)} |", "",
                  f"Summed Huber objective (δ = 1e-3, log residuals): {fit.objective:.4g} "
                  f"over {fit.n_points} runs.", ""]
    C = ctx.compute()
    budgets = float(np.nanmax(C)) * np.array([1.0, 10.0, 100.0])
    n_opt, d_opt = fit.optimal_allocation(budgets)
    alloc = pd.DataFrame({"C (6ND)": budgets, "N_opt": n_opt, "D_opt": d_opt, "tokens per parameter": d_opt / n_opt,
                          "predicted loss": fit.predict(n_opt, d_opt)})
    sec.lines += ["Compute-optimal allocation at the largest budget run and 10x, 100x beyond it:", ""]
    sec.lines += md_table(alloc)
    sec.numbers.update(chinchilla=fit.to_dict(), allocation=alloc.to_dict(orient="records"))
    try:
        by = first_with_values(rows, ("trainer.max_flops",)) or "C = 6ND"  # budgets group runs exactly
        with_c = rows.assign(**{"C = 6ND": C})
        ex = extrapolation_check(with_c, lambda d: fit_chinchilla(d, ctx.N, ctx.D, ctx.loss), by, ctx.loss)
        sec.lines.append(f"\nExtrapolation: fitted on {ex.n_fit} runs with {by} ≤ {fmt(ex.fit_max)}, the "
                         f"{ex.n_holdout} larger runs are predicted with mean / max abs. rel. error "
                         f"{ex.mean_abs_rel_error:.2%} / {ex.max_abs_rel_error:.2%}.")
        sec.numbers["extrapolation"] = ex.to_dict()
    except AnalysisError as e:
        sec.lines.append(f"\nExtrapolation check skipped: {e}")
    _entropy_note(sec, rows, fit.params["E"])
    sec.headline = (f"α = {with_ci(fit.params['alpha'], fit.ci.get('alpha'))}, "
                    f"β = {with_ci(fit.params['beta'], fit.ci.get('beta'))}, a = {with_ci(a, fit.ci.get('a'))}")
    sec.figures += plots.plot_chinchilla(rows, fit, ctx.figure("chinchilla_loss_vs_C"))


def isoflop(ctx: Context, sec: Section) -> None:
    budget = first_with_values(ctx.table, ("trainer.max_flops",))
    if budget is None:
        raise AnalysisError("no FLOP budget column (trainer.max_flops) with values")
    fit = fit_isoflop(ctx.table, ctx.N, ctx.loss, budget, d=ctx.D, bootstrap=ctx.bootstrap, seed=ctx.seed)
    a, b = fit.exponents
    sec.lines += [f"N_opt ∝ C^a with a = {with_ci(a, fit.ci.get('a'))}; "
                  f"D_opt ∝ C^b with b = {with_ci(b, fit.ci.get('b'))} "
                  f"({fit.level:.0%} bootstrap intervals, runs resampled within each budget).", ""]
    sec.lines += md_table(fit.minima[["C", "N_opt", "D_opt", "loss_opt", "n_points"]]
                          .assign(tokens_per_param=fit.minima.D_opt / fit.minima.N_opt))
    for C, why in fit.skipped.items():
        sec.lines.append(f"\nBudget C = {C:.3g} skipped: {why}.")
    if ctx.chinchilla is not None:
        ca, cb = ctx.chinchilla.exponents
        sec.lines.append(f"\nApproach 3 on the same runs gives a = {fmt(ca)}, b = {fmt(cb)}.")
    sec.headline = f"a = {with_ci(a, fit.ci.get('a'))}, b = {with_ci(b, fit.ci.get('b'))}"
    sec.numbers["isoflop"] = fit.to_dict()
    sec.figures += plots.plot_isoflop(ctx.table, fit, ctx.figure("isoflop_profiles"))
    sec.figures += plots.plot_frontier(ctx.chinchilla, ctx.figure("compute_optimal_frontier"), isoflop=fit)


def frontier(ctx: Context, sec: Section) -> None:
    if ctx.chinchilla is None:
        raise AnalysisError("no approach-3 fit to draw a frontier from")
    C = ctx.compute()
    sec.figures += plots.plot_frontier(ctx.chinchilla, ctx.figure("compute_optimal_frontier"),
                                       C_range=(float(np.nanmin(C)), float(np.nanmax(C))))
    sec.headline = "N_opt(C), D_opt(C) from approach 3"


def epochs(ctx: Context, sec: Section) -> None:
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
    sec.lines += md_table(table)
    sec.numbers["repetition"] = table.to_dict(orient="records")
    worst = table.dropna(subset=["penalty"]).sort_values("epochs").tail(1)
    sec.headline = (f"at {worst.epochs.iloc[0]:.3g} epochs the loss is {worst.penalty.iloc[0]:+.1%} vs fresh data"
                    if len(worst) else f"up to {table.epochs.max():.3g} epochs (no fresh-data run to compare)")
    sec.figures += plots.plot_epochs(t, ctx.figure("loss_vs_epochs"), ctx.loss)


def lr_batch(ctx: Context, sec: Section) -> None:
    fit = fit_lr_batch(ctx.table, loss=ctx.loss)
    lo, hi = fit.ci["gamma"]
    gamma = with_ci(fit.gamma, (lo, hi) if np.isfinite(lo) else None)
    sec.lines += [f"LR_opt = {fmt(fit.coefficient)} · B^γ with γ = {gamma}: {fit.verdict}.", "",
                  "Best LR per batch size (parabola in log LR through the best ok run and its neighbours):", ""]
    sec.lines += md_table(fit.best)
    sec.headline = f"γ = {fmt(fit.gamma)}: {fit.verdict}"
    sec.numbers["lr_batch"] = fit.to_dict()
    sec.figures += plots.plot_lr_batch(ctx.table, fit, ctx.figure("lr_batch_heatmap"), loss=ctx.loss)


def throughput_batch(ctx: Context, sec: Section) -> None:
    curve = throughput_vs_batch(ctx.table)
    sec.lines += [f"{curve.metric} reaches {curve.fraction:.0%} of its maximum from batch size "
                  f"{curve.saturation_batch:g} on.", ""]
    sec.lines += md_table(curve.table)
    sec.headline = f"saturates (≥{curve.fraction:.0%} of max) at batch {curve.saturation_batch:g}"
    sec.numbers["throughput_vs_batch"] = curve.to_dict()
    sec.figures += plots.plot_throughput_vs_batch(curve, ctx.figure("throughput_vs_batch"))


def dp(ctx: Context, sec: Section) -> None:
    rows, target = dp_table(ctx.table, ctx.table.attrs.get("study_dir"))
    sec.lines += [f"Per-rank batch fixed, same token budget for every run; target loss {fmt(target)} (the largest "
                  "final training loss, so every run reaches it). time_to_target_s needs the study folder "
                  "(its histories).", ""]
    sec.lines += md_table(rows)
    best = rows.dropna(subset=["val_loss"]).sort_values("val_loss").iloc[0]
    sec.headline = (f"best loss at the budget: world {best['dist.nproc']:g}, rule {best['dp.rule']} "
                    f"(val_loss {fmt(best['val_loss'])})")
    sec.numbers["dp"] = {"target_loss": target, "rows": rows.to_dict(orient="records")}


def attention(ctx: Context, sec: Section) -> None:
    fit = fit_attention(ctx.table)
    if len(fit.exponents):
        sec.lines += ["Cost ∝ n^k over the longer sequence lengths:", ""]
        sec.lines += md_table(fit.exponents)
    if len(fit.crossover):
        sec.lines += ["", "Sequence length where attention's share passes 50% (logit(share) linear in log n; "
                      "'inside' = within the measured lengths):", ""]
        sec.lines += md_table(fit.crossover)
    sec.lines += [f"\nSkipped: {k}: {v}" for k, v in fit.skipped.items()]
    sec.headline = (", ".join(f"{r.impl} {r.metric} k = {r.k:.2f}" for r in fit.exponents.itertuples())
                    or "crossover only")
    sec.numbers["attention"] = fit.to_dict()
    if len(fit.exponents):
        sec.figures += plots.plot_attention(ctx.table, fit, ctx.figure("attention_vs_seq_len"))


def _throughput_ratio(ctx: Context, sec: Section, table_of: Callable[..., pd.DataFrame],
                      plot: Callable[..., list[Path]], key: str, ratio: str, intro: str, what: str) -> None:
    """A table of median throughputs and their ratio per row; ``key`` names its numbers and its figure."""
    metric = throughput_metric(ctx.table)
    table = table_of(ctx.table, metric=metric)
    sec.lines += [intro.format(metric=metric), ""] + md_table(table)
    sec.headline = f"{what} {fmt(table[ratio].min())}–{fmt(table[ratio].max())}×"
    sec.numbers[key] = table.to_dict(orient="records")
    sec.figures += plot(table, ctx.figure(key), metric)


devices = partial(_throughput_ratio, table_of=device_speedup, plot=plots.plot_device_speedup, key="device_speedup",
                  ratio="speedup", intro="Median {metric} per model on each device; speedup = cuda / cpu.",
                  what="GPU/CPU speedup")
lstm_vs_transformer = partial(_throughput_ratio, table_of=architecture_ratio, plot=plots.plot_architectures,
                              key="lstm_vs_transformer", ratio="ratio",
                              intro="Median {metric}; ratio = transformer / lstm.", what="transformer/lstm throughput")


def architectures(ctx: Context, sec: Section) -> None:
    table = architecture_table(ctx.table, loss=ctx.loss)
    sec.lines += ["Medians per architecture at each target size:", ""] + md_table(table)
    sec.numbers["architectures"] = table.to_dict(orient="records")
    sec.headline = f"{table['arch'].nunique()} architectures"
    if ctx.loss in table.columns and table[ctx.loss].notna().any():
        size = "model.target_params" if "model.target_params" in table.columns else None
        rows = table.dropna(subset=[ctx.loss])
        by_size = rows.groupby(size) if size else [(None, rows)]
        sec.headline += "; lowest loss: " + ", ".join(
            str(g.loc[g[ctx.loss].idxmin(), "arch"]) + (f" at {key:g}" if size else "") for key, g in by_size)


def throughput_params(ctx: Context, sec: Section) -> None:
    table, slopes = throughput_vs_params(ctx.table)
    metric = throughput_metric(ctx.table)
    sec.lines += [f"{metric} ∝ params^slope per model and device (t-interval of the slope):", ""]
    sec.lines += md_table(slopes) + ["", f"Median {metric} and MFU per run size:", ""] + md_table(table)
    sec.headline = "; ".join(f"{' '.join(str(r[k]) for k in ('arch', 'device') if k in r)} "
                             f"∝ params^{fmt(r['slope'])}" for r in slopes.to_dict("records")) or "no slope"
    sec.numbers["throughput_vs_params"] = {"slopes": slopes.to_dict(orient="records"),
                                           "table": table.to_dict(orient="records")}
    sec.figures += plots.plot_throughput_vs_params(table, ctx.figure("throughput_vs_params"), metric)
