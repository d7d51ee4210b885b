"""A run's identity: the hash that names its folder, so a result is never reused for inputs that changed."""
from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig

from harness.config import NON_IDENTITY_KEYS, resolved
from harness.data import data_identity


ADDED_LATER = (("trainer", "compile", False), ("optim", "lr_tokens_exponent", 0.0), ("optim", "lr_ref_tokens", None),
               ("optim", "decay_fraction", 0.2), ("trainer", "branch", False))


def run_id(cfg: DictConfig) -> str:
    """Hash of what a run computes: the resolved config minus output paths and labels, plus the content
    hash of the files the run reads (a text corpus), so changing a corpus gives a new run."""
    data = resolved(cfg)
    dist = data.pop("dist", None) or {}
    if int(dist.get("nproc", 1)) > 1:  # one process keeps the run ids it had before data parallelism
        data["world_size"] = int(dist["nproc"])
    for key in NON_IDENTITY_KEYS:
        *parents, leaf = key.split(".")
        node = data
        for parent in parents:
            node = node.get(parent) or {}
        node.pop(leaf, None)
    for group, key, default in ADDED_LATER:  # at their defaults, runs recorded before the keys existed keep their ids
        if group in data and key in data[group] and data[group][key] == default:
            data[group].pop(key)
    content = data_identity(cfg.data)
    if content:
        data["data_content"] = content
    blob = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
