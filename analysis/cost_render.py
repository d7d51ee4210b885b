"""A cost plan as text: aligned lines for a terminal, or a markdown section. Memory prints in GiB."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.memory import format_bytes


def text(plan: Any) -> str:
    """An `analysis.cost.CostPlan` as aligned lines for a terminal."""
    rows = _rows(plan)
    lines = [f"Plan: {plan.inputs['target']}" + (f" — law {plan.law.source}" if plan.law else " — no law")]
    width = max(len(k) for k, _ in rows)
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    if plan.law is not None and plan.law.samples is not None:
        lines.append(f"  [brackets: central {plan.level:.0%} over {len(plan.law.samples)} bootstrap replicas]")
    lines += ["", "Utilisation (same run):"] + ["  " + r for r in table(plan.utilisation, plain=True)]
    if plan.halvings is not None:
        lines += ["", plan.figures["halving_note"]] + ["  " + r for r in table(plan.halvings, plain=True)]
    lines += [""] + [f"note: {n}" for n in plan.notes]
    return "\n".join(lines).rstrip() + "\n"


def markdown(plan: Any) -> str:
    """An `analysis.cost.CostPlan` as a markdown section."""
    out = [f"## Plan: {plan.inputs['target']}", ""]
    if plan.law is not None:
        out += [f"Law: {plan.law.source}" + (f"; intervals are the central {plan.level:.0%} over "
                                             f"{len(plan.law.samples)} bootstrap replicas."
                                             if plan.law.samples is not None else "."), ""]
    out += ["| figure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in _rows(plan)]
    out += ["", "### Utilisation", ""] + table(plan.utilisation)
    if plan.halvings is not None:
        out += ["", "### Diminishing returns", "", plan.figures["halving_note"], ""] + table(plan.halvings)
    out += [""] + [f"- {n}" for n in plan.notes]
    return "\n".join(out) + "\n"


def _rows(plan: Any) -> list[tuple[str, str]]:
    """(label, value [interval]) per figure of the plan."""
    f, inputs = plan.figures, plan.inputs
    mem = f["memory_per_gpu_bytes"]
    rows = [("parameters N", _value(plan, "params", "{:.3g}")), ("tokens D", _value(plan, "tokens", "{:.3g}")),
            ("tokens per parameter", f"{f['tokens'] / f['params']:.3g}"),
            ("compute C", _value(plan, "flops", "{:.3g} FLOPs") + f" ({f['flops_convention']})")]
    if f.get("predicted_loss") is not None:
        rows.append(("predicted loss", _value(plan, "predicted_loss", "{:.4f}") + f" (floor E = {f['E']:.4f})"))
    rows += [("hardware", f"{inputs['gpus']} × {inputs['gpu']} at {inputs['precision']}, "
                          f"peak {f['peak_flops_per_s']:.4g} FLOP/s each"),
             ("MFU", f"{f['mfu']:.3g} ({f['mfu_source']})"),
             ("GPU-hours", _value(plan, "gpu_hours", "{:,.0f}")), ("days", _value(plan, "days", "{:,.3g}")),
             ("money", _value(plan, "usd", "${:,.0f}") + f" at ${inputs['usd_per_gpu_hour']:g}/GPU-hour"),
             ("memory per GPU", _value(plan, "memory_per_gpu_bytes", None) +
              f" = weights {format_bytes(mem['weights'])} + gradients {format_bytes(mem['gradients'])} + optimizer "
              f"{format_bytes(mem['optimizer'])} + activations {format_bytes(mem['activations'])} "
              f"(of {format_bytes(f['gpu_memory_bytes'])}; sharding={inputs['sharding']})"),
             ("fewest GPUs that fit",
              "none (shard it)" if f["gpus_min"] is None else _value(plan, "gpus_min", "{:,}"))]
    return rows


def _value(plan: Any, name: str, fmt: str | None) -> str:
    """A figure with its interval in brackets; ``fmt`` None: a memory breakdown, printed by its total."""
    conv = format_bytes if fmt is None else fmt.format
    value = plan.figures[name]["total"] if fmt is None else plan.figures[name]
    out = conv(value)
    iv = plan.intervals.get(name)
    if iv is not None:
        out += f" [{', '.join('—' if v is None or not np.isfinite(v) else conv(v) for v in iv)}]"
    return out


def table(df: pd.DataFrame, plain: bool = False) -> list[str]:
    """A frame as aligned plain-text rows (``plain``) or a markdown table; big numbers with thousands commas."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            if not np.isfinite(v):
                return "—"
            return f"{v:,.0f}" if 100 <= abs(v) < 1e9 else f"{v:.3g}"
        return str(v)

    rows = [[str(c) for c in df.columns]] + [[cell(v) for v in r] for r in df.itertuples(index=False)]
    if plain:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])] + ["| " + " | ".join(r) + " |"
                                                                               for r in rows[1:]]
