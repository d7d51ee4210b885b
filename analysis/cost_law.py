"""The law a cost plan reads: a published one by name, given parameters, or a fits.json (or forecast.json)
entry holding E, A, B, alpha, beta, with its bootstrap replicas and the fitted runs' range when present."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from analysis.chinchilla import EPOCH, HOFFMANN, PARAMS
from analysis.cost_inputs import bad

PUBLISHED = {"hoffmann2022": (HOFFMANN, "Hoffmann et al. 2022 (approach 3)"),
             "epoch2024": (EPOCH, "Besiroglu et al. 2024 (Epoch AI replication)")}


@dataclass
class Law:
    """L(N, D) = E + A/N^alpha + B/D^beta with optional bootstrap replicas and the fitted runs' range."""

    params: dict[str, float]
    source: str
    samples: pd.DataFrame | None = None
    fit_range: dict[str, tuple[float, float]] = field(default_factory=dict)
    flops_per_param_token: float = 6.0

    def draws(self) -> dict[str, np.ndarray]:
        """Each parameter as an array: the fitted value first, then the bootstrap replicas."""
        rows = [self.params] + ([] if self.samples is None else self.samples[list(PARAMS)].to_dict("records"))
        return {k: np.array([r[k] for r in rows], dtype=float) for k in PARAMS}


def _law_entries(node: Any, path: str = "") -> list[tuple[str, dict, dict]]:
    """(path, holder, params) for every dict in a fits.json that holds E, A, B, alpha, beta.

    The path joins section titles (or names) and keys: 'Chinchilla approach 3 › chinchilla'.
    """
    found = []
    if isinstance(node, dict):
        params = node.get("params") if isinstance(node.get("params"), dict) else node
        if all(isinstance(params.get(k), (int, float)) for k in PARAMS):
            found.append((path, node, params))
        label = next((str(node[k]) for k in ("title", "name") if isinstance(node.get(k), str)), "")
        prefix = " › ".join(x for x in (path, label) if x)
        for k, v in node.items():
            if k not in ("params", "samples") and isinstance(v, (dict, list)):
                found += _law_entries(v, f"{prefix} › {k}" if prefix else k)
    elif isinstance(node, list):
        for v in node:
            found += _law_entries(v, path)
    return found


def _samples(raw: Any) -> pd.DataFrame | None:
    if isinstance(raw, dict) and all(k in raw for k in PARAMS):
        df = pd.DataFrame({k: raw[k] for k in PARAMS})
    elif isinstance(raw, list) and raw and isinstance(raw[0], dict):
        df = pd.DataFrame(raw)
    else:
        return None
    if not all(k in df.columns for k in PARAMS):
        return None
    df = df[list(PARAMS)].apply(pd.to_numeric, errors="coerce").dropna()
    return df if len(df) else None


def _checked(params: dict[str, float], name: Any) -> dict[str, float]:
    """`params` if they make a law to plan with: E >= 0 (a loss floor), A, B, alpha, beta > 0 (loss falls with N, D)."""
    for key in PARAMS:
        value = params[key]
        if not (math.isfinite(value) and (value >= 0 if key == "E" else value > 0)):
            raise bad("law", name, f"{key} = {value:g}: a law needs E >= 0 and A, B, alpha, beta > 0")
    return params


def load_law(spec: str | Path | Mapping[str, float]) -> Law:
    """A law by name (hoffmann2022, epoch2024), a dict of E, A, B, alpha, beta, or a fits.json path (or the
    report or study folder that holds it).

    A fits.json written by ``harness-analyze`` holds the approach-3 fit in its "Chinchilla approach 3"
    section; any other JSON works too when some entry holds E, A, B, alpha, beta (directly or under
    ``params``), with ``samples`` (bootstrap replicas) and ``fit_range`` beside them when known. Entries
    whose path mentions chinchilla or approach 3 win over others.
    """
    if isinstance(spec, Mapping):
        return Law(_checked({k: float(spec[k]) for k in PARAMS}, "given parameters"), "given parameters")
    name = str(spec)
    if name.lower() in PUBLISHED:
        params, source = PUBLISHED[name.lower()]
        return Law(dict(params), source)
    path = Path(name).expanduser()
    if path.is_dir():  # a report folder, or a study folder whose report is in report/
        path = next((p for p in (path / "fits.json", path / "report" / "fits.json") if p.is_file()),
                    path / "fits.json")
    if not path.is_file():
        raise bad("law", name, "neither a published law nor a fits.json file", [*PUBLISHED, "PATH/fits.json"])
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise bad("law", name, f"unreadable JSON ({type(e).__name__})") from None
    entries = _law_entries(data)
    if not entries:
        raise bad("law", name, "no law with E, A, B, alpha, beta in it (a Chinchilla approach-3 fit is needed)")
    preferred = [e for e in entries
                 if any(w in e[0].lower() for w in ("chinchilla", "approach 3", "approach3", "approach_3"))]
    path_str, holder, params = (preferred or entries)[0]
    fit_range = {k: (float(v[0]), float(v[1])) for k, v in (holder.get("fit_range") or {}).items()
                 if isinstance(v, (list, tuple)) and len(v) == 2}
    if not fit_range:  # a fits.json from before fit_range: its allocation table starts at the largest run
        section = _section_of(data, holder)
        alloc = (section or {}).get("allocation") or []
        if alloc and isinstance(alloc[0], dict) and "C (6ND)" in alloc[0]:
            fit_range = {"C": (math.nan, float(alloc[0]["C (6ND)"]))}
    k = float(holder.get("flops_per_param_token", 6.0))
    return Law(_checked({p: float(params[p]) for p in PARAMS}, name), f"{path} ({path_str or 'top level'})",
               _samples(holder.get("samples")), fit_range, k)


def _section_of(data: Any, holder: dict) -> dict | None:
    """The dict in ``data`` that holds ``holder`` as a value (its report section), if any."""
    if isinstance(data, dict):
        if any(v is holder for v in data.values()):
            return data
        children = data.values()
    elif isinstance(data, list):
        children = data
    else:
        return None
    for v in children:
        got = _section_of(v, holder)
        if got is not None:
            return got
    return None
