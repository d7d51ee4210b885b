"""Figures for the report: each function draws one figure and writes it as PNG and SVG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.chinchilla import ChinchillaFit  # noqa: E402
from analysis.isoflop import IsoFlopFit  # noqa: E402
from analysis.laws import (  # noqa: E402
    INTERVAL,
    frontier_loss,
    optimal_allocation,
    percentile_interval,
    power_law,
    replicas,
)
from analysis.lr_batch import LrBatchFit, ThroughputCurve  # noqa: E402
from analysis.powerlaw import PowerLawFit  # noqa: E402
from analysis.systems import AttentionScaling  # noqa: E402
from harness.flops import training_flops  # noqa: E402


def save(fig: plt.Figure, stem: Path) -> list[Path]:
    """Write ``stem``.png and ``stem``.svg and close the figure."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=120)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


def _band(ax, x: np.ndarray, draws: np.ndarray, level: float, color, label: str) -> None:
    """Shade the central ``level`` interval of ``draws`` (replicas x len(x)); overflowed draws are left out."""
    lo, hi = percentile_interval(np.where(np.isfinite(draws), draws, np.nan), level, axis=0)
    ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0, label=label)


def _span(values, extend: float = 1.0) -> np.ndarray:
    lo, hi = np.nanmin(values), np.nanmax(values)
    return np.geomspace(lo, hi * extend, 200)


def plot_power_law(df: pd.DataFrame, fit: PowerLawFit, stem: Path, title: str = "",
                   extra: tuple[PowerLawFit, ...] | list[PowerLawFit] = ()) -> list[Path]:
    """Log-log data and fitted laws (extended 3x past the data), each with its bootstrap band."""
    x, y = fit.columns
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.scatter(df[x], df[y], s=14, color="C0", label="runs", zorder=3)
    grid = _span(pd.to_numeric(df[x], errors="coerce"), extend=3.0)
    for i, f in enumerate([fit, *extra]):
        color = f"C{i + 1}"
        if f.samples is not None and len(f.samples):
            _band(ax, grid, power_law(replicas(f.samples), grid), f.level, color, None)
        p = f.params
        label = (f"{p['E']:.3g} + " if f.offset else "") + f"{p['A']:.3g}·x^-{p['alpha']:.3f}"
        ax.plot(grid, f.predict(grid), color=color, ls="-" if i == 0 else "--", label=label)
    ax.set(xscale="log", yscale="log", xlabel=x, ylabel=y, title=title or fit.law)
    ax.legend(fontsize=8, title=f"shaded: {fit.level:.0%} bootstrap band", title_fontsize=7)
    return save(fig, stem)


def plot_chinchilla(df: pd.DataFrame, fit: ChinchillaFit, stem: Path, compute: str | None = None) -> list[Path]:
    """Loss vs compute (C = 6ND unless a column is named) with the compute-optimal loss L(N_opt, D_opt)."""
    n, d, loss = fit.columns
    C = df[compute] if compute else training_flops(df[n], df[d])
    fig, ax = plt.subplots(figsize=(5.5, 4))
    sc = ax.scatter(C, df[loss], c=np.log10(df[n]), s=14, cmap="viridis", zorder=3)
    fig.colorbar(sc, ax=ax, label=f"log10 {n}")
    grid = _span(C, extend=10.0)
    if fit.samples is not None:
        _band(ax, grid, frontier_loss(replicas(fit.samples), grid), fit.level, "C3", f"{fit.level:.0%} band")
    ax.plot(grid, frontier_loss(fit.params, grid), color="C3", label="compute-optimal L(N_opt, D_opt)")
    ax.set(xscale="log", yscale="log", xlabel="C = 6ND" if compute is None else compute, ylabel=loss,
           title="L = E + A/N^α + B/D^β")
    ax.legend(fontsize=8)
    return save(fig, stem)


def plot_frontier(fit: ChinchillaFit | None, stem: Path, isoflop: IsoFlopFit | None = None,
                  C_range: tuple[float, float] | None = None) -> list[Path]:
    """N_opt(C) and D_opt(C): approach 3 with its band, IsoFLOP minima and their fitted lines."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    lo, hi = C_range or (isoflop.minima["C"].min(), isoflop.minima["C"].max())
    grid = np.geomspace(lo, hi * 10, 200)
    if fit is not None:
        n_opt, d_opt = fit.optimal_allocation(grid)
        a, b = fit.exponents
        if fit.samples is not None:
            n_reps, d_reps = optimal_allocation(replicas(fit.samples), grid)
            _band(ax, grid, n_reps, fit.level, "C0", None)
            _band(ax, grid, d_reps, fit.level, "C1", None)
        ax.plot(grid, n_opt, color="C0", label=f"N_opt ∝ C^{a:.3f} (approach 3)")
        ax.plot(grid, d_opt, color="C1", label=f"D_opt ∝ C^{b:.3f} (approach 3)")
    if isoflop is not None:
        m = isoflop.minima
        n_line, d_line = isoflop.optimal_allocation(grid)
        a, b = isoflop.exponents
        ax.scatter(m["C"], m["N_opt"], marker="o", color="C0", zorder=3)
        ax.scatter(m["C"], m["D_opt"], marker="s", color="C1", zorder=3)
        ax.plot(grid, n_line, "--", color="C0", label=f"N_opt ∝ C^{a:.3f} (IsoFLOP)")
        ax.plot(grid, d_line, "--", color="C1", label=f"D_opt ∝ C^{b:.3f} (IsoFLOP)")
    ax.set(xscale="log", yscale="log", xlabel="C (FLOPs)", ylabel="N_opt, D_opt", title="Compute-optimal frontier")
    ax.legend(fontsize=8)
    return save(fig, stem)


def plot_isoflop(df: pd.DataFrame, fit: IsoFlopFit, stem: Path) -> list[Path]:
    """Loss vs N per budget, each budget's parabola and its minimum."""
    n, loss, budget = fit.columns
    fig, ax = plt.subplots(figsize=(5.5, 4))
    budgets = sorted(df[budget].dropna().unique())
    colors = plt.cm.plasma(np.linspace(0, 0.85, max(len(budgets), 1)))
    minima = fit.minima.set_index("C")
    for color, C in zip(colors, budgets):
        g = df[df[budget] == C]
        ax.scatter(g[n], g[loss], color=color, s=14, label=f"C={C:.2g}")
        if C in minima.index:
            row = minima.loc[C]
            grid = _span(g[n])
            ax.plot(grid, np.polyval((row.p2, row.p1, row.p0), np.log(grid)), color=color, lw=1)
            ax.scatter([row.N_opt], [row.loss_opt], marker="*", s=120, color=color, edgecolor="k", zorder=4)
    ax.set(xscale="log", xlabel=n, ylabel=loss, title="IsoFLOP profiles (★ = minimum)")
    ax.legend(fontsize=7, ncol=2)
    return save(fig, stem)


def plot_lr_batch(df: pd.DataFrame, fit: LrBatchFit | None, stem: Path, lr: str = "optim.lr",
                  batch: str = "trainer.batch_size", loss: str = "val_loss") -> list[Path]:
    """Heatmap of loss over LR x batch (blank = diverged or missing), best LR per batch marked."""
    ok = df[df["status"].eq("ok")] if "status" in df.columns else df
    grid = ok.pivot_table(index=batch, columns=lr, values=loss, aggfunc="median")
    grid = grid.reindex(index=sorted(df[batch].dropna().unique()), columns=sorted(df[lr].dropna().unique()))
    fig, ax = plt.subplots(figsize=(6, 4))
    im = ax.imshow(grid.to_numpy(dtype=float), origin="lower", aspect="auto", cmap="viridis_r")
    fig.colorbar(im, ax=ax, label=loss)
    ax.set_xticks(range(grid.shape[1]), [f"{v:.1e}" for v in grid.columns], rotation=45, fontsize=7)
    ax.set_yticks(range(grid.shape[0]), [f"{v:g}" for v in grid.index], fontsize=7)
    if fit is not None:
        cols = np.log(np.asarray(grid.columns, dtype=float))
        rows = {float(b): i for i, b in enumerate(grid.index)}
        for r in fit.best.itertuples():
            # position of lr_opt between the tried LRs (log scale), as a fractional column index
            x = np.interp(np.log(r.lr_opt), cols, np.arange(len(cols)))
            ax.scatter([x], [rows[r.batch]], marker="*", s=150, color="red", edgecolor="white", zorder=3)
        ax.set_title(f"LR_opt ∝ B^{fit.gamma:.2f} (★ = best LR per batch)")
    ax.set(xlabel=lr, ylabel=batch)
    return save(fig, stem)


def plot_throughput_vs_batch(curve: ThroughputCurve, stem: Path) -> list[Path]:
    """Throughput per batch size with the saturation point."""
    t = curve.table
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(t["batch"], t["throughput"], "o-")
    ax.axvline(curve.saturation_batch, ls="--", color="gray",
               label=f"≥{curve.fraction:.0%} of max from batch {curve.saturation_batch:g}")
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel=curve.metric, title="Throughput vs batch size")
    ax.legend(fontsize=8)
    return save(fig, stem)


def plot_attention(df: pd.DataFrame, fit: AttentionScaling, stem: Path, seq: str = "data.seq_len",
                   impl: str = "model.attention") -> list[Path]:
    """Attention time and memory vs sequence length per implementation, with an n^2 reference line."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("time", "memory")):
        rows = fit.exponents[fit.exponents["metric"] == metric] if len(fit.exponents) else fit.exponents
        anchor = None
        for i, r in enumerate(rows.itertuples()):
            g = df[(df[impl] == r.impl) if impl in df.columns else slice(None)]
            g = g[[seq, r.column]].apply(pd.to_numeric, errors="coerce").dropna()
            g = g[g[r.column] > 0].groupby(seq)[r.column].median()
            ax.plot(g.index, g.values, "o-", color=f"C{i}", label=f"{r.impl}: k = {r.k:.2f}")
            anchor = anchor or (g.index[-1], g.values[-1])
        if anchor is not None:
            n = np.geomspace(df[seq].min(), df[seq].max(), 50)
            ax.plot(n, anchor[1] * (n / anchor[0]) ** 2, "k:", label="∝ n²")
            ax.legend(fontsize=8)
        ax.set(xscale="log", yscale="log", xlabel="sequence length n",
               ylabel=rows["column"].iloc[0] if len(rows) else metric, title=f"Attention {metric} vs n")
    return save(fig, stem)


def plot_device_speedup(table: pd.DataFrame, stem: Path, metric: str) -> list[Path]:
    """CPU vs GPU throughput bars per model, labelled with the speedup."""
    fig, ax = plt.subplots(figsize=(max(5.5, 0.9 * len(table)), 4))
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["cpu"], 0.4, label="cpu")
    ax.bar(x + 0.2, table["cuda"], 0.4, label="cuda")
    for i, s in zip(x, table["speedup"]):
        if np.isfinite(s):
            ax.annotate(f"{s:.1f}×", (i, np.nanmax([table["cpu"].iloc[i], table["cuda"].iloc[i]])),
                        ha="center", va="bottom", fontsize=8)
    names = table.get("model.name", pd.Series([""] * len(table)))
    ax.set_xticks(x, [f"{nm} {p:.2g}" for nm, p in zip(names, table["params"])], rotation=30, fontsize=7)
    ax.set(yscale="log", ylabel=metric, title="GPU vs CPU throughput")
    ax.legend(fontsize=8)
    return save(fig, stem)


def plot_architectures(table: pd.DataFrame, stem: Path, metric: str, seq: str = "data.seq_len") -> list[Path]:
    """LSTM and Transformer throughput vs sequence length, and their ratio."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    groups = table.groupby("device") if "device" in table.columns else [("", table)]
    for dev, g in groups:
        ax.plot(g[seq], g["lstm"], "o-", label=f"LSTM {dev}")
        ax.plot(g[seq], g["transformer"], "s-", label=f"Transformer {dev}")
        ax2.plot(g[seq], g["ratio"], "o-", label=str(dev) or "ratio")
    ax.set(xscale="log", yscale="log", xlabel="sequence length", ylabel=metric, title="Throughput vs sequence length")
    ax2.axhline(1, color="gray", ls=":")
    ax2.set(xscale="log", xlabel="sequence length", ylabel="transformer / lstm", title="Throughput ratio")
    ax.legend(fontsize=8)
    ax2.legend(fontsize=8)
    return save(fig, stem)


def plot_throughput_vs_params(table: pd.DataFrame, stem: Path, metric: str) -> list[Path]:
    """Throughput and MFU against parameters, per model and device."""
    has_mfu = "mfu" in table.columns and table["mfu"].notna().any()
    fig, axes = plt.subplots(1, 2 if has_mfu else 1, figsize=(10 if has_mfu else 5.5, 4), squeeze=False)
    keys = [c for c in ("arch", "device") if c in table.columns]
    groups = table.groupby(keys, dropna=False) if keys else [("all", table)]
    for name, g in groups:
        label = " ".join(map(str, name)) if isinstance(name, tuple) else str(name)
        axes[0, 0].plot(g["params"], g[metric], "o-", label=label)
        if has_mfu:
            axes[0, 1].plot(g["params"], g["mfu"], "o-", label=label)
    axes[0, 0].set(xscale="log", yscale="log", xlabel="params", ylabel=metric, title=f"{metric} vs parameters")
    axes[0, 0].legend(fontsize=8)
    if has_mfu:
        axes[0, 1].set(xscale="log", xlabel="params", ylabel="MFU", title="MFU vs parameters")
    return save(fig, stem)


def plot_forecast(registered: dict, targets: pd.DataFrame, stem: Path) -> list[Path]:
    """Loss (and loss minus the known floor, log axis) against compute: the ladder, approach 3's
    compute-optimal frontier with its ``INTERVAL`` band, each law's pre-registered interval and the measured targets."""
    floor = registered.get("loss_floor")
    panels = 2 if floor is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2), squeeze=False)
    ladder = pd.DataFrame(registered["ladder"])
    band = registered["laws"].get("approach3", {}).get("frontier")
    for k, ax in enumerate(axes[0]):
        shift = floor if k == 1 else 0.0
        c = training_flops(ladder["params"], ladder["tokens"])
        ax.scatter(c, ladder["val_loss"] - shift, s=12, color="0.55", label="ladder (fitted)")
        if band:
            ax.plot(band["C"], np.array(band["mid"]) - shift, color="C0", label="approach 3 frontier")
            if "lo" in band:
                ax.fill_between(band["C"], np.array(band["lo"]) - shift, np.array(band["hi"]) - shift,
                                color="C0", alpha=0.2, lw=0, label=f"{INTERVAL:.0%} band")
        for j, law in enumerate(("approach3", "no_offset", "frontier", "approach2")):
            rows = [f for f in registered["forecasts"] if f["law"] == law]
            for i, f in enumerate(rows):
                lo, hi = f["interval90"]
                x = f["compute"] * (1 + 0.06 * (j - 1.5))  # side by side at each target
                # a biased bootstrap can leave the point estimate outside its own interval: draw the interval
                yerr = None if lo is None else [[max(f["predicted"] - lo, 0)], [max(hi - f["predicted"], 0)]]
                ax.errorbar([x], [f["predicted"] - shift], yerr=yerr, fmt="o", ms=4, capsize=3, color=f"C{j + 1}",
                            label=f"{law} forecast" if i == 0 else None)
        if len(targets):
            m = targets.groupby("target").agg(c=("trainer.max_flops", "mean"), mean=("val_loss", "mean"),
                                              std=("val_loss", "std"))
            ax.errorbar(m["c"], m["mean"] - shift, yerr=m["std"].fillna(0), fmt="*", ms=11, color="k",
                        capsize=3, label="measured (mean ± sd over seeds)")
        ax.set(xscale="log", xlabel="C = 6ND (FLOPs)")
        if k == 1:
            ax.set(yscale="log", ylabel="val_loss − known floor (nats)", title="Reducible loss")
        else:
            ax.set(ylabel="val_loss (nats)", title="Forecast vs held-out runs")
            ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, stem)


def plot_epochs(table: pd.DataFrame, stem: Path, loss: str = "val_loss") -> list[Path]:
    """Loss against epochs (tokens read / unique tokens), one line per size and amount of unique data."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    keys = [c for c in ("params", "unique_train_tokens") if c in table]
    for i, (k, g) in enumerate(table.dropna(subset=["epochs", loss]).groupby(keys)):
        g = g.sort_values("epochs")
        label = f"N={k[0]:.3g}, unique={k[1]:.3g}" if len(keys) == 2 else f"N={k:.3g}"
        ax.plot(g["epochs"], g[loss], "o-", color=f"C{i % 10}", label=label)
    ax.axvline(1, color="0.6", lw=0.8, ls=":")
    ax.set(xscale="log", xlabel="epochs (tokens read / unique tokens)", ylabel=loss, title="Loss vs epochs")
    ax.legend(fontsize=7)
    return save(fig, stem)
