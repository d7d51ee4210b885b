"""The lesson's claims, measured: one small study per claim, and a verdict from its numbers by a written rule.

Each group module (`nets`, `sequences`, `training`, `costs`) defines its claims as `Claim`s: the
statement, the test, `measure(lab) -> (numbers, figure)` and `rule(numbers) -> Verdict`. The rule is the only
thing that decides a verdict, and it reads nothing but the numbers, so tests can feed it synthetic ones.
`harness-claims` (analysis/claims/cli.py) runs them and writes `claims/report.md` and `claims/claims.json`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from analysis.claims.lab import Lab

VERDICTS = ("holds", "does not hold", "holds with a correction", "inconclusive", "blocked")


@dataclass(frozen=True)
class Verdict:
    """A verdict (one of VERDICTS) and the sentence saying which numbers decided it."""

    verdict: str
    because: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")


class Blocked(Exception):
    """A claim that cannot be measured here (no GPU, ...): the message is the reason."""


@dataclass(frozen=True)
class Claim:
    """One claim of the lesson: what it says, how it is tested, how it is measured and judged."""

    name: str
    claim: str
    test: str
    measure: Callable[["Lab"], tuple[dict[str, Any], Path | None]]
    rule: Callable[[dict[str, Any]], Verdict]


def all_claims() -> dict[str, Claim]:
    """Every claim by name, in the lesson's order."""
    from analysis.claims import costs, nets, sequences, training

    claims = [*nets.CLAIMS, *sequences.CLAIMS, *training.CLAIMS, *costs.CLAIMS]
    order = {name: i for i, name in enumerate(ORDER)}
    return {c.name: c for c in sorted(claims, key=lambda c: order[c.name])}


ORDER = ("activations", "vanishing_gradients", "depth", "cnn_sharing", "long_range", "parallelism",
         "attention_cost", "clean_scaling", "batch_lr", "lr_extremes", "schedule", "epochs", "gpu_speedup",
         "memory_70b", "utilisation_cost", "diminishing_returns")
