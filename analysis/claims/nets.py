"""Claims about feed-forward networks: nonlinearity, vanishing gradients, depth, weight sharing in CNNs."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.claims.claim import Claim, Verdict
from analysis.claims.lab import Lab


def _run_config(lab: Lab, study: str, run_id: str) -> dict[str, Any]:
    return json.loads((lab.dir / study / run_id / "result.json").read_text())["config"]


def _tolerance(linear: float, spread: float) -> float:
    """What counts as 'the same loss': 2 seed spreads, at least 5% of the reference."""
    return max(2 * spread, 0.05 * abs(linear))


# --- activations: an identity MLP is one linear map --------------------------------------------------------


def least_squares_loss(data_cfg: dict[str, Any], seed: int, n_val: int) -> float:
    """Validation MSE of the least-squares affine model (closed form) on the run's own data (same seed, same
    first `n_val` validation examples that the run is evaluated on)."""
    import torch
    from omegaconf import OmegaConf

    from harness.data import build_data

    data = build_data(OmegaConf.create(data_cfg), seed)
    (x, y), (xv, yv) = data.train, data.val
    def affine(a: torch.Tensor) -> torch.Tensor:  # inputs with a constant column: the bias
        return torch.cat([a, torch.ones(len(a), 1)], 1)

    w = torch.linalg.lstsq(affine(x).double(), y.double()).solution
    return float(((affine(xv[:n_val]).double() @ w - yv[:n_val]) ** 2).mean())


def measure_activations(lab: Lab) -> tuple[dict[str, Any], Path]:
    table = lab.ok("claim_activations")
    linear = {}
    for seed, rows in table.groupby("seed"):
        cfg = _run_config(lab, "claim_activations", rows.run_id.iloc[0])
        linear[int(seed)] = least_squares_loss(cfg["data"], int(seed), int(cfg["trainer"]["eval_samples"]))
    table["gap"] = table.val_loss - table.seed.map(linear)
    by = table.groupby("model.activation")
    gap = by.gap.mean()
    spread = float(by.gap.agg(lambda s: s.max() - s.min()).mean())
    m = {"depth": int(table["model.depth"].iloc[0]), "linear_optimum": float(np.mean(list(linear.values()))),
         "loss": by.val_loss.mean().to_dict(), "gap_to_linear": gap.to_dict(), "seed_spread": spread}

    def draw(fig):
        ax = fig.add_subplot()
        ax.bar(list(gap.index), gap.values)
        ax.axhline(0, color="k", lw=0.8)
        ax.set(ylabel="val MSE − least-squares MSE (mean over seeds)",
               title=f"depth-{m['depth']} MLPs vs the closed-form linear model")
    return m, lab.figure("activations", draw)


def rule_activations(m: dict[str, Any]) -> Verdict:
    """holds if the identity MLP's loss is within tolerance (2 seed spreads, ≥ 5% of the linear optimum) of the
    least-squares optimum and every nonlinear activation ends below the optimum by more than it; does not hold
    if the identity MLP beats the optimum by more than it, or every nonlinear one also ends within it (they
    collapse too); inconclusive otherwise (e.g. nonlinear nets still above a linear model: undertrained)."""
    gap, tol = m["gap_to_linear"], _tolerance(m["linear_optimum"], m["seed_spread"])
    ident = gap["identity"]
    others = {k: v for k, v in gap.items() if k != "identity"}
    said = (f"identity − linear optimum = {ident:+.3g}, nonlinear: "
            + ", ".join(f"{k} {v:+.3g}" for k, v in others.items()) + f" (tolerance {tol:.2g})")
    if ident < -tol or all(abs(v) <= tol for v in others.values()):
        return Verdict("does not hold", said)
    if abs(ident) <= tol and all(v < -tol for v in others.values()):
        return Verdict("holds", said)
    return Verdict("inconclusive", said)


# --- vanishing_gradients: gradient ratio at init, loss on a fixed budget --------------------------------------

PROBE_DEPTHS = (2, 4, 8, 16, 32)
PROBE_ACTIVATIONS = ("sigmoid", "tanh", "relu")


def gradient_ratio(activation: str, depth: int, width: int = 64, seeds: int = 3, init: str = "gain") -> float:
    """||∂L/∂W_first|| / ||∂L/∂W_last|| of a freshly initialised MLP on the teacher regression task, geometric
    mean over `seeds` initialisations. `init`: "gain" (weights N(0, gain²/fan_in) with the activation's own gain,
    zero biases: the variance-preserving init each activation is paired with) or "default" (PyTorch's)."""
    import torch
    from omegaconf import OmegaConf

    from harness.data import build_data
    from harness.models.mlp import MLP

    cfg = OmegaConf.load(Path(__file__).resolve().parents[2] / "conf" / "data" / "teacher.yaml")
    cfg.task, cfg.train_samples = "regression", 512
    data = build_data(cfg, 0)
    x, y = data.train
    logs = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        model = MLP(data.spec, width, depth, activation)
        if init == "gain":
            for layer in model.net:
                if isinstance(layer, torch.nn.Linear):
                    torch.nn.init.kaiming_normal_(layer.weight, nonlinearity=activation)
                    torch.nn.init.zeros_(layer.bias)
        torch.nn.functional.mse_loss(model(x), y).backward()
        linear = [m for m in model.net if isinstance(m, torch.nn.Linear)]
        logs.append(float(torch.log(linear[0].weight.grad.norm() / linear[-1].weight.grad.norm())))
    return float(np.exp(np.mean(logs)))


def measure_vanishing_gradients(lab: Lab) -> tuple[dict[str, Any], Path]:
    ratio = {a: {d: gradient_ratio(a, d) for d in PROBE_DEPTHS} for a in PROBE_ACTIVATIONS}
    default = {a: gradient_ratio(a, max(PROBE_DEPTHS), init="default") for a in PROBE_ACTIVATIONS}
    table = lab.ok("claim_vanishing_gradients")
    loss = {a: rows.groupby("model.depth").val_loss.mean().to_dict() for a, rows in table.groupby("model.activation")}

    def draw(fig):
        left, right = fig.subplots(1, 2)
        for a in PROBE_ACTIVATIONS:
            left.semilogy(PROBE_DEPTHS, [ratio[a][d] for d in PROBE_DEPTHS], "o-", label=a)
            if a in loss:
                right.plot(list(loss[a]), list(loss[a].values()), "o-", label=a)
        left.set(xlabel="hidden layers", ylabel="‖∇W first‖ / ‖∇W last‖ at init", title="gradient ratio (gain init)")
        right.set(xlabel="hidden layers", ylabel="val MSE, fixed budget", title="loss reached")
        left.legend()
    return {"gradient_ratio": ratio, "default_init_ratio_at_max_depth": default, "loss_at_budget": loss}, \
        lab.figure("vanishing_gradients", draw)


def rule_vanishing_gradients(m: dict[str, Any]) -> Verdict:
    """At the deepest probed depth, with each activation's variance-preserving init, an activation 'loses its
    gradient' if its first/last gradient ratio is below a tenth of relu's. holds if sigmoid and tanh both do; a correction if only one does; does not hold if neither."""
    ratio = {a: {int(d): v for d, v in r.items()} for a, r in m["gradient_ratio"].items()}
    deep = max(ratio["relu"])
    lost = [a for a in ("sigmoid", "tanh") if ratio[a][deep] < 0.1 * ratio["relu"][deep]]
    said = f"ratio at depth {deep}: " + ", ".join(f"{a} {r[deep]:.2g}" for a, r in ratio.items())
    if len(lost) == 2:
        return Verdict("holds", said)
    if lost:
        return Verdict("holds with a correction", said + f": only {lost[0]} loses its gradient")
    return Verdict("does not hold", said)


# --- depth: deep vs one wide hidden layer at matched parameters -------------------------------------------


def paired_gain(table: pd.DataFrame, key: str, ref: Any) -> tuple[pd.Series, float]:
    """Per value of `key`: the mean over seeds of (ref's loss − its loss), each seed against its own ref run (a
    seed also draws the task), and the mean spread of those gains over seeds."""
    wide = table.pivot_table(index="seed", columns=key, values="val_loss")
    gains = -wide.sub(wide[ref], axis=0)
    return gains.mean(), float((gains.max() - gains.min()).drop(ref).mean())


def measure_depth(lab: Lab) -> tuple[dict[str, Any], Path]:
    table = lab.ok("claim_depth")
    loss = table.groupby("model.depth").val_loss.mean()
    gain, spread = paired_gain(table, "model.depth", 1)
    m = {"params": float(table.params.median()), "loss_by_depth": loss.to_dict(),
         "gain_over_one_layer": gain.to_dict(), "gain_spread": spread}

    def draw(fig):
        ax = fig.add_subplot()
        ax.plot(table["model.depth"], table.val_loss, "o", alpha=0.5)
        ax.plot(loss.index, loss.values, "-", label="mean over seeds")
        ax.set(xscale="log", xlabel="hidden layers (width matched to ~equal parameters)", ylabel="val MSE",
               title=f"deep teacher, ~{m['params']:.3g} parameters")
        ax.legend()
    return m, lab.figure("depth", draw)


def rule_depth(m: dict[str, Any]) -> Verdict:
    """holds if the best net with ≥ 3 hidden layers beats the one-hidden-layer net (same seed, same task) by more
    than the tolerance (2 spreads of that gain over seeds, ≥ 5% of the shallow loss); does not hold if the best
    is worse by as much; else inconclusive."""
    gain = {int(k): v for k, v in m["gain_over_one_layer"].items()}
    shallow = {int(k): v for k, v in m["loss_by_depth"].items()}[1]
    depth, best = max(((d, g) for d, g in gain.items() if d >= 3), key=lambda dg: dg[1])
    tol = _tolerance(shallow, m["gain_spread"])
    said = f"1 hidden layer {shallow:.3g}; {depth} layers lower by {best:+.3g} (tolerance {tol:.2g})"
    if best > tol:
        return Verdict("holds", said)
    if best < -tol:
        return Verdict("does not hold", said)
    return Verdict("inconclusive", said)


# --- cnn_sharing: parameters to reach the same accuracy; accuracy on shifted images ---------------------------

SHIFT_MARGIN = 0.1  # the CNN is 'more shift-robust' when it loses at least this much less accuracy than the MLP


def params_to_reach(rows: pd.DataFrame, target: float) -> float:
    """Parameters at which a model family's accuracy first reaches `target`, interpolated in log parameters (NaN
    if none of its sizes does)."""
    rows = rows.groupby("params").val_accuracy.mean().sort_index()
    p, acc = np.log(rows.index.to_numpy(float)), rows.to_numpy()
    hit = np.flatnonzero(acc >= target)
    if not len(hit):
        return float("nan")
    i = hit[0]
    if i == 0:
        return float(np.exp(p[0]))
    f = (target - acc[i - 1]) / (acc[i] - acc[i - 1])
    return float(np.exp(p[i - 1] + f * (p[i] - p[i - 1])))


def measure_cnn_sharing(lab: Lab) -> tuple[dict[str, Any], Path]:
    table = lab.ok("claim_cnn_sharing")
    in_place = table["data.max_shift"].eq(0)
    anywhere, fixed = table[~in_place], table[in_place]
    best = anywhere.groupby("model.name").val_accuracy.max()
    target = float(best.min())  # the best accuracy both families reach
    need = {name: params_to_reach(rows, target) for name, rows in anywhere.groupby("model.name")}
    # Each family's most accurate in-place model: how much it loses on images moved data.eval_shift pixels.
    top = fixed.loc[fixed.groupby("model.name").val_accuracy.idxmax()].set_index("model.name")
    shift = int(table["data.eval_shift"].iloc[0])

    def draw(fig):
        left, right = fig.subplots(1, 2, sharey=True)
        for name, rows in anywhere.groupby("model.name"):
            rows = rows.sort_values("params")
            left.semilogx(rows.params, rows.val_accuracy, "o-", label=name)
        for (name, rows), color in zip(fixed.groupby("model.name"), ("C0", "C1")):
            rows = rows.sort_values("params")
            right.semilogx(rows.params, rows.val_accuracy, "o-", color=color, label=f"{name}, in place")
            right.semilogx(rows.params, rows.val_accuracy_shifted, "x--", color=color, label=f"{name}, moved {shift} px")
        left.axhline(target, ls=":", color="k", label="accuracy both reach")
        left.set(xlabel="parameters", ylabel="val accuracy", title="textures at any offset")
        right.set(xlabel="parameters", title="trained in place")
        left.legend()
        right.legend(fontsize="small")
    return {"target_accuracy": target, "params_needed": need, "best_accuracy": best.to_dict(), "eval_shift": shift,
            "accuracy_in_place": top.val_accuracy.to_dict(), "accuracy_shifted": top.val_accuracy_shifted.to_dict(),
            "params_in_place": top.params.to_dict()}, lab.figure("cnn_sharing", draw)


def rule_cnn_sharing(m: dict[str, Any]) -> Verdict:
    """Two parts. Sharing: the MLP needs ≥ 3× the CNN's parameters to reach the accuracy both reach (fails if it
    needs no more than the CNN). Shift: trained in place, the CNN loses at least SHIFT_MARGIN less accuracy than
    the MLP on images moved `eval_shift` pixels (fails if it loses as much or more). holds if both parts hold;
    does not hold if both fail; a correction otherwise; inconclusive if a family never reached the common
    accuracy or a shifted accuracy is missing."""
    mlp, cnn = m["params_needed"]["mlp"], m["params_needed"]["cnn"]
    shifted = {k: float("nan") if v is None else v for k, v in m["accuracy_shifted"].items()}  # null: not measured
    drop = {k: m["accuracy_in_place"][k] - shifted[k] for k in ("mlp", "cnn")}
    if not all(np.isfinite(v) for v in (mlp, cnn, *drop.values())):
        return Verdict("inconclusive", "a family never reached the common accuracy, or a shifted accuracy is missing")
    said = (f"to reach accuracy {m['target_accuracy']:.3g}: MLP {mlp:,.0f} parameters, CNN {cnn:,.0f} "
            f"({mlp / cnn:.3g}×); moved {m['eval_shift']} px, accuracy drops MLP {drop['mlp']:+.3g}, "
            f"CNN {drop['cnn']:+.3g}")
    sharing = "holds" if mlp >= 3 * cnn else "fails" if mlp <= cnn else "partly"
    robust = drop["cnn"] <= drop["mlp"] - SHIFT_MARGIN
    if sharing == "holds" and robust:
        return Verdict("holds", said)
    if sharing == "fails" and drop["cnn"] >= drop["mlp"]:
        return Verdict("does not hold", said)
    return Verdict("holds with a correction", said)


CLAIMS = [
    Claim("activations", "Without a nonlinearity a deep network collapses to one linear map.",
          "Deep MLPs with identity, relu, gelu and tanh activations on the teacher regression task (2 seeds), "
          "against the closed-form least-squares linear model on the same data.", measure_activations,
          rule_activations),
    Claim("vanishing_gradients", "Sigmoid and tanh stacks lose their gradient with depth; relu much less.",
          "First- to last-layer gradient-norm ratio of MLPs at init (each activation's gain, N(0, gain²/fan_in)), "
          "depths 2–32; and the loss each depth reaches on a fixed budget.", measure_vanishing_gradients, rule_vanishing_gradients),
    Claim("depth", "At matched parameter counts, deeper networks beat one wide hidden layer on a task built by "
          "composition.", "MLPs of 1 to 8 hidden layers with equal parameter counts on a deep-teacher regression "
          "task (2 seeds).", measure_depth, rule_depth),
    Claim("cnn_sharing", "Weight sharing lets a CNN reach an MLP's accuracy with far fewer parameters.",
          "MLPs and CNNs at several sizes on the images task (textures at random offsets): parameters each needs "
          "to reach the accuracy both reach; and, trained on textures in place, the accuracy each loses on "
          "validation images moved 3 pixels (translation invariance).",
          measure_cnn_sharing, rule_cnn_sharing),
]
