"""Forecasts from a fit ladder, written down before the runs they predict, then scored against them.

Recipe (the `forecast` study; analysis/forecast_study.py runs it):
1. LR rule. At the two smallest fit budgets each size trains at a small grid of learning rates; the best LR
   per size and budget is the vertex of a parabola in log LR through the grid (the grid point itself at an
   edge, with a warning, left out of the fit when enough remain); log lr* = log lr_ref + g log(N / N_ref) +
   h log(D / D_ref) by least squares, N_ref and D_ref the geometric means (DeepSeek 2024, Porian et al. 2024:
   the best LR moves with the run's length, so a rule of N alone fitted at one budget extrapolates badly);
   h > 0 (a longer run wanting a higher LR: grid noise, which sent two 10x targets to LRs that lost to the
   ladder) falls back to the rule of N alone, fitted on both budgets' grids. Cooldown branches share one
   peak LR per size, so their rule is of N alone; at cpu scale their grid is the isoflop size of every fit
   budget, which puts the rule on the compute-optimal diagonal the targets extend.
2. Laws, fitted on the ladder's runs only (N = parameters, see 4; D = tokens, C = 6 N D, loss = val_loss):
   - approach3: L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann's recipe: analysis/chinchilla.py);
   - approach3_floor, with a known floor F: L - F = A/N^alpha + B/D^beta, beside the free fit, never instead
     (recovering the floor is part of the test);
   - no_offset: L(N, D) = A/N^alpha + B/D^beta (the Kaplan-style form without an irreducible loss);
   - frontier:  L(C) = E + a C^-b through the IsoFLOP minima (one per fit budget);
   - approach2: L(C) = a C^-b through the same minima (log-linear, no offset).
   N_opt(C) from the IsoFLOP minima (approach 2) places each target run; D = C / 6N.
3. Intervals. 90% prediction intervals: each law is refitted on `bootstrap` resamples of the ladder's runs
   (approach 3 and no_offset: runs resampled with replacement; the IsoFLOP laws: runs resampled within
   each budget), and each replica's prediction is multiplied by exp(eps), eps ~ N(0, sigma_seed^2 / seeds),
   sigma_seed the spread of log loss between seeds of the same config (the `noise` stage), so the interval
   covers the seed-averaged loss the target runs will measure, not only the law's mean.
4. Sensitivity. Each law refitted with one fit budget left out; the spread of its forecast is reported. The
   same spread of approach 3, with N counted as all parameters and as non-embedding ones, picks the count the
   laws use (`pick_param_count`), on the ladder alone, before any target trains.
5. Scoring. Each target trains at the pre-registered multiples of the rule's LR (`grid.<scale>.target_lrs`, every
   seed) and "measured" is the seed mean at its best LR: the laws predict a tuned run, and the rule is an
   extrapolation of its own (`rule_lr_measured` keeps what the rule's LR alone reached). rel_error = predicted /
   measured - 1; with a known floor F (markov: the best loss reachable
   from a window; facts: the noise entropy; `loss_floor`), reducible_rel_error = (predicted - F) / (measured - F) - 1.
   A target is a valid test only if its N is within the ladder's support and it beats the best cheaper ladder
   run by 2 seed sigmas (`validity`); an invalid one is reported as such, never as the law's success or failure.
"""
from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.chinchilla import fit_chinchilla
from analysis.isoflop import fit_isoflop
from analysis.laws import INTERVAL, chinchilla_loss, frontier_loss, percentile_interval, replicas
from analysis.powerlaw import fit_power_law
from analysis.robustfit import LogSumExpModel, bootstrap_refits, fit_from_starts
from analysis.tables import AnalysisError, DataWarning
from harness.flops import tokens_for, training_flops

LEVEL = INTERVAL
LAWS = ("approach3", "no_offset", "frontier", "approach2")
FLOOR_LAW = "approach3_floor"  # approach 3 with E held at a known floor: beside the free fit, never instead of it
SUPPORT = 4.0  # a target's N may lie up to this many times above the ladder's largest size (and not below its smallest)
N, D, C, LOSS = "params", "tokens", "C", "val_loss"


# ---- 1. the LR rule ---------------------------------------------------------------------------------

@dataclass
class LrRule:
    """lr*(N, D) = lr_ref * (N / n_ref)^exponent * (D / d_ref)^tokens_exponent, from the best LR of each size
    (and each run length, when the grid has 2+ budgets) on a grid."""

    lr_ref: float
    n_ref: float
    exponent: float
    best: pd.DataFrame          # one row per size and budget: params, tokens, lr_best, at_edge
    warnings: list[str]
    d_ref: float = 1.0
    tokens_exponent: float = 0.0

    def lr(self, n: float, d: float | None = None) -> float:
        scale = (d / self.d_ref) ** self.tokens_exponent if d is not None and self.tokens_exponent else 1.0
        return self.lr_ref * (n / self.n_ref) ** self.exponent * scale

    def overrides(self) -> list[str]:
        """The optim keys that apply the rule in a run (harness.train.peak_lr)."""
        return [f"optim.lr={self.lr_ref:.6g}", f"optim.lr_ref_params={round(self.n_ref)}",
                f"optim.lr_exponent={self.exponent:.6g}", f"optim.lr_ref_tokens={self.d_ref:.6g}",
                f"optim.lr_tokens_exponent={self.tokens_exponent:.6g}"]

    def to_dict(self) -> dict:
        return {"rule": "lr = lr_ref * (N / n_ref)^exponent * (D / d_ref)^tokens_exponent", "lr_ref": self.lr_ref,
                "n_ref": self.n_ref, "exponent": self.exponent, "d_ref": self.d_ref,
                "tokens_exponent": self.tokens_exponent, "best": self.best.to_dict(orient="records"),
                "warnings": self.warnings}


def _best_lr(g: pd.DataFrame, lr: str) -> tuple[float, bool]:
    """(best LR, at the grid's edge) of one size's grid: the vertex of a parabola in log LR through the best
    point and its neighbours, or the grid point itself at an edge."""
    g = g.sort_values(lr)
    log_lr, y = np.log(g[lr].to_numpy(float)), g[LOSS].to_numpy(float)
    i = int(np.argmin(y))
    edge = i in (0, len(y) - 1)
    best = log_lr[i]
    if not edge and len(y) >= 3:
        p = np.polyfit(log_lr[i - 1:i + 2], y[i - 1:i + 2], 2)
        best = float(-p[1] / (2 * p[0])) if p[0] > 0 else best
    return float(math.exp(best)), edge


def fit_lr_rule(runs: pd.DataFrame, lr: str = "optim.lr", size: str = "size_mult", tokens: bool = True) -> LrRule:
    """Best LR per size (and per budget, when `runs` has 2+ values of `budget`) and the power law through them:
    log lr* = log lr_ref + g log(N / n_ref) [+ h log(D / d_ref)], least squares over the grids whose best LR lies
    inside the grid (all of them, with a warning, when fewer than the law's parameters + 1 do). `tokens=False`
    fits N alone (cooldown branches share one peak LR across their lengths)."""
    ok = runs[np.isfinite(runs[LOSS]) & (runs["status"] == "ok")]
    by = ["budget", size] if "budget" in ok and ok["budget"].nunique() > 1 else [size]
    rows, notes = [], []
    for _, g in ok.groupby(by):
        best, edge = _best_lr(g, lr)
        n, d = float(g[N].median()), float(g[D].median()) if D in g else math.nan
        if edge:
            notes.append(f"best LR for N={n:,.0f}" + (f", D={d:.3g}" if len(by) > 1 else "") + f" is at the grid's "
                         f"edge ({best:.3g}): the optimum may lie outside it")
        rows.append({"params": n, "tokens": d, "lr_best": best, "at_edge": edge})
    best = pd.DataFrame(rows)
    if best["params"].nunique() < 2:
        raise AnalysisError(f"LR rule needs the LR grid at >= 2 sizes, got {best['params'].nunique()}")
    with_d = len(by) > 1 and tokens
    interior = best[~best.at_edge]
    use = interior if len(interior) >= 3 + with_d else best
    if best.at_edge.any():
        notes.append("the rule leaves the edge points out" if len(use) < len(best) else
                     "too few grids with an interior best LR: the rule uses the edge points too")
    log_n, log_lr = np.log(use.params.to_numpy()), np.log(use.lr_best.to_numpy())
    n_ref = float(np.exp(log_n.mean()))
    cols = [np.ones(len(use)), log_n - np.log(n_ref)]
    d_ref = 1.0
    if with_d:
        log_d = np.log(use.tokens.to_numpy())
        d_ref = float(np.exp(log_d.mean()))
        cols.append(log_d - np.log(d_ref))
    coef = np.linalg.lstsq(np.stack(cols, axis=1), log_lr, rcond=None)[0]
    if with_d and coef[2] > 0:  # longer runs wanting a higher LR is grid noise (it blew up 10x targets): drop D
        notes.append(f"the best LR rose with the run's length (D exponent {coef[2]:+.2f}): grid noise, not a law; "
                     "the rule uses N alone")
        coef = np.linalg.lstsq(np.stack(cols[:2], axis=1), log_lr, rcond=None)[0]
        with_d, d_ref = False, 1.0
    return LrRule(float(np.exp(coef[0])), n_ref, float(coef[1]), best, notes, d_ref,
                  float(coef[2]) if with_d else 0.0)


# ---- 2. laws, each refittable on a subset --------------------------------------------------------------

def _no_offset_design(log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    z, o = np.zeros_like(log_n), np.ones_like(log_n)
    return np.stack([np.stack([o, z, -log_n, z], axis=1), np.stack([z, o, z, -log_d], axis=1)])


NO_OFFSET_STARTS = np.array(list(itertools.product(np.arange(0, 25.1, 5), np.arange(0, 25.1, 5),
                                                   np.arange(0, 2.01, 0.5), np.arange(0, 2.01, 0.5))))


def _predict_no_offset(theta: np.ndarray, n: float, d: float) -> np.ndarray:
    a, b, al, be = np.atleast_2d(theta).T
    return np.exp(a - al * np.log(n)) + np.exp(b - be * np.log(d))


def _predictions(law: str, ladder: pd.DataFrame, targets: list[tuple[float, float]], bootstrap: int,
                 seed: int, warm: dict | None = None, floor: float | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(point predictions (T,), bootstrap predictions (B, T), fitted parameters) of one law.

    `warm`: parameters of a fit on more points to start from instead of the full grid (leave-one-out refits).
    Approach 3's parameters carry its bootstrap replicas under `samples` and its `fit_range`."""
    cs = np.array([training_flops(n, d) for n, d in targets])
    if law == FLOOR_LAW:  # L - floor = A/N^alpha + B/D^beta: the no-offset law on the reducible loss
        reducible = ladder.assign(**{LOSS: ladder[LOSS] - floor})
        if not (reducible[LOSS] > 0).all():
            raise AnalysisError(f"{FLOOR_LAW}: a ladder run is at or below the known floor {floor:.4g}")
        point, reps, params = _predictions("no_offset", reducible, targets, bootstrap, seed, warm)
        return point + floor, reps + floor, {"E": floor, **params}
    if law == "approach3":
        fit = fit_chinchilla(ladder, N, D, LOSS, bootstrap=bootstrap, seed=seed, level=LEVEL,
                             starts=None if warm is None else [warm])
        point = np.array([fit.predict(n, d) for n, d in targets], dtype=float)
        reps = np.empty((0, len(targets)))
        if fit.samples is not None:
            reps = chinchilla_loss(replicas(fit.samples), *np.array(targets, dtype=float).T)
        return point, reps, {**fit.params, "samples": fit.samples, "fit_range": fit.fit_range}
    if law == "no_offset":
        log_n, log_d = np.log(ladder[N].to_numpy(float)), np.log(ladder[D].to_numpy(float))
        model = LogSumExpModel(_no_offset_design(log_n, log_d), np.log(ladder[LOSS].to_numpy(float)))
        starts = NO_OFFSET_STARTS if warm is None else np.log([[warm["A"], warm["B"]]]).tolist()[0] + [warm["alpha"], warm["beta"]]
        theta, _, ends = fit_from_starts(model, np.atleast_2d(starts))
        point = np.array([_predict_no_offset(theta, n, d)[0] for n, d in targets])
        reps = np.empty((0, len(targets)))
        if bootstrap:
            th = bootstrap_refits(model, ends, bootstrap, np.random.default_rng(seed))
            reps = np.stack([_predict_no_offset(th, n, d) for n, d in targets], axis=1)
        a, b, al, be = map(float, theta)
        return point, reps, {"A": math.exp(a), "B": math.exp(b), "alpha": al, "beta": be}
    # frontier and approach2: laws of the IsoFLOP minima
    iso = fit_isoflop(ladder, n=N, loss=LOSS, budget="budget", bootstrap=bootstrap, seed=seed, level=LEVEL)
    point, params = _minima_law(law, iso.minima, cs)
    reps = []
    for m in iso.replica_minima:
        try:
            reps.append(_minima_law(law, m, cs)[0])
        except (AnalysisError, FloatingPointError):
            continue
    return point, np.array(reps).reshape(-1, len(targets)), params


def _minima_law(law: str, minima: pd.DataFrame, cs: np.ndarray) -> tuple[np.ndarray, dict]:
    if law == "approach2":
        b, log_a = np.polyfit(np.log(minima.C), np.log(minima.loss_opt), 1)
        return np.exp(log_a + b * np.log(cs)), {"a": float(np.exp(log_a)), "b": float(-b)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        fit = fit_power_law(minima, x="C", y="loss_opt", offset=True, workers=1)
    return np.asarray(fit.predict(cs), dtype=float), dict(fit.params)


# ---- 3. the pre-registered forecast -------------------------------------------------------------------

def seed_sigma(ladder: pd.DataFrame, replicas: pd.DataFrame, key: tuple[str, ...]) -> tuple[float, int]:
    """Std of log loss between seeds of the same config: pairs of ladder and replica runs matched on `key`."""
    merged = ladder.merge(replicas, on=list(key), suffixes=("", "_rep"))
    diff = np.log(merged[LOSS].to_numpy(float)) - np.log(merged[f"{LOSS}_rep"].to_numpy(float))
    diff = diff[np.isfinite(diff)]
    if len(diff) == 0:
        return float("nan"), 0
    return float(np.sqrt(np.mean(diff ** 2) / 2)), len(diff)  # var(a - b) = 2 var(one seed)


def place_targets(ladder: pd.DataFrame, multiples: list[float]) -> list[dict]:
    """Target runs at `multiples` of the largest fit budget, sized by the IsoFLOP N_opt(C) law; else by
    approach 3's allocation (when its exponents are usable); else at the tokens per parameter of the best
    run of the largest budget."""
    c_max = float(ladder["budget"].max())
    sized = None
    try:
        iso = fit_isoflop(ladder, n=N, loss=LOSS, budget="budget")
        sized = (lambda c: float(iso.optimal_allocation(c)[0]), "IsoFLOP N_opt(C)")
    except AnalysisError:
        fit = fit_chinchilla(ladder, N, D, LOSS)
        if fit.params["alpha"] > 0 and fit.params["beta"] > 0:
            sized = (lambda c: float(fit.optimal_allocation(c)[0]), "approach 3 allocation")
    if sized is None:
        top = ladder[ladder.budget == c_max].sort_values(LOSS).iloc[0]
        ratio = float(top[D] / top[N])
        sized = (lambda c: math.sqrt(tokens_for(c, ratio)), f"D/N = {ratio:.3g} of the best run at the largest budget")
    size, how = sized
    return [{"multiple": m, "compute": c_max * m, "params": size(c_max * m), "tokens": tokens_for(c_max * m, size(c_max * m)),
             "sized_by": how} for m in multiples]


COUNTS = ("params", "params_non_embedding")  # total (Chinchilla's N) and without embeddings (Kaplan's N)


def pick_param_count(ladder: pd.DataFrame, targets: list[dict], floor: float | None = None) -> tuple[str, dict]:
    """The parameter count the laws use, decided on the ladder alone: of total and non-embedding parameters,
    the one whose approach-3 forecast of the targets moves least when one fit budget is left out (the largest
    leave-one-budget-out deviation over the targets). `targets` carry both counts; returns (column, spreads)."""
    spread = {}
    for col in COUNTS:
        if col not in ladder or ladder[col].isna().any() or any(t.get(col) is None for t in targets):
            continue
        got = forecast(ladder.assign(**{N: ladder[col]}), [{**t, N: t[col]} for t in targets], math.nan, 1,
                       bootstrap=0, floor=floor, laws=("approach3",))
        devs = [f["lobo_max_rel_dev"] for f in got["forecasts"] if f["lobo_max_rel_dev"] is not None]
        spread[col] = max(devs) if devs else math.inf
    if not spread:
        return N, {}
    return min(spread, key=spread.get), spread


def forecast(ladder: pd.DataFrame, targets: list[dict], sigma: float, seeds: int, bootstrap: int = 200,
             seed: int = 0, floor: float | None = None, laws: tuple[str, ...] | None = None,
             lobo: bool = True) -> dict[str, Any]:
    """Each law's prediction at each target, its 90% interval and leave-one-budget-out spread.

    `ladder`: one row per fit run with params, tokens, val_loss and budget (the FLOP budget it belongs to);
    `targets`: dicts with params and tokens (as place_targets gives, or the runs' own measured N and D).
    `laws`: by default LAWS, and approach3_floor (E fixed at `floor`) when the floor is known.
    """
    laws = laws or (LAWS + ((FLOOR_LAW,) if floor is not None else ()))
    nd = [(t["params"], t["tokens"]) for t in targets]
    rng = np.random.default_rng(seed + 1)
    budgets = sorted(ladder["budget"].unique())
    fitted, out = {}, []
    for law in laws:
        try:
            point, reps, params = _predictions(law, ladder, nd, bootstrap, seed, floor=floor)
        except (AnalysisError, FloatingPointError) as e:
            fitted[law] = {"error": str(e)}
            continue
        samples, fit_range = params.pop("samples", None), params.pop("fit_range", None)
        fitted[law] = {"params": params}
        if law == "approach3":  # replicas and range too, so harness-cost can plan from the forecast with intervals
            fitted[law]["frontier"] = frontier_band(params, samples, ladder, max(training_flops(t["params"], t["tokens"]) for t in targets))
            fitted[law].update(fit_range=fit_range, samples=None if samples is None else samples.to_dict("records"))
        noise = np.exp(rng.normal(0, sigma / math.sqrt(seeds), reps.shape)) if math.isfinite(sigma) else 1.0
        left_out = []
        for b in budgets if lobo else []:
            try:
                left_out.append(_predictions(law, ladder[ladder.budget != b], nd, 0, seed, warm=params, floor=floor)[0])
            except (AnalysisError, FloatingPointError):
                continue
        left_out = np.array(left_out).reshape(-1, len(nd))
        for j, t in enumerate(targets):
            interval = percentile_interval((reps * noise)[:, j], LEVEL) if len(reps) else (math.nan, math.nan)
            out.append({"law": law, "target": t.get("name", j), "params": t["params"], "tokens": t["tokens"],
                        "compute": training_flops(t["params"], t["tokens"]), "predicted": float(point[j]),
                        "interval90": list(interval), "lobo_rel_std": _rel_std(left_out[:, j], point[j]),
                        "lobo_max_rel_dev": _max_dev(left_out[:, j], point[j])})
    e_vs = {}
    if floor is not None and "E" in fitted.get("approach3", {}).get("params", {}):
        E = fitted["approach3"]["params"]["E"]
        e_vs = {"E": E, "floor": floor, "rel_error": E / floor - 1}
    return {"laws": fitted, "forecasts": out, "seed_sigma_log": sigma, "E_vs_floor": e_vs}


def frontier_band(params: dict, samples: pd.DataFrame | None, ladder: pd.DataFrame, c_top: float,
                  points: int = 40) -> dict[str, list[float]]:
    """Approach 3's compute-optimal loss L(N_opt(C), D_opt(C)) from the smallest fit budget to 1.5x the
    largest target, with the LEVEL band of its bootstrap replicas (NaN where a replica has no optimum)."""
    cs = np.geomspace(float(training_flops(ladder[N], ladder[D]).min()), 1.5 * c_top, points)
    band = {"C": cs.tolist(), "mid": frontier_loss(params, cs).tolist()}
    if samples is not None and len(samples):
        draws = frontier_loss(replicas(samples), cs)
        band["lo"], band["hi"] = (x.tolist() for x in percentile_interval(draws, LEVEL, axis=0))
    return band


def _rel_std(values: np.ndarray, ref: float) -> float | None:
    return float(np.std(values / ref - 1)) if len(values) > 1 else None


def _max_dev(values: np.ndarray, ref: float) -> float | None:
    return float(np.max(np.abs(values / ref - 1))) if len(values) else None


# ---- 5. scoring ---------------------------------------------------------------------------------------

def validity(target: dict, measured: float, ladder: pd.DataFrame, sigma: float) -> tuple[bool, str | None]:
    """Whether a target run can test a law at all, and why not.

    Invalid when its N lies outside what the ladder supports (below the smallest size or more than SUPPORT x
    the largest), or when its measured loss is not below the best ladder run of lower compute by 2 seed
    sigmas: a larger run that does not beat cheaper ones measures a bad recipe (LR, size), not the law."""
    n_lo, n_hi = float(ladder[N].min()), float(ladder[N].max())
    if not n_lo <= target["params"] <= SUPPORT * n_hi:
        return False, (f"N = {target['params']:,.0f} lies outside the ladder's support [{n_lo:,.0f}, "
                       f"{SUPPORT * n_hi:,.0f}] ({SUPPORT:g}x its largest size)")
    cheaper = ladder[training_flops(ladder[N], ladder[D]) < target["compute"]]
    if len(cheaper) and math.isfinite(measured):
        best, margin = float(cheaper[LOSS].min()), 2 * sigma if math.isfinite(sigma) else 0.0
        if measured >= best * math.exp(-margin):
            return False, (f"measured {measured:.4f} is not below the best cheaper ladder run ({best:.4f}) by 2 seed "
                           f"sigmas ({margin:.2%}): it cannot test a law")
    return True, None


def score(registered: list[dict], measured: pd.DataFrame, floor: float | None, ladder: pd.DataFrame | None = None,
          sigma: float = math.nan) -> list[dict]:
    """Each pre-registered forecast with the seed-mean loss of its target's runs (`measured` has target, val_loss,
    and `lr_mult` where a target trained at several multiples of the rule's LR: then its best LR's seed mean,
    since the laws predict a tuned run), and, given the `ladder`, whether the target is a valid test (`validity`)."""
    by = ["target", "lr_mult"] if "lr_mult" in measured else ["target"]
    groups = measured.groupby(by)[LOSS].agg(["mean", "std", "count"]).reset_index()
    scored = []
    for f in registered:
        row = dict(f)
        mine = groups[groups["target"] == f["target"]]
        got = mine.loc[mine["mean"].idxmin()] if len(mine) else None
        m = float(got["mean"]) if got is not None else math.nan
        row.update(measured=m if math.isfinite(m) else None, seeds=int(got["count"]) if got is not None else 0,
                   seed_std=float(got["std"]) if got is not None and got["count"] > 1 else None)
        if "lr_mult" in mine:
            mults = sorted(mine["lr_mult"])
            rule = mine[np.isclose(mine["lr_mult"], 1.0)]
            row.update(lr_mult=float(got["lr_mult"]) if got is not None else None,
                       lr_at_edge=len(mults) > 1 and got is not None and got["lr_mult"] in (mults[0], mults[-1]),
                       by_lr=mine[["lr_mult", "mean", "count"]].to_dict("records"),
                       rule_lr_measured=float(rule["mean"].iloc[0]) if len(rule) else None)
        valid, why = validity(f, m, ladder, sigma) if ladder is not None and got is not None else (None, None)
        row.update(valid=valid, invalid_reason=why)
        if row["measured"] is None:
            row.update(rel_error=None, reducible_rel_error=None, covered=None)
        else:
            lo, hi = f["interval90"]
            row["rel_error"] = f["predicted"] / m - 1
            row["reducible_rel_error"] = ((f["predicted"] - floor) / (m - floor) - 1) if floor is not None else None
            row["covered"] = bool(lo <= m <= hi) if math.isfinite(lo) else None
        scored.append(row)
    return scored


def verdict(row: dict) -> str:
    """One line per scored forecast, for the terminal."""
    if row.get("measured") is None:
        return f"{row['law']:>15} target {row['target']}: predicted {row['predicted']:.4f}, not yet measured"
    lo, hi = row["interval90"]
    red = "" if row.get("reducible_rel_error") is None else f", reducible {row['reducible_rel_error']:+.1%}"
    cov = {True: "inside", False: "OUTSIDE", None: "no"}[row["covered"]]
    tuned = ""
    if len(row.get("by_lr") or []) > 1:
        edge = ", at the edge of those tried" if row.get("lr_at_edge") else ""
        tuned = f" (best of {len(row['by_lr'])} LRs: {row['lr_mult']:.3g}x the rule's{edge})"
    test = {True: "valid test", False: f"INVALID TEST: {row.get('invalid_reason')}", None: "validity unknown"}
    return (f"{row['law']:>15} target {row['target']} ({row['compute']:.2g} FLOPs): predicted {row['predicted']:.4f} "
            f"[{lo:.4f}, {hi:.4f}], measured {row['measured']:.4f}{tuned}: error {row['rel_error']:+.2%}{red}, "
            f"{cov} the 90% interval; {test[row.get('valid')]}")
