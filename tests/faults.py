"""Faults injected into one rank of a data-parallel run, for the tests only.

`HARNESS_TEST_FAULT=RANK:STEP:KIND` makes rank RANK, after logging step STEP, `raise` a RuntimeError, `hang`
(sleep, a rank that is lost without exiting) or `die` (SIGKILL itself, a rank lost without a traceback).
The ranks are fresh processes, so the fault travels as an environment variable and this module is their
entry point: `rank_main` replaces `harness.runner._rank_main` for `dist.nproc` runs, and
`python -m torch.distributed.run ... tests/faults.py ARGS` is `torchrun ... -m harness ARGS` with the fault.
"""
from __future__ import annotations

import os
import signal
import time

VAR = "HARNESS_TEST_FAULT"


def install() -> None:
    """Wrap harness.runner.train so that the rank named in HARNESS_TEST_FAULT fails at its step."""
    spec = os.environ.get(VAR)
    if not spec:
        return
    import harness.runner as runner

    rank, step, kind = spec.split(":")
    if int(os.environ.get("RANK", "0")) != int(rank):
        return
    real_train = runner.train

    def train(*a, **k):
        on_log = a[6]

        def log_then_fail(row):
            on_log(row)
            if row["step"] == int(step):
                if kind == "raise":
                    raise RuntimeError(f"injected fault on rank {rank} at step {step}")
                if kind == "hang":  # dies at the launcher's SIGTERM (the harness would defer it to the step's end)
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    time.sleep(3600)
                if kind == "die":
                    os.kill(os.getpid(), signal.SIGKILL)
        return real_train(*a[:6], log_then_fail, *a[7:], **k)

    runner.train = train


def rank_main(container: dict) -> None:
    """harness.runner._rank_main with the fault installed (picklable: the elastic launcher imports it)."""
    install()
    from harness.runner import _rank_main

    _rank_main(container)


if __name__ == "__main__":
    install()
    from harness.cli import main

    main()
