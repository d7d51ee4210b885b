"""The config schema (harness/schema.py): every key a sweep sets is declared with a type and a meaning, a value of
the wrong type is one line naming the key (exit 2), the resolvers are registered by one call, run ids unchanged."""
from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from harness import schema
from harness.config import CONF_DIR, ConfigError, compose, group_options
from harness.identity import run_id


def _set_keys(node: dict, prefix: str = "") -> list[str]:
    """Dotted keys a sweep file sets: its own values and its sweeper's parameters (group choices left out)."""
    keys = []
    for key, value in node.items():
        if key == "defaults" or (not prefix and key == "grid"):  # grid: the sweep's own presets, typed Any
            continue
        if not prefix and key == "hydra":
            keys += [k for k in value.get("sweeper", {}).get("params", {}) if not (CONF_DIR / k).is_dir()]
        elif isinstance(value, dict):
            keys += _set_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


@pytest.mark.parametrize("sweep", group_options("sweep"))
def test_every_key_a_sweep_sets_is_declared(sweep):
    """Typed in harness/schema.py: data and model keys in one of their options' dataclasses."""
    written = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "sweep" / f"{sweep}.yaml"))
    for key in _set_keys(written):
        group, _, leaf = key.partition(".")
        owners = schema.OPTIONS[group].values() if group in schema.OPTIONS else [schema.Config]
        assert any(schema.expected(leaf if group in schema.OPTIONS else key, owner) for owner in owners), \
            f"{sweep}: {key} is not declared in harness/schema.py"


def test_every_field_has_a_one_line_meaning():
    options = [cls for group in schema.OPTIONS.values() for cls in group.values()]
    for cls in (schema.Config, schema.TrainerConfig, schema.OptimConfig, schema.DistConfig, schema.DpConfig, *options):
        source = inspect.getsource(cls)
        for f in dataclasses.fields(cls):
            if f.name not in cls.__annotations__:  # inherited: commented in its own class
                continue
            assert re.search(rf"^    {f.name}: .*  # \S", source, re.M), f"{cls.__name__}.{f.name} has no comment"


@pytest.mark.parametrize("option", [f"{group}={name}" for group in ("optim", "data", "model")
                                    for name in group_options(group)])
def test_every_option_is_typed_and_gives_every_declared_key_a_value(option):
    cfg = compose([option, "logger=none", "data.path=corpus.txt" if option == "data=text" else "seed=0"])
    OmegaConf.to_container(cfg, throw_on_missing=True)  # a declared key without a value would raise
    group = option.partition("=")[0]
    if group in schema.OPTIONS:
        assert OmegaConf.get_type(cfg, group) in schema.OPTIONS[group].values()


@pytest.mark.parametrize("override, line", [
    ("seed=abc", "seed=abc: must be a whole number"),
    ("trainer.batch_size=abc", "trainer.batch_size=abc: must be a number"),
    ("trainer.max_steps=[1]", "trainer.max_steps=[1]: must be a number or null"),
    ("trainer.compile=maybe", "trainer.compile=maybe: must be true or false"),
    ("optim.betas=x", "optim.betas=x: must be a list of numbers"),
    ("dist.nproc=1.5", "dist.nproc=1.5: must be a whole number"),
    ("analyses=dp", "analyses=dp: must be a list of strings"),
    ("data.vocab_size=abc", "data.vocab_size=abc: must be a number"),
    ("model.target_params=[1]", "model.target_params=[1]: must be a number or null"),
])
def test_a_value_of_the_wrong_type_is_one_line(override, line):
    with pytest.raises(ConfigError) as error:
        compose([override])
    assert str(error.value) == line


def test_a_typo_names_the_valid_keys_and_a_wrong_type_exits_2(tmp_path):
    with pytest.raises(ConfigError, match=r"^trainer.bach_size=3: unknown key \(valid: batch_size, branch"):
        compose(["trainer.bach_size=3"])
    for mode in ([], ["-m", "sweep=params"]):
        out = subprocess.run([sys.executable, "-m", "harness", *mode, "trainer.batch_size=abc", "logger=none",
                              f"out_dir={tmp_path}"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and out.stderr.strip() == "error: trainer.batch_size=abc: must be a number", out.stderr


@pytest.mark.parametrize("overrides, line", [
    (["stage=lr"], "stage=lr: unknown key: only a sweep that sets it reads it (valid: sweep=forecast)"),
    (["sweep=params", "dp.rule=sqrt"], "dp.rule=sqrt: unknown key: only a sweep that sets it reads it (valid: sweep=dp)"),
])
def test_a_study_key_needs_a_sweep_that_sets_it(overrides, line):
    with pytest.raises(ConfigError) as error:
        compose(overrides)
    assert str(error.value) == line


def test_resolvers_are_registered_by_one_call_not_at_import():
    script = ("from omegaconf import OmegaConf\nimport harness.config, harness.resolvers, harness.study\n"
              "names = harness.resolvers.RESOLVERS\nprint(any(OmegaConf.has_resolver(n) for n in names))\n"
              "harness.config.register()\nprint(all(OmegaConf.has_resolver(n) for n in names))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "True"], out.stderr
    assert set(schema.STUDY_KEYS) >= {"dp", "size_mult", "tokens_per_param"}


@pytest.mark.parametrize("overrides, rid", [  # ids recorded before the schema existed: a cached run is reused
    ([], "c3be6b7936bd"),
    (["optim=sgd", "optim.lr=1"], "92af2bbaafef"),
    (["model=cnn", "data.max_shift=null"], "997b0e461e6a"),
    (["model=transformer", "model.d_model=32", "dist.nproc=2", "dp.rule=sqrt", "dp.batch_per_rank=8", "dp.lr=0.003",
      "trainer.max_tokens=20000.0", "sweep=dp", "scale=smoke"], "3e14c1309416"),
    (["model=transformer", "data=facts", "trainer.max_flops=1200000000.0", "size_mult=0.45", "optim.lr=0.01", "seed=0",
      "sweep=forecast", "scale=smoke", "stage=lr", "task=facts", "data.key_len=2"], "e7e58e933f09"),  # 2: the default then
])
def test_run_ids_did_not_change(overrides, rid):
    assert run_id(compose(overrides)) == rid
