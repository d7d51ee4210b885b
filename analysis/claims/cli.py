"""`harness-claims`: measure the lesson's claims and write a verdict for each.

    harness-claims scale=smoke|cpu|gpu [claim=NAME] [out_dir=runs] [any Hydra override for the studies]

Writes <out_dir>/claims/claims.json and report.md (claim=NAME re-judges one claim and keeps the others' entries);
each claim's study lives in <out_dir>/claims/<study>/, so a re-run reuses finished runs.
Exit codes: 0 done; 1 a claim's measurement crashed (its entry says so); 2 bad input; 130/143 interrupted
(the study under way is stopped with its runs recorded; the same command resumes).
"""
from __future__ import annotations

import sys

from analysis.claims.claim import ORDER
from harness import children
from harness.config import bad_input_exits, choose, command_args, key_values

OWN_KEYS = ("scale", "claim", "out_dir")


def parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """This command's own key=value arguments, and the overrides passed on to every study."""
    given, extra = key_values(argv, OWN_KEYS, passthrough=True)
    own = {"scale": "smoke", "claim": "all", "out_dir": "runs", **given}
    choose("scale", own["scale"], ["smoke", "cpu", "gpu"])
    choose("claim", own["claim"], ["all", *ORDER])
    return own, extra


@children.command("harness-claims")
def main(argv: list[str] | None = None) -> None:
    """Entry point of `harness-claims`."""
    argv = command_args(argv, __doc__)
    if argv is None:
        return
    with bad_input_exits():
        own, extra = parse(argv)
    from analysis.claims import all_claims
    from analysis.claims.lab import Lab
    from analysis.claims.report import run_claims, write

    claims = all_claims()
    chosen = list(claims.values()) if own["claim"] == "all" else [claims[own["claim"]]]
    lab = Lab(own["scale"], own["out_dir"], extra)
    entries, crashed = run_claims(chosen, lab)
    path, report = write(lab, entries)
    print(f"claims: {path}\nreport: {report}")
    sys.exit(1 if crashed else 0)


if __name__ == "__main__":
    main()
