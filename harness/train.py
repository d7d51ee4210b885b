"""The training loop, top to bottom: optimizer, LR schedule, budget -> steps, the step loop with timing,
validation, divergence check. It returns the per-step history and what the metrics module needs."""
from __future__ import annotations

import contextlib
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable, NamedTuple

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from harness.branches import Trunk, decay_start, trunk_id
from harness.checkpoint import parse_every
from harness.config import choose, fail, non_negative, positive
from harness.distributed import World, mean, no_sync, shard, world_size, wrap
from harness.data import Dataset
from harness.data.base import IGNORE
from harness.metrics import sync
from harness.settings import RunSettings

if TYPE_CHECKING:
    from harness.checkpoint import Checkpointer

DEFAULT_STEPS = 200
MAX_STEPS = 10_000_000  # a budget above this is a unit slip (1e30 tokens); even at 1 ms/step it is ~3 hours
SCHEDULES = ("constant", "cosine", "linear", "wsd")
# Divergence rule: a training loss that is NaN/inf at any step, an update beyond float32's range (torch refuses
# the optimizer's step: an LR near 1e38; Adam's first step is 10 x the LR), the final validation loss (the only
# check of the last update) NaN/inf or above DIVERGE_FACTOR x the validation loss at initialisation, or, during the run,
# a validation loss above that bound at DIVERGE_CONFIRM suspicions in a row. A suspicion is the median of the
# last DIVERGE_WINDOW training losses above the bound; it is looked at again after a fresh window. Training
# losses only raise the suspicion: at batch size 1 a squared error ranges over orders of magnitude and several
# bad examples in a row are common, while the validation loss averages eval_samples fixed examples; asking for
# it twice lets a transient excursion that recovers pass, while a blow-up stays. A model 4x worse than at
# initialisation (for cross-entropy, 4x a uniform guess) has left the basin.
DIVERGE_FACTOR = 4.0
DIVERGE_WINDOW = 5
DIVERGE_CONFIRM = 2


class Diverged(Exception):
    """The loss broke the divergence rule at `step` (1-based, as in the history)."""

    def __init__(self, step: int, why: str, history: list[dict]):
        super().__init__(f"{why} at step {step}")
        self.step, self.history = step, history  # the rows logged before it


def divergence(level: float, reference: float, what: str = "loss") -> str | None:
    """Why a loss `level` counts as diverged against the `reference` (the loss at initialisation); else None."""
    if not math.isfinite(level):
        return f"{what} not finite ({level})"
    if level > DIVERGE_FACTOR * reference:
        return f"{what} {level:.4g} above {DIVERGE_FACTOR:g} x the validation loss at initialisation {reference:.4g}"
    return None


@dataclass
class DivergenceCheck:
    """The divergence rule over a run, against `reference`, the validation loss at initialisation."""

    reference: float
    recent: list[float] = field(default_factory=list)  # the training losses since the last suspicion
    confirmed: int = 0  # suspicions in a row that the validation loss confirmed

    def train(self, loss: float, val_loss: Callable[[], float]) -> str | None:
        """Why the run diverged at this step's training `loss` (`val_loss()` checks a suspicion), or None."""
        if not math.isfinite(loss):
            return divergence(loss, self.reference)
        self.recent = [*self.recent, loss][-DIVERGE_WINDOW:]
        if len(self.recent) < DIVERGE_WINDOW:
            return None
        level = statistics.median(self.recent)
        if not divergence(level, self.reference):
            self.confirmed = 0
            return None
        self.recent = []
        why = self.final(val_loss())
        self.confirmed = self.confirmed + 1 if why else 0
        if self.confirmed < DIVERGE_CONFIRM:
            return None
        return (f"{why} (median training loss of the last {DIVERGE_WINDOW} steps {level:.4g}), "
                f"{DIVERGE_CONFIRM} times in a row")

    def final(self, val_loss: float) -> str | None:
        """Why the run diverged by its final `val_loss` (or a suspicion's), or None."""
        return divergence(val_loss, self.reference, "validation loss")


@dataclass
class TrainOutcome:
    history: list[dict] = field(default_factory=list)   # one row per logged step
    step_times: list[float] = field(default_factory=list)
    data_time_s: float = 0.0
    steps: int = 0
    train_loss: float = float("nan")
    val_loss: float = float("nan")
    val_loss_sampled: float | None = None  # the drawn tokens' loss, where val_loss is exact (data.truth)
    val_accuracy: float | None = None      # ce tasks
    val_accuracy_shifted: float | None = None  # images with data.eval_shift: on the shifted validation images
    trunk_step: int | None = None  # trainer.branch: the shared trunk's step this run started from (None: step 0)


BUDGETS = ("max_steps", "max_tokens", "max_flops", "max_epochs")


def budget_steps(cfg: DictConfig, batch_size: int, tokens_per_example: int, flops_per_example: int,
                 unique_tokens: float) -> int:
    """Steps from the one budget that is set (steps, tokens, FLOPs or epochs); none set means DEFAULT_STEPS.

    `unique_tokens` is what the task holds before a token repeats (inf for a stream): one epoch.
    """
    budgets = {k: cfg[k] for k in BUDGETS if cfg.get(k) is not None}
    if len(budgets) > 1:
        fail("trainer", ",".join(f"{k}={v}" for k, v in budgets.items()),
             "contradictory budgets: set only one of " + ", ".join(f"trainer.{k}" for k in BUDGETS))
    if "max_tokens" in budgets:
        steps = positive("trainer.max_tokens", budgets["max_tokens"]) / (batch_size * tokens_per_example)
    elif "max_epochs" in budgets:
        epochs = positive("trainer.max_epochs", budgets["max_epochs"], integer=False)
        if math.isinf(unique_tokens):
            fail("trainer.max_epochs", epochs, "the task streams fresh data and has no epochs; "
                 "set trainer.max_tokens, trainer.max_flops or trainer.max_steps")
        steps = epochs * unique_tokens / (batch_size * tokens_per_example)
    elif "max_flops" in budgets:
        steps = positive("trainer.max_flops", budgets["max_flops"], integer=False) / (batch_size * flops_per_example)
    else:
        return positive("trainer.max_steps", budgets.get("max_steps", DEFAULT_STEPS))
    if steps < 1:
        key = next(iter(budgets))
        fail(f"trainer.{key}", budgets[key], f"budget is less than one step of batch {batch_size}")
    return int(steps)


def check_step_cap(cfg: DictConfig, steps: int) -> int:
    """Fail up front, saying how long it would take, when a budget comes to more than MAX_STEPS steps."""
    if steps <= MAX_STEPS:
        return steps
    key = next((k for k in ("max_steps", "max_tokens", "max_flops") if cfg.get(k) is not None), "max_steps")
    years = steps * 1e-3 / (365.25 * 86400)
    fail(f"trainer.{key}", cfg.get(key), f"budget is {steps:.3g} steps, above the limit of {MAX_STEPS:.0e} "
         f"(at 1 ms per step it would take {steps * 1e-3 / 3600:.3g} hours = {years:.3g} years)")


def check_training(cfg: DictConfig) -> None:
    """Check what the types of the trainer/optim keys (harness/schema.py) cannot say: ranges, choices, keys that
    depend on each other; ConfigError names the first bad one (`harness.build.resolve_settings` calls it once
    per run)."""
    tcfg, ocfg = cfg.trainer, cfg.optim
    batch = positive("trainer.batch_size", tcfg.batch_size)
    accum = tcfg.grad_accum
    if accum < 1:
        fail("trainer.grad_accum", accum, "must be positive")
    if batch % accum:
        fail("trainer.grad_accum", accum, f"must divide trainer.batch_size={batch}")
    world = world_size(cfg)
    if batch % (accum * world):
        fail("trainer.batch_size", batch, f"must be divisible by dist.nproc x trainer.grad_accum = {world} x {accum}")
    choose("trainer.precision", tcfg.precision, ["fp32", "bf16"])
    choose("optim.name", ocfg.name, ["adamw", "sgd"])
    choose("optim.schedule", ocfg.schedule, SCHEDULES)
    positive("optim.lr", ocfg.lr, integer=False)
    if not (len(ocfg.betas) == 2 and all(0 <= b < 1 for b in ocfg.betas)):
        fail("optim.betas", list(ocfg.betas), "must be two numbers in [0, 1), e.g. [0.9,0.95]")
    if not 0 <= ocfg.momentum < 1:
        fail("optim.momentum", ocfg.momentum, "must be in [0, 1)")
    if float(ocfg.lr_exponent) != 0:
        positive("optim.lr_ref_params", ocfg.lr_ref_params)
    if float(ocfg.get("lr_tokens_exponent", 0.0)) != 0:
        positive("optim.lr_ref_tokens", ocfg.lr_ref_tokens, integer=False)
    fraction = ocfg.warmup_fraction
    if fraction is not None and not 0 <= float(fraction) < 1:
        fail("optim.warmup_fraction", fraction, "must be in [0, 1)")
    if not 0 < float(ocfg.decay_fraction) < 1:
        fail("optim.decay_fraction", ocfg.decay_fraction, "must be in (0, 1)")
    if tcfg.branch:
        _check_branch(cfg, world)
    parse_every(tcfg.checkpoint_every)
    non_negative("optim.warmup_steps", ocfg.warmup_steps)
    non_negative("optim.weight_decay", ocfg.weight_decay, integer=False)
    non_negative("trainer.grad_clip", tcfg.grad_clip, integer=False)
    if tcfg.eval_every < 0:
        fail("trainer.eval_every", tcfg.eval_every, "must be >= 0")
    if tcfg.log_every < 1:
        fail("trainer.log_every", tcfg.log_every, "must be positive")
    if not 0 <= ocfg.min_lr_ratio <= 1:
        fail("optim.min_lr_ratio", ocfg.min_lr_ratio, "must be in [0, 1]")
    positive("trainer.eval_samples", tcfg.eval_samples)


def _check_branch(cfg: DictConfig, world: int) -> None:
    """Branches share their trunk only if nothing before the decay depends on the run's length."""
    ocfg = cfg.optim
    if ocfg.schedule != "wsd":
        fail("trainer.branch", True, f"needs optim.schedule=wsd (a constant-LR trunk), not {ocfg.schedule}")
    if ocfg.warmup_fraction is not None:
        fail("trainer.branch", True, "needs optim.warmup_steps, not optim.warmup_fraction (the warmup must not "
             "depend on the run's length)")
    if float(ocfg.get("lr_tokens_exponent", 0.0)) != 0:
        fail("trainer.branch", True, "needs optim.lr_tokens_exponent=0 (branches share one peak LR)")
    if world > 1:
        fail("trainer.branch", True, "data-parallel runs (dist.nproc > 1) do not branch; set trainer.branch=false")


def peak_lr(cfg: DictConfig, n_params: int, tokens: float) -> float:
    """The LR after warmup: optim.lr * (N / lr_ref_params)^lr_exponent * (D / lr_ref_tokens)^lr_tokens_exponent,
    N the trainable parameters and D the tokens the run will read (an exponent of 0 drops its factor).

    A rule of the run's size and length stated in the config, so a ladder and the larger runs it predicts share it.
    """
    lr, exponent, d_exponent = float(cfg.lr), float(cfg.lr_exponent), float(cfg.get("lr_tokens_exponent", 0.0))
    if exponent:
        lr *= (n_params / float(cfg.lr_ref_params)) ** exponent
    if d_exponent:
        lr *= (tokens / float(cfg.lr_ref_tokens)) ** d_exponent
    return lr


def make_optimizer(model: nn.Module, cfg: DictConfig, lr: float) -> torch.optim.Optimizer:
    """AdamW or SGD with momentum at peak LR `lr`, from a config checked by `check_training`."""
    if cfg.name == "adamw":
        # fused: one kernel per step on CUDA instead of a dozen per parameter group (issue 21's MFU)
        fused = next(model.parameters()).is_cuda
        return torch.optim.AdamW(model.parameters(), lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay,
                                 fused=fused)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def warmup_steps(cfg: DictConfig, steps: int) -> int:
    """Warmup steps of a run of `steps` steps: warmup_fraction of them, else warmup_steps."""
    fraction = cfg.get("warmup_fraction")
    return round(float(fraction) * steps) if fraction is not None else int(cfg.warmup_steps)


def lr_schedule(cfg: DictConfig, steps: int) -> Callable[[int], float]:
    """Multiplier of the peak LR at each step: linear warmup (warmup_fraction of the run, else warmup_steps),
    then constant, or cosine / linear decay to min_lr_ratio at the run's own last step, or (wsd) constant and a
    linear decay to min_lr_ratio over the last decay_fraction of the run (harness/branches.py)."""
    kind = cfg.schedule
    warmup = warmup_steps(cfg, steps)
    floor = float(cfg.min_lr_ratio)
    stable = decay_start(steps, float(cfg.decay_fraction)) if kind == "wsd" else warmup

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if kind == "constant" or step < stable:
            return 1.0
        if kind == "wsd":
            return floor + (1 - floor) * (1 - (step - stable) / max(1, steps - stable))
        progress = (step - warmup) / max(1, steps - warmup)
        decay = 0.5 * (1 + math.cos(math.pi * progress)) if kind == "cosine" else 1 - progress
        return floor + (1 - floor) * decay

    return factor


def loss_fn(kind: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if kind == "mse":
        return lambda out, y: F.mse_loss(out.float(), y)
    return lambda out, y: F.cross_entropy(out.float().reshape(-1, out.size(-1)), y.reshape(-1))


class Evaluation(NamedTuple):
    """What one pass over the fixed validation examples measures."""

    loss: float
    loss_sampled: float | None = None   # the drawn tokens' loss, where `loss` is exact (data.truth)
    accuracy: float | None = None       # share of scored targets whose argmax is right (ce tasks; None for mse)


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, n_examples: int, batch_size: int, autocast) -> Evaluation:
    """val_loss, val_loss_sampled and val_accuracy over the fixed first `n_examples` validation examples, per
    scored target (recall: its one answer; images: the class).

    Where the source's next-token law p is known (`data.truth`), val_loss is the cross-entropy against it,
    -sum_v p_v log q_v, which has the sampled loss's expectation without the noise of the drawn tokens, and
    val_loss_sampled is the drawn tokens' loss; elsewhere val_loss is the drawn targets' loss and the second None.
    """
    model.eval()
    lossf, sampled, exact, right, count = loss_fn(data.spec.loss), 0.0, 0.0, 0, 0
    for x, y in data.val_batches(n_examples, batch_size):
        with autocast:
            out = model(x)
        if data.spec.loss != "ce":
            sampled, count = sampled + lossf(out, y).item() * len(x), count + len(x)
            continue
        logq = F.log_softmax(out.float(), -1)
        scored = y != IGNORE
        sampled += -logq.gather(-1, y.clamp_min(0).unsqueeze(-1)).squeeze(-1)[scored].sum().item()
        right += int((logq.argmax(-1) == y)[scored].sum())
        if data.truth is not None:
            exact += -(data.truth(x) * logq).sum(-1)[scored].sum().item()
        count += int(scored.sum())
    model.train()
    accuracy = right / count if data.spec.loss == "ce" else None
    if data.truth is not None:
        return Evaluation(exact / count, sampled / count, accuracy)
    return Evaluation(sampled / count, None, accuracy)


def _resumed(loop: dict | None) -> tuple[TrainOutcome, dict | None]:
    """The loop state saved in a checkpoint or a trunk (None: a fresh start) as (outcome so far, divergence state)."""
    if loop is None:
        return TrainOutcome(), None
    loop = dict(loop)
    for stale in ("first_loss", "lr_peak"):  # saved before the validation reference / the run's settings held them
        loop.pop(stale, None)
    state = loop.pop("divergence", None)
    return TrainOutcome(**loop), state


def train(model: nn.Module, data: Dataset, cfg: DictConfig, settings: RunSettings, device: torch.device, seed: int,
          on_log: Callable[[dict], None] = lambda row: None, ckpt: "Checkpointer | None" = None,
          world: World = World()) -> TrainOutcome:
    """Train `model` for `settings.steps` optimizer steps of `settings.batch_size` examples, by the run's resolved
    settings; raise Diverged by the rule above.

    With `ckpt`, the run continues from its last checkpoint (if any) and saves one at its interval; with
    `trainer.branch` too, from its trunk's latest state before its decay (harness/branches.py). In a
    data-parallel `world` each rank trains on its slice of every global batch through DistributedDataParallel.
    One function of ~85 lines on purpose: the step loop reads top to bottom, as in nanoGPT's train.py.
    """
    steps = settings.steps
    opt = make_optimizer(model, cfg.optim, settings.lr_peak)
    sampler = data.sampler(seed)  # batch order: same seed, same batches
    loop = ckpt.restore(model, opt, sampler) if ckpt is not None else None
    out, state = _resumed(loop)
    branch_at = settings.decay_start if cfg.trainer.branch and ckpt else None
    trunk = (Trunk(ckpt.path.parent.parent, trunk_id(cfg, model, settings.lr_peak))
             if branch_at and out.steps < branch_at else None)
    tcfg, accum, micro, eval_n = cfg.trainer, settings.grad_accum, settings.micro_batch, settings.eval_samples
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.precision == "bf16")
    factor, base_lr, lossf = lr_schedule(cfg.optim, steps), settings.lr_peak, loss_fn(data.spec.loss)
    eval_every, log_every = int(tcfg.eval_every), max(1, int(tcfg.log_every))
    with trunk or contextlib.nullcontext():  # the trunk's lock, held until this run has saved its branch point
        if trunk is not None and loop is None and (loop := trunk.restore(model, opt, sampler, branch_at)):
            out, state = _resumed({**loop, "trunk_step": loop["steps"]})
        check = DivergenceCheck(**state) if state else DivergenceCheck(evaluate(model, data, eval_n, micro, autocast).loss)
        net = wrap(model, world, device)  # after the restore: DDP starts from rank 0's (restored) weights
        model.train()
        # Training steps only: evaluation stays eager (eval mode would compile a second graph). A compiler
        # failure (no C++ compiler, unsupported op) raises at the first step and the run ends `failed`.
        forward = torch.compile(net, dynamic=False) if settings.compile else net
        for step in range(out.steps, steps):
            t0 = time.perf_counter()
            for group in opt.param_groups:
                group["lr"] = base_lr * factor(step)
            loss_sum, data_s = 0.0, 0.0
            for i in range(accum):
                td = time.perf_counter()
                x, y = shard(sampler.next(micro * world.size), world)
                data_s += time.perf_counter() - td
                with no_sync(net, i < accum - 1):  # DDP all-reduces on the last micro-step only
                    with autocast:
                        loss = lossf(forward(x), y) / accum
                    loss.backward()
                loss_sum += loss.detach()
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip) if tcfg.grad_clip else None
            try:
                opt.step()
            except RuntimeError as e:  # torch's "value cannot be converted to type float without overflow"
                if "without overflow" not in str(e):
                    raise
                why = f"update not finite (lr {base_lr * factor(step):.3g}: {e})"
                raise Diverged(step + 1, why, out.history) from None
            opt.zero_grad(set_to_none=True)
            loss_value = float(mean(loss_sum, world))  # syncs the device: the step is done when the clock stops
            sync(device)
            dt = time.perf_counter() - t0
            why = check.train(loss_value, lambda: evaluate(model, data, eval_n, micro, autocast).loss)
            if why:
                raise Diverged(step + 1, why, out.history)
            out.step_times.append(dt)
            out.data_time_s += data_s
            out.steps, out.train_loss = step + 1, loss_value
            last = step == steps - 1
            val = (evaluate(model, data, eval_n, micro, autocast)
                   if last or (eval_every and (step + 1) % eval_every == 0) else None)
            if last and (why := check.final(val.loss)):
                raise Diverged(step + 1, why, out.history)
            if val is not None:
                out.val_loss, out.val_loss_sampled, out.val_accuracy = val
            if last and (shifted := data.shifted()) is not None:
                out.val_accuracy_shifted = evaluate(model, shifted, eval_n, micro, autocast).accuracy
            if last or step % log_every == 0 or val is not None:
                row = {"step": step + 1, "train_loss": loss_value, "val_loss": val and val.loss,
                       "val_loss_sampled": val and val.loss_sampled, "val_accuracy": val and val.accuracy,
                       "lr": base_lr * factor(step),
                       "step_time_s": dt, "data_time_s": data_s,
                       "grad_norm": float(grad_norm) if grad_norm is not None else None}
                out.history.append(row)
                on_log(row)
            if ckpt is not None and not last and ckpt.due(step + 1):
                ckpt.save(model, opt, sampler, {**asdict(out), "divergence": asdict(check)})
            if trunk is not None and step + 1 == branch_at:  # the trunk up to this run's decay: for longer branches
                trunk.save(branch_at, model, opt, sampler, {**asdict(out), "divergence": asdict(check)})
                trunk.release()
    return out
