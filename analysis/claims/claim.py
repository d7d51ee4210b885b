"""What a claim is: its statement, test, measurement and rule, and the verdicts a rule may give."""
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


ORDER = ("activations", "vanishing_gradients", "depth", "cnn_sharing", "long_range", "parallelism",
         "attention_cost", "clean_scaling", "batch_lr", "lr_extremes", "schedule", "epochs", "gpu_speedup",
         "memory_70b", "utilisation_cost", "diminishing_returns")
