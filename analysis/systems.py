"""Systems measurements: attention cost vs sequence length, devices, architectures, throughput and MFU."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.laws import INTERVAL
from analysis.lr_batch import linear_fit, throughput_metric
from analysis.tables import AnalysisError, InsufficientDataError, need, require_columns, usable_rows


@dataclass
class AttentionScaling:
    """Cost ~ n^k per attention implementation, and where attention's share passes 50%.

    ``exponents``: impl, metric, column, k, k_low, k_high, n_min, n_max, n_lengths (the
    fitted, longer sequence lengths). ``crossover``: impl, share (flops | time), n_50,
    n_min, n_max and whether n_50 is inside the measured lengths (else extrapolated
    from logit(share) linear in log n).
    """

    exponents: pd.DataFrame
    crossover: pd.DataFrame
    skipped: dict[str, str]

    def to_dict(self) -> dict:
        return {"exponents": self.exponents.to_dict(orient="records"),
                "crossover": self.crossover.to_dict(orient="records"), "skipped": self.skipped}


def _long_lengths(n: np.ndarray, min_lengths: int = 3) -> float:
    """The smallest length of the upper half of the distinct lengths (at least ``min_lengths`` of them)."""
    lengths = np.unique(n)
    keep = max(min_lengths, (len(lengths) + 1) // 2)
    return float(lengths[max(0, len(lengths) - keep)])


def _crossover(n: np.ndarray, share: np.ndarray) -> float:
    """n where a share s(n) reaches 1/2, from logit(s) = k log n + c."""
    ok = (share > 0) & (share < 1)
    if len(np.unique(n[ok])) < 2:
        raise InsufficientDataError("fewer than 2 lengths with a share strictly between 0 and 1")
    k, c, _ = linear_fit(np.log(n[ok]), np.log(share[ok] / (1 - share[ok])))
    return float(np.exp(-c / k)) if k != 0 else float("nan")


def fit_attention(
    df: pd.DataFrame,
    seq: str = "data.seq_len",
    impl: str = "model.attention",
    time: str = "attn_time_s",
    memory: str = "peak_mem_bytes",
    flops_share: str = "attn_flops_share",
    step_time: str = "step_time_s",
    layers: str = "model.n_layers",
    level: float = INTERVAL,
) -> AttentionScaling:
    """Fit log cost = k log n + c over the longer half of the lengths, per implementation.

    The time share of attention is ``time * layers / step_time`` (the harness times one
    attention layer forward + backward; a missing ``layers`` column counts one layer).
    Memory is fitted on the growth above the shortest length's peak (``memory`` minus its value at the
    smallest n of that implementation): process RSS carries a fixed baseline (libraries, weights) that
    would otherwise flatten the exponent. Metrics whose column is absent or empty for an implementation
    are listed in ``skipped``.
    """
    base = usable_rows(df, [seq], positive=[seq], what="attention fit")
    if impl not in base.columns:
        base = base.assign(**{impl: "all"})
    exps, cross, skipped = [], [], {}
    for name, g in base.groupby(impl):
        for metric, col in (("time", time), ("memory", memory)):
            try:
                source = g
                if metric == "memory" and col in g.columns and g[col].notna().any():
                    source = g.assign(**{col: g[col] - g.loc[g[seq].idxmin(), col]})
                rows = usable_rows(source, [seq, col], positive=[seq, col], what=f"{name} {metric}", warn=False)
                # CPU memory less the shortest length's can be <= 0 everywhere (resident-set noise): no rows
                need(rows[seq].nunique(), 2, f"{name} {metric} ~ n^k", "distinct lengths")
                cut = _long_lengths(rows[seq].to_numpy())
                rows = rows[rows[seq] >= cut]
                need(rows[seq].nunique(), 2, f"{name} {metric} ~ n^k", "distinct lengths")
                k, _, (lo, hi) = linear_fit(np.log(rows[seq].to_numpy()), np.log(rows[col].to_numpy()), level)
            except AnalysisError as e:
                skipped[f"{name} {metric}"] = str(e)
                continue
            exps.append({"impl": name, "metric": metric, "column": col, "k": k, "k_low": lo, "k_high": hi,
                         "n_min": cut, "n_max": float(rows[seq].max()), "n_lengths": int(rows[seq].nunique())})
        for share, cols in (("flops", [flops_share]), ("time", [time, step_time])):
            try:
                rows = usable_rows(g, [seq, *cols], what=f"{name} {share} share", warn=False)
                n = rows[seq].to_numpy(dtype=float)
                if share == "flops":
                    s = rows[flops_share].to_numpy(dtype=float)
                else:
                    n_layers = rows[layers].to_numpy(dtype=float) if layers in rows.columns else 1.0
                    s = rows[time].to_numpy(dtype=float) * n_layers / rows[step_time].to_numpy(dtype=float)
                n50 = _crossover(n, s)
            except AnalysisError as e:
                skipped[f"{name} {share} share"] = str(e)
                continue
            cross.append({"impl": name, "share": share, "n_50": n50, "n_min": float(n.min()), "n_max": float(n.max()),
                          "inside": bool(n.min() <= n50 <= n.max())})
    if not exps and not cross:
        why = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise InsufficientDataError(f"attention fit: nothing to fit ({why})")
    return AttentionScaling(pd.DataFrame(exps), pd.DataFrame(cross), skipped)


def resolved_device(df: pd.DataFrame) -> pd.Series:
    """The device a run used: ``env.device`` (what ``device=auto`` resolved to) without its index, else ``device``."""
    col = "env.device" if "env.device" in df.columns and df["env.device"].notna().any() else "device"
    return df[col].astype(str).str.split(":").str[0]


def device_speedup(df: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Median throughput per model (name, cell, parameters) and device, and the GPU/CPU speedup where both ran."""
    metric = metric or throughput_metric(df)
    rows = usable_rows(df, [metric, "params"], positive=[metric], what="device speedup")
    if "env.device" not in rows.columns:
        require_columns(rows, ["device"], "device speedup")
    keys = [c for c in ("model.name", "model.cell") if c in rows.columns and rows[c].notna().any()] + ["params"]
    rows = rows.assign(run_device=resolved_device(rows), **{k: rows[k].fillna("-") for k in keys})
    table = rows.pivot_table(index=keys, columns="run_device", values=metric, aggfunc="median")
    if not {"cpu", "cuda"} <= set(table.columns):
        have = ", ".join(map(str, table.columns))
        raise InsufficientDataError(f"device speedup needs runs on both cpu and cuda (have: {have})")
    table["speedup"] = table["cuda"] / table["cpu"]
    return table.reset_index().sort_values("params")


def arch_label(df: pd.DataFrame) -> pd.Series:
    """model.name, with the cell for recurrent models (rnn/lstm)."""
    name = df["model.name"].astype(str)
    if "model.cell" not in df.columns:
        return name
    cell = df["model.cell"]
    return name.where(cell.isna() | ~name.eq("rnn"), name + "/" + cell.astype(str))


def architecture_table(df: pd.DataFrame, loss: str = "val_loss", size: str = "model.target_params") -> pd.DataFrame:
    """Median loss, throughput, MFU and peak memory per architecture at each target size."""
    metric = throughput_metric(df)
    cols = [c for c in ("params", loss, metric, "mfu", "peak_mem_bytes") if c in df.columns]
    rows = usable_rows(df, ["params"], what="architecture comparison")
    require_columns(rows, ["model.name"], "architecture comparison")
    keys = [size] if size in rows.columns and rows[size].notna().any() else []
    rows = rows.assign(arch=arch_label(rows))
    table = rows.groupby(keys + ["arch"])[cols].median(numeric_only=True).reset_index()
    need(table["arch"].nunique(), 2, "architecture comparison", "architectures")
    return table


def architecture_ratio(df: pd.DataFrame, seq: str = "data.seq_len", metric: str | None = None) -> pd.DataFrame:
    """LSTM vs Transformer throughput per sequence length (and device): ratio = transformer / lstm."""
    metric = metric or throughput_metric(df)
    rows = usable_rows(df, [seq, metric], positive=[seq, metric], what="lstm vs transformer")
    require_columns(rows, ["model.name"], "lstm vs transformer")
    label = arch_label(rows).replace({"rnn/lstm": "lstm"})
    rows = rows.assign(arch=label)[label.isin(["lstm", "transformer"])]
    index = [seq]
    if "device" in rows.columns or "env.device" in rows.columns:
        rows = rows.assign(device=resolved_device(rows))
        index.append("device")
    table = rows.pivot_table(index=index, columns="arch", values=metric, aggfunc="median")
    if not {"lstm", "transformer"} <= set(table.columns):
        raise InsufficientDataError("lstm vs transformer needs runs of both (model=lstm and model=transformer)")
    table = table.dropna(subset=["lstm", "transformer"])
    need(len(table), 1, "lstm vs transformer", "lengths run by both")
    table["ratio"] = table["transformer"] / table["lstm"]
    return table.reset_index()


def throughput_vs_params(df: pd.DataFrame, metric: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Median throughput and MFU per architecture, device and size; and per architecture and device the
    log-log slope of throughput against parameters (where it has at least 2 sizes)."""
    metric = metric or throughput_metric(df)
    rows = usable_rows(df, ["params", metric], positive=["params", metric], what="throughput vs params")
    need(rows["params"].nunique(), 2, "throughput vs params", "model sizes")
    if "model.name" in rows.columns:
        rows = rows.assign(arch=arch_label(rows))
    keys = [c for c in ("arch", "device") if c in rows.columns]
    rows = rows.assign(**{k: rows[k].fillna("-") for k in keys})
    agg = {metric: "median", **({"mfu": "median"} if "mfu" in rows.columns else {})}
    table = rows.groupby(keys + ["params"]).agg(agg).reset_index()
    slopes = []
    for key, g in table.groupby(keys) if keys else [((), table)]:
        if g["params"].nunique() >= 2:
            k, _, (lo, hi) = linear_fit(np.log(g["params"].to_numpy()), np.log(g[metric].to_numpy()))
            slopes.append({**dict(zip(keys, key)), "metric": metric, "slope": k,
                           "slope_low": lo, "slope_high": hi, "sizes": int(g["params"].nunique())})
    return table, pd.DataFrame(slopes)
