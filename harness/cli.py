"""`harness`: the Hydra app. One run with `harness key=value ...`, a study with `harness -m sweep=NAME`.

Bad input ends with a one-line error naming the key (exit 2); set HYDRA_FULL_ERROR=1 for the traceback.
"""
from __future__ import annotations

import errno
import logging
import os
import signal
import sys

import hydra
from omegaconf import DictConfig

from harness.children import QUIET_ENV
from harness.config import (CONF_DIR, EXIT_FAILED, ConfigError, check_overrides, check_paths, compose,
                            exit_bad_input, register)

log = logging.getLogger("harness")


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    return HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)
def app(cfg: DictConfig) -> str:
    """Hydra's task function: one run. In a multirun it returns the status instead of exiting."""
    from harness.runner import run

    register()  # a launcher's worker process (joblib, submitit) resolves the config here first
    multirun = _is_multirun()
    try:
        result = run(cfg)
    except ConfigError as e:
        if multirun:  # the study callback validated every job first; record and go on
            log.error("bad input: %s", e)
            return "failed"
        exit_bad_input(e)
    except OSError as e:  # a full disk or an unwritable out_dir fails every later write too: stop with one line
        full, denied = e.errno in (errno.ENOSPC, errno.EDQUOT), e.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
        if not (full or denied) or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        logging.raiseExceptions = False  # wandb's log files fail too: no "--- Logging error ---" for each line
        if not full:
            exit_bad_input(f"out_dir={cfg.out_dir}: {e.filename}: {os.strerror(e.errno)}")
        print(f"error: {e.filename or cfg.out_dir}: {os.strerror(e.errno)}; free space and run the same command "
              "again (finished runs are kept, this one is retrained)", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    m = result.metrics
    note = "reused" if result.reused else result.status
    log.info("%s %s: train_loss=%s val_loss=%s step_time_s=%s -> %s", note, result.run_id,
             _fmt(m.get("train_loss")), _fmt(m.get("val_loss")), _fmt(m.get("step_time_s")), result.run_dir)
    if not multirun and result.status in ("failed", "oom"):
        sys.exit(EXIT_FAILED)
    return result.status


def _fmt(x) -> str:
    return f"{x:.4g}" if isinstance(x, (int, float)) else "-"


LOKY_TRACKER = "joblib.externals.loky.backend.resource_tracker"


def main() -> None:
    """Console entry point: report bad overrides in one line, then hand over to Hydra.

    A single run, or a multirun's starting config, is composed once up front (Hydra's own composition
    errors span several lines); a multirun's jobs are checked by the study callback before any job starts.
    """
    from harness.study import primary_config

    # An interrupted joblib study's workers leave semaphores that loky's resource tracker (a process of its
    # own, which inherits this) cleans up with a multi-line warning: that is its job, not news for the user.
    os.environ.setdefault("PYTHONWARNINGS", f"ignore::UserWarning:{LOKY_TRACKER}")
    register()
    args = sys.argv[1:]
    overrides = [a for a in args if "=" in a and not a.startswith(("-", "hydra"))]
    try:
        check_overrides(overrides)
        if {"-m", "--multirun"} & set(args):
            check_paths(primary_config([a for a in args if "=" in a and not a.startswith("-")]))
        elif not {"--help", "-h", "--hydra-help"} & set(args):
            check_paths(compose(overrides))
    except ConfigError as e:
        exit_bad_input(e)
    from harness.runner import interruptible

    try:
        with interruptible():
            app()
    except KeyboardInterrupt as e:  # SIGINT or SIGTERM (see harness.runner.interruptible)
        name = getattr(e, "signame", "SIGINT")
        where = getattr(e, "run_dir", None)
        what = f"run {where} recorded as failed; " if where else ""
        if not os.environ.get(QUIET_ENV):
            print(f"interrupted ({name}): {what}the same command resumes (finished runs are kept)", file=sys.stderr)
        sys.exit(128 + signal.Signals[name].value)


if __name__ == "__main__":
    main()
