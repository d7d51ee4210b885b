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
