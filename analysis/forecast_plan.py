"""`harness-forecast step=plan`: runs, FLOPs and wall time of every training stage of a forecast, before any runs.

Each stage is planned as `harness-plan` plans a study (harness/plan.py: configs from shapes alone, the same
efficiency and start/gap model), from the forecast's own overrides (task, ladder=branches, Hydra overrides).
Nothing is trained, built or written. What a plan cannot know:

- the targets' sizes are fitted on the ladder (forecast.json): each target is planned at the isoflop size of
  its budget (`model.target_params` from `isoflop_params` at size_mult 1), with its seeds at each of its LRs;
- the LR rule is fitted on the lr stage: later stages are planned at the default LR (the cost does not
  depend on it);
- `register` and `score` (fits, bootstrap, report) are not counted.
"""
from __future__ import annotations

from collections import defaultdict

from omegaconf import DictConfig

from harness.branches import decay_start
from harness.device import parallelism
from harness.plan import RUN_GAP_S, STUDY_START_S, efficiency_models, estimate, run_seconds, wall_time
from harness.study import study_configs

def stage_overrides(base: list[str], scale: str, ladder: list[DictConfig]) -> dict[str, list[list[str]]]:
    """Per stage, the overrides of each of its multiruns (one per target budget for `target`, multiples of the
    largest budget of the `ladder` stage's configs)."""
    largest = max(float(c.trainer.max_flops) for c in ladder)
    grid = ladder[0].grid[scale]
    lrs = ",".join(f"{float(ladder[0].optim.lr) * m:.6g}" for m in grid.target_lrs)  # the cost is the LR's count
    return {"lr": [[*base, "stage=lr"]], "ladder": [[*base, "stage=ladder"]], "noise": [[*base, "stage=noise"]],
            "target": [[*base, "stage=target", f"trainer.max_flops={float(m) * largest:.6g}", f"optim.lr={lrs}"]
                       for m in grid.targets]}


def branch_fractions(configs: list[DictConfig], plans: list[dict]) -> list[float]:
    """The share of each run's steps it trains itself: 1, or for a `trainer.branch` run whose trunk a shorter run
    of the stage shares (same size, seed, LR and batch), its steps from that run's decay start."""
    groups = defaultdict(list)
    for i, (cfg, p) in enumerate(zip(configs, plans)):
        if cfg.trainer.get("branch"):
            groups[(p["params"], cfg.seed, float(cfg.optim.lr), cfg.trainer.batch_size)].append(i)
    fractions = [1.0] * len(configs)
    for runs in groups.values():
        runs.sort(key=lambda i: plans[i]["steps"])
        for shorter, longer in zip(runs, runs[1:]):
            start = decay_start(plans[shorter]["steps"], float(configs[shorter].optim.decay_fraction))
            fractions[longer] = (plans[longer]["steps"] - start) / plans[longer]["steps"]
    return fractions


def plan_forecast(base: list[str], scale: str, study_dir, calibrate: bool = True, gpu: str = "H100") -> list[dict]:
    """One row per stage ({stage, runs, flops, seconds}) and a last `total` row; prints the table and its notes."""
    stages = {}
    ladder = study_configs([*base, "stage=ladder"], shape_only=True)
    for stage, multiruns in stage_overrides(base, scale, ladder[1]).items():
        for overrides in multiruns:
            primary, configs = ladder if stage == "ladder" else study_configs(overrides, shape_only=True)
            plans = [estimate(c) for c in configs]
            for p, share in zip(plans, branch_fractions(configs, plans)):
                p["flops"] *= share
            stages.setdefault(stage, []).append((primary, configs, plans))
    devices = {p["device"] for runs in stages.values() for _, _, plans in runs for p in plans}
    models = efficiency_models(devices, study_dir, calibrate=calibrate)
    rows, notes = [], set()
    for stage, multiruns in stages.items():
        row = {"stage": stage, "runs": 0, "flops": 0.0, "seconds": 0.0}
        for primary, configs, plans in multiruns:
            jobs, threads = parallelism(primary.hydra.get("launcher"))
            timed = [run_seconds(c, p, models[p["device"]], gpu, threads) for c, p in zip(configs, plans)]
            notes |= {note for _, note in timed if note}
            row["runs"] += len(configs)
            row["flops"] += sum(p["flops"] for p in plans)
            row["seconds"] += wall_time([s for s, _ in timed], jobs)
        rows.append(row)
    rows.append({"stage": "total", **{k: sum(r[k] for r in rows) for k in ("runs", "flops", "seconds")}})
    print(f"{'stage':>8} {'runs':>5} {'FLOPs':>9} {'time':>9}")
    for r in rows:
        print(f"{r['stage']:>8} {r['runs']:>5} {r['flops']:>9.2e} {r['seconds']:>8.0f}s")
    total = rows[-1]["seconds"]
    print(f"total: ~{total / 60:.1f} min of wall time for the training stages (register and score, the fits, not "
          f"counted)")
    print("target: not sized until the ladder is fitted: planned at the isoflop size of each target budget "
          "(size_mult 1), every seed")
    if any(c.trainer.get("branch") for runs in stages.values() for _, configs, _ in runs for c in configs):
        print("ladder=branches: a run whose size recurs at a smaller budget of its stage is charged from that run's "
              "decay start (the shared trunk)")
    for d in sorted(models):
        print(f"time: wall-clock {models[d].describe()}; + {STUDY_START_S:g} s start per stage, {RUN_GAP_S:g} s "
              f"per run")
    if notes:  # one per size: the first says which way, the count how many
        print(f"note: {sorted(notes)[0]} (and {len(notes) - 1} other sizes)" if len(notes) > 1 else f"note: {notes.pop()}")
    return rows
