"""One run: config -> data, model, settings (`harness.build.build_run`), device -> train -> metrics ->
result.json (config, settings, env, metrics), history.parquet, wandb.

`run(cfg)` never raises for what happens during training (diverged, out of memory, crashes are recorded
as statuses); it raises ConfigError for bad input, before anything is written.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import torch
from omegaconf import DictConfig, OmegaConf

from harness import distributed, metrics
from harness.build import build_run, check_config
from harness.checkpoint import Checkpointer
from harness.children import stop_children
from harness.config import check_paths, inside, positive, resolved
from harness.data import Dataset
from harness.device import environment, resolve_device, resolve_threads
from harness.identity import run_id as make_run_id
from harness.models import param_counts
from harness.results import (FINISHED, HISTORY, RESULT, TRACEBACK, inspect_result, write_atomic,
                             write_history, write_result)
from harness.slurm import submitit_handles
from harness.tracking import Tracker
from harness.settings import RunSettings, epochs
from harness.train import Diverged, TrainOutcome, train

log = logging.getLogger("harness")
PROGRESS_EVERY_S = 30.0
LOCK = ".lock"  # in the run folder: held by the process training the run


@dataclass
class RunResult:
    """What a run produced: its status, metrics and per-step history, and where they are stored."""

    status: str
    reason: str | None
    metrics: dict[str, Any]
    history: pd.DataFrame
    run_dir: Path
    run_id: str
    reused: bool = False  # True when a finished result was found and not retrained


class Progress:
    """A log line every PROGRESS_EVERY_S seconds of training: step, loss, tokens/s, time left."""

    def __init__(self, rid: str, steps: int):
        self.rid, self.steps, self.start = rid, steps, time.perf_counter()
        self.next = self.start + PROGRESS_EVERY_S

    def update(self, row: dict) -> None:
        now = time.perf_counter()
        if now < self.next:
            return
        self.next = now + PROGRESS_EVERY_S
        left = (now - self.start) / row["step"] * (self.steps - row["step"])
        log.info("%s: step %d/%d train_loss=%.4g tokens_per_s=%.3g, ~%.0f s left", self.rid, row["step"],
                 self.steps, row["train_loss"], row["tokens_per_s"], left)


def run_dir_for(cfg: DictConfig, rid: str) -> Path:
    """<out_dir>/<study>/<run_id>; `study` is checked to be a plain folder name, and the folder, resolved, must
    stay under out_dir: a study or run folder replaced by a symlink to elsewhere is refused, never written through."""
    check_paths(cfg)
    return inside(Path(cfg.out_dir) / str(cfg.study) / rid, Path(cfg.out_dir))


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived; a run in progress is recorded as failed (`run_dir` set), then this propagates."""

    def __init__(self, signame: str):
        super().__init__(signame)
        self.signame, self.run_dir = signame, None


@contextlib.contextmanager
def interruptible():
    """Inside this block SIGTERM (SLURM, kill) and SIGINT (Ctrl-C) raise `Interrupted` in the main thread.

    Around each run's training (and around the whole `harness` command). Inside it, `harness.checkpoint`'s
    Checkpointer defers SIGTERM/SIGUSR2 to a step boundary and saves first, then hands the signal on here
    (or to submitit's requeue); a failed rank ignores signals while it records (`_deaf`). A second signal
    while the interruption is being recorded is ignored, so the record is never cut short. Previous
    handlers are restored on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = []

    def handler(signum: int, frame: Any) -> None:
        if not raised:
            raised.append(signum)
            stop_children(_trains_a_run)  # a launcher's workers record their runs first: joblib would kill them
            raise Interrupted(signal.Signals(signum).name)

    # In a submitit job SIGTERM stays submitit's: the Checkpointer saves at the step's end and the job goes on
    # until SLURM's kill, or its SIGUSR2 requeues it (harness.slurm.submitit_handles).
    signals = [sig for sig in (signal.SIGTERM, signal.SIGINT) if not submitit_handles(sig)]
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _trains_a_run(proc: psutil.Process) -> bool:
    """Whether `proc` (a launcher's worker) holds a run's lock, i.e. trains it and has not recorded it yet."""
    try:
        return any(Path(f.path).name == LOCK for f in proc.open_files())
    except psutil.Error:
        return False


@contextlib.contextmanager
def claim(run_dir: Path, rid: str):
    """Hold an exclusive lock on <run_dir>/.lock while the run trains, so a run is never trained twice at once.

    A second process (another study, launcher or user) waits for the holder and then finds its result.
    The lock is an fcntl lock: the kernel drops it when its holder exits or is killed, so a stale lock
    file never blocks anyone; the file only says who holds it.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            log.warning("%s: being trained by another process (%s); waiting for it", rid, f.read().strip() or "?")
            fcntl.flock(f, fcntl.LOCK_EX)
        f.truncate(0)
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _reuse(run_dir: Path, rid: str, force: bool) -> RunResult | None:
    """The finished result of this run if there is one and not `force`; an incomplete file is reported."""
    previous, problem = inspect_result(run_dir)
    if problem:
        log.warning("%s: %s/%s is not a complete result (%s); retraining", rid, run_dir, RESULT, problem)
    if previous is None or previous["status"] not in FINISHED or force:
        return None
    try:
        history = pd.read_parquet(run_dir / HISTORY) if (run_dir / HISTORY).exists() else pd.DataFrame()
    except Exception as e:  # noqa: BLE001 - a damaged history means the run is not complete
        log.warning("%s: %s is unreadable (%s); retraining", rid, run_dir / HISTORY, type(e).__name__)
        return None
    log.info("%s: already %s, not retrained (force=true retrains)", rid, previous["status"])
    return RunResult(previous["status"], previous.get("reason"), previous["metrics"], history, run_dir, rid,
                     reused=True)


def _stamp(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def run(cfg: DictConfig) -> RunResult:
    """Train and measure one run described by `cfg` (see conf/config.yaml) and record it."""
    world = distributed.adopt(cfg)  # before the run id: a launcher's world size is part of it
    rid = make_run_id(cfg)
    run_dir = run_dir_for(cfg, rid)
    reused = _reuse(run_dir, rid, bool(cfg.force))
    if reused:
        return reused
    if world.size == 1 and distributed.world_size(cfg) > 1:
        _, _, settings = check_config(cfg)  # bad input fails here in one line, not in every rank
        return _spawned(cfg, run_dir, rid, settings)
    seen = _stamp(run_dir / RESULT)
    device, skip_reason = resolve_device(cfg.device)
    threads = resolve_threads(cfg.threads)
    if cfg.threads == "auto" and world.local_size > 1 and "LOCAL_WORLD_SIZE" in os.environ:  # torchrun's ranks share the cores
        threads = max(1, threads // world.local_size)
    torch.set_num_threads(threads)
    data, model, settings = build_run(cfg)
    with claim(run_dir, rid) if world.main else contextlib.nullcontext():  # rank 0 holds the run's lock
        # Trained by another process while we waited (with force: retrained since we looked): reuse it.
        if _stamp(run_dir / RESULT) != seen and (reused := _reuse(run_dir, rid, force=False)):
            return reused
        if skip_reason:
            return _finish(_record(cfg, rid, settings), run_dir, "skipped", skip_reason, {}, [], None, world.main)
        job = _Job(cfg, settings, rid, run_dir, world, distributed.device_for(world, device), threads)
        with interruptible():
            return _train(job, data, model)


@dataclass(frozen=True)
class _Job:
    """One run as `run` resolved it: its config and settings, id and folder, ranks, device and CPU threads."""

    cfg: DictConfig
    settings: RunSettings
    rid: str
    run_dir: Path
    world: distributed.World
    device: torch.device
    threads: int


def _record(cfg: DictConfig, rid: str, settings: RunSettings) -> dict[str, Any]:
    """result.json before training: status running, the config asked for and the settings it resolved to."""
    return {"run_id": rid, "status": "running", "reason": None, "config": resolved(cfg),
            "settings": settings.record(), "env": None, "metrics": {}}


def _train(job: _Job, data: Dataset, model: torch.nn.Module) -> RunResult:
    cfg, rid, run_dir, world, device = job.cfg, job.rid, job.run_dir, job.world, job.device
    record = _record(cfg, rid, job.settings)
    record["env"] = environment(device, job.threads)
    ckpt = Checkpointer(run_dir, cfg.trainer.checkpoint_every, cfg.trainer.keep_checkpoint, save_files=world.main)
    if world.main:  # only rank 0 writes files
        write_result(run_dir, record)  # 'running': a killed run is retrained on resume
        for stale in (TRACEBACK, HISTORY):  # from an earlier (forced) attempt
            (run_dir / stale).unlink(missing_ok=True)
        distributed.clear_failures(run_dir)
        if cfg.force:
            ckpt.path.unlink(missing_ok=True)  # a forced rerun starts from step 0
    n_total, n_non_emb = param_counts(model)
    base = {"params": n_total, "params_non_embedding": n_non_emb, "flops_per_example": model.flops_per_example(),
            **data.spec.info,
            "unique_train_tokens": data.unique_train_tokens}  # what one epoch reads (null: a fresh stream)
    tracker = None
    try:
        # inside the try: a signal during wandb's start is recorded too
        tracker = Tracker(cfg, job.settings.record(), run_dir, rid) if world.main else None
        distributed.join(cfg, world, device)
        data = data.to(device)
        model.to(device)
        memory = metrics.MemoryMeter(device)
        progress = Progress(rid, job.settings.steps)

        def on_log(row: dict) -> None:
            row["tokens_per_s"] = metrics.step_throughput(row["step_time_s"], job.settings.batch_size,
                                                          data.spec.tokens_per_example)
            row["mem_bytes"] = memory.current_bytes()
            if world.main:
                tracker.log(row, row["step"])
                progress.update(row)

        t0 = time.perf_counter()
        with ckpt:
            outcome = train(model, data, cfg, job.settings, device, cfg.seed, on_log, ckpt, world)
        wall = time.perf_counter() - t0
        peak = distributed.max_over_ranks(memory.peak(), world, device)
        comm = {"allreduce_s": distributed.allreduce_time(model, world, device)} if world.size > 1 else {}
        if not world.main:
            return RunResult("ok", None, {}, pd.DataFrame(outcome.history), run_dir, rid)
        found = _measure(job, model, data, outcome, wall)
        found.update(**peak, **comm, mem_kind=memory.kind, checkpoints=ckpt.saves, checkpoint_s=ckpt.save_s,
                     resumed_from_step=ckpt.resumed_from, trunk_step=outcome.trunk_step)
        if world.size > 1:
            found["scaling_efficiency"] = distributed.scaling_efficiency(run_dir.parent, record["config"],
                                                                         found["tokens_per_s"])
        ckpt.remove()
        return _finish(record, run_dir, "ok", None, {**base, **found}, outcome.history, tracker)
    except Diverged as e:  # every rank sees the same (all-reduced) loss, so all stop here together
        log.warning("%s: diverged at step %d", rid, e.step)
        ckpt.remove()
        return _finish(record, run_dir, "diverged", str(e), {**base, "diverged_step": e.step}, e.history, tracker,
                       world.main)
    except KeyboardInterrupt as e:  # SIGINT/SIGTERM: recorded as failed (retrained on resume), wandb finished, re-raised
        name = e.signame if isinstance(e, Interrupted) else "SIGINT"
        if world.size > 1:  # the launcher's SIGTERM after another rank failed: rank 0 records that rank's failure
            _rank_failed(record, run_dir, world, None, f"interrupted ({name})", "", base, tracker)
        else:
            _finish(record, run_dir, "failed", f"interrupted ({name})", base, [], tracker)
        e.run_dir = run_dir  # for the CLI's one line
        raise
    except Exception as e:  # noqa: BLE001 - a crash is recorded, with its traceback, and the study goes on
        oom = isinstance(e, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in str(e).lower()
        status = "oom" if oom else "failed"
        reason = (str(e) if oom else f"{type(e).__name__}: {e}").splitlines()[0][:300]
        if world.size > 1:
            _rank_failed(record, run_dir, world, status, reason, traceback.format_exc(), base, tracker)
            raise  # the launcher stops the other ranks at once instead of leaving them waiting
        if not oom:
            write_atomic(run_dir / TRACEBACK, traceback.format_exc())
        return _finish(record, run_dir, status, reason, base, [], tracker)
    finally:
        distributed.leave(world)
        if device is not None and device.type == "cuda":
            torch.cuda.empty_cache()


def _measure(job: _Job, model: torch.nn.Module, data: Dataset, outcome: TrainOutcome, wall: float) -> dict[str, Any]:
    """Everything measured after training: losses, counts, speed, FLOPs, MFU, attention cost.

    Speeds are global (all ranks); the MFU denominator is the peak of all ranks together."""
    cfg, settings, device = job.cfg, job.settings, job.device
    tpe, batch, ranks, precision = (data.spec.tokens_per_example, settings.batch_size, settings.world_size,
                                    settings.precision)
    if cfg.peak_flops_per_s is not None:
        peak = positive("peak_flops_per_s", cfg.peak_flops_per_s, integer=False)
    elif device.type == "cuda":
        peak = metrics.gpu_peak(torch.cuda.get_device_name(device), precision)
    elif device.type == "cpu":
        peak = metrics.cpu_peak(precision, job.threads)
    else:
        peak = None
    peak = peak * ranks if peak else peak
    warmup, compiled = int(cfg.trainer.timing_warmup_steps), settings.compile
    warmup = max(warmup, 1) if compiled else warmup  # the compiling step never counts as a timed step
    timing = metrics.step_time_stats(outcome.step_times, warmup)
    if warmup and len(outcome.step_times) <= warmup:
        log.warning("%d steps, not more than trainer.timing_warmup_steps=%d: the speed metrics time every step, "
                    "warm-up included (timed_steps)", outcome.steps, warmup)
    if compiled:
        timing["compile_s"] = metrics.compile_overhead(outcome.step_times, warmup, timing["step_time_s"])
    used = metrics.totals(outcome.steps, batch, tpe, model.flops_per_example(), outcome.step_times, outcome.data_time_s)
    found = {"train_loss": outcome.train_loss, "val_loss": outcome.val_loss, "val_loss_sampled": outcome.val_loss_sampled,
             "val_accuracy": outcome.val_accuracy, "val_accuracy_shifted": outcome.val_accuracy_shifted,
             "steps": outcome.steps, **used, "wall_s": wall, "epochs": epochs(used["tokens"], data), **timing,
             **metrics.throughput(timing["step_time_s"], batch, tpe, used["flops_per_step"], peak)}
    if hasattr(model, "attention_flops_per_example"):
        found.update(metrics.attention_cost(model, settings.micro_batch, device, precision))
    return found


@contextlib.contextmanager
def _deaf():
    """SIGTERM and SIGINT ignored while a failed rank records why: the launcher stops every other rank with
    SIGTERM as soon as one fails, which must not cut the record short (the rank exits right after it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _rank_failed(record: dict, run_dir: Path, world: distributed.World, status: str | None, reason: str, trace: str,
                 base: dict, tracker: Tracker | None) -> None:
    """A rank of a data-parallel run failed (`status` failed/oom) or was stopped (`status` None).

    Each failing rank notes its failure in the run folder; rank 0 records the first one of any rank (the
    cause: the others fail after it), with that rank's traceback, else its own interruption."""
    with _deaf():
        if status is not None:
            distributed.note_failure(run_dir, world, status, reason, trace)
        if not world.main:
            return
        cause = distributed.first_failure(run_dir)
        if cause is None:
            _finish(record, run_dir, "failed", reason, base, [], tracker)
            return
        if cause["traceback"]:
            write_atomic(run_dir / TRACEBACK, f"rank {cause['rank']} of {world.size}:\n{cause['traceback']}")
        _finish(record, run_dir, cause["status"], f"rank {cause['rank']} failed: {cause['reason']}", base, [], tracker)


def _spawned(cfg: DictConfig, run_dir: Path, rid: str, settings: RunSettings) -> RunResult:
    """`dist.nproc` > 1 from a plain process: the elastic launcher trains the run; rank 0 has written it."""
    try:
        distributed.spawn(cfg, distributed.world_size(cfg), _rank_main)
    except distributed.RankFailed as e:
        record, _ = inspect_result(run_dir)
        if record and record["status"] != "running" and not e.lost:  # rank 0 recorded the first failure
            return RunResult(record["status"], record.get("reason"), record.get("metrics", {}), pd.DataFrame(),
                             run_dir, rid)
        record = {**_record(cfg, rid, settings), **(record or {})}
        cause = None if e.lost else distributed.first_failure(run_dir)  # rank 0 was killed before it could record it
        if cause is not None:
            e = distributed.RankFailed(cause["rank"], cause["reason"], cause["traceback"])
        if not (e.lost and (run_dir / TRACEBACK).exists()):  # a lost rank has none: keep rank 0's, its consequence
            write_atomic(run_dir / TRACEBACK, e.traceback)
        return _finish(record, run_dir, "failed", str(e), record.get("metrics") or {}, [], None)
    record, problem = inspect_result(run_dir)
    if record is None:
        return RunResult("failed", f"no complete result from rank 0 ({problem})", {}, pd.DataFrame(), run_dir, rid)
    history = pd.read_parquet(run_dir / HISTORY) if (run_dir / HISTORY).exists() else pd.DataFrame()
    return RunResult(record["status"], record.get("reason"), record.get("metrics", {}), history, run_dir, rid)


def _finish(record: dict, run_dir: Path, status: str, reason: str | None, found: dict, history: list,
            tracker: Tracker | None, write: bool = True) -> RunResult:
    """Record the final status (when `write`: only rank 0 writes) and finish the wandb run."""
    if not write:
        return RunResult(status, reason, found, pd.DataFrame(history), run_dir, record["run_id"])
    record.update(status=status, reason=reason, metrics=found)
    if history:
        write_history(run_dir, history)  # before result.json: an ok result always has its history
    write_result(run_dir, record)
    if tracker is not None:
        tracker.finish(status, found)
    if status != "ok":
        log.warning("%s: %s (%s)", record["run_id"], status, reason)
    return RunResult(status, reason, found, pd.DataFrame(history), run_dir, record["run_id"])


def _rank_main(container: dict) -> None:
    """One rank of a `dist.nproc` run (a fresh process: the config travels as a plain dict)."""
    from torch.distributed.elastic.multiprocessing.errors import record

    record(run)(OmegaConf.create(container))
