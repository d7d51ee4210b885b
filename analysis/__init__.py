"""Scaling-law fits and study reports.

    from analysis import fit_power_law, fit_chinchilla, fit_isoflop
    fit = fit_chinchilla(df, n="N", d="D", loss="loss", bootstrap=0, seed=0)
    fit.params, fit.objective, fit.ci, fit.predict(N, D), fit.optimal_allocation(C), fit.exponents
    from analysis import laws     # the laws' maths, vectorised over bootstrap replicas; INTERVAL, the one level
    plan = plan_cost("runs/isoflop/report/fits.json", compute=1e21, gpu="H100", gpus=64)   # harness-cost

Plots and reports (matplotlib) live in ``analysis.plots``, ``analysis.sections`` and ``analysis.report`` and are
imported on use.
"""

from analysis.chinchilla import (
    EPOCH,
    HOFFMANN,
    ChinchillaFit,
    chinchilla_grid,
    chinchilla_objective,
    fit_chinchilla,
)
from analysis.cost import CostPlan, load_law, plan_cost
from analysis.isoflop import IsoFlopFit, fit_isoflop
from analysis.laws import INTERVAL, chinchilla_loss
from analysis.lr_batch import LrBatchFit, ThroughputCurve, fit_lr_batch, throughput_vs_batch
from analysis.powerlaw import ExtrapolationCheck, PowerLawFit, extrapolation_check, fit_power_law
from analysis.systems import (
    AttentionScaling,
    architecture_ratio,
    device_speedup,
    fit_attention,
    throughput_vs_params,
)
from analysis.tables import AnalysisError, DataWarning, InsufficientDataError, load_table
from harness.memory import memory_per_gpu  # the one memory model (torch-free, shared with harness-plan)

__all__ = [
    "AnalysisError", "AttentionScaling", "ChinchillaFit", "CostPlan", "DataWarning", "EPOCH", "ExtrapolationCheck",
    "HOFFMANN", "INTERVAL", "InsufficientDataError", "IsoFlopFit", "LrBatchFit", "PowerLawFit", "ThroughputCurve",
    "architecture_ratio", "chinchilla_grid", "chinchilla_loss", "chinchilla_objective", "device_speedup",
    "extrapolation_check", "fit_attention", "fit_chinchilla", "fit_isoflop", "fit_lr_batch", "fit_power_law",
    "load_law", "load_table", "memory_per_gpu", "plan_cost", "throughput_vs_batch", "throughput_vs_params",
]
