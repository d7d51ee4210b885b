"""Report generation on synthetic study tables: files written, analyses chosen by study, robustness."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from analysis import HOFFMANN, chinchilla_loss
from analysis.report import analyze, log_wandb

BOOT = 30  # bootstrap refits per fit: enough to exercise bands and intervals, cheap enough for CI


def _runs(rows: list[dict], study: str) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df.insert(0, "run_id", [f"r{i}" for i in range(len(df))])
    df["study"] = study
    df["scale"] = "smoke"
    df["status"] = df["status"].fillna("ok") if "status" in df else "ok"
    return df


def params_study(seed: int = 0, sizes: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for N in np.geomspace(1e4, 3e6, sizes):
        loss = (1.3 + 40 * N ** -0.3) * np.exp(rng.normal(0, 0.005))
        rows.append({"model.name": "transformer", "params": N, "tokens": 1e7, "flops_total": 6e7 * N,
                     "val_loss": loss, "entropy_rate": 1.25, "tokens_per_s": 1e9 / N ** 0.5})
    rows.append({"model.name": "transformer", "params": 5e4, "tokens": 1e7, "val_loss": np.nan, "status": "diverged"})
    return _runs(rows, "params")


def isoflop_study(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for C in np.geomspace(1e15, 1e18, 4):
        n_opt = 0.6 * (C / 6) ** 0.4565
        for f in np.geomspace(0.2, 5, 7):
            N = n_opt * f
            D = C / (6 * N)
            loss = chinchilla_loss(HOFFMANN, N, D) * np.exp(rng.normal(0, 0.002))
            rows.append({"model.name": "transformer", "params": N, "tokens": D, "trainer.max_flops": C,
                         "flops_total": C, "val_loss": loss})
    return _runs(rows, "isoflop")


def batch_lr_study() -> pd.DataFrame:
    rows = []
    for B in (8, 16, 32, 64, 128):
        lr_opt = 1e-3 * (B / 8) ** 0.5
        for lr in np.geomspace(1e-4, 3e-2, 9):
            diverged = lr > 6 * lr_opt
            rows.append({"trainer.batch_size": B, "optim.lr": lr, "status": "diverged" if diverged else "ok",
                         "val_loss": np.nan if diverged else 2.0 + 0.1 * np.log(lr / lr_opt) ** 2,
                         "tokens_per_s": 2e4 * B / (B + 16), "params": 1e5})
    return _runs(rows, "batch_lr")


def attention_study() -> pd.DataFrame:
    rows = []
    for impl, mem_k in (("manual", 2), ("sdpa", 1)):
        for n in (64, 128, 256, 512, 1024, 2048):
            attn = 1e-9 * n ** 2 + 1e-6 * n
            rows.append({"model.name": "transformer", "model.attention": impl, "model.n_layers": 2,
                         "data.seq_len": n, "attn_time_s": attn, "step_time_s": 2 * attn + 4e-4 * n / 64,
                         "peak_mem_bytes": 1e7 + 50.0 * n ** mem_k, "attn_flops_share": n / (n + 768)})
    return _runs(rows, "attention")


def devices_study() -> pd.DataFrame:
    rows = []
    for N in (1e4, 1e5, 1e6):
        for dev, speed in (("cpu", 1.0), ("cuda", 30.0)):
            rows.append({"model.name": "mlp", "params": N, "device": dev, "samples_per_s": speed * 1e8 / N,
                         "mfu": 0.1 if dev == "cuda" else 0.3})
    return _runs(rows, "devices")


def seqlen_study() -> pd.DataFrame:
    rows = []
    for n in (32, 64, 128, 256):
        rows.append({"model.name": "rnn", "model.cell": "lstm", "data.seq_len": n, "params": 2e5,
                     "tokens_per_s": 5e3, "device": "cpu"})
        rows.append({"model.name": "transformer", "model.cell": None, "data.seq_len": n, "params": 2e5,
                     "tokens_per_s": 4e4 / (1 + n / 512), "device": "cpu"})
    return _runs(rows, "seqlen")


def architectures_study() -> pd.DataFrame:
    rows = []
    for target in (3e4, 1e5, 3e5, 1e6):
        for name, cell, floor, speed in (("mlp", None, 0.9, 1e6), ("rnn", "lstm", 1.2, 5e3),
                                         ("rnn", "gru", 1.15, 6e3), ("transformer", None, 1.1, 3e4)):
            N = target * 1.02
            rows.append({"model.name": name, "model.cell": cell, "model.target_params": target, "params": N,
                         "val_loss": floor + 30 * N ** -0.35, "tokens_per_s": speed * 1e5 / N, "mfu": 0.05,
                         "peak_mem_bytes": 1e7 + 16 * N, "data.seq_len": 64, "device": "cpu"})
    return _runs(rows, "architectures")


def data_study(seed: int = 0) -> pd.DataFrame:
    """Two sizes read 1e5..1.6e6 tokens of fresh data, and of 1e5 unique tokens (repeated: epochs > 1)."""
    rng = np.random.default_rng(seed)
    rows = []
    for N, unique, D in itertools.product((3e4, 2e5), (1e9, 1e5), np.geomspace(1e5, 1.6e6, 5)):
        epochs = D / unique
        loss = (1.5 + 30 * N ** -0.3 + 200 * D ** -0.4) * (1 + 0.02 * max(0.0, np.log(epochs)))
        rows.append({"model.name": "transformer", "model.target_params": N, "params": N, "tokens": D,
                     "data.train_tokens": unique, "unique_train_tokens": unique, "epochs": min(epochs, 1.0) if unique > D else epochs,
                     "val_loss": loss * np.exp(rng.normal(0, 0.002))})
    return _runs(rows, "data")


STUDIES = {"params": params_study, "data": data_study, "isoflop": isoflop_study, "batch_lr": batch_lr_study,
           "attention": attention_study, "devices": devices_study, "architectures": architectures_study,
           "seqlen": seqlen_study}


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_report_writes_markdown_json_and_figures(tmp_path, study):
    table = STUDIES[study]()
    path = tmp_path / "results.parquet"
    table.to_parquet(path)
    report = analyze(pd.read_parquet(path), tmp_path / "report", bootstrap=BOOT)
    assert report.study == study
    assert [s for s in report.sections if s.status != "ok"] == [], [(s.title, s.reason) for s in report.sections]
    md = (tmp_path / "report" / "report.md").read_text()
    fits = json.loads((tmp_path / "report" / "fits.json").read_text())
    assert fits["study"] == study and len(fits["sections"]) == len(report.sections)
    pngs = [p for p in report.figures if p.suffix == ".png"]
    assert pngs and all(p.stat().st_size > 0 and p.with_suffix(".svg").exists() for p in pngs)
    assert all(p.relative_to(tmp_path / "report").as_posix() in md for p in pngs)


def test_report_numbers_follow_the_data(tmp_path):
    lr = analyze(batch_lr_study(), tmp_path / "lr", bootstrap=0)
    gamma = json.loads((tmp_path / "lr" / "fits.json").read_text())["sections"][0]["lr_batch"]["gamma"]
    assert gamma == pytest.approx(0.5, abs=0.05)
    assert "square-root" in lr.sections[0].headline
    params = analyze(params_study(), tmp_path / "p", bootstrap=BOOT)
    sec = params.sections[0]
    assert sec.numbers["offset"]["params"]["alpha"] == pytest.approx(0.3, abs=0.05)
    lo, hi = sec.numbers["offset"]["ci"]["alpha"]
    assert lo < sec.numbers["offset"]["params"]["alpha"] < hi
    assert "held out" in "\n".join(sec.lines) and "entropy rate" in "\n".join(sec.lines)
    assert "dropped 1 of 9 rows (1 not ok)" in "\n".join(sec.lines)
    data = analyze(data_study(), tmp_path / "d", bootstrap=0)
    rep = next(s for s in data.sections if s.title.startswith("Loss vs epochs")).numbers["repetition"]
    assert max(r["epochs"] for r in rep) == pytest.approx(16) and all(r["penalty"] >= 0 for r in rep)


def test_smoke_study_with_few_points_reports_skips_instead_of_crashing(tmp_path):
    table = params_study(sizes=2)  # 2 usable points: fewer than the offset law's 3 parameters
    table.loc[len(table)] = {**table.iloc[0].to_dict(), "run_id": "x", "status": "oom", "val_loss": np.nan}
    report = analyze(table, tmp_path, bootstrap=BOOT)
    text = "\n".join(report.sections[0].lines)
    assert report.sections[0].status == "ok" and report.sections[0].numbers["no_offset"]["n_points"] == 2
    assert "skipped: power-law fit of val_loss vs params (3 parameters) needs at least 3 usable points, got 2" in text
    assert "skipped: extrapolation check by params: needs at least 3 distinct values, got 2" in text
    lone = analyze(table.iloc[1:], tmp_path / "lone", bootstrap=BOOT)
    assert [s.status for s in lone.sections] == ["skipped"]
    assert "needs at least 3 usable points, got 1" in (tmp_path / "lone" / "report.md").read_text()


def test_unknown_study_runs_what_the_columns_allow(tmp_path):
    table = isoflop_study().assign(study="mystery")
    report = analyze(table, tmp_path, bootstrap=0)
    titles = [s.title for s in report.sections]
    assert "Chinchilla approach 3" in titles and "IsoFLOP (approach 2) and frontier" in titles
    assert any(t.startswith("val_loss vs params") for t in titles)
    assert all(s.status == "ok" for s in report.sections), [(s.title, s.reason) for s in report.sections]


def test_wandb_offline_logs_into_the_out_dir_and_failure_keeps_the_report(tmp_path, monkeypatch):
    report = analyze(devices_study(), tmp_path, bootstrap=0)
    run_id = log_wandb(report, "offline", wandb_dir=tmp_path)
    assert run_id and list((tmp_path / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    import wandb

    monkeypatch.setattr(wandb, "init", lambda **kw: (_ for _ in ()).throw(RuntimeError("no network")))
    with pytest.warns(UserWarning, match="wandb logging failed: RuntimeError: no network"):
        assert log_wandb(report, "online", wandb_dir=tmp_path) is None
    assert (tmp_path / "report.md").exists() and (tmp_path / "fits.json").exists()
