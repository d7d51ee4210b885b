"""Config flow: Hydra composes a DictConfig; `harness.build.check_config` checks it once and resolves the
run's settings (`harness.settings.RunSettings`); builders read the config, the loop and the records the settings.

`ConfigError` is the one exception for bad input: every command prints its one-line message and exits 2
(`exit_bad_input`); the commands that are not Hydra apps read their arguments with `command_args` (-h/--help)
and `key_values` (`key=value`), and run inside `bad_input_exits`.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, NoReturn

from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
# Keys that place or label a run but do not change what it computes: excluded from run_id.
NON_IDENTITY_KEYS = ("out_dir", "force", "logger", "study", "scale", "grid", "hydra", "analyses",
                     "trainer.checkpoint_every", "trainer.keep_checkpoint")
NAME_MAX = 255  # bytes in one folder name (Linux, macOS)
FOLDER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]*")


class ConfigError(ValueError):
    """Bad user input; the message names the key and, where finite, the valid values."""


# Exit codes of every command (harness, harness-plan, -collect, -analyze, -forecast, -cost): 0 done,
# 1 a run failed (one run) or every run of a study failed, 2 bad input (usage, config, missing files);
# interrupted: 128 + the signal number, as shells report it.
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def key_values(argv: list[str], keys: Iterable[str], positional: str | None = None,
               flags: Iterable[str] = (), valued_flags: Iterable[str] = (),
               passthrough: bool = False) -> tuple[dict[str, Any], list[str]]:
    """A command's `key=value` arguments -> ({key: value string, flag: True or its value}, other key=value pairs).

    `positional`: the key a bare argument stands for (a path: `harness-collect runs/params`); `flags`: the
    `--flags` the command takes; `valued_flags`: those that take a value (`--plot DIR` or `--plot=DIR`);
    `passthrough`: unknown `key=value` pairs are returned (Hydra overrides) instead of refused. An old-style
    `--key VALUE` for a known key fails naming the new form; anything else names the valid keys.
    """
    keys, flags, valued = list(keys), set(flags), set(valued_flags)
    own: dict[str, Any] = {}
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        name, sep, value = arg.partition("=")
        if arg.startswith("--"):
            flag = name[2:]
            if flag in valued:
                own[flag] = value if sep else next(args, None)
                if own[flag] is None:
                    fail(name, "", "needs a value")
            elif flag in flags and not sep:
                own[flag] = True
            elif flag.replace("-", "_") in keys:
                fail(name, value or "VALUE", f"options are key=value now: {flag.replace('-', '_')}={value or 'VALUE'}")
            else:
                fail(name, value, "unknown option", [f"--{f}" for f in sorted(flags | valued)] + ["--help"])
        elif sep and name in keys:
            own[name] = value
        elif sep and passthrough:
            rest.append(arg)
        elif not sep and positional is not None and positional not in own:
            own[positional] = arg
        else:
            fail(name, value, "unknown key" if sep else "expected key=value", keys)
    return own, rest


def exit_bad_input(error: Exception | str) -> NoReturn:
    """Print `error: <one line>` and exit 2; with HYDRA_FULL_ERROR=1 re-raise instead, for the traceback."""
    if isinstance(error, Exception) and os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise error
    print(f"error: {str(error).splitlines()[0] if str(error) else type(error).__name__}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def command_args(argv: list[str] | None, usage: str) -> list[str] | None:
    """A command's arguments (`argv`, else the command line's); None once `usage` is printed for -h/--help."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if {"-h", "--help"} & set(argv):
        print(usage)
        return None
    return argv


@contextlib.contextmanager
def bad_input_exits() -> Iterator[None]:
    """Around a command's work: a ConfigError inside ends it with its one line and exit 2 (`exit_bad_input`)."""
    try:
        yield
    except ConfigError as e:
        exit_bad_input(e)


def fail(key: str, value: Any, why: str, valid: Iterable[Any] | None = None) -> None:
    """Raise a one-line ConfigError for `key=value`."""
    msg = f"{key}={value}: {why}"
    if valid is not None:
        msg += f" (valid: {', '.join(map(str, valid))})"
    raise ConfigError(msg)


def choose(key: str, value: Any, valid: Iterable[str]) -> str:
    """Return `value` if it is one of `valid`, else raise naming the options."""
    valid = list(valid)
    if value not in valid:
        fail(key, value, "unknown value", valid)
    return value


def positive(key: str, value: Any, allow_none: bool = False, integer: bool = True) -> Any:
    """Check a positive size; numbers written as 2e5 are accepted for integer keys."""
    if value is None and allow_none:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        fail(key, value, "must be a positive number")
    if not number > 0 or number != number or number == float("inf"):
        fail(key, value, "must be positive")
    if integer:
        if number != int(number):
            fail(key, value, "must be a whole number")
        return int(number)
    return number


def non_negative(key: str, value: Any, integer: bool = True) -> Any:
    """Check a count or weight that may be zero (warmup steps, weight decay, ...)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        fail(key, value, "must be a number >= 0")
    if not 0 <= number < float("inf"):
        fail(key, value, "must be >= 0")
    if integer and number != int(number):
        fail(key, value, "must be a whole number")
    return int(number) if integer else number


def group_options(group: str) -> list[str]:
    """Names of the options of a config group (conf/<group>/*.yaml)."""
    folder = CONF_DIR / group  # conf/sweep is a link to sweeps/: listdir follows it, Path.glob does not
    return sorted(name[:-5] for name in os.listdir(folder) if name.endswith(".yaml"))


def register() -> None:
    """What Hydra needs before it composes a config: the schema in its ConfigStore (harness/schema.py) and the
    resolvers (harness/resolvers.py). Called by every entry point that composes: `harness` and its jobs,
    `compose`, the study code."""
    from harness import resolvers, schema

    schema.register()
    resolvers.register()


def compose(overrides: list[str] | None = None) -> DictConfig:
    """Compose the run config from conf/ with Hydra overrides, as the `harness` command would; bad overrides
    (an unknown key, a value of the wrong type, ...) raise its one-line ConfigError (`hydra_error`)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    overrides = list(overrides or [])
    check_overrides(overrides)
    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        try:
            return hydra_compose("config", overrides=overrides)
        except HydraException as e:
            raise hydra_error(e, overrides) from None


def check_overrides(overrides: Iterable[str]) -> None:
    """One line for overrides Hydra would accept or report in many lines: unknown group options, and new
    keys (`+key=value`), which nothing in the harness would read (`+hydra.*` and `++key` are left to Hydra)."""
    overrides = list(overrides)
    check_group_choices(overrides)
    check_study_keys(overrides)
    for ov in overrides:
        key, _, value = ov.partition("=")
        if key.startswith("+") and not key.startswith("++"):
            name = key[1:]
            if not name.startswith("hydra") and not (CONF_DIR / name.split("/")[0]).is_dir():
                fail(name, value, "unknown key: '+' adds a key that no part of the harness reads "
                     "(set an existing key without '+'; `harness --cfg job` lists them)")


def check_study_keys(overrides: list[str]) -> None:
    """A study key (`stage`, `dp.rule`, ...: harness/schema.py `STUDY_KEYS`) is read only by the sweeps that set
    it: set with another sweep, or none, it fails in one line naming them (as an unknown key did before it was
    declared), instead of changing the run's id and nothing else."""
    from harness.schema import STUDY_KEYS

    pairs = [ov.lstrip("+~").partition("=") for ov in overrides]
    study = [(key, value) for key, _, value in pairs if key.split(".")[0] in STUDY_KEYS]
    if not study:
        return
    chosen = {v for ov in overrides if ov.partition("=")[0] == "sweep" for v in ov.partition("=")[2].split(",")}
    setting = sweep_keys()
    for key, value in study:
        top = key.split(".")[0]
        if not any(top in setting.get(name, ()) for name in chosen):
            fail(key, value, "unknown key: only a sweep that sets it reads it",
                 [f"sweep={name}" for name in sorted(setting) if top in setting[name]])


@functools.lru_cache(maxsize=1)  # a plan composes hundreds of jobs: read the sweep files once per process
def sweep_keys() -> dict[str, frozenset[str]]:
    """The top-level keys each sweep file sets, by sweep name."""
    return {name: frozenset(OmegaConf.load(CONF_DIR / "sweep" / f"{name}.yaml")) for name in group_options("sweep")}


def hydra_error(error: Exception, overrides: Iterable[str]) -> ConfigError:
    """Hydra's multi-line composition or parse error as one line; an unknown key lists the valid keys, a value
    of the wrong type names the type the schema declares (`type_error`)."""
    from hydra.errors import HydraException, OverrideParseException

    if (typed := type_error(error, overrides)) is not None:
        return typed
    paragraphs = [" ".join(p.split()) for p in str(error).split("\n\n") if p.strip()]
    found = re.match(r"Could not override '([^']+)'", paragraphs[0] if paragraphs else "")
    if found:
        key = found.group(1)
        given = [o for o in overrides if o.lstrip("+~").partition("=")[0] == key]
        others = [o for o in overrides if o not in given and not o.startswith("hydra")]
        parent, _, _ = key.rpartition(".")
        try:
            node = OmegaConf.select(compose(others), parent) if parent and not key.startswith("hydra") else None
        except ConfigError:
            node = None
        valid = sorted(node.keys()) if isinstance(node, DictConfig) else None
        value = given[0].partition("=")[2] if given else "?"
        msg = f"{key}={value}: unknown key"
        return ConfigError(msg + (f" (valid: {', '.join(map(str, valid))})" if valid else ""))
    line = re.sub(r" See https?://\S+ for details\.?", "", paragraphs[0]) if paragraphs else type(error).__name__
    options = re.search(r"Available options in [^\n]*:\n((?:\t[^\n]*\n?)+)", str(error))
    if options:
        line += f" (valid: {', '.join(options.group(1).split())})"
    if isinstance(error, OverrideParseException):  # name the override that does not parse
        from hydra.core.override_parser.overrides_parser import OverridesParser

        for ov in overrides:
            try:
                OverridesParser.create().parse_override(ov)
            except HydraException:
                return ConfigError(f"{ov}: cannot parse: {line}")
    return ConfigError(line)


def type_error(error: BaseException, overrides: Iterable[str] = ()) -> ConfigError | None:
    """A value the schema's type refuses (an OmegaConf ValidationError, in `error` or its causes) as
    `key=value: must be <the declared type>` (harness/schema.py `expected`); None for any other error."""
    import dataclasses

    from omegaconf.errors import ValidationError

    from harness.schema import expected

    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ValidationError):
        cause = cause.__cause__ or cause.__context__
    if cause is None or not cause.full_key:
        return None
    owner = cause.object_type if dataclasses.is_dataclass(cause.object_type) else None  # the field's dataclass
    words = (owner and expected(str(cause.key), owner)) or expected(cause.full_key)
    if words is None:
        return None
    given = [o.partition("=")[2] for o in overrides if o.lstrip("+~").partition("=")[0] == cause.full_key]
    return ConfigError(f"{cause.full_key}={given[-1] if given else cause.value}: must be {words}")


def check_group_choices(overrides: Iterable[str]) -> None:
    """Fail in one line on `group=unknown` before Hydra prints its multi-line error."""
    for ov in overrides:
        key, sep, value = ov.lstrip("+~").partition("=")
        if not sep or "/" in key or "." in key or not (CONF_DIR / key).is_dir():
            continue
        for choice in value.split(","):
            if choice and choice != "null" and choice not in group_options(key):
                fail(key, choice, "unknown option", group_options(key))


def check_paths(cfg: DictConfig) -> None:
    """`study` must be a plain folder name and `out_dir` a path, so a run writes only under <out_dir>/<study>/.

    `out_dir` may be any relative or absolute path (it is where the user wants results); `study` is a
    label, so separators, `..` and absolute paths (also via interpolations such as ${oc.env:VAR}) are refused.
    """
    try:
        study, out_dir = str(cfg.study), str(cfg.out_dir)
    except Exception as e:  # noqa: BLE001 - an interpolation that does not resolve (e.g. an unset env var)
        raise ConfigError(f"study/out_dir: {str(e).splitlines()[0]}") from None
    if not FOLDER_NAME.fullmatch(study):
        fail("study", study, "must be a folder name: letters, digits and . _ - = +, no '/' or '..'")
    if len(study.encode()) > NAME_MAX:
        fail("study", f"{study[:20]}...", f"is {len(study.encode())} characters, a folder name has at most {NAME_MAX}")
    if not out_dir.strip():
        fail("out_dir", out_dir, "must be a folder path")
    existing = next(p for p in (Path(out_dir).absolute(), *Path(out_dir).absolute().parents) if p.exists())
    if not existing.is_dir():
        fail("out_dir", out_dir, f"{existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        fail("out_dir", out_dir, f"{existing} is not writable")
    inside(Path(out_dir) / study, Path(out_dir))


def inside(folder: Path, out_dir: Path) -> Path:
    """`folder`, after refusing it when it resolves outside `out_dir` (a symlink put in its place)."""
    if not folder.resolve().is_relative_to(out_dir.resolve()):
        raise ConfigError(f"{folder}: leads to {folder.resolve()}, outside out_dir={out_dir} (a symlink?); "
                          "remove it and run again")
    return folder


def resolved(cfg: DictConfig) -> dict:
    """The resolved config as a dict, as a run records it (study keys no sweep set left out: `schema.drop_unset`);
    a missing or unresolvable value is a one-line ConfigError naming its key."""
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    from harness.schema import drop_unset

    try:
        return drop_unset(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "config"
        if isinstance(e, MissingMandatoryValue):
            raise ConfigError(f"{key}=???: a value is required (set {key}=...)") from None
        if (typed := type_error(e)) is not None:  # an interpolation that resolved to the wrong type
            raise typed from None
        why = re.sub(r"^\w+ raised while resolving interpolation: ", "", str(e).splitlines()[0])  # a resolver: its line
        raise ConfigError(f"{key}: {why}") from None
