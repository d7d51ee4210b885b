"""The analyses a study can name in its sweep file (``analyses: [chinchilla, isoflop]``), and the default.

``ANALYSES`` maps each name to the sections it makes, in the order listed: one section each, except the power
laws, which make one per model group. ``frontier`` is optional (no sweep names it; the default uses it): it draws
approach 3's frontier and needs ``chinchilla`` before it, as ``isoflop`` does to compare with approach 3.
An empty list means `by_columns`: every analysis the table's columns allow.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Iterable

from analysis import sections as s
from analysis.columns import first_with_values, groups, varies
from analysis.tables import AnalysisError

Plan = list[tuple[str, s.Analysis]]  # (section title, analysis) in report order
DATA_GROUPS = ("model.name", "model.target_params", "data.train_tokens")  # a curve per size and unique data


def power_laws(ctx: s.Context, x: str, by: tuple[str, ...] = ("model.name", "model.cell")) -> Plan:
    """Loss vs column ``x``: a section per group of runs (`analysis.columns.groups`)."""
    return [(f"{ctx.loss} vs {x} ({label})", partial(s.power_laws, x=x, rows=rows, label=label))
            for label, rows in groups(ctx.table, by)]


def _one(title: str, analysis: s.Analysis) -> Callable[[s.Context], Plan]:
    return lambda ctx: [(title, analysis)]


ANALYSES: dict[str, Callable[[s.Context], Plan]] = {
    "power_laws_params": lambda ctx: power_laws(ctx, ctx.N),
    "power_laws_tokens": lambda ctx: power_laws(ctx, ctx.D, DATA_GROUPS),
    "epochs": _one("Loss vs epochs (repeated data)", s.epochs),
    "chinchilla": _one("Chinchilla approach 3", s.chinchilla),
    "isoflop": _one("IsoFLOP (approach 2) and frontier", s.isoflop),
    "frontier": _one("Compute-optimal frontier", s.frontier),
    "lr_batch": _one("Learning rate vs batch size", s.lr_batch),
    "throughput_batch": _one("Throughput vs batch size", s.throughput_batch),
    "devices": _one("GPU vs CPU", s.devices),
    "throughput_params": _one("Throughput and MFU vs parameters", s.throughput_params),
    "attention": _one("Attention cost vs sequence length", s.attention),
    "architectures": _one("Architectures at matched size", s.architectures),
    "lstm_vs_transformer": _one("LSTM vs Transformer", s.lstm_vs_transformer),
    "dp": _one("Data parallel: LR scaling rules", s.dp),
}


def check_names(names: Iterable[str]) -> list[str]:
    """``names`` as a list; one line naming the key ``analyses`` and the valid names for an unknown one."""
    names = list(names)
    for name in names:
        if name not in ANALYSES:
            raise AnalysisError(f"analyses={name}: unknown analysis (valid: {', '.join(ANALYSES)})")
    return names


def plan(ctx: s.Context, names: list[str] | None) -> Plan:
    """The sections of the named analyses in order; `by_columns` for None or an empty list."""
    return [p for name in check_names(names) for p in ANALYSES[name](ctx)] if names else by_columns(ctx)


def by_columns(ctx: s.Context) -> Plan:
    """Every analysis the columns allow: power laws along whichever of N, D, C vary (one per model), the
    Chinchilla fits when N and D both vary, the batch and LR fits when those vary."""
    t = ctx.table
    out = [p for x in (ctx.N, ctx.D, ctx.C) if varies(t, x) for p in power_laws(ctx, x, ("model.name",))]
    names = []
    if varies(t, ctx.N) and varies(t, ctx.D):
        names += ["chinchilla", "frontier"]
    if varies(t, "trainer.max_flops", 2):
        names.append("isoflop")
    if varies(t, "optim.lr", 2) and varies(t, "trainer.batch_size", 2):
        names.append("lr_batch")
    if varies(t, "trainer.batch_size", 2):
        names.append("throughput_batch")
    if varies(t, "params", 2) and first_with_values(t, ("tokens_per_s", "samples_per_s")):
        names.append("throughput_params")
    out += [p for name in names for p in ANALYSES[name](ctx)]
    return out or [("Loss vs parameters", partial(s.power_laws, x=ctx.N, rows=t, label="all"))]
