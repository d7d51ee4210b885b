"""The config's schema: every key of the run config (trainer, optim, dist, each data and model option, the
top-level keys) and every key a sweep sets (the study keys), with its type and its meaning, one dataclass per
concept.

`register()` stores `Config` in Hydra's ConfigStore as `harness_schema`, which conf/config.yaml lists first in
its defaults: every YAML file and override then merges into it, so a wrong type or an unknown key fails at
composition (one line: `harness.config.hydra_error`), and `harness --cfg job` shows the declared keys. The
values (the defaults) stay in the YAML files; the checks types cannot express (ranges, choices, keys that
depend on each other) stay where the keys are used (`harness.train.check_training`, `harness.build`, the
builders of harness/data and harness/models).

`data` and `model` differ per option: each option's YAML file extends its own dataclass (`OPTIONS`, stored as
`schema_<group>_<name>`; markov_zipf, lstm, ... extend a typed option). `logger` is wandb's. Numbers keep
the type they are written with (`Number`): 1 stays 1 and 1e3 stays 1000.0, since the run id hashes them as
written (harness/identity.py). A study key a sweep does not set is None and left out of the run's record and
id (`drop_unset`), as before the keys were declared.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, List, Optional, Union

from omegaconf import MISSING

Number = Union[int, float]  # a number as written: 2e5 is accepted for a count, checked whole where it is used


@dataclass
class TrainerConfig:
    """conf/trainer/*.yaml: the training loop (harness/train.py)."""

    batch_size: Number = MISSING  # examples per optimizer step (split into grad_accum micro-batches and the ranks)
    grad_accum: int = MISSING  # micro-batches per optimizer step
    max_steps: Optional[Number] = MISSING  # budget in optimizer steps (set at most one budget; none: 200 steps)
    max_tokens: Optional[Number] = MISSING  # budget in tokens seen (vector/image tasks: examples)
    max_flops: Optional[Number] = MISSING  # budget in training FLOPs (per token: flops_per_token)
    max_epochs: Optional[Number] = MISSING  # budget in passes over the task's unique training tokens
    fresh_data: bool = MISSING  # true: a run that would read a token twice fails up front
    flops_per_token: str = MISSING  # analytic (harness/flops.py) | 6N (C = 6ND, N = all parameters)
    precision: str = MISSING  # fp32 | bf16 (autocast)
    grad_clip: Number = MISSING  # max global gradient norm; 0 disables
    eval_every: int = MISSING  # validate every N steps (0: only at the end)
    eval_samples: Number = MISSING  # validation examples (token tasks: windows) per evaluation
    timing_warmup_steps: int = MISSING  # first steps left out of the speed metrics
    compile: bool = MISSING  # torch.compile the model for training
    log_every: int = MISSING  # a history (and wandb) row every N steps
    checkpoint_every: Union[int, str] = MISSING  # checkpoint every N steps (100) or seconds (120s, 5m); 0: off
    branch: bool = MISSING  # wsd runs that differ only in length share their constant-LR trunk
    keep_checkpoint: bool = MISSING  # keep checkpoint.pt after the run finishes


@dataclass
class OptimConfig:
    """conf/optim/*.yaml: the optimizer, the LR rule and the LR schedule (harness/train.py)."""

    name: str = MISSING  # adamw | sgd
    lr: Number = MISSING  # peak learning rate (before the size and length rules)
    lr_exponent: Number = MISSING  # size rule: peak lr x (params / lr_ref_params)^lr_exponent (0: none)
    lr_ref_params: Optional[Number] = MISSING  # the size at which the size rule gives lr
    lr_tokens_exponent: Number = MISSING  # length rule: peak lr x (tokens / lr_ref_tokens)^lr_tokens_exponent
    lr_ref_tokens: Optional[Number] = MISSING  # the length at which the length rule gives lr
    weight_decay: Number = MISSING  # decoupled (adamw) or L2 (sgd) weight decay
    betas: List[float] = MISSING  # adamw's two moment decay rates, each in [0, 1) (float: OmegaConf 2.3 iterates
    #                             a list of Union values as nodes, not numbers)
    momentum: Number = MISSING  # sgd's momentum, in [0, 1)
    schedule: str = MISSING  # constant | cosine | linear | wsd (after the warmup)
    warmup_steps: Number = MISSING  # linear warmup steps, unless warmup_fraction is set
    warmup_fraction: Optional[Number] = MISSING  # warmup as a fraction of the run's steps, in [0, 1)
    min_lr_ratio: Number = MISSING  # final lr / peak lr for cosine, linear and wsd, in [0, 1]
    decay_fraction: Number = MISSING  # wsd: the share of the run's last steps that decay, in (0, 1)


@dataclass
class DistConfig:
    """conf/config.yaml `dist`: data parallelism (harness/distributed.py)."""

    nproc: int = MISSING  # ranks of one run; > 1 spawns them (torchrun and SLURM set it)
    backend: str = MISSING  # auto (nccl on CUDA, gloo on CPU) | gloo | nccl
    timeout_s: Number = MISSING  # a collective waiting longer than this for a lost rank fails the run


@dataclass
class DpConfig:
    """sweeps/dp.yaml `dp`: the data-parallel study's knobs, read by its `dp_batch` and `dp_lr` resolvers."""

    rule: str = MISSING  # LR scaling with the world size: none | linear | sqrt
    batch_per_rank: int = MISSING  # per-rank batch: trainer.batch_size = batch_per_rank x dist.nproc
    lr: float = MISSING  # the LR at one rank, scaled by the rule (float, not Number: OmegaConf 2.3 cannot fill
    #                      a Union field of a dataclass that was None; every dp study has written it as a float)


@dataclass
class MlpModel:
    """conf/model/mlp.yaml (harness/models/mlp.py)."""

    name: str = MISSING  # the builder: mlp
    width: Number = MISSING  # hidden units per layer
    depth: Number = MISSING  # hidden layers
    activation: str = MISSING  # relu | gelu | leaky_relu | tanh | sigmoid | identity
    target_params: Optional[Number] = MISSING  # width chosen so the parameter count lands within 5% of this


@dataclass
class CnnModel:
    """conf/model/cnn.yaml (harness/models/cnn.py)."""

    name: str = MISSING  # the builder: cnn
    channels: Number = MISSING  # channels of the first block; doubled after each pooled block
    depth: Number = MISSING  # conv blocks (conv + activation + 2x2 max-pool)
    kernel_size: Number = MISSING  # convolution kernel width
    activation: str = MISSING  # the nonlinearity after each convolution
    target_params: Optional[Number] = MISSING  # channels chosen so the parameter count lands within 5% of this


@dataclass
class RnnModel:
    """conf/model/rnn.yaml, lstm.yaml, gru.yaml (harness/models/rnn.py)."""

    name: str = MISSING  # the builder: rnn
    cell: str = MISSING  # rnn | lstm | gru
    hidden: Number = MISSING  # hidden units per layer
    depth: Number = MISSING  # stacked layers
    embed_dim: Optional[Number] = MISSING  # token embedding width; null: hidden
    activation: str = MISSING  # the plain rnn's nonlinearity: tanh | relu
    target_params: Optional[Number] = MISSING  # hidden chosen so the parameter count lands within 5% of this


@dataclass
class TransformerModel:
    """conf/model/transformer.yaml (harness/models/transformer.py)."""

    name: str = MISSING  # the builder: transformer
    d_model: Number = MISSING  # residual stream width
    n_layers: Number = MISSING  # decoder blocks
    n_heads: Number = MISSING  # attention heads per block
    mlp_ratio: Number = MISSING  # d_ff = mlp_ratio x d_model
    activation: str = MISSING  # the MLP's nonlinearity
    attention: str = MISSING  # sdpa | manual (manual materialises the n x n matrix)
    dropout: Number = MISSING  # dropout probability
    target_params: Optional[Number] = MISSING  # d_model (and d_ff) chosen so the count lands within 5% of this


@dataclass
class TeacherData:
    """conf/data/teacher.yaml (harness/data/teacher.py)."""

    name: str = MISSING  # the task: teacher
    task: str = MISSING  # classification | regression
    input_dim: Number = MISSING  # Gaussian input features
    n_classes: Number = MISSING  # classes (classification only)
    teacher_hidden: Number = MISSING  # the teacher MLP's hidden width
    noise: Number = MISSING  # regression label noise (std)
    train_samples: Number = MISSING  # unique training examples
    val_samples: Number = MISSING  # validation examples


@dataclass
class DeepTeacherData:
    """conf/data/deep_teacher.yaml (harness/data/deep_teacher.py)."""

    name: str = MISSING  # the task: deep_teacher
    input_dim: Number = MISSING  # Gaussian input features
    teacher_width: Number = MISSING  # the teacher network's width
    teacher_depth: Number = MISSING  # the teacher's nonlinear layers
    gain: Number = MISSING  # the teacher's weight gain (> 1: every layer stays nonlinear)
    noise: Number = MISSING  # label noise (std)
    train_samples: Number = MISSING  # unique training examples
    val_samples: Number = MISSING  # validation examples


@dataclass
class ImagesData:
    """conf/data/images.yaml (harness/data/images.py)."""

    name: str = MISSING  # the task: images
    image_size: Number = MISSING  # pixels per side
    channels: Number = MISSING  # colour channels
    n_classes: Number = MISSING  # texture classes
    noise: Number = MISSING  # pixel noise (std)
    train_samples: Number = MISSING  # unique training images
    val_samples: Number = MISSING  # validation images
    max_shift: Optional[Number] = MISSING  # largest texture offset per axis in pixels (0: in place); null: any
    eval_shift: Number = MISSING  # > 0: also score validation images moved this many more pixels


@dataclass
class MarkovData:
    """conf/data/markov.yaml, markov_zipf.yaml, markov_zipf_small.yaml (harness/data/markov.py)."""

    name: str = MISSING  # the task: markov
    vocab_size: Number = MISSING  # tokens
    order: Number = MISSING  # tokens of context the next token depends on
    concentration: Number = MISSING  # Dirichlet concentration of each next-token law (lower: lower entropy)
    zipf: Number = MISSING  # Zipf skew of the Dirichlet base measure (0: symmetric)
    chain_seed: int = MISSING  # draws the chain (the task) and its validation tokens
    seq_len: Number = MISSING  # tokens per training window
    train_tokens: Union[int, float, str] = MISSING  # unique training tokens, or `stream`: fresh tokens every batch
    val_tokens: Number = MISSING  # validation tokens


@dataclass
class FactsData:
    """conf/data/facts.yaml (harness/data/facts.py)."""

    name: str = MISSING  # the task: facts
    alphabet: Number = MISSING  # key symbols
    key_len: Number = MISSING  # symbols per key
    n_values: Number = MISSING  # value symbols
    zipf_a: Number = MISSING  # key frequencies ~ rank^-(1 + zipf_a)
    noise: Number = MISSING  # probability that a value is replaced by a uniform one, in [0, 1)
    task_seed: int = MISSING  # draws the instance (key ranks, key -> value table) and the validation records
    seq_len: Number = MISSING  # tokens per training window
    train_tokens: str = MISSING  # stream: fresh records for every batch
    val_tokens: Number = MISSING  # validation tokens


@dataclass
class TextData:
    """conf/data/text.yaml, and pycode.yaml with max_bytes (harness/data/text.py)."""

    name: str = MISSING  # the task: text | pycode
    seq_len: Number = MISSING  # bytes per training window
    max_bytes: Optional[Number] = MISSING  # corpus size cap; null: all of it
    train_tokens: Optional[Number] = MISSING  # unique training tokens; null: all of the train split
    val_fraction: Number = MISSING  # the corpus's share held out for validation
    split_seed: int = MISSING  # draws which blocks are held out: one validation set for every run seed


@dataclass
class TextFileData(TextData):
    """conf/data/text.yaml: byte-level text from your own files."""

    path: str = MISSING  # a file or a folder of files


@dataclass
class RecallData:
    """conf/data/recall.yaml (harness/data/recall.py)."""

    name: str = MISSING  # the task: recall
    lag: Number = MISSING  # steps back to the token to recall
    vocab_size: Number = MISSING  # tokens (0 is the blank)
    distractors: str = MISSING  # blank | random: what fills the lag
    train_samples: Number = MISSING  # unique training examples
    val_samples: Number = MISSING  # validation examples


# Each option's schema, by the name its YAML file lists first in its defaults (`/schema_<group>_<name>@_here_`).
OPTIONS = {"model": {"mlp": MlpModel, "cnn": CnnModel, "rnn": RnnModel, "transformer": TransformerModel},
           "data": {"teacher": TeacherData, "deep_teacher": DeepTeacherData, "images": ImagesData,
                    "markov": MarkovData, "facts": FactsData, "pycode": TextData, "text": TextFileData,
                    "recall": RecallData}}


@dataclass
class Config:
    """conf/config.yaml: one run's config; the study keys at the end are set by a sweep file (sweeps/*.yaml)."""

    data: Any = MISSING  # the task: conf/data/<option>.yaml, typed by its option's schema (OPTIONS)
    model: Any = MISSING  # the model: conf/model/<option>.yaml, typed by its option's schema (OPTIONS)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # the training loop
    optim: OptimConfig = field(default_factory=OptimConfig)  # the optimizer and LR schedule
    logger: Any = MISSING  # wandb's settings (conf/logger/<option>.yaml, passed to wandb; harness/tracking.py)
    study: str = MISSING  # runs of one study share out_dir/<study>/ and a wandb group
    analyses: List[str] = MISSING  # report sections by name (harness/analyses.py); []: by the columns
    scale: str = MISSING  # smoke | cpu | gpu: the size preset a sweep reads from its grid
    out_dir: str = MISSING  # a run writes to <out_dir>/<study>/<run_id>/
    device: str = MISSING  # auto | cpu | cuda | mps
    threads: Union[int, str] = MISSING  # auto | N torch CPU threads
    seed: int = MISSING  # seeds the data's order and the model's initial weights, in [0, 2^32 - 1]
    force: bool = MISSING  # retrain even if a finished result.json exists
    dist: DistConfig = field(default_factory=DistConfig)  # data parallelism
    peak_flops_per_s: Optional[Number] = MISSING  # MFU denominator (FLOP/s); null: the GPU table / measured CPU peak
    # The study keys: set by sweep files (None when unset; then not recorded and not in the run id).
    grid: Any = None  # the sweep's axes per scale preset, read by its hydra.sweeper.params
    stage: Optional[str] = None  # forecast: lr | ladder | noise | target, the stage a multirun runs
    task: Optional[str] = None  # forecast: the data option the study trains on
    size_mult: Optional[Number] = None  # forecast: a size as a multiple of the isoflop size of its budget
    tokens_per_param: Optional[Number] = None  # forecast: tokens per parameter r of the isoflop size sqrt(C / 6r)
    dp: Optional[DpConfig] = None  # the dp study's per-rank batch, LR and LR rule


STUDY_KEYS = ("grid", "stage", "task", "size_mult", "tokens_per_param", "dp")


def drop_unset(config: dict) -> dict:
    """A resolved config without the study keys no sweep set (None): what runs recorded before they were declared."""
    return {k: v for k, v in config.items() if not (k in STUDY_KEYS and v is None)}


def expected(key: str, owner: Any = Config) -> str | None:
    """What the schema declares for a dotted `key` of `owner` (a dataclass: the whole config, or a data or model
    option's), in words ("a whole number or null"); None where it declares nothing (`grid`, `logger.*`)."""
    hint: Any = owner
    for part in key.split("."):
        hint = _optional(hint)[0]
        if not dataclasses.is_dataclass(hint) or part not in (hints := typing.get_type_hints(hint)):
            return None
        hint = hints[part]
    return None if hint is Any else _words(hint)


def _optional(hint: Any) -> tuple[Any, bool]:
    """(`hint` without None, whether None is allowed)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is not Union or type(None) not in args:
        return hint, False
    rest = tuple(a for a in args if a is not type(None))
    return (Union[rest] if len(rest) > 1 else rest[0]), True


WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}


def _words(hint: Any) -> str:
    hint, nullable = _optional(hint)
    if hint == Number:
        words = "a number"
    elif typing.get_origin(hint) is Union:
        words = " or ".join(_words(a) for a in typing.get_args(hint))
    elif typing.get_origin(hint) is list:
        words = f"a list of {_words(typing.get_args(hint)[0]).removeprefix('a ')}s"
    else:
        words = WORDS.get(hint, f"a {getattr(hint, '__name__', hint)}")
    return words + (" or null" if nullable else "")


def register() -> None:
    """Store the schema in Hydra's ConfigStore: `harness_schema` (conf/config.yaml's first default) and each
    data and model option's (`schema_<group>_<name>`, the first default of its YAML file)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="harness_schema", node=Config)
    for group, options in OPTIONS.items():
        for name, node in options.items():
            store.store(name=f"schema_{group}_{name}", node=node)
