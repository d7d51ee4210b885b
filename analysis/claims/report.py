"""Judge claims and write `claims/claims.json` (one entry per claim) and `claims/report.md` (table + figures)."""
from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

from analysis.claims.claim import ORDER, Blocked, Claim
from analysis.claims.lab import Lab, StudyFailed
from analysis.tables import AnalysisError
from harness.jsonsafe import json_ready
from harness.results import write_atomic


def judge(claim: Claim, lab: Lab) -> tuple[dict[str, Any], bool]:
    """Measure one claim and apply its rule: (its claims.json entry, whether the measurement crashed).

    Blocked claims and studies or fits that could not give numbers become `blocked` / `inconclusive` entries
    with the reason; any other exception is a bug, reported the same way but with its traceback on stderr.
    """
    entry: dict[str, Any] = {"name": claim.name, "claim": claim.claim, "test": claim.test, "measured": {},
                             "figure": None}
    crashed = False
    try:
        measured, figure = claim.measure(lab)
        verdict = claim.rule(measured)
        entry.update(measured=measured, figure=str(figure.relative_to(lab.dir)) if figure else None,
                     verdict=verdict.verdict, because=verdict.because)
    except Blocked as e:
        entry.update(verdict="blocked", because=str(e))
    except (StudyFailed, AnalysisError) as e:
        entry.update(verdict="inconclusive", because=f"no numbers: {e}")
    except Exception as e:  # noqa: BLE001 - one broken claim must not lose the others' verdicts
        traceback.print_exc()
        entry.update(verdict="inconclusive", because=f"measurement failed: {type(e).__name__}: {e}")
        crashed = True
    return entry, crashed


def write(lab: Lab, entries: list[dict[str, Any]]) -> tuple[Path, Path]:
    """Merge `entries` into claims.json (claims not re-run keep their entry) and rewrite report.md from it."""
    path = lab.dir / "claims.json"
    old = {e["name"]: e for e in json.loads(path.read_text())} if path.exists() else {}
    merged = {**old, **{e["name"]: e for e in entries}}
    ordered = [merged[n] for n in ORDER if n in merged]
    write_atomic(path, json.dumps(json_ready(ordered), indent=2) + "\n")
    report = lab.dir / "report.md"
    write_atomic(report, markdown(ordered, lab.scale))
    return path, report


def markdown(entries: list[dict[str, Any]], scale: str) -> str:
    """The report: one table row per claim, then its figure and the sentence that decided it."""
    lines = ["# The lesson's claims, measured", "",
             f"`harness-claims scale={scale}`. Each verdict comes from the claim's numbers by the rule written "
             "next to it in `analysis/claims/`; `claims.json` holds every number.", "",
             "| claim | says | test | verdict | because |", "|---|---|---|---|---|"]
    lines += [f"| {e['name']} | {e['claim']} | {e['test']} | **{e['verdict']}** | {e['because']} |" for e in entries]
    for e in entries:
        lines += ["", f"## {e['name']}: {e['verdict']}", ""]
        if e.get("figure"):
            lines += [f"![{e['name']}]({e['figure']})", ""]
        lines.append(f"{e['because']}.")
    return "\n".join(lines) + "\n"


def run_claims(claims: list[Claim], lab: Lab) -> tuple[list[dict[str, Any]], bool]:
    """Judge each claim in turn, printing its verdict; (entries, whether any measurement crashed)."""
    entries, any_crash = [], False
    for claim in claims:
        entry, crashed = judge(claim, lab)
        any_crash |= crashed
        entries.append(entry)
        print(f"claims: {claim.name}: {entry['verdict']} ({entry['because']})", flush=True)
    return entries, any_crash
