"""Commands that start processes stop them with themselves: SIGTERM or SIGINT to the command reaches every
process it started (directly or not), the command waits for them to record their runs as interrupted, then
prints one line and exits 128 + the signal number. No process it started outlives it.

`command(prog)` wraps an entry point (also of a command that starts nothing: `harness-plan`, `harness-collect`,
`harness-cost`, for the one line and the exit status); `run(cmd)` starts one child inside it (instead of
subprocess.run, which SIGKILLs its child on Ctrl-C before the child can record anything, orphaning the child's
own workers).
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator

import psutil

SIGNALS = (signal.SIGTERM, signal.SIGINT)
GRACE_S = 60.0  # how long interrupted children get to record their runs before they are killed
LEFTOVER_S = 5.0  # how long their own helpers (workers, loggers) get to end with them
QUIET_ENV = "HARNESS_PARENT_REPORTS_SIGNALS"  # set for a child whose parent prints the one line


class Stopped(KeyboardInterrupt):
    """The command received `signum`."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exited(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def stop_children(busy: Callable[[psutil.Process], bool] = lambda proc: not exited(proc),
                  grace_s: float = GRACE_S) -> None:
    """SIGTERM this process's children that are `busy` (default: alive), wait up to `grace_s` until none is,
    then SIGKILL those that still are.

    SIGTERM whatever this process received: after Ctrl-C in a terminal the children have had SIGINT already,
    and a second SIGINT, once a run is recorded, is a traceback, where SIGTERM ends the process quietly."""
    try:
        targets = [proc for proc in psutil.Process().children() if busy(proc)]
    except psutil.Error:
        return
    for proc in targets:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    for proc in _wait(targets, busy, grace_s):
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _wait(procs: list[psutil.Process], busy: Callable[[psutil.Process], bool], timeout_s: float) -> list:
    """Poll until none of `procs` is `busy` (an exited one never is) or `timeout_s` passed; those still busy."""
    deadline = time.monotonic() + timeout_s
    while procs and time.monotonic() < deadline:
        time.sleep(0.05)
        procs = [proc for proc in procs if not exited(proc) and busy(proc)]
    return procs


def _raise(signum: int, frame: Any) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def command(prog: str, then: str = "the same command resumes (finished runs are kept)") -> Iterator[None]:
    """Around an entry point (or as its decorator): SIGTERM and SIGINT stop the children (see `stop_children`),
    then print one line, ending with `then`, and exit 128 + the signal number instead of a traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise) for sig in SIGNALS}
    try:
        yield
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, Stopped) else signal.SIGINT
        for sig in SIGNALS:  # a second signal must not cut the wait for the children short
            signal.signal(sig, signal.SIG_IGN)
        tree = psutil.Process().children(recursive=True)
        stop_children()
        for proc in _wait(tree, lambda proc: True, LEFTOVER_S):  # helpers that outlived their parents
            with contextlib.suppress(psutil.Error):
                proc.kill()
        started = " with every process it started" if tree else ""
        print(f"interrupted ({signal.Signals(signum).name}): {prog} stopped{started}; {then}", file=sys.stderr)
        sys.exit(128 + signum)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(cmd: list[str], quiet: bool = False) -> int:
    """Run `cmd` to its end and return its exit status; a signal meanwhile stops it as `command` says, and
    `command`'s line is the only one (QUIET_ENV tells a harness child not to print its own). `quiet`: the
    child's standard output is discarded (its errors still show).

    Not subprocess.run nor Popen's context manager: on Ctrl-C they SIGKILL or wait for the child without
    passing the signal on."""
    out = subprocess.DEVNULL if quiet else None
    return subprocess.Popen(cmd, env={**os.environ, QUIET_ENV: "1"}, stdout=out).wait()
