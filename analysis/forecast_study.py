"""`harness-forecast`: fit a law on a ladder of small runs, write the forecast down, train the larger runs, score.

    harness-forecast scale=smoke|cpu|gpu [task=facts|markov|pycode] [task_seed=0] [ladder=cosine|branches]
                     [out_dir=runs] [step=STEP|plan] [bootstrap=200] [calibrate=true|false]
                     [any Hydra override, e.g. logger=none]

Tasks: `facts` (Zipf-distributed key -> value records: a known floor and known exponents), `markov` (the scale's
Zipf chain), `pycode` (Python source bytes, no known floor). `task_seed=K` draws another instance of a
synthetic task (facts: new keys and values; markov: a new chain) into its own study folder: the recipe is
tuned on instance 0 and must hold on the others. `ladder=branches` trains every stage warmup-stable-decay and
lets runs of one size share their constant-LR trunk (harness/branches.py; study folder suffix `_wsd`);
`ladder=cosine` (the default) trains each run on its own cosine schedule.

Steps, in order (`step=all`, the default, runs each that is not done; `step=NAME` runs one), each a multirun
of `sweeps/forecast.yaml` into `<out_dir>/<study>/` (`forecast`, or `forecast_<task>`; `_s<K>` for task_seed=K):
  lr        the LR grid at the smallest fit budgets -> lr_rule.json, lr*(N, D) (written once, before the ladder)
  ladder    the fit budgets x sizes with the rule's LR
  noise     a second seed of the two smallest budgets (the seed spread)
  register  fit the laws on the ladder only -> forecast.json, never rewritten once a target run exists
  targets   the target runs (10x, 30x the largest fit budget; 2 seeds at each of `grid.<scale>.target_lrs`, multiples
            of the rule's LR), sized, predicted and their LRs written in forecast.json; the best LR's mean is scored
  score     forecasts vs measured -> report/report.md, report/fits.json, report/figures/
`step=plan` runs nothing: runs, FLOPs and wall time of each training stage and the total (analysis/forecast_plan.py;
calibrate=false: the reference machine's efficiency, without this machine's probe, as for harness-plan).
Re-running resumes like any study: finished runs are reused and a pre-registered forecast never changes.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import sys
from pathlib import Path

import pandas as pd

from harness import children
from harness.config import (EXIT_BAD_INPUT, bad_input_exits, choose, command_args, compose, fail, key_values,
                            non_negative, positive)
from harness.results import RESULT, write_atomic

TASKS = ("markov", "facts", "pycode")  # markov: the scale's Zipf chain (sweeps/forecast.yaml grid.<scale>.task)
INSTANCE_KEY = {"markov": "data.chain_seed", "facts": "data.task_seed"}  # what task_seed sets, per task
STEPS = ("lr", "ladder", "noise", "register", "targets", "score")
OWN_KEYS = ("scale", "task", "task_seed", "ladder", "out_dir", "step", "bootstrap", "calibrate")
LADDERS = ("cosine", "branches")


class Forecast:
    """One forecast study: its folder, the overrides every stage shares, and its files."""

    def __init__(self, scale: str, task: str, out_dir: str, extra: list[str], task_seed: int = 0,
                 ladder: str = "cosine"):
        self.scale, self.task, self.task_seed, self.schedule = scale, task, task_seed, ladder
        self.study = (("forecast" if task == "markov" else f"forecast_{task}") + (f"_s{task_seed}" if task_seed else "")
                      + ("_wsd" if ladder == "branches" else ""))
        self.dir = Path(out_dir) / self.study
        launcher = [] if any(o.startswith("hydra/launcher=") for o in extra) else ["hydra/launcher=joblib"]
        self.base = ["sweep=forecast", f"scale={scale}", f"out_dir={out_dir}", f"study={self.study}", *launcher, *extra]
        if task == "pycode":  # the whole standard library: the larger runs need its ~30M unique bytes
            self.base += ["task=pycode", "data=pycode", "data.max_bytes=null"]
        if task == "facts":  # data-hungry: its ladder's loss minima sat at D/N ~ 200 (a pilot at 50 put them all
            self.base += ["task=facts", "data=facts", "tokens_per_param=200"]  # at the smallest size)
        if task_seed:
            self.base += [f"{INSTANCE_KEY[task]}={task_seed}"]
        if ladder == "branches":
            self.base += self._branch_overrides()
        self.rule_file, self.forecast_file = self.dir / "lr_rule.json", self.dir / "forecast.json"

    def _branch_overrides(self) -> list[str]:
        """WSD schedule keys, and each stage's budgets and sizes from `grid.<scale>.branches`."""
        plan = compose([o for o in self.base if not o.startswith("hydra")]).grid[self.scale].branches
        stages = [f'grid.{self.scale}.{stage}.{key}="{value}"' for stage in ("lr", "ladder", "noise")
                  for key, value in plan[stage].items()]
        return [*stages, "optim.schedule=wsd", "optim.min_lr_ratio=0", "optim.warmup_fraction=null",
                f"optim.warmup_steps={plan.warmup_steps}", "trainer.branch=true"]

    def config(self, *overrides: str):
        """A target run's config composed as the multirun will compose it (its sweeper's choices applied)."""
        plain = [o for o in self.base if not o.startswith("hydra")]
        task = compose([*plain, *overrides]).task
        return compose([*plain, "model=transformer", f"data={task}", *overrides])

    def multirun(self, stage: str, *overrides: str) -> None:
        cmd = [sys.executable, "-m", "harness", "-m", *self.base, f"stage={stage}", *overrides]
        print(f"forecast: stage {stage}: {' '.join(cmd[2:])}", flush=True)
        code = children.run(cmd)
        if code == EXIT_BAD_INPUT:
            sys.exit(EXIT_BAD_INPUT)  # the stage printed its one-line error
        if code:
            raise SystemExit(f"forecast: stage {stage} failed (exit {code}); fix and re-run to resume")

    def runs(self, stage: str) -> pd.DataFrame:
        """The ok runs of one stage, with the columns the fits read."""
        from harness.collect import collect

        table = collect(self.dir) if self.dir.is_dir() else pd.DataFrame()
        if table.empty or "stage" not in table:
            return pd.DataFrame()
        rows = table[(table["stage"] == stage) & (table["status"] == "ok")].copy()
        rows["budget"] = rows["trainer.max_flops"].astype(float)
        return rows

    def stage_exists(self, stage: str) -> bool:
        """Whether any run folder of `stage` exists, finished or not (a started target freezes the forecast)."""
        for path in self.dir.glob(f"*/{RESULT}"):
            try:
                if json.loads(path.read_text())["config"]["stage"] == stage:
                    return True
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return False

    # ---- steps ------------------------------------------------------------------------------------

    def lr(self) -> None:
        self.multirun("lr")
        if self.rule_file.exists() and self.stage_exists("ladder"):
            return  # the ladder trained with this rule: it stays
        from analysis.forecast import fit_lr_rule

        rule = fit_lr_rule(self.runs("lr"), tokens=self.schedule == "cosine")  # branches share one peak LR
        write_atomic(self.rule_file, json.dumps(rule.to_dict(), indent=2) + "\n")
        d_term = f" * (D / {rule.d_ref:.3g})^{rule.tokens_exponent:.3f}" if rule.tokens_exponent else ""
        print(f"forecast: LR rule lr = {rule.lr_ref:.3g} * (N / {rule.n_ref:,.0f})^{rule.exponent:.3f}{d_term}",
              flush=True)
        for note in rule.warnings:
            print(f"warning: {note}", file=sys.stderr)

    def rule_overrides(self, lr_mults: list[float] | None = None) -> list[str]:
        """The optim keys that apply the LR rule in a run; with `lr_mults`, a sweep over those multiples of it."""
        if not self.rule_file.exists():
            fail("step", "ladder", f"no LR rule yet ({self.rule_file}): run step=lr first")
        r = json.loads(self.rule_file.read_text())
        lrs = ",".join(f"{r['lr_ref'] * m:.6g}" for m in lr_mults or [1.0])
        size = [f"optim.lr={lrs}", f"optim.lr_ref_params={round(r['n_ref'])}", f"optim.lr_exponent={r['exponent']:.6g}"]
        if not r.get("tokens_exponent"):  # a rule of N alone (the LR grid at one budget): run ids as before
            return size
        return [*size, f"optim.lr_ref_tokens={r['d_ref']:.6g}", f"optim.lr_tokens_exponent={r['tokens_exponent']:.6g}"]

    def ladder(self) -> None:
        self.multirun("ladder", *self.rule_overrides())

    def noise(self) -> None:
        self.multirun("noise", *self.rule_overrides())

    def register(self, bootstrap: int) -> dict:
        """Fit on the ladder and write forecast.json, unless a target run already exists."""
        if self.forecast_file.exists() and self.stage_exists("target"):
            registered = json.loads(self.forecast_file.read_text())
            print(f"forecast: kept the forecast pre-registered at {registered['registered_at']} "
                  f"(target runs exist) -> {self.forecast_file}", flush=True)
            return registered
        from analysis.forecast import forecast, pick_param_count, place_targets, seed_sigma

        ladder, noise = self.runs("ladder"), self.runs("noise")
        if ladder.empty:
            fail("step", "register", f"no finished ladder runs in {self.dir}: run step=ladder first")
        cfg = self.config("stage=target")
        multiples = [float(m) for m in cfg.grid[self.scale].targets]
        targets = place_targets(ladder, multiples)
        seeds = str(cfg.grid[self.scale].target.seeds).split(",")
        lr_mults = [float(m) for m in cfg.grid[self.scale].target_lrs]
        rule = self.rule_overrides()
        for t in targets:  # the exact N, D and peak LRs the target runs will have, from their own configs
            t["overrides"] = [f"trainer.max_flops={t['compute']:.6g}", f"model.target_params={round(t['params'])}"]
            t["params"], t["params_non_embedding"], t["tokens"], lr = self._size(*t["overrides"], *rule)
            t["params_total"], t["name"] = t["params"], f"{t['multiple']:g}x"
            t["lr_mults"], t["lrs"] = lr_mults, [lr * m for m in lr_mults]
        sigma, pairs = seed_sigma(ladder, noise, ("budget", "size_mult")) if not noise.empty else (math.nan, 0)
        floor = _known(ladder, "loss_floor")
        count, spreads = pick_param_count(ladder, targets, floor)
        ladder = ladder.assign(params_total=ladder["params"], params=ladder[count])
        for t in targets:
            t["params"] = t[count]
        print(f"forecast: N = {count} (approach 3's leave-one-budget-out deviation: "
              + ", ".join(f"{k} {v:.2%}" for k, v in spreads.items()) + ")", flush=True)
        result = forecast(ladder, targets, sigma, len(seeds), bootstrap=bootstrap, floor=floor)
        registered = {
            "registered_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "study": self.study, "task": self.task, "scale": self.scale,
            "fitted_run_ids": sorted(ladder.run_id), "noise_run_ids": sorted(noise.run_id) if not noise.empty else [],
            "seed_pairs": pairs, "target_seeds": len(seeds), "bootstrap": bootstrap,
            "loss_floor": floor, "entropy_rate": _known(ladder, "entropy_rate"),
            "theory": {"data_exponent": _known(ladder, "theory_data_exponent"),
                       "param_exponent": _known(ladder, "theory_param_exponent")},
            "uniform_loss": _uniform(ladder),
            "lr_rule": json.loads(self.rule_file.read_text()), "targets": targets,
            "param_count": {"used": count, "lobo_max_rel_dev": spreads},
            "ladder": ladder[["run_id", "budget", "size_mult", "params", "params_total", "tokens",
                              "val_loss"]].to_dict("records"),
            **result}
        from harness.jsonsafe import json_ready

        write_atomic(self.forecast_file, json.dumps(json_ready(registered), indent=2) + "\n")
        print(f"forecast: pre-registered {len(result['forecasts'])} forecasts -> {self.forecast_file}", flush=True)
        return registered

    def _size(self, *overrides: str) -> tuple[int, int, int, float]:
        """(total parameters, non-embedding parameters, tokens, peak LR) of a target run, from its own config."""
        from harness.build import check_config
        from harness.models import param_counts

        cfg = self.config("stage=target", *overrides)
        _, model, settings = check_config(cfg)
        return (*param_counts(model), settings.tokens, settings.lr_peak)

    def targets(self) -> None:
        if not self.forecast_file.exists():
            fail("step", "targets", f"no forecast.json in {self.dir}: run step=register first")
        registered = json.loads(self.forecast_file.read_text())
        for t in registered["targets"]:  # forecasts registered before target_lrs existed: the rule's LR alone
            self.multirun("target", *t["overrides"], *self.rule_overrides(t.get("lr_mults")))

    def score(self, bootstrap: int) -> Path:
        from analysis.forecast_report import write_report

        if not self.forecast_file.exists():
            fail("step", "score", f"no forecast.json in {self.dir}: run the steps before it first")
        out = self.dir / "report"
        write_report(self.dir, out, bootstrap=bootstrap)
        return out


def _uniform(ladder: pd.DataFrame) -> float:
    """The loss of a uniform guess over what is scored: facts' values, else the vocabulary (bytes: 256)."""
    for column in ("data.n_values", "data.vocab_size"):
        if column in ladder and ladder[column].notna().any():
            return math.log(float(ladder[column].dropna().iloc[0]))
    return math.log(256)


def _known(table: pd.DataFrame, column: str) -> float | None:
    if column not in table or not table[column].notna().any():
        return None
    return float(table[column].dropna().iloc[0])


def parse(argv: list[str]) -> tuple[dict, list[str]]:
    """This command's own key=value arguments, and the overrides passed on to every stage."""
    given, extra = key_values(argv, OWN_KEYS, passthrough=True)
    own = {"scale": "smoke", "task": "markov", "task_seed": "0", "ladder": "cosine", "out_dir": "runs", "step": "all",
           "bootstrap": "200", "calibrate": "true", **given}
    choose("scale", own["scale"], ["smoke", "cpu", "gpu"])
    choose("task", own["task"], TASKS)
    choose("step", own["step"], ("all", *STEPS, "plan"))
    own["calibrate"] = choose("calibrate", own["calibrate"], ("true", "false")) == "true"
    choose("ladder", own["ladder"], LADDERS)
    own["bootstrap"] = positive("bootstrap", own["bootstrap"])
    own["task_seed"] = non_negative("task_seed", own["task_seed"])
    if own["task_seed"] and own["task"] not in INSTANCE_KEY:
        fail("task_seed", own["task_seed"], f"task={own['task']} has one instance; task_seed applies to "
             f"{' and '.join(INSTANCE_KEY)}")
    return own, extra


@children.command("harness-forecast")
def main(argv: list[str] | None = None) -> None:
    """Entry point of `harness-forecast`."""
    argv = command_args(argv, __doc__)
    if argv is None:
        return
    with bad_input_exits():
        own, extra = parse(argv)
        f = Forecast(own["scale"], own["task"], own["out_dir"], extra, own["task_seed"], own["ladder"])
        if own["step"] == "plan":
            from analysis.forecast_plan import plan_forecast

            print(f"forecast {f.study} (scale={f.scale}, task={f.task}, ladder={f.schedule}): every stage, nothing runs")
            plan_forecast(f.base, f.scale, f.dir, own["calibrate"])
            return
        steps = STEPS if own["step"] == "all" else (own["step"],)
        for step in steps:
            if step in ("register", "score"):
                getattr(f, step)(own["bootstrap"])
            else:
                getattr(f, step)()
    if own["step"] in ("all", "score"):
        from analysis.forecast import verdict

        report = json.loads((f.dir / "report" / "fits.json").read_text())
        for row in report["forecasts"]:
            print(verdict(row))
        print(f"report: {f.dir / 'report' / 'report.md'}")


if __name__ == "__main__":
    main()
