"""`harness-cost key=value ...`: plan a much larger run in FLOPs, GPU-hours, days, money and memory per GPU.

    harness-cost law=runs/isoflop/report/fits.json compute=1e21 gpu=H100 gpus=64 usd_per_gpu_hour=2.5
    harness-cost law=hoffmann2022 params=70e9 tokens=1.4e12 gpu=A100 gpus=1024 --json
    harness-cost params=7.5e9 tokens_per_param=20 sharding=full gpus=64 mfu_from=runs/devices/results.parquet
    harness-cost law=epoch2024 loss=2.1 --markdown --plot out/

Keys: law (fits.json or hoffmann2022|epoch2024); one target: compute (FLOPs), params [+ tokens or
tokens_per_param], or loss; gpu, gpus, mfu or mfu_from (a collected results.parquet), model (its MFU curve),
usd_per_gpu_hour; precision, optimizer, seq_len, micro_batch, layers, d_model, checkpointing,
sharding=none|optimizer|gradients|full. Bad input: one line naming the key, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from analysis.cost import CostError, plan_cost

NUMBERS = ("compute", "params", "tokens", "tokens_per_param", "loss", "gpus", "mfu", "usd_per_gpu_hour",
           "seq_len", "micro_batch", "layers", "d_model")
TEXT = ("law", "gpu", "mfu_from", "model", "precision", "optimizer", "sharding")
FLAGS = ("checkpointing",)
KEYS = (*TEXT, *NUMBERS, *FLAGS)


def parse(pairs: list[str]) -> dict:
    """key=value strings -> plan_cost keyword arguments (numbers as floats, flags as booleans)."""
    out: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CostError(f"{pair}: expected key=value (keys: {', '.join(KEYS)})")
        if key not in KEYS:
            raise CostError(f"{key}={value}: unknown key (valid: {', '.join(KEYS)})")
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="harness-cost", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("pairs", nargs="*", metavar="key=value")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    fmt.add_argument("--markdown", action="store_true", help="print the plan as markdown")
    p.add_argument("--plot", metavar="DIR", help="write cost_frontier.png/.svg (loss vs money and compute) here")
    args = p.parse_args(argv)
    try:
        kwargs = parse(args.pairs)
        for key in ("gpus", "seq_len", "micro_batch", "layers", "d_model"):
            if key in kwargs and kwargs[key] == int(kwargs[key]):
                kwargs[key] = int(kwargs[key])
        law = kwargs.pop("law", None)
        plan = plan_cost(law, **kwargs)
    except CostError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
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
    return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
