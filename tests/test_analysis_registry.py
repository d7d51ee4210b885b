"""Studies declare their report sections (`analyses:` in the sweep file); the report runs exactly those."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from analysis.registry import ANALYSES
from analysis.report import analyze
from analysis.tables import AnalysisError
from conftest import small
from harness import ConfigError, compose
from harness.build import check_analyses
from harness.config import CONF_DIR
from harness.flops import tokens_for, training_flops
from harness.identity import run_id
from harness.study import study_configs
from test_analysis_report import batch_lr_study, isoflop_study, seqlen_study


def _declared() -> dict[str, list[str]]:
    return {p.stem: yaml.safe_load(p.read_text())["analyses"] for p in sorted((CONF_DIR / "sweep").glob("*.yaml"))}


def test_every_sweep_declares_known_analyses_and_every_name_is_used_or_documented_optional():
    declared = _declared()
    assert set(declared) >= {"params", "data", "isoflop", "batch_lr", "devices", "attention", "dp"}
    used = {name for names in declared.values() for name in names}
    assert used <= set(ANALYSES)
    import analysis.registry

    for name in set(ANALYSES) - used:  # no sweep names it: the registry must say it is optional
        assert f"``{name}`` is optional" in analysis.registry.__doc__, name


@pytest.mark.parametrize("cell", [json.dumps(["isoflop", "lr_batch"]), ["isoflop", "lr_batch"]])
def test_declared_analyses_are_exactly_the_sections_in_order(tmp_path, cell):
    """As harness-collect writes the column (JSON text) and as collect() returns it (lists), through Parquet."""
    table = isoflop_study()
    table["analyses"] = [cell] * len(table)
    if isinstance(cell, str):
        table.to_parquet(tmp_path / "t.parquet")
        table = pd.read_parquet(tmp_path / "t.parquet")
    report = analyze(table, tmp_path / "r", bootstrap=0)
    assert [s.title for s in report.sections] == ["IsoFLOP (approach 2) and frontier", "Learning rate vs batch size"]
    assert report.sections[0].status == "ok" and report.sections[1].status == "skipped"


def test_an_empty_list_picks_by_the_columns_and_an_old_table_follows_its_sweep_file(tmp_path):
    declared_empty = batch_lr_study().assign(analyses="[]", study="params")  # the params sweep is not consulted
    titles = [s.title for s in analyze(declared_empty, tmp_path / "a", bootstrap=0).sections]
    assert titles == ["Learning rate vs batch size", "Throughput vs batch size"]
    old = seqlen_study()  # no `analyses` column: collected before the key existed
    assert "analyses" not in old and [s.title for s in analyze(old, tmp_path / "b").sections] == ["LSTM vs Transformer"]


def test_an_unknown_name_is_one_line_naming_the_key_and_the_valid_names(tmp_path, capsys):
    table = seqlen_study().assign(analyses=json.dumps(["lstm_vs_transformer", "chinchila"]))
    with pytest.raises(AnalysisError, match=r"^analyses=chinchila: unknown analysis \(valid: power_laws_params, "):
        analyze(table, tmp_path / "r")
    assert not (tmp_path / "r").exists()
    table.to_csv(tmp_path / "t.csv", index=False)
    from analysis.cli import main

    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "t.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("error: analyses=chinchila: unknown analysis")


def test_the_names_a_study_checks_are_the_names_the_registry_implements():
    from analysis.registry import ANALYSES
    from harness.analyses import ANALYSIS_NAMES

    assert tuple(ANALYSES) == ANALYSIS_NAMES


def test_the_config_key_is_checked_at_study_start_and_leaves_run_ids_alone(runs):
    assert list(compose(["sweep=isoflop"]).analyses) == _declared()["isoflop"]
    cfg = compose(small("mlp", runs))
    assert list(cfg.analyses) == []
    with pytest.raises(ConfigError, match=r"^analyses=isoflp: unknown value \(valid: .*isoflop"):
        check_analyses(compose(small("mlp", runs, "analyses=[isoflp]")).analyses)
    with pytest.raises(ConfigError, match="analyses=isoflop: must be a list"):  # the schema's type
        compose(small("mlp", runs, "analyses=isoflop"))
    with pytest.raises(ConfigError, match=r"^analyses=isoflp: unknown value .*\[job: "):  # before any job runs
        study_configs(["sweep=seqlen", "analyses=[isoflp]", f"out_dir={runs}"])
    assert not runs.exists()
    before = OmegaConf.create(OmegaConf.to_container(cfg))
    del before["analyses"]  # runs recorded before the key existed keep their ids
    assert run_id(cfg) == run_id(before) == run_id(compose(small("mlp", runs, "analyses=[chinchilla]")))


def test_the_compute_convention_is_6nd_and_its_inverse():
    n, d = np.array([1e6, 3e7]), np.array([2e10, 6e11])
    assert training_flops(n, d) == pytest.approx(6 * n * d) and tokens_for(training_flops(n, d), n) == pytest.approx(d)
