"""A run's identity: the hash that names its folder, so a result is never reused for inputs that changed."""
from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig

from harness.config import NON_IDENTITY_KEYS, resolved
from harness.data import data_identity


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
    if not data.get("trainer", {}).get("compile", True):  # added later: runs recorded before keep their ids
        data["trainer"].pop("compile")
    content = data_identity(cfg.data)
    if content:
        data["data_content"] = content
    blob = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
