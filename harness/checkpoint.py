"""Resumable runs: periodic, atomic checkpoints in the run folder, restored when a killed run is re-run.

A checkpoint holds everything the loop needs to continue bit-for-bit: model, optimizer, the step (the LR
schedule is a pure function of it), the RNG states, the data position and the history so far. It is
written by rank 0 only, to a temporary file that is fsynced and renamed over `checkpoint.pt`, so a kill
at any moment leaves either the previous checkpoint or the new one. `trainer.checkpoint_every` is a
number of steps (`100`) or of seconds (`"120s"`, `"5m"`); 0 or null turns checkpoints off.

Preemption: while training, `Checkpointer` defers the scheduler's signals to the next step boundary, saves,
then hands each signal on to the handler that was bound: SIGUSR2 to submitit's checkpoint-and-requeue
(time limit, preemption), SIGTERM to the runner's `interruptible` (scancel, kill), which records the run as
interrupted. The same signal again before the boundary goes through at once; SIGUSR2 after SIGTERM (a
preemption) replaces it, so the save is followed by the requeue.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

import torch

from harness.config import fail
from harness.results import atomic

log = logging.getLogger("harness")
CHECKPOINT = "checkpoint.pt"
# submitit's default preemption/timeout signal (SUBMITIT_PREEMPT_SIGNAL), and the one scancel and kill send
DEFERRED_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)


def parse_every(value: Any) -> tuple[str, float] | None:
    """`trainer.checkpoint_every` -> ("steps", n) | ("seconds", s) | None (off); ConfigError if malformed."""
    if value in (None, 0, "0", False):
        return None
    text = str(value).strip().lower()
    unit, scale = ("seconds", 1.0) if text.endswith("s") else ("seconds", 60.0) if text.endswith("m") else ("steps", 1)
    number = text[:-1] if unit == "seconds" else text
    try:
        amount = float(number)
    except ValueError:
        amount = float("nan")
    if not amount > 0 or (unit == "steps" and amount != int(amount)):
        fail("trainer.checkpoint_every", value, "must be a number of steps (100), of seconds (120s) or minutes (5m), or 0 (off)")
    return unit, amount * scale


def save_state(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, data_state: Any, loop: dict) -> None:
    """Write model, optimizer, data position, RNG states and the loop state to `path`, atomically."""
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "data": data_state.state_dict(),
             "rng": {"torch": torch.get_rng_state(),
                     "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
             "loop": loop}
    with atomic(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, data_state: Any) -> dict | None:
    """Load a `save_state` file into `model`, `opt`, the data position and the RNGs; return its loop state, or
    None when there is none or it cannot be read (starting over, not crashing)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - an unreadable checkpoint means starting over, not crashing
        log.warning("%s: unreadable, starting from step 0 (%s)", path, e)
        return None
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"].get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    data_state.load_state_dict(state["data"])
    return state["loop"]


class Checkpointer:
    """Saves and restores one run's training state in `<run_dir>/checkpoint.pt`.

    `save_files` is False on ranks other than 0: they restore but never write.
    """

    def __init__(self, run_dir: Path, every: Any, keep: bool = False, save_files: bool = True):
        self.path = Path(run_dir) / CHECKPOINT
        self.every, self.keep, self.save_files = parse_every(every), bool(keep), save_files
        self.last_save = time.monotonic()
        self.saves, self.save_s = 0, 0.0
        self.resumed_from: int | None = None  # the step this attempt restored (None: it started at step 0)
        self._pending: tuple[Callable, int, Any] | None = None
        self._previous: dict[int, Callable] = {}

    # ---- restore -------------------------------------------------------------------------------
    def restore(self, model: torch.nn.Module, opt: torch.optim.Optimizer, data_state: Any) -> dict | None:
        """Load the saved state into `model`, `opt` and the RNGs; return the loop state, or None."""
        loop = load_state(self.path, model, opt, data_state)
        if loop is None:
            return None
        self.last_save = time.monotonic()
        self.resumed_from = int(loop["steps"])
        log.info("%s: resuming from step %d", self.path.parent.name, self.resumed_from)
        return loop

    # ---- save ----------------------------------------------------------------------------------
    def due(self, step: int) -> bool:
        """Whether to save after `step` (1-based) steps: the interval has passed or a requeue is pending."""
        if self._pending is not None:
            return True
        if self.every is None:
            return False
        unit, amount = self.every
        if unit == "steps":
            return step % int(amount) == 0
        return time.monotonic() - self.last_save >= amount

    def save(self, model: torch.nn.Module, opt: torch.optim.Optimizer, data_state: Any, loop: dict) -> None:
        """Write the state atomically (rank 0 only), then pass on a deferred requeue signal if any."""
        if self.save_files:
            t0 = time.perf_counter()
            save_state(self.path, model, opt, data_state, loop)
            self.saves += 1
            self.save_s += time.perf_counter() - t0
        self.last_save = time.monotonic()
        if self._pending is not None:  # saved: now let submitit requeue the job (it exits the process)
            handler, signum, frame = self._pending
            self._pending = None
            log.warning("%s: checkpointed at step %d, handing signal %d to the scheduler's handler",
                        self.path.parent.name, loop["steps"], signum)
            handler(signum, frame)

    def remove(self) -> None:
        """Delete the checkpoint of a finished run unless `trainer.keep_checkpoint` asked to keep it."""
        if self.save_files and not self.keep:
            self.path.unlink(missing_ok=True)

    # ---- preemption ----------------------------------------------------------------------------
    def __enter__(self) -> "Checkpointer":
        """While training: defer the signals that have a Python handler to the next step boundary."""
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in DEFERRED_SIGNALS:
            previous = signal.getsignal(sig)
            if callable(previous):  # with no handler bound, the signal keeps its default action
                self._previous[sig] = previous
                signal.signal(sig, self._defer)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
        self._pending = None

    def _defer(self, signum: int, frame: Any) -> None:
        handler = self._previous[signum]
        if self._pending is not None:
            if self._pending[1] == signum:  # the same signal again: no more waiting
                self._pending = None
                handler(signum, frame)
                return
            if DEFERRED_SIGNALS.index(self._pending[1]) < DEFERRED_SIGNALS.index(signum):
                return  # SIGTERM after a pending requeue: the requeue ends this process after the save anyway
            # else SIGUSR2 after SIGTERM (a preemption, as submitit sends it): the requeue replaces the SIGTERM
        log.warning("%s: signal %d received, checkpointing at the end of this step", self.path.parent.name, signum)
        self._pending = (handler, signum, frame)
