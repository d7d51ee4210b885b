"""The lesson's claims, measured: one small study per claim, and a verdict from its numbers by a written rule.

Each group module (`nets`, `sequences`, `training`, `costs`) defines its claims as `Claim`s: the
statement, the test, `measure(lab) -> (numbers, figure)` and `rule(numbers) -> Verdict`. The rule is the only
thing that decides a verdict, and it reads nothing but the numbers, so tests can feed it synthetic ones.
`harness-claims` (analysis/claims/cli.py) runs them and writes `claims/report.md` and `claims/claims.json`.
"""
from __future__ import annotations

from analysis.claims.claim import ORDER, VERDICTS, Blocked, Claim, Verdict


def all_claims() -> dict[str, Claim]:
    """Every claim by name, in the lesson's order."""
    from analysis.claims import costs, nets, sequences, training

    claims = [*nets.CLAIMS, *sequences.CLAIMS, *training.CLAIMS, *costs.CLAIMS]
    order = {name: i for i, name in enumerate(ORDER)}
    return {c.name: c for c in sorted(claims, key=lambda c: order[c.name])}


__all__ = ["ORDER", "VERDICTS", "Blocked", "Claim", "Verdict", "all_claims"]
