"""Data parallelism on torch.distributed: one run trained by `dist.nproc` processes with DistributedDataParallel.

Three ways into the same world, all ending in `join`:
- `harness ... dist.nproc=N`: `spawn` starts N workers through torch's elastic launcher (what `torchrun`
  runs), each calls `runner.run` again and finds itself in a world;
- `torchrun --nproc-per-node N -m harness ...`: the launcher's RANK / WORLD_SIZE / LOCAL_RANK variables;
- SLURM with `tasks_per_node=N` (the slurm preset sets it from `dist.nproc`): SLURM_PROCID and
  SLURM_STEP_NUM_TASKS, rendezvous on the job's first node.
gloo on CPU, NCCL on CUDA. `trainer.batch_size` stays the global batch: every rank draws the global batch's
indices from the same generator and keeps its slice, so the data order is the one-process order.
One process (world 1) never touches torch.distributed.
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as tdist
from omegaconf import DictConfig, OmegaConf

from harness.config import choose, fail, positive
from harness.results import inspect_result, write_atomic


@dataclass(frozen=True)
class World:
    """This process's place in a data-parallel run (rank 0 of 1 for a one-process run)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes result.json, history, checkpoints and the wandb run."""
        return self.rank == 0


def launched_world() -> World | None:
    """The world a launcher started this process in (torchrun / elastic agent, or a SLURM step), else None."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        size = int(env["WORLD_SIZE"])
        return World(int(env["RANK"]), size, int(env.get("LOCAL_RANK", 0)), int(env.get("LOCAL_WORLD_SIZE", size)))
    if int(env.get("SLURM_STEP_NUM_TASKS", "1")) > 1 and "SLURM_PROCID" in env:
        size = int(env["SLURM_STEP_NUM_TASKS"])
        local = int(env.get("SLURM_STEP_TASKS_PER_NODE", str(size)).split("(")[0].split(",")[0])
        return World(int(env["SLURM_PROCID"]), size, int(env.get("SLURM_LOCALID", 0)), local)
    return None


def check(cfg: DictConfig) -> int:
    """Check the `dist` keys; the world size `dist.nproc`."""
    dcfg = cfg.get("dist")
    if dcfg is None:
        return 1
    choose("dist.backend", dcfg.backend, ["auto", "gloo", "nccl"])
    positive("dist.timeout_s", dcfg.timeout_s, integer=False)
    if dcfg.nproc < 1:
        fail("dist.nproc", dcfg.nproc, "must be positive")
    return dcfg.nproc


def adopt(cfg: DictConfig) -> World:
    """This process's world; a launcher's world size is written into `dist.nproc` (so it is in the run id)."""
    nproc, world = check(cfg), launched_world()
    if world is None:
        return World()
    if nproc not in (1, world.size):
        fail("dist.nproc", nproc, f"but the launcher started {world.size} processes")
    if world.size > 1:
        cfg.dist.nproc = world.size
    return world


def world_size(cfg: DictConfig) -> int:
    """Ranks the run's config asks for (1 when the config has no `dist` block)."""
    dcfg = cfg.get("dist")
    return int(dcfg.nproc) if dcfg is not None else 1


def device_for(world: World, device: torch.device) -> torch.device:
    """Each rank its own GPU (cuda:local_rank); CPU ranks share the CPU."""
    return torch.device("cuda", world.local_rank) if device.type == "cuda" else device


def join(cfg: DictConfig, world: World, device: torch.device) -> None:
    """Initialise the process group of `world` (no-op for one process)."""
    if world.size == 1 or tdist.is_initialized():
        return
    backend = cfg.dist.backend
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(seconds=float(cfg.dist.timeout_s))
    if "MASTER_ADDR" not in os.environ:  # a SLURM step: rendezvous on the job's first node
        os.environ["MASTER_ADDR"] = _first_slurm_host()
        os.environ["MASTER_PORT"] = str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 20000)
    tdist.init_process_group(backend, init_method="env://", rank=world.rank, world_size=world.size, timeout=timeout)


def leave(world: World) -> None:
    if world.size > 1 and tdist.is_initialized():
        tdist.destroy_process_group()


def _first_slurm_host() -> str:
    nodes = os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_JOB_NODELIST", "")
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True, timeout=10)
        return out.stdout.split()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "127.0.0.1"


# ---- the training step's pieces --------------------------------------------------------------------

def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around `model` (gradients averaged over ranks); the model itself for one rank."""
    if world.size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def no_sync(model: torch.nn.Module, inner: bool):
    """Skip DDP's all-reduce on the inner micro-steps of gradient accumulation."""
    return model.no_sync() if inner and hasattr(model, "no_sync") else nullcontext()


def shard(batch: tuple[torch.Tensor, torch.Tensor], world: World) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's contiguous slice of a global batch."""
    if world.size == 1:
        return batch
    per = len(batch[0]) // world.size
    lo = world.rank * per
    return batch[0][lo:lo + per], batch[1][lo:lo + per]


def mean(value: torch.Tensor, world: World) -> torch.Tensor:
    """The mean of a scalar over ranks (the loss of the global batch)."""
    if world.size == 1:
        return value
    value = value.detach().clone()
    tdist.all_reduce(value, op=tdist.ReduceOp.SUM)
    return value / world.size


def max_over_ranks(values: dict[str, int], world: World, device: torch.device) -> dict[str, int]:
    """Each value's maximum over ranks (peak memory is per rank; the run reports the largest)."""
    if world.size == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return {k: int(v) for k, v in zip(keys, t.tolist())}


def allreduce_time(model: torch.nn.Module, world: World, device: torch.device, repeats: int = 5) -> float:
    """Seconds one all-reduce of all the gradients takes (median of `repeats`): the communication per step."""
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buf = torch.zeros(n, device=device)
    times = []
    for _ in range(repeats + 1):
        tdist.barrier()
        t0 = time.perf_counter()
        tdist.all_reduce(buf)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[repeats // 2]


def scaling_efficiency(study_dir: Path, config: dict, tokens_per_s: float) -> float | None:
    """tokens/s / (world x tokens/s of the study's one-process run at the same per-rank batch), else None.

    The reference is a finished run of the same study with the same model, data, device, precision and
    grad_accum whose `trainer.batch_size` is this run's per-rank batch (weak scaling: work per rank fixed).
    """
    world = int(config["dist"]["nproc"])
    trainer = config["trainer"]
    for run_dir in sorted(p for p in study_dir.iterdir() if p.is_dir()):
        other = inspect_result(run_dir)[0] or {}
        c = other.get("config") or {}
        if other.get("status") != "ok" or int((c.get("dist") or {}).get("nproc", 1)) != 1:
            continue
        t = c.get("trainer") or {}
        if (all(c.get(k) == config.get(k) for k in ("model", "data", "device"))
                and t.get("batch_size") == trainer["batch_size"] // world
                and all(t.get(k) == trainer.get(k) for k in ("grad_accum", "precision"))
                and other.get("metrics", {}).get("tokens_per_s")):
            return tokens_per_s / (world * other["metrics"]["tokens_per_s"])
    return None


# ---- a failure on any rank ---------------------------------------------------------------------------
# A rank that fails writes its own record in the run folder before it leaves the process group. The first
# one (by wall time) is the cause: the others fail after it, from a collective whose peer left, the dist
# timeout, or the launcher's SIGTERM. Rank 0 records the cause in result.json and traceback.txt.
FAILURE = "failure.rank{}.json"


def note_failure(run_dir: Path, world: World, status: str, reason: str, trace: str) -> None:
    """Record this rank's failure (`status` failed or oom) in `<run_dir>/failure.rank<R>.json`."""
    if world.size == 1:
        return
    record = {"rank": world.rank, "time": time.time(), "status": status, "reason": reason, "traceback": trace}
    write_atomic(Path(run_dir) / FAILURE.format(world.rank), json.dumps(record) + "\n")


def first_failure(run_dir: Path) -> dict | None:
    """The earliest failure any rank recorded in `run_dir` (keys rank, time, status, reason, traceback), or None."""
    found = []
    for path in Path(run_dir).glob(FAILURE.format("*")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):  # being replaced, or cut short by a kill: the others still tell
            continue
    return min(found, key=lambda r: (r["time"], r["rank"]), default=None)


def clear_failures(run_dir: Path) -> None:
    """Remove the failure records of an earlier attempt (rank 0, before the ranks meet)."""
    for path in Path(run_dir).glob(FAILURE.format("*")):
        path.unlink(missing_ok=True)


# ---- harness dist.nproc=N: the elastic launcher -------------------------------------------------------

class RankFailed(RuntimeError):
    """A rank of a spawned run failed; `traceback` is that rank's. `lost`: it died from a signal other than
    the launcher's SIGTERM (SIGKILL by the OOM killer, a segfault), so it left no traceback and no record."""

    def __init__(self, rank: int, message: str, traceback: str, lost: bool = False):
        super().__init__(f"rank {rank} failed: {message}")
        self.rank, self.traceback, self.lost = rank, traceback, lost


def spawn(cfg: DictConfig, nproc: int, entry: Callable[[dict], None]) -> None:
    """Train the run with `nproc` workers started by torch's elastic launcher (as torchrun does); rank 0 writes.

    `entry` runs one rank from the config as a plain dict (harness.runner's; passed in, not imported here,
    because the runner imports this module).

    A failing rank makes the launcher stop the others at once; raises RankFailed with its traceback.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"harness-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.2,
                          start_method="spawn")
    try:
        elastic_launch(config, entry)(OmegaConf.to_container(cfg, resolve=True))
    except ChildFailedError as e:
        lost = [(r, f) for r, f in e.failures.items() if f.exitcode < 0 and f.signal_name() != "SIGTERM"]
        if lost:  # the cause: the others failed because it left (a collective's peer closed the connection)
            rank, failure = min(lost)
            raise RankFailed(rank, str(failure.message), str(failure.message), lost=True) from None
        rank, failure = e.get_first_failure()
        data = failure.error_file_data or {}
        info = data.get("message", {}) if isinstance(data.get("message"), dict) else {}
        trace = info.get("extraInfo", {}).get("py_callstack") or str(failure.message)
        message = info.get("message") or str(failure.message) or f"exit code {failure.exitcode}"
        raise RankFailed(rank, str(message).strip().splitlines()[-1][:300], trace) from None
