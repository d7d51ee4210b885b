"""Byte-level text tasks: `pycode` (this Python's standard library sources) and `text` (your files).

The corpus is cut into 64 KiB blocks; a seeded permutation sends `val_fraction` of them to validation,
so the split is deterministic and both splits see every kind of file. The corpus hash is recorded.
"""
from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path

import torch
from omegaconf import DictConfig

from harness.config import fail, positive
from harness.data.base import Dataset, DataSpec

BLOCK = 65536


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


def split_corpus(corpus: bytes, cfg: DictConfig, seed: int, name: str) -> Dataset:
    seq_len = positive("data.seq_len", cfg.seq_len)
    frac = positive("data.val_fraction", cfg.val_fraction, integer=False)
    tokens = torch.frombuffer(bytearray(corpus), dtype=torch.uint8).long()
    n_blocks = -(-len(tokens) // BLOCK)
    n_val = max(1, round(n_blocks * frac))
    if n_blocks < 2:
        fail("data.path" if name == "text" else "data.max_bytes", len(corpus),
             f"corpus of {len(corpus)} bytes is too small to split (need > {BLOCK} bytes)")
    order = torch.randperm(n_blocks, generator=torch.Generator().manual_seed(seed))
    blocks = list(tokens.split(BLOCK))
    val = torch.cat([blocks[i] for i in sorted(order[:n_val].tolist())])
    train = torch.cat([blocks[i] for i in sorted(order[n_val:].tolist())])
    if cfg.train_tokens is not None:
        limit = positive("data.train_tokens", cfg.train_tokens)
        train = train[:limit]
    spec = DataSpec(kind="tokens", loss="ce", n_outputs=256, seq_len=seq_len,
                    info={"corpus_sha256": hashlib.sha256(corpus).hexdigest(),
                          "corpus_bytes": len(corpus), "unique_train_tokens": len(train)})
    return Dataset(spec, (train, train), (val, val))


def build_pycode(cfg: DictConfig, seed: int) -> Dataset:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)
    max_bytes = positive("data.max_bytes", cfg.max_bytes, allow_none=True)
    return split_corpus(read_corpus(files, max_bytes, "data.max_bytes"), cfg, seed, "pycode")


def build_text(cfg: DictConfig, seed: int) -> Dataset:
    path = Path(str(cfg.path)).expanduser()
    if not path.exists():
        fail("data.path", cfg.path, "no such file or directory")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    if not files:
        fail("data.path", cfg.path, "directory holds no files")
    max_bytes = positive("data.max_bytes", cfg.max_bytes, allow_none=True)
    return split_corpus(read_corpus(files, max_bytes, "data.path"), cfg, seed, "text")
