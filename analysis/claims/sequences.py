"""Claims about sequences: how far back each architecture can learn, parallelism, the O(n²) cost of attention."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from analysis.claims import Claim, Verdict
from analysis.claims.lab import Lab

# --- parallelism: the seqlen study ---------------------------------------------------------------------------


def measure_parallelism(lab: Lab) -> tuple[dict[str, Any], Path]:
    from analysis.systems import architecture_ratio

    table = architecture_ratio(lab.ok("seqlen"))
    rows = table[["data.seq_len", "device", "lstm", "transformer", "ratio"]].rename(
        columns={"data.seq_len": "seq_len", "lstm": "lstm_tokens_per_s", "transformer": "transformer_tokens_per_s"})

    def draw(fig):
        ax = fig.add_subplot()
        ax.loglog(rows.seq_len, rows.lstm_tokens_per_s, "o-", label="LSTM")
        ax.loglog(rows.seq_len, rows.transformer_tokens_per_s, "s-", label="Transformer")
        ax.set(xlabel="sequence length", ylabel="training tokens/s", title=f"seqlen study ({rows.device.iloc[0]})")
        ax.legend()
    return {"by_length": rows.to_dict("records")}, lab.figure("parallelism", draw)


def rule_parallelism(m: dict[str, Any]) -> Verdict:
    """holds if the Transformer trains ≥ 1.5× the LSTM's tokens/s at half the lengths or more; does not hold if
    it is slower at every length; a correction (faster only at some lengths) otherwise."""
    ratios = np.array([r["ratio"] for r in m["by_length"]])
    device = m["by_length"][0]["device"] if m["by_length"] else "?"
    said = (f"Transformer/LSTM tokens/s {ratios.min():.2g}–{ratios.max():.2g}× over {len(ratios)} lengths "
            f"on {device}")
    if np.mean(ratios >= 1.5) >= 0.5:
        return Verdict("holds", said)
    if (ratios < 1).all():
        return Verdict("does not hold", said + " (few cores leave little to parallelise)" if device == "cpu" else said)
    return Verdict("holds with a correction", said)


# --- attention_cost: the attention study ---------------------------------------------------------------------

QUADRATIC = 1.5  # a fitted exponent at or above this is read as "grows like n²"


def measure_attention_cost(lab: Lab) -> tuple[dict[str, Any], Path]:
    from analysis.systems import fit_attention, resolved_device

    table = lab.ok("attention")
    fit = fit_attention(table)
    device = str(resolved_device(table).iloc[0])
    k = {f"{r.impl}_{r.metric}": float(r.k) for r in fit.exponents.itertuples()}

    def draw(fig):
        ax = fig.add_subplot()
        for impl, rows in table.groupby("model.attention"):
            rows = rows.sort_values("data.seq_len")
            ax.loglog(rows["data.seq_len"], rows.attn_time_s, "o-", label=f"{impl} time")
        ax.set(xlabel="sequence length n", ylabel="attention fwd+bwd time (s)", title=f"attention study ({device})")
        ax.legend()
    # On a CPU, peak memory is the process's resident set, which a small score matrix does not move.
    return {"exponents": k, "device": device, "memory_measured": device == "cuda"}, lab.figure("attention_cost", draw)


def rule_attention_cost(m: dict[str, Any]) -> Verdict:
    """holds if manual attention's time grows with exponent ≥ 1.5 (and, where memory is measured, on CUDA, its
    memory too); a correction if fused SDPA's memory grows slower than n^1.5; does not hold if manual time does."""
    k = m["exponents"]
    t = k.get("manual_time", float("nan"))
    said = f"manual attention time ∝ n^{t:.2f}"
    if not np.isfinite(t):
        return Verdict("inconclusive", "no exponent was fitted for manual attention's time")
    if t < QUADRATIC:
        return Verdict("does not hold", said)
    if not m["memory_measured"]:
        return Verdict("holds", said + "; memory not measured on CPU (resident set), only time decides")
    mem, sdpa = k.get("manual_memory", float("nan")), k.get("sdpa_memory", float("nan"))
    said += f", memory manual n^{mem:.2f}, SDPA n^{sdpa:.2f}"
    if mem < QUADRATIC:
        return Verdict("does not hold", said)
    if sdpa < QUADRATIC:
        return Verdict("holds with a correction", said + ": fused attention's memory is not O(n²)")
    return Verdict("holds", said)


CLAIMS = [
    Claim("parallelism", "An RNN walks the sequence step by step; a Transformer processes it in parallel, so it "
          "trains much faster per token.", "The seqlen study: training tokens/s of an LSTM and a Transformer of "
          "equal size at each sequence length.", measure_parallelism, rule_parallelism),
    Claim("attention_cost", "Attention costs O(n²) time and memory in the sequence length.",
          "The attention study: fitted exponents of attention time (and memory on CUDA) vs n, manual vs SDPA.",
          measure_attention_cost, rule_attention_cost),
]
