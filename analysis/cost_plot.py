"""The cost-of-scale figure: predicted loss against money and against compute along the compute-optimal
frontier, with the law's interval band, the planned run, and where each halving of the reducible loss lands."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from analysis.plots import plt, save


def plot_cost_frontier(plan: Any, stem: Path) -> list[Path]:
    """Two panels (loss vs USD, loss vs FLOPs) of an `analysis.cost.CostPlan`, written as ``stem``.png and
    ``stem``.svg (the plan is not imported here: analysis.cost imports this module)."""
    f, h = plan.frontier, plan.halvings
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, x, hx, target, label in ((axes[0], f["usd"], h["USD"], plan.figures["usd"], "cost (USD)"),
                                     (axes[1], f["C"], h["C"], plan.figures["flops"], "compute C (FLOPs)")):
        if "loss_lo" in f:
            ax.fill_between(x, f["loss_lo"], f["loss_hi"], color="C0", alpha=0.2, lw=0,
                            label=f"{plan.level:.0%} band (bootstrap)")
        ax.plot(x, f["loss"], color="C0", label="predicted loss, compute-optimal")
        ax.scatter(hx, h["loss"], marker="v", color="C3", zorder=3, label="each halving of L − E")
        ax.axhline(plan.figures["E"], color="grey", ls=":", lw=1, label=f"floor E = {plan.figures['E']:.3g}")
        ax.axvline(target, color="C2", ls="--", lw=1, label="planned run")
        ax.set(xscale="log", xlabel=label, ylabel="predicted loss")
    fitted = plan.law.fit_range.get("C") if plan.law is not None else None
    if fitted and math.isfinite(fitted[1]):
        lo = fitted[0] if math.isfinite(fitted[0]) else fitted[1]
        axes[1].axvspan(lo, fitted[1], color="grey", alpha=0.15, lw=0, label="fitted runs")
        axes[1].legend(fontsize=7)
    axes[0].set_title(f"{plan.figures['halving_note'].split(':')[0]}: ×{plan.figures['compute_per_halving']:.3g} "
                      "compute per halving", fontsize=9)
    axes[1].set_title(plan.figures["flops_convention"], fontsize=9)
    axes[0].legend(fontsize=7)
    return save(fig, stem)
