"""Claims about sequences: how far back each architecture can learn, parallelism, the O(n²) cost of attention."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from analysis.claims.claim import Claim, Verdict
from analysis.claims.lab import Lab

# --- long_range: recall the token k steps back ------------------------------------------------------------

ARCHS = ("rnn", "lstm", "gru", "transformer")
SOLVED = 0.8  # a lag is learned when the recall accuracy reaches this (chance: 1 / remembered tokens)
HUNDREDS = 100


def input_gradients(arch: str, lag: int, params: float = 2e4, seeds: int = 3) -> list[float]:
    """‖∂(last position's loss)/∂(input embedding k steps back)‖ for k = 1…lag, at initialisation, on the
    recall task; geometric mean over `seeds` initialisations."""
    import torch
    from omegaconf import OmegaConf

    from harness.data import build_data
    from harness.models import build_model

    conf = Path(__file__).resolve().parents[2] / "conf"
    data_cfg = OmegaConf.merge(OmegaConf.load(conf / "data" / "recall.yaml"), {"lag": lag, "train_samples": 64})
    data = build_data(data_cfg, 0)
    model_cfg = OmegaConf.load(conf / "model" / ("rnn.yaml" if arch != "transformer" else "transformer.yaml"))
    model_cfg.pop("defaults", None)
    model_cfg.target_params = params
    if arch != "transformer":
        model_cfg.cell = arch
    x, y = data.train
    logs = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        model = build_model(model_cfg, data.spec)
        embed = model.tok if arch == "transformer" else model.embed
        kept = []

        def keep(module, inputs, out):
            out.retain_grad()
            kept.append(out)
        hook = embed.register_forward_hook(keep)
        out = model(x)
        hook.remove()
        torch.nn.functional.cross_entropy(out[:, -1], y[:, -1]).backward()
        norms = kept[0].grad.norm(dim=(0, 2))  # per position, summed over the batch and embedding
        logs.append(torch.log(norms.flip(0)[1:] + 1e-30).numpy())  # k = 1 … lag steps back from the last input
    return [float(v) for v in np.exp(np.mean(logs, axis=0))]


def measure_long_range(lab: Lab) -> tuple[dict[str, Any], Path]:
    table = lab.ok("claim_long_range")
    table["arch"] = table["model.name"].where(table["model.name"] != "rnn", table["model.cell"])
    chance = 1 / float(table["data.vocab_size"].iloc[0] - 1)  # token 0 is never an answer
    acc = {a: rows.groupby("data.lag").val_accuracy.mean().to_dict() for a, rows in table.groupby("arch")}
    probe_lag = int(table["data.lag"].max())
    grads = {a: input_gradients(a, probe_lag) for a in ARCHS}
    k = np.arange(1, probe_lag + 1)
    rnn_decay = float(np.exp(np.polyfit(k, np.log(grads["rnn"]), 1)[0]))  # per step back

    def draw(fig):
        left, right = fig.subplots(1, 2)
        for a in ARCHS:
            if a in acc:
                left.plot(list(acc[a]), list(acc[a].values()), "o-", label=a)
            right.semilogy(k, grads[a], label=a)
        left.axhline(chance, ls=":", color="k", label="chance")
        left.set(xscale="log", xlabel="lag k", ylabel="recall accuracy", title="after training")
        right.set(xlabel="steps back k", ylabel="‖∂loss/∂input_k‖ at init", title="gradient reach")
        left.legend()
    return {"chance_accuracy": chance, "accuracy": acc, "rnn_gradient_decay_per_step": rnn_decay,
            "gradient_at_max_lag": {a: g[-1] for a, g in grads.items()}}, lab.figure("long_range", draw)


def rule_long_range(m: dict[str, Any]) -> Verdict:
    """A lag is learned when its recall accuracy reaches SOLVED (0.8). holds if the plain RNN fails the
    longest lag tested, an LSTM or GRU learns a lag ≥ 100 and longer than the RNN's, and the Transformer learns
    every lag; does not hold if the plain RNN learns the longest lag too; a correction otherwise; inconclusive
    if the longest lag is < 100 or nothing learned even the shortest."""
    solved = {a: max([int(k) for k, v in acc.items() if v >= SOLVED], default=0) for a, acc in m["accuracy"].items()}
    longest = max(int(k) for acc in m["accuracy"].values() for k in acc)
    said = (f"longest lag learned (accuracy ≥ {SOLVED:g}, chance {m['chance_accuracy']:.2g}): "
            + ", ".join(f"{a} {v}" for a, v in solved.items()) + f" (of {longest})")
    said += f"; RNN input gradient ×{m['rnn_gradient_decay_per_step']:.3g} per step back"
    gated = max(solved.get("lstm", 0), solved.get("gru", 0))
    if longest < HUNDREDS or not any(solved.values()):
        return Verdict("inconclusive", said)
    if solved.get("rnn", 0) >= longest:
        return Verdict("does not hold", said)
    if gated >= HUNDREDS and gated > solved.get("rnn", 0) and solved.get("transformer", 0) >= longest:
        return Verdict("holds", said)
    return Verdict("holds with a correction", said)


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
    Claim("long_range", "Plain RNNs cannot learn dependencies many steps back; LSTM/GRU can across hundreds; "
          "attention at any distance.", "RNN, LSTM, GRU and Transformer of equal size trained to output the token k "
          "steps back (data=recall, k from 5 to ≥ 200): recall accuracy per lag; and the input gradient k "
          "steps back at init.",
          measure_long_range, rule_long_range),
    Claim("parallelism", "An RNN walks the sequence step by step; a Transformer processes it in parallel, so it "
          "trains much faster per token.", "The seqlen study: training tokens/s of an LSTM and a Transformer of "
          "equal size at each sequence length.", measure_parallelism, rule_parallelism),
    Claim("attention_cost", "Attention costs O(n²) time and memory in the sequence length.",
          "The attention study: fitted exponents of attention time (and memory on CUDA) vs n, manual vs SDPA.",
          measure_attention_cost, rule_attention_cost),
]
