"""trainer.compile: torch.compile on the training forward, its compile time kept out of step time and
throughput, a bad value or a compiler failure ending in one line."""
import time

import pytest
import torch
from omegaconf import OmegaConf

from conftest import small
from harness import ConfigError, compose, run
from harness.build import check_config
from harness.identity import run_id


def slow_first_call(seconds: float):
    """A stand-in for torch.compile whose first call takes `seconds` (the compilation), as inductor's does."""
    calls = []

    def compile_(model, **kwargs):
        def forward(x):
            if not calls:
                time.sleep(seconds)
            calls.append(1)
            return model(x)
        return forward

    return compile_, calls


@pytest.mark.parametrize("value", ["maybe", "null", "[1]"])  # yes/no, on/off, 1/0 are bools to the schema
def test_compile_must_be_a_bool(value, runs):
    with pytest.raises(ConfigError, match="trainer.compile=.*true or false"):
        check_config(compose(small("transformer", runs, f"trainer.compile={value}")))


def test_compile_false_keeps_the_run_ids_recorded_before_the_key_existed(runs):
    cfg = compose(small("transformer", runs))
    assert cfg.trainer.compile is False
    before = OmegaConf.create(OmegaConf.to_container(cfg))
    del before.trainer["compile"]
    assert run_id(cfg) == run_id(before)
    assert run_id(compose(small("transformer", runs, "trainer.compile=true"))) != run_id(cfg)


def test_compile_time_is_recorded_apart_and_never_counted_as_a_step(runs, monkeypatch):
    fake, calls = slow_first_call(0.6)
    monkeypatch.setattr(torch, "compile", fake)
    # timing_warmup_steps=0: a compiled run still drops its first (compiling) step from the timed steps
    res = run(compose(small("transformer", runs, "trainer.compile=true", "trainer.max_steps=12",
                            "trainer.timing_warmup_steps=0")))
    assert res.status == "ok", res.reason
    assert len(calls) == 12  # training steps only: evaluation runs the eager model
    m = res.metrics
    assert 0.5 < m["compile_s"] < 0.6 + 0.1 * 12 and m["warmup_s"] >= 0.6
    assert m["step_time_s"] < 0.3 and m["step_time_p90_s"] < 0.5
    assert m["tokens_per_s"] == pytest.approx(16 * 32 / m["step_time_s"])
    eager = run(compose(small("transformer", runs, "trainer.max_steps=12", "trainer.timing_warmup_steps=0")))
    assert "compile_s" not in eager.metrics


def test_a_compiler_failure_ends_the_run_failed_in_one_line(runs, monkeypatch):
    def broken(model, **kwargs):
        def forward(x):
            raise RuntimeError("InductorError: CppCompileError: C++ compile error\nCommand: g++ ...\nmore")
        return forward

    monkeypatch.setattr(torch, "compile", broken)
    res = run(compose(small("transformer", runs, "trainer.compile=true", "trainer.max_steps=5")))
    assert res.status == "failed" and "\n" not in res.reason and "CppCompileError" in res.reason
    assert (res.run_dir / "traceback.txt").exists()


@pytest.mark.slow  # a real inductor compilation: ~5 s with a warm cache, over a minute cold on 2 busy cores
def test_real_torch_compile_trains_like_eager(runs):
    base = ["trainer.max_steps=15", "trainer.timing_warmup_steps=0"]
    eager = run(compose(small("transformer", runs, *base)))
    compiled = run(compose(small("transformer", runs, "trainer.compile=true", *base)))
    assert compiled.status == "ok", compiled.reason
    assert compiled.metrics["compile_s"] > 0.5 > compiled.metrics["step_time_s"]
    assert compiled.history["train_loss"].tolist() == pytest.approx(eager.history["train_loss"].tolist(), rel=1e-3)
