"""Byte-level text tasks: `pycode` (this Python's standard library sources) and `text` (your files).

The corpus is cut into 64 KiB blocks; a permutation drawn from `split_seed` sends `val_fraction` of them to
validation, so both splits see every kind of file and every run of a study, whatever its `seed`, is scored on
the same bytes (the run's seed only orders its training windows). The split once followed the run's seed: two
seeds were scored on different files, and pycode's "seed spread" (10% in log loss) was mostly that. The corpus
hash is recorded, and for `text` it is part of the run id (`text_identity`): a changed corpus is a new run.
"""
from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from harness.config import fail, non_negative, positive
from harness.data.base import Dataset, DataShape, DataSpec, token_windows

BLOCK = 65536
_HASHES: dict[tuple, str] = {}  # (file, size, mtime) of every file + max_bytes -> corpus sha256, this process


def read_corpus(files: list[Path], max_bytes: int | None, key: str) -> bytes:
    """Concatenate files in order up to `max_bytes`; unreadable files are a ConfigError naming `key`."""
    chunks, total = [], 0
    for f in files:
        try:
            data = f.read_bytes()
        except OSError as e:
            fail(key, f, f"cannot read file ({e.strerror})")
        chunks.append(data)
        total += len(data)
        if max_bytes and total >= max_bytes:
            break
    corpus = b"".join(chunks)
    return corpus[:max_bytes] if max_bytes else corpus


def split_blocks(n_bytes: int, cfg: DictConfig, key: str, value: object) -> tuple[list[int], list[int]]:
    """(train, validation) block numbers of a corpus of `n_bytes`, each in order; `key`=`value` is the
    setting named when the corpus is too small to split."""
    frac = positive("data.val_fraction", cfg.val_fraction, integer=False)
    n_blocks = -(-n_bytes // BLOCK)
    if n_blocks < 2:
        fail(key, value, f"corpus of {n_bytes} bytes is too small to split (need > {BLOCK} bytes)")
    n_val = max(1, round(n_blocks * frac))
    seed = non_negative("data.split_seed", cfg.split_seed)
    order = torch.randperm(n_blocks, generator=torch.Generator().manual_seed(seed))
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def split_shape(n_bytes: int, cfg: DictConfig, key: str, value: object) -> DataShape:
    """The spec and training windows `split_corpus` gives a corpus of `n_bytes`, without reading it."""
    seq_len = positive("data.seq_len", cfg.seq_len)
    train_ids, val_ids = split_blocks(n_bytes, cfg, key, value)
    n_train = sum(min(BLOCK, n_bytes - i * BLOCK) for i in train_ids)  # the last block may be short
    if cfg.train_tokens is not None:
        n_train = min(n_train, positive("data.train_tokens", cfg.train_tokens))
    token_windows(sum(min(BLOCK, n_bytes - i * BLOCK) for i in val_ids), seq_len, "val")
    return DataShape(DataSpec(kind="tokens", loss="ce", n_outputs=256, seq_len=seq_len),
                     token_windows(n_train, seq_len, "train"))


def split_corpus(corpus: bytes, cfg: DictConfig, key: str, value: object) -> Dataset:
    """Train/validation split of `corpus`; `key`=`value` is the setting named when it is too small."""
    seq_len = positive("data.seq_len", cfg.seq_len)
    train_ids, val_ids = split_blocks(len(corpus), cfg, key, value)
    tokens = torch.frombuffer(bytearray(corpus), dtype=torch.uint8).long()
    blocks = list(tokens.split(BLOCK))
    val = torch.cat([blocks[i] for i in val_ids])
    train = torch.cat([blocks[i] for i in train_ids])
    if cfg.train_tokens is not None:
        limit = positive("data.train_tokens", cfg.train_tokens)
        train = train[:limit]
    spec = DataSpec(kind="tokens", loss="ce", n_outputs=256, seq_len=seq_len,
                    info={"corpus_sha256": hashlib.sha256(corpus).hexdigest(),
                          "corpus_bytes": len(corpus), "unique_train_tokens": len(train)})
    return Dataset(spec, (train, train), (val, val))


def corpus_bytes(files: list[Path], max_bytes: int | None, key: str) -> int:
    """The length `read_corpus` returns, from the files' sizes (what it reads: whole files up to `max_bytes`)."""
    total = 0
    for f in files:
        try:
            total += f.stat().st_size
        except OSError as e:
            fail(key, f, f"cannot read file ({e.strerror})")
        if max_bytes and total >= max_bytes:
            return max_bytes
    return total


def pycode_files() -> list[Path]:
    """This Python's standard-library sources, in name order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)


def pycode_shape(cfg: DictConfig) -> DataShape:
    """`build_pycode`'s spec and training windows from the files' sizes alone."""
    max_bytes = positive("data.max_bytes", cfg.max_bytes, allow_none=True)
    return split_shape(corpus_bytes(pycode_files(), max_bytes, "data.max_bytes"), cfg, "data.max_bytes",
                       max_bytes)


def build_pycode(cfg: DictConfig, seed: int) -> Dataset:
    """The standard library's bytes, split by `data.split_seed` (the run's `seed` does not change the data)."""
    max_bytes = positive("data.max_bytes", cfg.max_bytes, allow_none=True)
    corpus = read_corpus(pycode_files(), max_bytes, "data.max_bytes")
    return split_corpus(corpus, cfg, "data.max_bytes", max_bytes)


def corpus_files(cfg: DictConfig) -> list[Path]:
    """The files of `data.path` (a file, or every file under a folder, in name order)."""
    if OmegaConf.is_missing(cfg, "path") or cfg.path is None or not str(cfg.path).strip():
        fail("data.path", "???", "required with data=text: a text file or folder, e.g. data.path=corpus.txt")
    path = Path(str(cfg.path)).expanduser()
    if not path.exists():
        fail("data.path", cfg.path, "no such file or directory")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    if not files:
        fail("data.path", cfg.path, "directory holds no files")
    return files


def text_identity(cfg: DictConfig) -> str:
    """sha256 of the corpus a `text` run reads; re-hashed only when a file's size or mtime changed."""
    files = corpus_files(cfg)
    max_bytes = positive("data.max_bytes", cfg.max_bytes, allow_none=True)
    try:
        key = (tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files), max_bytes)
    except OSError as e:
        fail("data.path", cfg.path, f"cannot read file ({e.strerror})")
    if key not in _HASHES:
        _HASHES[key] = hashlib.sha256(read_corpus(files, max_bytes, "data.path")).hexdigest()
    return _HASHES[key]


def text_shape(cfg: DictConfig) -> DataShape:
    """`build_text`'s spec and training windows from the files' sizes alone."""
    max_bytes = positive("data.max_bytes", cfg.max_bytes, allow_none=True)
    n_bytes = corpus_bytes(corpus_files(cfg), max_bytes, "data.path")
    if not n_bytes:
        fail("data.path", cfg.path, "the corpus is empty")
    return split_shape(n_bytes, cfg, "data.path", cfg.path)


def build_text(cfg: DictConfig, seed: int) -> Dataset:
    """The files of `data.path`, split by `data.split_seed` (the run's `seed` does not change the data)."""
    files = corpus_files(cfg)
    max_bytes = positive("data.max_bytes", cfg.max_bytes, allow_none=True)
    corpus = read_corpus(files, max_bytes, "data.path")
    if not corpus:
        fail("data.path", cfg.path, "the corpus is empty")
    return split_corpus(corpus, cfg, "data.path", cfg.path)
