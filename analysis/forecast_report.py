"""The forecast study's report: pre-registered forecasts scored against the target runs, with a plot.

`write_report(study_dir, out)` reads `<study_dir>/forecast.json` (written before the targets trained) and the
study's result files, and writes `out/fits.json` (a `forecasts` list: law, predicted, interval90, measured,
rel_error, reducible_rel_error, covered, ...), `out/report.md` and `out/figures/forecast.{png,svg}`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.forecast import FLOOR_LAW, LAWS, score, verdict
from analysis.tables import AnalysisError
from harness.jsonsafe import json_ready


def _target_runs(study_dir: Path, registered: dict) -> pd.DataFrame:
    """The ok target runs, each labelled with the name of the registered target whose compute it used and the
    multiple of the rule's LR it trained at (`lr_mult`, one of the target's registered `lr_mults`)."""
    from harness.collect import collect

    table = collect(study_dir)
    if table.empty or "stage" not in table:
        return pd.DataFrame(columns=["target", "lr_mult", "val_loss"])
    runs = table[(table["stage"] == "target") & (table["status"] == "ok")].copy()
    found = [next((t for t in registered["targets"] if abs(c / t["compute"] - 1) < 1e-4), None)
             for c in runs["trainer.max_flops"].astype(float)]
    runs["target"] = [t and t["name"] for t in found]
    lr_ref = float(registered["lr_rule"]["lr_ref"])  # a target's optim.lr is lr_ref x its multiple (the rule does N)
    runs["lr_mult"] = [min(t.get("lr_mults", [1.0]), key=lambda m: abs(math.log(lr / (lr_ref * m)))) if t else None
                       for t, lr in zip(found, runs["optim.lr"].astype(float))]
    return runs[runs["target"].notna()]


def sanity(registered: dict) -> list[str]:
    """Plain warnings when the fit should not be believed."""
    notes = []
    ladder = pd.DataFrame(registered["ladder"])
    floor, uniform = registered.get("loss_floor"), registered.get("uniform_loss")
    best = float(ladder.val_loss.min())
    if floor is not None and uniform is not None and uniform > floor:
        learned = (uniform - best) / (uniform - floor)
        if learned < 0.2:
            notes.append(f"the ladder's best loss {best:.3f} closes only {learned:.0%} of the gap from the uniform "
                         f"loss {uniform:.3f} to the floor {floor:.3f}: the runs barely learned; the law is not meaningful")
    E = registered.get("E_vs_floor", {}).get("E")
    if E is not None and floor is not None and E < 0.97 * floor:
        notes.append(f"approach 3's fitted floor E = {E:.3f} is below the known floor {floor:.3f}: "
                     "its split into reducible and irreducible loss is not meaningful")
    for f in registered["forecasts"]:
        lo, hi = f["interval90"]
        if lo is not None and hi is not None and lo > 0 and hi / lo > 2:
            notes.append(f"{f['law']} at {f['target']}: the 90% interval [{lo:.3g}, {hi:.3g}] spans more than 2x")
    return notes


def write_report(study_dir: str | Path, out: str | Path, bootstrap: int = 200) -> dict:
    """Score `study_dir`'s pre-registered forecasts; write fits.json, report.md and the plot into `out`."""
    from harness.results import write_atomic

    study_dir, out = Path(study_dir), Path(out)
    path = study_dir / "forecast.json"
    if not path.exists():
        raise AnalysisError(f"{path}: no pre-registered forecast (run harness-forecast step=register)")
    registered = json.loads(path.read_text())
    runs = _target_runs(study_dir, registered)
    floor = registered.get("loss_floor")
    scored = score(registered["forecasts"], runs, floor, pd.DataFrame(registered["ladder"]),
                   registered.get("seed_sigma_log") or float("nan"))
    report = {"study": registered["study"], "task": registered["task"], "scale": registered["scale"],
              "registered_at": registered["registered_at"], "loss_floor": floor,
              "entropy_rate": registered.get("entropy_rate"), "E_vs_floor": registered.get("E_vs_floor"),
              "theory": registered.get("theory") or {}, "param_count": registered.get("param_count") or {},
              "seed_sigma_log": registered.get("seed_sigma_log"), "lr_rule": registered["lr_rule"],
              "laws": registered["laws"], "targets": registered["targets"], "forecasts": scored,
              "target_runs": runs[["run_id", "target", "lr_mult", "params", "tokens", "val_loss"]].to_dict("records"),
              "warnings": sanity(registered)}
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    from analysis.plots import plot_forecast

    best = {(f["target"], f.get("lr_mult", 1.0)) for f in scored}  # the plot shows each target at its best LR
    shown = runs[[(t, m) in best for t, m in zip(runs["target"], runs["lr_mult"])]]
    report["figures"] = [p.relative_to(out).as_posix() for p in plot_forecast(registered, shown, figures / "forecast")]
    write_atomic(out / "fits.json", json.dumps(json_ready(report), indent=2) + "\n")
    write_atomic(out / "report.md", markdown(report))
    return report


def _pct(x) -> str:
    return "–" if x is None else f"{x:+.2%}"


def markdown(r: dict) -> str:
    """The report as markdown."""
    rule = r["lr_rule"]
    lines = [f"# Forecast study `{r['study']}` ({r['task']}, scale={r['scale']})", "",
             f"Forecasts pre-registered at {r['registered_at']}, before any target run started; fitted on the "
             f"ladder only. Loss = val_loss (nats/token). 90% prediction intervals: bootstrap over the ladder's "
             f"runs times the seed spread (sigma = {_num(r['seed_sigma_log'])} in log loss).", ""]
    if r["warnings"]:
        lines += ["**Warnings**", ""] + [f"- {w}" for w in r["warnings"]] + [""]
    lines += ["## Forecasts vs measured", "",
              "| law | target | N | D | C | predicted | 90% interval | measured (seeds) | error | reducible error | covered | leave-one-budget-out std | valid test |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in r["forecasts"]:
        lo, hi = f["interval90"]
        meas = "–" if f["measured"] is None else f"{f['measured']:.4f} ({f['seeds']})"
        valid = {True: "yes", False: "**no**", None: "–"}[f.get("valid")]
        lines.append(f"| {f['law']} | {f['target']} | {f['params']:,.0f} | {f['tokens']:.3g} | {f['compute']:.3g} | "
                     f"{f['predicted']:.4f} | [{_num(lo)}, {_num(hi)}] | {meas} | {_pct(f['rel_error'])} | "
                     f"{_pct(f['reducible_rel_error'])} | {f['covered']} | {_pct(f['lobo_rel_std'])} | {valid} |")
    invalid = {f["target"]: f["invalid_reason"] for f in r["forecasts"] if f.get("valid") is False}
    lines += [""] + [f"- **Invalid test** at target {t}: {why}. Its errors say nothing about the laws."
                     for t, why in invalid.items()]
    lines += ["", "```"] + [verdict(f) for f in r["forecasts"]] + ["```", ""] + _lr_lines(r)
    lines += ["## Laws (fitted on the ladder)", ""]
    for law in [*LAWS, FLOOR_LAW]:
        got = r["laws"].get(law)
        if got is None:
            continue
        lines.append(f"- **{law}**: " + (f"not fitted: {got['error']}" if "error" in got else
                                        ", ".join(f"{k} = {_num(v)}" for k, v in got.get("params", {}).items())))
    e = r.get("E_vs_floor") or {}
    if e:
        lines += ["", f"Approach 3's fitted floor E = {e['E']:.4f} vs the known floor {e['floor']:.4f} "
                      f"(entropy rate {_num(r['entropy_rate'])}): {e['rel_error']:+.2%}."]
    count = r.get("param_count") or {}
    if count.get("used"):
        devs = ", ".join(f"{k} {_pct(v)}" for k, v in (count.get("lobo_max_rel_dev") or {}).items())
        lines += ["", f"N counts `{count['used']}`: of total and non-embedding parameters, the one whose approach-3 "
                      f"forecast moved least with one fit budget left out ({devs}), chosen on the ladder alone."]
    theory = r.get("theory") or {}
    if theory.get("data_exponent") is not None:
        lines += ["", "Exponents, fitted vs theory (Hutter 2021: beta = a/(1+a); the quantization model: alpha ~ a):", "",
                  "| law | alpha (N) | beta (D) |", "|---|---|---|",
                  f"| theory | {_num(theory.get('param_exponent'))} | {_num(theory['data_exponent'])} |"]
        for law in ("approach3", FLOOR_LAW):
            p = r["laws"].get(law, {}).get("params", {})
            if "alpha" in p:
                lines.append(f"| {law} | {_num(p['alpha'])} | {_num(p['beta'])} |")
    d_term = f" × (D / {rule['d_ref']:.3g})^{rule['tokens_exponent']:.3f}" if rule.get("tokens_exponent") else ""
    lines += ["", "## Learning-rate rule", "",
              f"lr = {rule['lr_ref']:.4g} × (N / {rule['n_ref']:,.0f})^{rule['exponent']:.3f}{d_term}, from the best LR "
              "of each size (and run length) on the LR grid (vertex of a parabola in log LR):", "",
              "| N | D | best LR | at grid edge |", "|---|---|---|---|"]
    lines += [f"| {b['params']:,.0f} | {_num(b.get('tokens'))} | {b['lr_best']:.4g} | {b['at_edge']} |"
              for b in rule["best"]]
    lines += [f"- warning: {w}" for w in rule["warnings"]]
    for fig in r.get("figures", []):
        if fig.endswith(".png"):
            lines += ["", f"![forecast]({fig}) ([SVG]({fig[:-4]}.svg))"]
    return "\n".join(lines) + "\n"


def _lr_lines(r: dict) -> list[str]:
    """Each target's seed-mean loss at each multiple of the rule's LR it trained at (when it tried more than one)."""
    seen, lines = set(), []
    for f in r["forecasts"]:
        if f["target"] in seen or len(f.get("by_lr") or []) < 2:
            continue
        seen.add(f["target"])
        t = next(t for t in r["targets"] if t["name"] == f["target"])
        peak = dict(zip(t["lr_mults"], t["lrs"]))
        rows = [f"| {f['target']} | {b['lr_mult']:.4g} | {peak.get(b['lr_mult'], float('nan')):.4g} | {b['mean']:.4f} "
                f"({b['count']}) |" for b in sorted(f["by_lr"], key=lambda b: -b["lr_mult"])]
        edge = " It lies at the edge of the LRs tried: a better one may lie beyond." if f.get("lr_at_edge") else ""
        rule = f.get("rule_lr_measured")
        cost = (f" The rule's LR alone measured {rule:.4f} ({rule / f['measured'] - 1:+.2%})." if rule else "")
        lines += [f"Target {f['target']} trained at {len(f['by_lr'])} multiples of the rule's LR, each with every seed "
                  f"(registered before it trained); the table above scores the best, {f['lr_mult']:.4g}x.{edge}{cost}", "",
                  "| target | × rule's LR | peak LR | loss (seeds) |", "|---|---|---|---|", *rows, ""]
    return lines


def _num(v) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.4g}"
