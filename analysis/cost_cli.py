"""`harness-cost key=value ...`: plan a much larger run in FLOPs, GPU-hours, days, money and memory per GPU.

    harness-cost law=runs/isoflop/report/fits.json compute=1e21 gpu=H100 gpus=64 usd_per_gpu_hour=2.5
    harness-cost law=hoffmann2022 params=70e9 tokens=1.4e12 gpu=A100 gpus=1024 --json
    harness-cost params=7.5e9 tokens_per_param=20 sharding=full gpus=64 mfu_from=runs/devices/results.parquet
    harness-cost law=epoch2024 loss=2.1 --markdown --plot out/

Keys: law (fits.json or hoffmann2022|epoch2024); one target: compute (FLOPs), params [+ tokens or
tokens_per_param], or loss; gpu, gpus, mfu or mfu_from (a collected results.parquet), model (its MFU curve),
usd_per_gpu_hour; precision, optimizer, seq_len, micro_batch, layers, d_model, checkpointing,
sharding=none|optimizer|gradients|full. Flags: --json, --markdown, --plot DIR, --help. Bad input: one line
naming the key, exit 2.
"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

from analysis.cost import CostError, plan_cost
from harness.children import command
from harness.config import EXIT_BAD_INPUT, EXIT_OK, ConfigError, command_args, key_values

NUMBERS = ("compute", "params", "tokens", "tokens_per_param", "loss", "gpus", "mfu", "usd_per_gpu_hour",
           "seq_len", "micro_batch", "layers", "d_model")
TEXT = ("law", "gpu", "mfu_from", "model", "precision", "optimizer", "sharding")
FLAGS = ("checkpointing",)
KEYS = (*TEXT, *NUMBERS, *FLAGS)


def parse(pairs: dict[str, str]) -> dict:
    """{key: value string} -> plan_cost keyword arguments (numbers as floats, flags as booleans)."""
    out: dict = {}
    for key, value in pairs.items():
        if key in NUMBERS:
            try:
                out[key] = float(value)
            except ValueError:
                raise CostError(f"{key}={value}: must be a number") from None
        elif key in FLAGS:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise CostError(f"{key}={value}: must be true or false")
            out[key] = value.lower() in ("true", "1", "yes")
        else:
            out[key] = value
    return out


@command("harness-cost", then="run it again")
def main(argv: list[str] | None = None) -> int:
    """`harness-cost key=value ... [--json | --markdown] [--plot DIR]`; returns the exit code."""
    argv = command_args(argv, __doc__)
    if argv is None:
        return EXIT_OK
    try:
        own, _ = key_values(argv, KEYS, flags=("json", "markdown"), valued_flags=("plot",))
        if own.get("json") and own.get("markdown"):
            raise CostError("--json and --markdown: give one of them")
        args = SimpleNamespace(json=own.pop("json", False), markdown=own.pop("markdown", False),
                               plot=own.pop("plot", None))
        kwargs = parse(own)
        for key in ("gpus", "seq_len", "micro_batch", "layers", "d_model"):
            if key in kwargs and kwargs[key] == int(kwargs[key]):
                kwargs[key] = int(kwargs[key])
        law = kwargs.pop("law", None)
        plan = plan_cost(law, **kwargs)
    except (CostError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    figures = plan.plot(args.plot) if args.plot else []
    if args.json:
        out = plan.to_dict()
        if args.plot:
            out["figures"] = [str(f) for f in figures]
        print(json.dumps(out, indent=2))
    else:
        print(plan.markdown() if args.markdown else plan.text(), end="")
        for f in figures:
            print(f"figure: {f}")
        if args.plot and not figures:
            print("figure: none (a frontier needs a law)")
    return EXIT_OK


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
