"""Claims about training: clean scaling laws, the batch-size/LR rule, LR extremes, schedules, repeated data."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.claims.claim import Claim, Verdict
from analysis.claims.lab import Lab
from analysis.tables import AnalysisError


# --- clean_scaling: the params study, one law per architecture, leave-one-out -------------------------------

LOO_CLEAN, LOO_DIRTY = 0.05, 0.15  # mean abs. relative error of a held-out size


def _fit(rows: pd.DataFrame):
    from analysis.powerlaw import fit_power_law

    try:
        return fit_power_law(rows, "params", "val_loss", offset=True, workers=1)
    except AnalysisError:  # too few points for the offset: the pure power law
        return fit_power_law(rows, "params", "val_loss", offset=False, workers=1)


def measure_clean_scaling(lab: Lab) -> tuple[dict[str, Any], Path]:
    table = lab.ok("params")
    out = {}
    for arch, rows in table.groupby("model.name"):
        rows = rows.sort_values("params")
        if rows["params"].nunique() < 4:
            continue
        fit = _fit(rows)
        errors = []
        for i in range(len(rows)):  # predict each size from a law fitted on the others
            held = rows.iloc[[i]]
            errors.append(abs(float(_fit(rows.drop(rows.index[i])).predict_frame(held)[0]) / held.val_loss.iloc[0] - 1))
        out[arch] = {"alpha": fit.params["alpha"], "law": fit.law, "loo_mean_abs_rel_error": float(np.mean(errors)),
                     "loo_max_abs_rel_error": float(np.max(errors)), "sizes": len(rows)}

    def draw(fig):
        ax = fig.add_subplot()
        for arch, rows in table.groupby("model.name"):
            ax.loglog(rows.params, rows.val_loss, "o", label=arch)
        ax.set(xlabel="parameters", ylabel="val_loss (nats)", title="params study: loss vs size")
        ax.legend()
    return {"architectures": out}, lab.figure("clean_scaling", draw)


def rule_clean_scaling(m: dict[str, Any]) -> Verdict:
    """Decided by the Transformer: holds if its law predicts the left-out sizes within LOO_CLEAN on average and
    2 x LOO_CLEAN at worst (a jump at one size, such as a phase change, is not clean) with alpha > 0, and the
    LSTM (`rnn`) flattens earlier (a smaller alpha); does not hold if the Transformer's law misses by more than
    LOO_DIRTY on average or its loss does not fall with size; a correction otherwise. The other architectures'
    fits are measured and shown, not judged."""
    archs = m["architectures"]
    tf, lstm = archs.get("transformer"), archs.get("rnn")
    if tf is None:
        return Verdict("inconclusive", "the params study has no Transformer with 4 or more sizes")
    err, worst, alpha = tf["loo_mean_abs_rel_error"], tf["loo_max_abs_rel_error"], tf["alpha"]
    said = (f"Transformer: leave-one-out error {err:.1%} (worst {worst:.1%}), alpha {alpha:.3g}; "
            + (f"LSTM alpha {lstm['alpha']:.3g} (error {lstm['loo_mean_abs_rel_error']:.1%})" if lstm else "no LSTM")
            + "; " + ", ".join(f"{k} {v['loo_mean_abs_rel_error']:.1%}" for k, v in archs.items()
                               if k not in ("transformer", "rnn")))
    if alpha <= 0 or err > LOO_DIRTY:
        return Verdict("does not hold", said)
    if err <= LOO_CLEAN and worst <= 2 * LOO_CLEAN and lstm is not None and lstm["alpha"] < alpha:
        return Verdict("holds", said)
    return Verdict("holds with a correction", said)


# --- batch_lr: best LR vs batch size -------------------------------------------------------------------------

def measure_batch_lr(lab: Lab) -> tuple[dict[str, Any], Path]:
    from analysis.lr_batch import fit_lr_batch

    table = lab.ok("batch_lr")
    fit = fit_lr_batch(table)

    def draw(fig):
        ax = fig.add_subplot()
        ax.loglog(fit.best.batch, fit.best.lr_opt, "o", label="best LR")
        b = np.geomspace(fit.best.batch.min(), fit.best.batch.max())
        ax.loglog(b, fit.predict(b), "-", label=f"fit: γ = {fit.gamma:.2f}")
        ax.loglog(b, fit.predict(b[:1])[0] * b / b[0], ":", label="linear rule (γ = 1)")
        ax.set(xlabel="batch size", ylabel="best LR", title="batch_lr study")
        ax.legend()
    return {"gamma": fit.gamma, "gamma_ci95": list(fit.ci["gamma"]),
            "best": fit.best[["batch", "lr_opt", "loss_opt"]].to_dict("records")}, lab.figure("batch_lr", draw)


def rule_batch_lr(m: dict[str, Any]) -> Verdict:
    """holds if the fitted exponent of best LR vs batch is within 0.25 of 1 (the linear rule); a correction
    if LR still grows with batch but by another exponent (0.25 < γ < 0.75 is the √ rule's range); else not."""
    g = m["gamma"]
    if not np.isfinite(g):
        return Verdict("inconclusive", "no exponent could be fitted")
    if abs(g - 1) <= 0.25:
        return Verdict("holds", f"γ = {g:.2f}, within 0.25 of 1")
    if g > 0.25:
        return Verdict("holds with a correction", f"γ = {g:.2f}: LR grows with batch, as B^{g:.2f}, not B^1")
    return Verdict("does not hold", f"γ = {g:.2f}: the best LR hardly grows with batch")


# --- lr_extremes: the loss curves at the ends of the LR grid ---------------------------------------------

def _history(lab: Lab, study: str, run_id: str) -> pd.DataFrame:
    return pd.read_parquet(lab.dir / study / run_id / "history.parquet")


def _still_falling(loss: np.ndarray) -> bool:
    """Whether the last quarter of a curve is still below the quarter before it by more than 1%."""
    q = max(1, len(loss) // 4)
    return bool(np.mean(loss[-q:]) < 0.99 * np.mean(loss[-2 * q:-q]))


def measure_lr_extremes(lab: Lab) -> tuple[dict[str, Any], Path]:
    table = lab.study("batch_lr")
    batches = sorted(table["trainer.batch_size"].unique())
    batch = batches[len(batches) // 2]  # a middle batch size: its grid brackets the best LR
    rows = table[table["trainer.batch_size"] == batch].sort_values("optim.lr")
    ok = rows[rows.status == "ok"]
    best = ok.loc[ok.val_loss.idxmin()]
    low, high = rows.iloc[0], rows.iloc[-1]
    curves = {name: _history(lab, "batch_lr", r.run_id).train_loss.to_numpy()
              for name, r in (("lowest", low), ("best", best), ("highest", high))}
    m = {"batch_size": int(batch), "lr_lowest": float(low["optim.lr"]), "lr_best": float(best["optim.lr"]),
         "lr_highest": float(high["optim.lr"]), "highest_status": high.status,
         "loss_best": float(best.val_loss), "loss_lowest": float(low.val_loss),
         "loss_highest": float(high.val_loss) if high.status == "ok" else None,
         "lowest_still_falling": _still_falling(curves["lowest"])}

    def draw(fig):
        ax = fig.add_subplot()
        for name, lr in (("lowest", m["lr_lowest"]), ("best", m["lr_best"]), ("highest", m["lr_highest"])):
            ax.semilogy(curves[name], label=f"{name} LR {lr:g}")
        ax.set(xlabel="step", ylabel="train_loss", title=f"batch_lr study, batch {batch}")
        ax.legend()
    return m, lab.figure("lr_extremes", draw)


def rule_lr_extremes(m: dict[str, Any]) -> Verdict:
    """holds if the highest LR diverged or ends ≥ 1.5× the best LR's loss, and the lowest LR ends ≥ 1.1× the
    best's while still falling (slow, not stuck); a correction if only one end behaves so; else not."""
    high_bad = m["highest_status"] == "diverged" or (m["loss_highest"] or 0) >= 1.5 * m["loss_best"]
    low_slow = m["loss_lowest"] >= 1.1 * m["loss_best"] and m["lowest_still_falling"]
    high = "diverged" if m["highest_status"] == "diverged" else f"loss {m['loss_highest']:.3g}"
    said = (f"LR {m['lr_highest']:g}: {high}; LR {m['lr_lowest']:g}: loss {m['loss_lowest']:.3g} "
            f"(still falling: {m['lowest_still_falling']}) vs best LR {m['lr_best']:g}: {m['loss_best']:.3g}")
    if high_bad and low_slow:
        return Verdict("holds", said)
    if high_bad or low_slow:
        return Verdict("holds with a correction", said)
    return Verdict("does not hold", said)


# --- schedule: constant vs warmup-only vs warmup+cosine -----------------------------------------------------

def measure_schedule(lab: Lab) -> tuple[dict[str, Any], Path]:
    from analysis.claims.nets import paired_gain

    table = lab.ok("claim_schedule")
    warm, cosine = table["optim.warmup_steps"] > 0, table["optim.schedule"] == "cosine"
    table["variant"] = np.select([~warm & ~cosine, warm & ~cosine, ~warm & cosine],
                                 ["constant", "warmup only", "cosine only"], "warmup + cosine")
    loss = table.groupby("variant").val_loss.mean()
    gain, spread = paired_gain(table, "variant", "constant")
    m = {"loss": loss.to_dict(), "gain_over_constant": gain.to_dict(), "gain_spread": spread,
         "seeds": int(table.seed.nunique())}

    def draw(fig):
        ax = fig.add_subplot()
        for i, (v, rows) in enumerate(table.groupby("variant")):
            ax.plot([i] * len(rows), rows.val_loss, "o")
        ax.set_xticks(range(len(loss)), list(loss.index))
        ax.set(ylabel="val_loss (nats)", title="same run, four LR schedules (one dot per seed)")
    return m, lab.figure("schedule", draw)


def rule_schedule(m: dict[str, Any]) -> Verdict:
    """holds if warmup + cosine ends below constant (same seed, same data) by more than 2 spreads of that gain
    over seeds; does not hold if it ends above it by as much; inconclusive in between."""
    loss, gain, margin = m["loss"], m["gain_over_constant"]["warmup + cosine"], 2 * m["gain_spread"]
    said = (f"constant {loss['constant']:.4g}, warmup only {loss['warmup only']:.4g}, warmup + cosine "
            f"{loss['warmup + cosine']:.4g}: gain {gain:+.3g}, 2 spreads = {margin:.2g}")
    if gain > margin:
        return Verdict("holds", said)
    if gain < -margin:
        return Verdict("does not hold", said)
    return Verdict("inconclusive", said)


# --- epochs: repeated vs fresh data at the same tokens -----------------------------------------------------

def measure_epochs(lab: Lab) -> tuple[dict[str, Any], Path]:
    table = lab.ok("data")
    fresh = table[table.epochs <= 1].groupby("tokens").val_loss.mean()
    rep = table[table.epochs > 1].sort_values("epochs")
    rows = [{"tokens": float(r.tokens), "epochs": float(r.epochs), "loss": float(r.val_loss),
             "fresh_loss": float(fresh[r.tokens]), "penalty": float(r.val_loss / fresh[r.tokens] - 1)}
            for r in rep.itertuples() if r.tokens in fresh.index]

    def draw(fig):
        ax = fig.add_subplot()
        ax.semilogx(fresh.index, fresh.values, "o-", label="fresh data (epochs ≤ 1)")
        ax.semilogx([r["tokens"] for r in rows], [r["loss"] for r in rows], "s-", label="repeated data")
        for r in rows:
            ax.annotate(f"{r['epochs']:.3g} ep", (r["tokens"], r["loss"]), fontsize=7)
        ax.set(xlabel="tokens seen", ylabel="val_loss (nats)", title="data study: same tokens, repeated vs fresh")
        ax.legend()
    return {"repeated": rows}, lab.figure("epochs", draw)


FEW_EPOCHS = 4  # Muennighoff et al. 2023: up to ~4 epochs of repetition cost almost nothing


def rule_epochs(m: dict[str, Any]) -> Verdict:
    """holds if the run with the most epochs is ≥ 2% worse than fresh data at the same tokens and the penalty
    grows with epochs; a correction if, in addition, runs of ≤ 4 epochs are within 2% (a few repeats are nearly
    free); does not hold if even ≥ 10 epochs cost no more than 0.5%; inconclusive otherwise."""
    rows = m["repeated"]
    if not rows:
        return Verdict("inconclusive", "no repeated-data run with a fresh-data twin")
    first, last = min(rows, key=lambda r: r["epochs"]), max(rows, key=lambda r: r["epochs"])
    said = ", ".join(f"{r['epochs']:.3g} epochs {r['penalty']:+.1%}" for r in sorted(rows, key=lambda r: r["epochs"]))
    said += " vs fresh data at the same tokens"
    if last["penalty"] >= 0.02 and last["penalty"] >= first["penalty"]:
        few_free = any(r["epochs"] <= FEW_EPOCHS and r["penalty"] < 0.02 for r in rows)
        return Verdict("holds with a correction" if few_free else "holds",
                       said + (f": up to {FEW_EPOCHS} epochs are nearly as good as fresh" if few_free else ""))
    if last["epochs"] >= 10 and max(r["penalty"] for r in rows) <= 0.005:
        return Verdict("does not hold", said)
    return Verdict("inconclusive", said)


CLAIMS = [
    Claim("clean_scaling", "Transformers follow clean scaling laws in parameter count; LSTMs flatten earlier "
          "(Kaplan et al. 2020).",
          "The params study (sizes over ≥30×), a law L = E + A·N^−α per architecture, each size predicted from the "
          "others (leave one out).", measure_clean_scaling, rule_clean_scaling),
    Claim("batch_lr", "Doubling the batch size allows roughly doubling the learning rate.",
          "The batch_lr study (SGD, LR grid per batch size); best LR per batch from a parabola in log LR, then "
          "LR_opt ∝ B^γ.", measure_batch_lr, rule_batch_lr),
    Claim("lr_extremes", "Too high a learning rate oscillates or diverges; too low converges slowly.",
          "The batch_lr study's loss curves at the lowest, best and highest LR of a middle batch size.",
          measure_lr_extremes, rule_lr_extremes),
    Claim("schedule", "Warmup followed by decay beats a constant learning rate.",
          "The same run (size, data, steps, peak LR) with constant, warmup-only and warmup + cosine schedules, 2 "
          "seeds each (sweeps/claim_schedule.yaml).", measure_schedule, rule_schedule),
    Claim("epochs", "Repeating data is worth less than fresh data.",
          "The data study: loss at the same tokens seen with a small training set read for several epochs vs fresh "
          "data.", measure_epochs, rule_epochs),
]
