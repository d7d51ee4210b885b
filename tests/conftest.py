import os

import pytest

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """An empty out_dir, and a peak cache of the test's own (so tests never share state)."""
    monkeypatch.setenv("SCALING_LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "runs"


def small(model: str, out_dir, *extra: str) -> list[str]:
    """Overrides for a run of a small model on its built-in task, sized to train in a few seconds."""
    sizes = {
        "mlp": ["model.width=64", "data.train_samples=4096", "data.n_classes=4"],
        "cnn": ["model.channels=8", "model.depth=2", "data.image_size=8", "data.train_samples=2048",
                "data.noise=0.3", "data.n_classes=4"],
        "lstm": ["model.hidden=48", "model.depth=1"],
        "gru": ["model.hidden=48", "model.depth=1"],
        "rnn": ["model.hidden=48", "model.depth=1"],
        "transformer": ["model.d_model=32", "model.n_layers=2", "model.n_heads=2"],
    }[model]
    tokens = ["data.seq_len=32", "data.vocab_size=16", "data.order=1", "data.train_tokens=20000",
              "data.val_tokens=4096"] if model in ("lstm", "gru", "rnn", "transformer") else []
    return [f"model={model}", *sizes, *tokens, f"out_dir={out_dir}", "trainer.max_steps=40",
            "trainer.batch_size=16", "optim.lr=1e-2", "optim.warmup_steps=2", "logger=none",
            "threads=1", "trainer.eval_samples=128", *extra]


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node SLURM (tests/slurm/cluster.sh) for the tests marked `slurm`, stopped afterwards.

    Skipped, with the reason, where Debian's slurm-wlm and munge are not installed (CI installs them through
    `tests/slurm/cluster.sh install`). Clients find it through SLURM_CONF.
    """
    import shutil
    import subprocess
    from pathlib import Path

    script = Path(__file__).parent / "slurm" / "cluster.sh"
    missing = [tool for tool in ("slurmctld", "slurmd", "munged", "sbatch") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"SLURM not installed ({', '.join(missing)} missing): run `{script} install` as root (apt)")
    started = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, f"{script} start failed: {started.stderr[-2000:]}"
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = started.stdout.strip().rsplit(" ", 1)[-1]
    yield os.environ["SLURM_CONF"]
    subprocess.run(["bash", str(script), "stop"], capture_output=True, text=True, timeout=120)
    if previous is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = previous
