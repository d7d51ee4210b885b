"""The cost of scale: a fitted law and measured efficiency -> FLOPs, GPU-hours, days, money and memory per GPU.

    from analysis import plan_cost
    plan = plan_cost(law="runs/isoflop/report/fits.json", compute=1e21, gpu="H100", gpus=64, usd_per_gpu_hour=2.5)
    plan.to_dict(); print(plan.text()); print(plan.markdown()); plan.plot("out/")

Conventions, stated in every plan:

- compute C = k·N·D with k = 6 (forward + backward, N all parameters, as the isoflop study counts) unless the
  law's fits.json says otherwise (``flops_per_param_token``);
- compute-optimal allocation and predicted loss from L(N, D) = E + A/N^α + B/D^β (``analysis.chinchilla``);
  along that frontier the reducible loss L − E falls as C^−γ with γ = αβ/(α+β), so each halving of it
  costs 2^(1/γ) times more compute;
- time = C / (GPUs · peak · MFU); the peak is the datasheet dense rate at ``precision`` (``harness.hardware``);
- memory per GPU (bytes): weights, gradients and optimizer state per parameter as in the ZeRO paper
  (Rajbhandari et al. 2019: mixed-precision Adam = 2 + 2 + 12 bytes), divided over the GPUs as far as
  ``sharding`` goes; activations 34·s·b·h bytes per layer at 16 bits (Korthikanti et al. 2022, attention
  scores not stored, as with SDPA / flash attention), twice that in fp32; with ``checkpointing`` each layer
  keeps only its 16-bit input (2·s·b·h) and one layer's activations live during recomputation;
- intervals are the central 90% of the same figure over the law's bootstrap replicas, when it has them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from analysis.chinchilla import EPOCH, HOFFMANN, PARAMS
from analysis.data import AnalysisError
from harness.efficiency import MfuModel, constant, fit_mfu
from harness.hardware import GPUS, gpu_key, gpu_memory, gpu_peak

PUBLISHED = {"hoffmann2022": (HOFFMANN, "Hoffmann et al. 2022 (approach 3)"),
             "epoch2024": (EPOCH, "Besiroglu et al. 2024 (Epoch AI replication)")}
PRECISIONS = ("bf16", "fp16", "fp32")
# bytes per parameter: (weights, gradients) by precision; optimizer state by optimizer and precision
# (mixed precision keeps an fp32 master copy in the optimizer state, as ZeRO counts it)
WEIGHT_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
OPTIMIZER_BYTES = {"adam": {"mixed": 12, "fp32": 8}, "adamw": {"mixed": 12, "fp32": 8},
                   "sgd": {"mixed": 8, "fp32": 4}}
SHARDING = ("none", "optimizer", "gradients", "full")
SHARDED = {"none": (), "optimizer": ("optimizer",), "gradients": ("optimizer", "gradients"),
           "full": ("optimizer", "gradients", "weights")}  # ZeRO stages 1, 2, 3 (FSDP full sharding)
UTILISATIONS = (0.3, 0.5, 0.7, 0.9)
DEFAULT_MFU = 0.4  # when neither mfu= nor mfu_from= is given: typical of tuned large dense training (PaLM: 46%)
DEFAULT_USD = 2.5  # per GPU-hour, the middle of the seed's $2–3
LEVEL = 0.9
ASPECT = 128  # d_model per layer when the shape is not given (Llama-7B 4096/32, GPT-3 12288/96)


class CostError(AnalysisError):
    """Bad input to a plan; the message is one line naming the key."""


def _bad(key: str, value: Any, why: str, valid: Iterable[Any] | None = None) -> CostError:
    msg = f"{key}={value}: {why}"
    return CostError(msg + (f" (valid: {', '.join(map(str, valid))})" if valid is not None else ""))


# --- laws -------------------------------------------------------------------------------------------------


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
            raise _bad("law", name, f"{key} = {value:g}: a law needs E >= 0 and A, B, alpha, beta > 0")
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
        raise _bad("law", name, "neither a published law nor a fits.json file", [*PUBLISHED, "PATH/fits.json"])
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise _bad("law", name, f"unreadable JSON ({type(e).__name__})") from None
    entries = _law_entries(data)
    if not entries:
        raise _bad("law", name, "no law with E, A, B, alpha, beta in it (a Chinchilla approach-3 fit is needed)")
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


# --- the law along its compute-optimal frontier (vectorised over draws) ----------------------------------


def _G(p: Mapping[str, np.ndarray]) -> np.ndarray:
    return (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))


def allocation(p: Mapping[str, np.ndarray], C, k: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """(N_opt, D_opt) at compute C = k N D for each draw of the law."""
    s = p["alpha"] + p["beta"]
    x = np.asarray(C, dtype=float) / k
    G = _G(p)
    return G * x ** (p["beta"] / s), x ** (p["alpha"] / s) / G


def law_loss(p: Mapping[str, np.ndarray], N, D) -> np.ndarray:
    return p["E"] + p["A"] / np.asarray(N, float) ** p["alpha"] + p["B"] / np.asarray(D, float) ** p["beta"]


def gamma(p: Mapping[str, np.ndarray]) -> np.ndarray:
    """Exponent of the reducible loss along the frontier: L_opt(C) − E ∝ C^−γ, γ = αβ/(α+β)."""
    return p["alpha"] * p["beta"] / (p["alpha"] + p["beta"])


def compute_for_loss(p: Mapping[str, np.ndarray], loss: float, k: float = 6.0) -> np.ndarray:
    """Compute at which the compute-optimal loss reaches ``loss`` (NaN where it is at or below E)."""
    G, g = _G(p), gamma(p)
    K = p["A"] * G ** -p["alpha"] + p["B"] * G ** p["beta"]  # L_opt = E + K (C/k)^-γ
    reducible = loss - p["E"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(reducible > 0, k * (K / reducible) ** (1 / g), np.nan)


def tokens_for_params(p: Mapping[str, np.ndarray], N, k: float = 6.0) -> np.ndarray:
    """D for which N is the compute-optimal size (inverting N_opt(C))."""
    a = p["beta"] / (p["alpha"] + p["beta"])
    x = (np.asarray(N, float) / _G(p)) ** (1 / a)  # C / k
    return x / N


# --- memory -----------------------------------------------------------------------------------------------


def model_shape(params: float, layers: int | None = None, d_model: int | None = None) -> tuple[int, int]:
    """(layers, d_model) with params ≈ 12·layers·d_model², filling in what is not given (d_model = 128·layers)."""
    if layers and d_model:
        return int(layers), int(d_model)
    if layers:
        return int(layers), max(1, round(math.sqrt(params / (12 * layers))))
    if d_model:
        return max(1, round(params / (12 * d_model ** 2))), int(d_model)
    L = max(1, round((params / (12 * ASPECT ** 2)) ** (1 / 3)))
    return L, max(1, round(math.sqrt(params / (12 * L))))


def _check_memory_knobs(precision: str, optimizer: str, sharding: str) -> None:
    """One-line CostErrors for the memory knobs shared by `memory_per_gpu` and `plan_cost`."""
    for key, value, valid in (("precision", precision, PRECISIONS), ("optimizer", optimizer, OPTIMIZER_BYTES),
                              ("sharding", sharding, SHARDING)):
        if value not in valid:
            raise _bad(key, value, "unknown", valid)


def memory_per_gpu(params: float, gpus: int = 1, precision: str = "bf16", optimizer: str = "adam",
                   sharding: str = "none", seq_len: int = 2048, micro_batch: int = 1, layers: int | None = None,
                   d_model: int | None = None, checkpointing: bool = False,
                   activations: bool = True) -> dict[str, float]:
    """Bytes one GPU holds in training: weights, gradients, optimizer state, activations and their total.

    ``sharding``: none | optimizer (ZeRO-1) | gradients (ZeRO-2) | full (ZeRO-3 / FSDP) over ``gpus``.
    Activations are per GPU for ``micro_batch`` sequences of ``seq_len`` tokens (not sharded).
    """
    _check_memory_knobs(precision, optimizer, sharding)
    state = {"weights": WEIGHT_BYTES[precision] * params, "gradients": WEIGHT_BYTES[precision] * params,
             "optimizer": OPTIMIZER_BYTES[optimizer]["fp32" if precision == "fp32" else "mixed"] * params}
    for part in SHARDED[sharding]:
        state[part] /= gpus
    act = 0.0
    if activations:
        L, h = model_shape(params, layers, d_model)
        sbh = seq_len * micro_batch * h
        per_layer = 34 * sbh * (2 if precision == "fp32" else 1)
        act = L * 2 * sbh + per_layer if checkpointing else L * per_layer
    return {**state, "activations": act, "total": sum(state.values()) + act}


def min_gpus(params: float, capacity: float, **memory: Any) -> int | None:
    """Fewest GPUs whose memory holds the run with its sharding (None: no count does)."""
    one = memory_per_gpu(params, gpus=1, **memory)
    divided = sum(one[part] for part in SHARDED[memory.get("sharding", "none")])
    fixed = one["total"] - divided  # what sharding does not divide
    if one["total"] <= capacity:
        return 1
    if fixed >= capacity or not divided:
        return None
    return max(1, math.ceil(divided / (capacity - fixed)))


# --- utilisation ------------------------------------------------------------------------------------------


def idle_cost_per_day(gpus: int, usd_per_gpu_hour: float, utilisation: float, best: float = 0.9) -> float:
    """Dollars a day a cluster pays for work it does not do, at ``utilisation`` instead of ``best``."""
    return gpus * 24 * usd_per_gpu_hour * (best - utilisation)


# --- the plan ---------------------------------------------------------------------------------------------


@dataclass
class CostPlan:
    """One planned run: target, law, hardware, the figures (with intervals) and the tables beside them."""

    figures: dict[str, Any]
    intervals: dict[str, list[float]]
    inputs: dict[str, Any]
    notes: list[str]
    utilisation: pd.DataFrame
    frontier: pd.DataFrame | None
    halvings: pd.DataFrame | None
    law: Law | None
    level: float = LEVEL

    def to_dict(self) -> dict:
        from harness.jsonsafe import json_ready

        key = f"interval{round(self.level * 100)}"
        out = dict(self.figures)
        for name, iv in self.intervals.items():
            out[f"{name}_{key}"] = iv
        out.update(inputs=self.inputs, notes=self.notes, utilisation=self.utilisation.to_dict("records"))
        if self.halvings is not None:
            out["halvings"] = self.halvings.to_dict("records")
        if self.law is not None:
            out["law"] = {"source": self.law.source, "params": self.law.params,
                          "bootstrap": 0 if self.law.samples is None else len(self.law.samples),
                          "fit_range": {k: list(v) for k, v in self.law.fit_range.items()}}
        return json_ready(out)

    def _rows(self) -> list[tuple[str, str]]:
        f = self.figures
        mem = f["memory_per_gpu_bytes"]
        rows = [("parameters N", self._v("params", "{:.3g}")), ("tokens D", self._v("tokens", "{:.3g}")),
                ("tokens per parameter", f"{f['tokens'] / f['params']:.3g}"),
                ("compute C", self._v("flops", "{:.3g} FLOPs") + f" ({f['flops_convention']})")]
        if f.get("predicted_loss") is not None:
            rows.append(("predicted loss", self._v("predicted_loss", "{:.4f}") + f" (floor E = {f['E']:.4f})"))
        rows += [("hardware", f"{self.inputs['gpus']} × {self.inputs['gpu']} at {self.inputs['precision']}, "
                              f"peak {f['peak_flops_per_s']:.4g} FLOP/s each"),
                 ("MFU", f"{f['mfu']:.3g} ({f['mfu_source']})"),
                 ("GPU-hours", self._v("gpu_hours", "{:,.0f}")), ("days", self._v("days", "{:,.3g}")),
                 ("money", self._v("usd", "${:,.0f}") + f" at ${self.inputs['usd_per_gpu_hour']:g}/GPU-hour"),
                 ("memory per GPU", self._v("memory_per_gpu_bytes", "{}", gb=True) +
                  f" = weights {_gb(mem['weights'])} + gradients {_gb(mem['gradients'])} + optimizer "
                  f"{_gb(mem['optimizer'])} + activations {_gb(mem['activations'])} "
                  f"(of {_gb(f['gpu_memory_bytes'])}; sharding={self.inputs['sharding']})"),
                 ("fewest GPUs that fit", "none (shard it)" if f["gpus_min"] is None else self._v("gpus_min", "{:,}"))]
        return rows

    def _v(self, name: str, fmt: str, gb: bool = False) -> str:
        conv = _gb if gb else fmt.format
        value = self.figures[name]["total"] if gb else self.figures[name]
        text = conv(value)
        iv = self.intervals.get(name)
        if iv is not None:
            text += f" [{', '.join('—' if v is None or not np.isfinite(v) else conv(v) for v in iv)}]"
        return text

    def text(self) -> str:
        """The plan as aligned lines for a terminal."""
        lines = [f"Plan: {self.inputs['target']}" + (f" — law {self.law.source}" if self.law else " — no law")]
        width = max(len(k) for k, _ in self._rows())
        lines += [f"  {k:<{width}}  {v}" for k, v in self._rows()]
        if self.law is not None and self.law.samples is not None:
            lines.append(f"  [brackets: central {self.level:.0%} over {len(self.law.samples)} bootstrap replicas]")
        lines += ["", "Utilisation (same run):"] + ["  " + r for r in _table(self.utilisation, plain=True)]
        if self.halvings is not None:
            lines += ["", self.figures["halving_note"]] + ["  " + r for r in _table(self.halvings, plain=True)]
        lines += [""] + [f"note: {n}" for n in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def markdown(self) -> str:
        """The plan as a markdown section."""
        out = [f"## Plan: {self.inputs['target']}", ""]
        if self.law is not None:
            out += [f"Law: {self.law.source}" + (f"; intervals are the central {self.level:.0%} over "
                                                 f"{len(self.law.samples)} bootstrap replicas."
                                                 if self.law.samples is not None else "."), ""]
        out += ["| figure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in self._rows()]
        out += ["", "### Utilisation", ""] + _table(self.utilisation)
        if self.halvings is not None:
            out += ["", "### Diminishing returns", "", self.figures["halving_note"], ""] + _table(self.halvings)
        out += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n"

    def plot(self, out_dir: str | Path) -> list[Path]:
        """Loss against money and against compute along the frontier (PNG + SVG); [] without a law."""
        if self.frontier is None:
            return []
        from analysis.cost_plot import plot_cost_frontier

        return plot_cost_frontier(self, Path(out_dir) / "cost_frontier")


def _gb(b: float | None) -> str:
    if b is None or not np.isfinite(b):
        return "—"
    return f"{b / 1e9:,.1f} GB" if b >= 1e8 else f"{b / 1e6:,.1f} MB"


def _table(df: pd.DataFrame, plain: bool = False) -> list[str]:
    def cell(v):
        if isinstance(v, (float, np.floating)):
            if not np.isfinite(v):
                return "—"
            return f"{v:,.0f}" if 100 <= abs(v) < 1e9 else f"{v:.3g}"
        return str(v)

    rows = [[str(c) for c in df.columns]] + [[cell(v) for v in r] for r in df.itertuples(index=False)]
    if plain:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])] + ["| " + " | ".join(r) + " |"
                                                                               for r in rows[1:]]


def _number(key: str, value: Any, allow_none: bool = True, integer: bool = False, minimum: float = 0.0,
            strict: bool = True) -> Any:
    if value is None:
        if allow_none:
            return None
        raise _bad(key, value, "is required")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _bad(key, value, "must be a number") from None
    if not np.isfinite(x) or (x <= minimum if strict else x < minimum):
        raise _bad(key, value, f"must be {'>' if strict else '≥'} {minimum:g}")
    if integer:
        if x != int(x):
            raise _bad(key, value, "must be a whole number")
        return int(x)
    return x


def resolve_mfu(mfu: float | None, mfu_from: str | Path | pd.DataFrame | None, device: str = "cuda") -> MfuModel:
    """The efficiency model: a given MFU, one fitted on a collected study, or the documented default."""
    if mfu is not None and mfu_from is not None:
        raise _bad("mfu", mfu, "give mfu= or mfu_from=, not both")
    if mfu is not None:
        m = _number("mfu", mfu)
        if m > 1:
            raise _bad("mfu", mfu, "must be a fraction in (0, 1]")
        return constant(m, "given (mfu=)")
    if mfu_from is None:
        return constant(DEFAULT_MFU, "default: typical of tuned large dense training (PaLM reported 46%)")
    if isinstance(mfu_from, pd.DataFrame):
        table, source = mfu_from, "the given table"
    else:
        path = Path(mfu_from).expanduser()
        if path.is_dir():
            path = path / "results.parquet"
        try:
            table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        except (OSError, ValueError, ImportError) as e:
            raise _bad("mfu_from", mfu_from, f"unreadable table ({type(e).__name__})") from None
        source = str(path)
    try:
        return fit_mfu(table, "mfu", device=device, source=source)
    except ValueError as e:
        raise _bad("mfu_from", mfu_from, str(e)) from None


def plan_cost(law: str | Path | Mapping[str, float] | Law | None = None, *, compute: float | None = None,
              params: float | None = None, tokens: float | None = None, tokens_per_param: float | None = None,
              loss: float | None = None, gpu: str = "H100", gpus: int | None = None, mfu: float | None = None,
              mfu_from: str | Path | pd.DataFrame | None = None, model: str | None = "transformer",
              usd_per_gpu_hour: float = DEFAULT_USD, precision: str = "bf16", optimizer: str = "adam",
              seq_len: int = 2048, micro_batch: int = 1, layers: int | None = None, d_model: int | None = None,
              checkpointing: bool = False, sharding: str = "none", level: float = LEVEL) -> CostPlan:
    """Plan one run: a target (``compute``, ``params`` [+ ``tokens`` or ``tokens_per_param``], or ``loss``),
    a law (needed unless the target fixes N and D), hardware and memory knobs. See the module docstring.

    ``gpus`` defaults to the fewest that hold the run. ``model`` picks the MFU curve of that model name in
    an ``mfu_from`` study. Raises CostError (one line naming the key) on bad input.
    """
    # --- inputs
    targets = {k: v for k, v in (("compute", compute), ("params", params), ("loss", loss)) if v is not None}
    if len(targets) != 1:
        raise _bad("target", ",".join(targets) or "none", "give exactly one of compute=, params=, loss=",
                   ("compute", "params", "loss"))
    if tokens is not None and tokens_per_param is not None:
        raise _bad("tokens", tokens, "give tokens= or tokens_per_param=, not both")
    if tokens is not None and params is None:
        raise _bad("tokens", tokens, "goes with params=")
    key = gpu_key(str(gpu))
    if key is None:
        raise _bad("gpu", gpu, "unknown GPU", GPUS)
    _check_memory_knobs(precision, optimizer, sharding)
    price = _number("usd_per_gpu_hour", usd_per_gpu_hour, allow_none=False, strict=False)
    gpus = _number("gpus", gpus, integer=True)
    seq_len = _number("seq_len", seq_len, integer=True, allow_none=False)
    micro_batch = _number("micro_batch", micro_batch, integer=True, allow_none=False)
    layers = _number("layers", layers, integer=True)
    d_model = _number("d_model", d_model, integer=True)
    if not 0 < level < 1:
        raise _bad("level", level, "must be in (0, 1)")
    the_law = law if isinstance(law, Law) or law is None else load_law(law)
    k = the_law.flops_per_param_token if the_law else 6.0
    p = the_law.draws() if the_law else None
    notes: list[str] = []

    # --- target -> N, D, C per draw (index 0: the fitted law)
    if compute is not None:
        C = _number("compute", compute)
        if tokens_per_param is not None:
            r = _number("tokens_per_param", tokens_per_param)
            N = np.full(1 if p is None else len(p["E"]), math.sqrt(C / (k * r)))
            D = r * N
        elif p is None:
            raise _bad("law", None, "compute= without tokens_per_param= needs a law to allocate N and D",
                       [*PUBLISHED, "PATH/fits.json"])
        else:
            N, D = allocation(p, C, k)
        target = f"C = {C:.3g} FLOPs"
    elif params is not None:
        n = _number("params", params)
        if tokens is not None:
            d = np.array([_number("tokens", tokens)])
        elif tokens_per_param is not None:
            d = np.array([_number("tokens_per_param", tokens_per_param) * n])
        elif p is None:
            raise _bad("law", None, "params= without tokens= or tokens_per_param= needs a law for the "
                                    "compute-optimal tokens", [*PUBLISHED, "PATH/fits.json"])
        else:
            d = tokens_for_params(p, n, k)
        size = max(len(d), 1 if p is None else len(p["E"]))
        N, D = np.full(size, n), np.broadcast_to(d, (size,)).astype(float)
        target = f"N = {n:.3g} params" + (f", D = {float(d[0]):.3g} tokens" if tokens or tokens_per_param else
                                          ", compute-optimal D")
    else:
        target_loss = _number("loss", loss)
        if p is None:
            raise _bad("law", None, "loss= needs a law", [*PUBLISHED, "PATH/fits.json"])
        E = p["E"][0]
        if target_loss <= E:
            raise _bad("loss", target_loss, f"at or below the law's floor E = {E:.4g}: no amount of compute reaches it")
        Cs = compute_for_loss(p, target_loss, k)
        unreachable = int(np.isnan(Cs[1:]).sum())
        if unreachable:
            notes.append(f"{unreachable} of {len(Cs) - 1} bootstrap replicas have E ≥ {target_loss:g}: "
                         "the loss is out of their reach (the interval's upper end is open)")
        N, D = allocation(p, Cs, k)
        target = f"loss = {target_loss:g}"
    C = k * N * D

    # --- hardware
    peak = gpu_peak(key, precision)
    capacity = gpu_memory(key)
    eff = resolve_mfu(mfu, mfu_from)
    mfu_note = eff.predict(float(N[0]), model)[1]
    mfus = np.array([eff.predict(float(n), model)[0] if np.isfinite(n) else np.nan for n in N])
    if mfu_note:
        notes.append(f"MFU extrapolated: {mfu_note}")
    mem_kw = dict(precision=precision, optimizer=optimizer, sharding=sharding, seq_len=seq_len,
                  micro_batch=micro_batch, layers=layers, d_model=d_model, checkpointing=bool(checkpointing))
    fewest = [min_gpus(float(n), capacity, **mem_kw) if np.isfinite(n) else None for n in N]
    n_gpus = gpus or fewest[0] or 1
    if gpus is None:
        notes.append(f"gpus not given: the fewest that hold the run ({n_gpus})" if fewest[0] else
                     "gpus not given and no count holds the run without sharding: planned on 1 GPU")
    elif fewest[0] is None or gpus < fewest[0]:
        notes.append(f"does not fit: {gpus} × {key} ({_gb(capacity)} each) cannot hold the run with "
                     f"sharding={sharding}" + (f"; it needs at least {fewest[0]} GPUs" if fewest[0] else
                                               "; shard it (sharding=optimizer|gradients|full)"))
    mems = [memory_per_gpu(float(n), n_gpus, **mem_kw) if np.isfinite(n) else None for n in N]
    gpu_hours = C / (peak * mfus) / 3600
    days = gpu_hours / n_gpus / 24
    usd = gpu_hours * price
    L, h = model_shape(float(N[0]), layers, d_model)
    notes.append(f"memory: activations for {micro_batch} sequence(s) of {seq_len} tokens per GPU, shape "
                 f"{L} layers × d_model {h}" + ("" if layers and d_model else " (assumed: d_model = 128·layers, "
                                                 "N = 12·layers·d_model²)") +
                 ("; activation checkpointing" if checkpointing else "") + "; logits and buffers not counted")

    loss_pred = law_loss(p, N, D) if p is not None else None
    fig: dict[str, Any] = {
        "params": float(N[0]), "tokens": float(D[0]), "flops": float(C[0]),
        "flops_convention": f"C = {k:g}·N·D (N all parameters)",
        "predicted_loss": None if loss_pred is None else float(loss_pred[0]),
        "gpu_hours": float(gpu_hours[0]), "days": float(days[0]), "usd": float(usd[0]),
        "gpus": n_gpus, "gpus_min": fewest[0], "mfu": float(mfus[0]), "mfu_source": eff.describe(),
        "peak_flops_per_s": peak, "gpu_memory_bytes": capacity,
        "memory_per_gpu_bytes": mems[0], "fits": fewest[0] is not None and n_gpus >= fewest[0],
    }
    if p is not None:
        fig["E"] = float(p["E"][0])
        g0 = float(gamma(p)[0])
        fig["reducible_loss_exponent"] = g0
        fig["compute_per_halving"] = 2 ** (1 / g0)
        if g0 < 0.05:
            notes.append(f"suspect law: along the frontier the reducible loss falls only as C^−{g0:.3g}, so each "
                         f"halving costs {2 ** (1 / g0):.3g}× more compute; a law this flat usually means the "
                         "fitted runs barely differed in loss — check its intervals before trusting the plan")
    if not 1 <= D[0] / N[0] <= 1e4:
        notes.append(f"{D[0] / N[0]:.3g} tokens per parameter is far from any trained regime "
                     "(compute-optimal language models train on about 20)")

    # --- intervals over the bootstrap replicas
    intervals: dict[str, list[float]] = {}
    if p is not None and len(p["E"]) > 1:
        q = [50 * (1 - level), 50 * (1 + level)]
        series = {"params": N, "tokens": D, "flops": C, "predicted_loss": loss_pred, "gpu_hours": gpu_hours,
                  "days": days, "usd": usd,
                  "memory_per_gpu_bytes": np.array([m["total"] if m else np.nan for m in mems]),
                  "gpus_min": np.array([np.inf if f is None else f for f in fewest], dtype=float)}
        for name, values in series.items():
            reps = np.asarray(values, dtype=float)[1:]
            if np.allclose(reps, reps[0], equal_nan=True) and np.isclose(reps[0], np.asarray(values)[0]):
                continue  # fixed by the target: no interval
            finite = np.where(np.isnan(reps), np.inf, reps)  # an unreachable replica: an open upper end
            lo, hi = np.percentile(finite, q)
            intervals[name] = [float(lo), float(hi) if np.isfinite(hi) else None]

    # --- how far beyond the fitted runs
    if the_law is not None and the_law.fit_range:
        parts = []
        for name, value in (("C", C[0]), ("N", N[0]), ("D", D[0])):
            if name in the_law.fit_range and np.isfinite(the_law.fit_range[name][1]):
                ratio = value / the_law.fit_range[name][1]
                fig[f"{name}_over_fitted_max"] = float(ratio)
                times = f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.3g}"
                parts.append(f"{name} {times}× the largest fitted ({the_law.fit_range[name][1]:.3g})")
        if parts:
            notes.insert(0, "beyond the fitted range: " + ", ".join(parts) +
                         " — an extrapolation; the intervals cover the fit's uncertainty, not a change of regime")

    # --- utilisation table
    rows = []
    for u in ([] if float(mfus[0]) in UTILISATIONS else [float(mfus[0])]) + list(UTILISATIONS):
        gh = float(C[0]) / (peak * u) / 3600
        label = f"{u:.0%}" if u in UTILISATIONS else f"{u:.3g} (this plan)"
        rows.append({"MFU": label, "days": gh / n_gpus / 24, "GPU-hours": gh, "USD": gh * price,
                     "USD lost per day vs 90%": idle_cost_per_day(n_gpus, price, u, max(UTILISATIONS)),
                     "USD extra vs 90%": gh * price - float(C[0]) / (peak * max(UTILISATIONS)) / 3600 * price})
    util = pd.DataFrame(rows)

    # --- frontier and halvings
    frontier = halvings = None
    if p is not None and np.isfinite(C[0]):
        frontier, halvings, fig["halving_note"] = _frontier(p, float(C[0]), k, the_law, eff, model, peak, price,
                                                            level)
    inputs = {"target": target, "gpu": key, "gpus": n_gpus, "precision": precision, "optimizer": optimizer,
              "sharding": sharding, "seq_len": seq_len, "micro_batch": micro_batch, "checkpointing": bool(checkpointing),
              "usd_per_gpu_hour": price, "model": model, "mfu_model": eff.to_dict()}
    return CostPlan(fig, intervals, inputs, notes, util, frontier, halvings, the_law, level)


def _frontier(p, C: float, k: float, law: Law, eff: MfuModel, model: str | None, peak: float, price: float,
              level: float) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Loss (with band) and money along the compute-optimal frontier, and where each halving of L − E lands."""
    lo = C / 1e3  # from the smallest fitted run when that is lower
    fitted = [c for c in law.fit_range.get("C", ()) if np.isfinite(c)]
    if fitted:
        lo = min(lo, fitted[0])
    grid = np.geomspace(lo, C * 10, 60)
    central = {k_: v[:1] for k_, v in p.items()}
    n_opt, d_opt = allocation(central, grid, k)
    loss = law_loss(central, n_opt, d_opt)
    usd = np.array([c / (peak * eff.predict(float(n), model)[0]) / 3600 * price for c, n in zip(grid, n_opt)])
    frame = pd.DataFrame({"C": grid, "N_opt": n_opt, "D_opt": d_opt, "loss": loss, "usd": usd})
    if len(p["E"]) > 1:
        reps = {k_: v[1:, None] for k_, v in p.items()}
        n_r, d_r = allocation(reps, grid[None, :], k)
        draws = law_loss(reps, n_r, d_r)
        frame["loss_lo"], frame["loss_hi"] = np.nanpercentile(draws, [50 * (1 - level), 50 * (1 + level)], axis=0)
    g = float(gamma(central)[0])
    factor = 2 ** (1 / g)
    E = float(central["E"][0])
    rows, c = [], lo
    while c <= C * 10 * (1 + 1e-9):
        n, d = allocation(central, c, k)
        cost = c / (peak * eff.predict(float(n[0]), model)[0]) / 3600 * price
        red = float(law_loss(central, n, d)[0]) - E
        previous = rows[-1]["USD"] if rows else float("nan")
        rows.append({"halving": len(rows), "reducible loss": red, "loss": red + E, "C": c, "USD": cost,
                     "× USD of previous": cost / previous})
        c *= factor
    note = (f"Diminishing returns: along the frontier L − E ∝ C^−{g:.3f}, so each halving of the reducible loss "
            f"costs {factor:,.3g}× more compute (money grows by that factor times any change in MFU).")
    return frame, pd.DataFrame(rows), note
