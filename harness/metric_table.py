"""The one table of what a run reports: each metric once, with its unit, the code that computes it, and its
wandb key. `result.json`'s `metrics`, `history.parquet`'s columns, wandb, `harness-collect` and the report's
axis labels all use these names; a test checks that every name a run writes is here. What a run was set to
use (steps, world size, micro-batch, peak LR after the LR rule, ...) is not measured: it is result.json's
`settings` (`harness.settings.RunSettings`), collected as `settings.*` columns.

Units are also in the names (`_s` seconds, `_bytes` bytes, `_per_s` per second, `flops` floating-point
operations). Memory is in bytes everywhere; on CUDA it is the caching allocator's allocated memory, on CPU the
process's resident set (RSS); `mem_kind` says which one a run measured.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    unit: str     # what one unit is: "nats", "s", "bytes", "tokens/s", "FLOPs", "1" (a ratio), "count", "text"
    source: str   # where it is computed
    wandb: str    # key in the wandb run (history for per-step metrics, summary otherwise)
    doc: str


def _m(unit: str, source: str, wandb: str, doc: str) -> Metric:
    return Metric(unit, source, wandb, doc)


RUN, LOOP, MET, DATA = "harness.runner._measure", "harness.train.train", "harness.metrics", "harness.data"

# Per logged step: the columns of history.parquet (and wandb history).
HISTORY = {
    "step": _m("count", LOOP, "trainer/step", "optimizer steps done (1-based)"),
    "train_loss": _m("nats", LOOP, "train/loss", "training loss of the step (mean over ranks); squared error for regression"),
    "val_loss": _m("nats", "harness.train.evaluate", "val/loss", "held-out loss, on evaluation steps only "
                   "(exact cross-entropy against the true next-token law where the task knows it)"),
    "val_loss_sampled": _m("nats", "harness.train.evaluate", "val/loss_sampled",
                           "held-out loss of the drawn tokens, where val_loss is exact (else null)"),
    "val_accuracy": _m("1", "harness.train.evaluate", "val/accuracy", "share of scored held-out targets whose "
                       "most likely class or token is right (cross-entropy tasks; else null)"),
    "lr": _m("1", LOOP, "train/lr", "learning rate of the step"),
    "grad_norm": _m("1", LOOP, "train/grad_norm", "gradient norm before clipping (null without clipping)"),
    "step_time_s": _m("s", LOOP, "perf/step_time_s", "wall time of the step, device synchronised"),
    "data_time_s": _m("s", LOOP, "perf/data_time_s", "part of the step spent drawing the batch"),
    "tokens_per_s": _m("tokens/s", f"{MET}.step_throughput", "perf/tokens_per_s", "global tokens of the step / its time"),
    "mem_bytes": _m("bytes", f"{MET}.MemoryMeter.current_bytes", "mem/bytes", "memory in use now (see mem_kind)"),
}

# Once per run: result.json's metrics (and the wandb summary).
SUMMARY = {
    # what was trained
    "params": _m("count", "harness.models.param_counts", "model/params", "trainable parameters"),
    "params_non_embedding": _m("count", "harness.models.param_counts", "model/params_non_embedding",
                               "parameters without token and position embeddings (Kaplan's N)"),
    "flops_per_example": _m("FLOPs", "model.flops_per_example", "model/flops_per_example",
                            "analytic training FLOPs (forward + backward) of one example (harness.flops)"),
    "steps": _m("count", LOOP, "budget/steps", "optimizer steps done"),
    "samples": _m("count", f"{MET}.totals", "budget/samples", "examples seen = steps x global batch"),
    "tokens": _m("tokens", f"{MET}.totals", "budget/tokens", "tokens seen (D) = samples x tokens per example"),
    "unique_train_tokens": _m("tokens", "harness.data.Dataset", "data/unique_train_tokens",
                              "tokens in one epoch of the training split (null: a fresh stream)"),
    "epochs": _m("1", "harness.settings.epochs", "data/epochs", "passes over the unique training data"),
    "flops_per_step": _m("FLOPs", f"{MET}.totals", "compute/flops_per_step", "flops_per_example x global batch"),
    "flops_total": _m("FLOPs", f"{MET}.totals", "compute/flops_total", "training compute C = flops_per_step x steps"),
    # losses
    "train_loss": _m("nats", LOOP, "final/train_loss", "last step's training loss"),
    "val_loss": _m("nats", "harness.train.evaluate", "final/val_loss",
                   "held-out loss at the end (exact against the true law where the task knows it)"),
    "val_loss_sampled": _m("nats", "harness.train.evaluate", "final/val_loss_sampled",
                           "held-out loss of the drawn tokens at the end, where val_loss is exact (else null)"),
    "val_accuracy": _m("1", "harness.train.evaluate", "final/val_accuracy", "share of scored held-out targets "
                       "whose most likely class or token is right, at the end (cross-entropy tasks; else null)"),
    "val_accuracy_shifted": _m("1", "harness.train.evaluate", "final/val_accuracy_shifted",
                               "images with data.eval_shift: val_accuracy on the validation images moved that many "
                               "pixels (else null)"),
    "diverged_step": _m("count", LOOP, "final/diverged_step", "step at which the divergence rule fired"),
    "entropy_rate": _m("nats", f"{DATA}.markov", "data/entropy_rate",
                       "markov: the chain's exact entropy rate H; facts: the value noise's entropy"),
    "loss_floor": _m("nats", f"{DATA}.markov.window_floor", "data/loss_floor",
                     "markov: the best loss reachable within a window (>= entropy_rate); facts: the noise entropy"),
    "theory_data_exponent": _m("1", f"{DATA}.facts", "data/theory_data_exponent",
                               "facts: the data exponent beta = a / (1 + a) that learning-curve theory predicts"),
    "theory_param_exponent": _m("1", f"{DATA}.facts", "data/theory_param_exponent",
                                "facts: the parameter exponent alpha ~ a of the quantization model"),
    "corpus_sha256": _m("text", f"{DATA}.text", "data/corpus_sha256", "text tasks: content hash of the corpus"),
    "corpus_bytes": _m("bytes", f"{DATA}.text", "data/corpus_bytes", "text tasks: size of the corpus"),
    # time
    "wall_s": _m("s", "harness.runner.run", "time/wall_s", "wall time of training, checkpoints included"),
    "warmup_s": _m("s", f"{MET}.step_time_stats", "time/warmup_s", "the untimed first steps, summed"),
    "timed_steps": _m("count", f"{MET}.step_time_stats", "time/timed_steps",
                      "steps in the speed metrics: all, warm-up included, when the run has no more steps than it"),
    "step_time_s": _m("s", f"{MET}.step_time_stats", "time/step_time_s", "median step time after the warm-up"),
    "step_time_p10_s": _m("s", f"{MET}.step_time_stats", "time/step_time_p10_s", "10th percentile step time"),
    "step_time_p90_s": _m("s", f"{MET}.step_time_stats", "time/step_time_p90_s", "90th percentile step time"),
    "compile_s": _m("s", f"{MET}.compile_overhead", "time/compile_s", "torch.compile's extra time in the first steps"),
    "data_time_fraction": _m("1", f"{MET}.totals", "time/data_time_fraction", "share of step time spent on data"),
    "checkpoints": _m("count", "harness.checkpoint.Checkpointer", "time/checkpoints", "checkpoints saved"),
    "checkpoint_s": _m("s", "harness.checkpoint.Checkpointer", "time/checkpoint_s", "time spent saving them"),
    "resumed_from_step": _m("count", "harness.checkpoint.Checkpointer", "time/resumed_from_step",
                            "step of the checkpoint this attempt resumed from (null: it started at step 0)"),
    "trunk_step": _m("count", "harness.branches.Trunk", "time/trunk_step",
                     "trainer.branch: step of the shared trunk this run started from (null: it trained from step 0)"),
    # speed and utilisation (global over ranks, from the median step)
    "samples_per_s": _m("samples/s", f"{MET}.throughput", "perf/samples_per_s", "examples per second"),
    "tokens_per_s": _m("tokens/s", f"{MET}.throughput", "perf/tokens_per_s", "tokens per second"),
    "achieved_flops_per_s": _m("FLOP/s", f"{MET}.throughput", "perf/achieved_flops_per_s", "flops_per_step / step_time_s"),
    "peak_flops_per_s": _m("FLOP/s", f"{MET}.cpu_peak, harness.hardware", "perf/peak_flops_per_s",
                           "datasheet GPU peak, or measured CPU matmul peak; times the ranks"),
    "mfu": _m("1", f"{MET}.throughput", "perf/mfu", "achieved / peak FLOP/s (null when the peak is unknown)"),
    # memory
    "peak_mem_bytes": _m("bytes", f"{MET}.MemoryMeter.peak", "mem/peak_bytes",
                         "peak memory of the run (max over ranks; see mem_kind)"),
    "peak_mem_reserved_bytes": _m("bytes", f"{MET}.MemoryMeter.peak", "mem/peak_reserved_bytes",
                                  "CUDA only: peak memory reserved by the caching allocator"),
    "mem_kind": _m("text", f"{MET}.MemoryMeter", "mem/kind", "cuda_allocated (CUDA allocator) or rss (CPU process)"),
    # attention (transformers)
    "attn_flops_per_step": _m("FLOPs", f"{MET}.attention_cost", "attn/flops_per_step", "the O(n^2) attention FLOPs"),
    "attn_flops_share": _m("1", f"{MET}.attention_cost", "attn/flops_share", "their share of the step's FLOPs"),
    "attn_matrix_bytes": _m("bytes", f"{MET}.attention_cost", "attn/matrix_bytes",
                            "one layer's (B, H, T, T) score matrix (null for SDPA, which never materialises it)"),
    "attn_time_s": _m("s", f"{MET}.attention_cost", "attn/time_s", "forward + backward of one attention layer"),
    # data parallelism
    "allreduce_s": _m("s", "harness.distributed.allreduce_time", "dist/allreduce_s", "one gradient all-reduce"),
    "scaling_efficiency": _m("1", "harness.distributed.scaling_efficiency", "dist/scaling_efficiency",
                             "tokens/s over world x the one-process run's tokens/s"),
}


def unit(name: str) -> str | None:
    """The unit of a result or history column, None when it is not a metric (a config key, say)."""
    metric = SUMMARY.get(name) or HISTORY.get(name)
    return metric.unit if metric else None


def wandb_key(name: str, per_step: bool = False) -> str:
    """The wandb key of a metric; a name missing from the table goes under `other/` (a test keeps it empty)."""
    metric = (HISTORY if per_step else SUMMARY).get(name)
    return metric.wandb if metric else f"other/{name}"
