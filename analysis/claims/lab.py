"""Where claims are measured: their studies (multiruns of sweep files, so a re-run resumes) and their figures."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import pandas as pd

from harness import children
from harness.config import EXIT_BAD_INPUT
from harness.collect import collect


# The shared studies trimmed to what the claims read: smoke checks the plumbing in minutes; cpu keeps the whole
# claims run within an hour on 2 cores (batch_lr and isoflop alone would take ~45 min each at their cpu grids).
TRIMS = {
    "smoke": {"params": ("grid.smoke.models=transformer", "grid.smoke.steps=30"),  # clean_scaling judges the Transformer
              "data": ('grid.smoke.tokens="1e4,4e4"',),
              "isoflop": ('grid.smoke.params="3e3,8e3,2e4"', 'grid.smoke.flops="5e8,1e9,2e9"'),
              "attention": ('grid.smoke.seq="64,128,256,512"',)},
    "cpu": {"batch_lr": ("grid.cpu.model=mlp", "grid.cpu.tokens=2e5"),
            "data": ("grid.cpu.params=3e4",),
            "isoflop": ('grid.cpu.flops="1e11,3e11,1e12"',)},
}


class StudyFailed(RuntimeError):
    """A claim's study exited with an error (its runs' own failures are recorded, not raised)."""


class Lab:
    """The claims folder `<out_dir>/claims`: one study folder per sweep, `figures/`, the report.

    `extra` are Hydra overrides passed to every study (e.g. hydra/launcher=joblib).
    """

    def __init__(self, scale: str, out_dir: str | Path, extra: list[str] | None = None):
        self.scale, self.dir = scale, Path(out_dir) / "claims"
        self.extra = list(extra or [])
        self.fig_dir = self.dir / "figures"
        self._tables: dict[str, pd.DataFrame] = {}

    def study(self, sweep: str, *overrides: str) -> pd.DataFrame:
        """Run `sweeps/<sweep>.yaml` at this scale (finished runs are skipped) and return its runs' table.

        A study is run once per `harness-claims` call even when several claims read it.
        """
        if sweep not in self._tables:
            trims = TRIMS.get(self.scale, {}).get(sweep, ())
            cmd = [sys.executable, "-m", "harness", "-m", f"sweep={sweep}", f"scale={self.scale}",
                   f"out_dir={self.dir}", "logger=none", *trims, *overrides, *self.extra]
            print(f"claims: study {sweep}: {' '.join(cmd[2:])}", flush=True)
            code = children.run(cmd, quiet=True)  # Ctrl-C reaches the study, which records its runs
            if code == EXIT_BAD_INPUT:
                raise StudyFailed(f"study {sweep} refused its input (exit 2)")
            study = _study_name(self.dir, sweep)
            table = collect(self.dir / study) if (self.dir / study).is_dir() else pd.DataFrame()
            if code and table.empty:
                raise StudyFailed(f"study {sweep} failed (exit {code}) with no runs")
            self._tables[sweep] = table
        return self._tables[sweep]

    def ok(self, sweep: str, *overrides: str) -> pd.DataFrame:
        """The study's runs that finished `ok`."""
        table = self.study(sweep, *overrides)
        return table[table["status"] == "ok"].copy() if len(table) else table

    def figure(self, name: str, draw: Callable) -> Path:
        """Draw one figure with `draw(fig)` into figures/<name>.png and return its path."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.fig_dir.mkdir(parents=True, exist_ok=True)
        fig = plt.figure(figsize=(6.4, 4.0))
        try:
            draw(fig)
            fig.tight_layout()
            path = self.fig_dir / f"{name}.png"
            fig.savefig(path, dpi=110)
        finally:
            plt.close(fig)
        return path


def _study_name(claims_dir: Path, sweep: str) -> str:
    """The `study:` a sweep file sets (its folder under the claims folder)."""
    from omegaconf import OmegaConf

    root = Path(__file__).resolve().parents[2] / "sweeps"
    return str(OmegaConf.load(root / f"{sweep}.yaml").get("study", sweep))
