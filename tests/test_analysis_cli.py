"""`harness-analyze`: JSON on stdout, reports from tables, one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis import HOFFMANN, chinchilla_loss
from analysis.cli import main


@pytest.fixture
def points(tmp_path):
    N = np.repeat(np.geomspace(1e7, 1e10, 6), 6)
    D = np.tile(np.geomspace(1e9, 1e12, 6), 6)
    path = tmp_path / "points.csv"
    pd.DataFrame({"N": N, "D": D, "loss": chinchilla_loss(HOFFMANN, N, D)}).to_csv(path, index=False)
    return path


def run(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exc.value.code or 0, out, err


def test_chinchilla_prints_the_fitted_law_as_json(points, capsys):
    code, out, _ = run(["chinchilla", points], capsys)
    fit = json.loads(out)
    assert code == 0 and fit["params"]["alpha"] == pytest.approx(HOFFMANN["alpha"], abs=1e-3)
    assert fit["ci"] == {} and fit["bootstrap"] == 0 and set(fit["exponents"]) == {"a", "b"}


def test_chinchilla_bootstrap_and_plot(points, tmp_path, capsys):
    code, out, _ = run(["chinchilla", points, "bootstrap=20", "--plot", tmp_path / "frontier.png"], capsys)
    fit = json.loads(out)
    assert code == 0 and fit["bootstrap"] == 20 and set(fit["ci"]) == {"E", "A", "B", "alpha", "beta", "a", "b"}
    assert (tmp_path / "frontier.png").stat().st_size > 0 and (tmp_path / "frontier.svg").exists()


@pytest.mark.filterwarnings("ignore::analysis.DataWarning")
@pytest.mark.parametrize("case,message", [
    ("missing", "error: {tmp}/nope.csv: no such file or directory"),
    ("columns", "error: chinchilla fit: missing column(s) 'D' (have: N, loss)"),
    ("few", "error: chinchilla fit (5 parameters) needs at least 5 usable points, got 3"),
    ("nan", "error: chinchilla fit (5 parameters) needs at least 5 usable points, got 0"),
])
def test_bad_input_exits_nonzero_with_one_line(tmp_path, capsys, case, message):
    path = tmp_path / ("nope.csv" if case == "missing" else "bad.csv")
    frame = {"columns": pd.DataFrame({"N": [1e8] * 6, "loss": [3.0] * 6}),
             "few": pd.DataFrame({"N": [1e8, 2e8, 3e8], "D": [1e9] * 3, "loss": [3.0, 2.9, 2.8]}),
             "nan": pd.DataFrame({"N": [1e8] * 6, "D": [1e9] * 6, "loss": [np.nan] * 6})}.get(case)
    if frame is not None:
        frame.to_csv(path, index=False)
    code, out, err = run(["chinchilla", path], capsys)
    lines = [ln for ln in err.splitlines() if not ln.startswith("warning:")]
    assert code == 2 and out == "" and lines == [message.format(tmp=tmp_path)]


def test_study_table_to_report_and_bad_study_path(tmp_path, capsys):
    rows = [{"run_id": f"r{i}", "status": "ok", "study": "params", "model.name": "mlp", "params": N,
             "samples": 1e6, "val_loss": 0.1 + 5 * N ** -0.4} for i, N in enumerate(np.geomspace(1e3, 1e6, 6))]
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    code, out, _ = run([tmp_path / "results.csv", f"out={tmp_path / 'rep'}", "bootstrap=10", "wandb=disabled"],
                       capsys)
    assert code == 0 and out.startswith("params: 1/1 analyses ok")
    assert (tmp_path / "rep" / "report.md").exists() and (tmp_path / "rep" / "fits.json").exists()
    assert not (tmp_path / "rep" / "wandb").exists()
    code, out, err = run([tmp_path / "missing_study"], capsys)
    assert code == 2 and err.strip().splitlines() == [f"error: {tmp_path}/missing_study: no such file or directory"]


def test_an_old_style_option_names_the_key_value_form(points, capsys):
    code, out, err = run(["chinchilla", points, "--bootstrap", 20], capsys)
    assert code == 2 and out == "" and err.strip().splitlines() == [
        "error: --bootstrap=VALUE: options are key=value now: bootstrap=VALUE"]


def test_console_script_runs_without_traceback(tmp_path):
    pd.DataFrame({"N": [1e8], "D": [1e9], "loss": [3.0]}).to_csv(tmp_path / "p.csv", index=False)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "analysis.cli", "chinchilla", str(tmp_path / "p.csv")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: chinchilla fit (5 parameters) needs at least 5 usable points, got 1"
