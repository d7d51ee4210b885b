"""The package map stays one-directional: every module imports on its own, no import cycle (counting imports
inside functions), and the analysis side never pulls in torch."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "analysis")


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Our modules that `path` imports anywhere in its body (top level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out.update(n for n in names if n in modules)
    return out


def test_there_is_no_import_cycle():
    modules = _modules()
    graph = {m: _imports(p, modules) - {m} for m, p in modules.items()}
    done, stack = set(), []

    def visit(m: str) -> None:
        if m in stack:
            cycle = stack[stack.index(m):] + [m]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if m in done:
            return
        stack.append(m)
        for n in sorted(graph[m]):
            if not (m.startswith(n + ".") and n in PACKAGES):  # a submodule naming its top package: lazy there
                visit(n)
        stack.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)


def test_harness_never_imports_analysis():
    """Running (harness) sits below fitting and reporting (analysis); the commands that need both live in analysis."""
    modules = _modules()
    edges = [f"{m} -> {n}" for m, p in modules.items() if m.split(".")[0] == "harness"
             for n in _imports(p, modules) if n.split(".")[0] == "analysis"]
    assert not edges, edges


def test_every_module_imports_alone_and_analysis_leaves_torch_unloaded():
    light = "import sys, analysis, analysis.cost, harness.results, harness.collect; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", light], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False", "importing the analysis side loaded torch"
    # Each module from a clean slate of ours (torch stays loaded: it cannot be imported twice), so a module
    # that only works after another one was imported first fails here.
    script = (
        "import importlib, sys\n"
        f"for name in {sorted(_modules())!r}:\n"
        "    for k in [k for k in sys.modules if k.split('.')[0] in ('harness', 'analysis')]:\n"
        "        del sys.modules[k]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as e:\n"
        "        sys.exit(f'import {name}: {type(e).__name__}: {e}')\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr.strip().splitlines()[-1:]


BAD_INPUT = {  # console script -> bad arguments and what its one line must name
    "harness": (["model=resnet"], "model=resnet"),
    "harness-plan": (["sweep=params", "scale=huge"], "scale=huge"),
    "harness-collect": (["/nonexistent/study"], "study_dir=/nonexistent/study"),
    "harness-analyze": (["/nonexistent/study"], "/nonexistent/study"),
    "harness-forecast": (["scale=huge"], "scale=huge"),
    "harness-cost": (["gpu=Z80", "params=1e9"], "gpu=Z80"),
    "harness-claims": (["claim=nope"], "claim=nope"),
}


def test_every_command_exits_2_with_one_line_on_bad_input(tmp_path):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == set(BAD_INPUT), "a console script without a bad-input case here"
    for name, (args, key) in BAD_INPUT.items():
        module, func = scripts[name].split(":")
        code = f"import sys; sys.argv[0] = {name!r}; from {module} import {func}; {func}()"
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path,
                             timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1 and key in lines[0], f"{name}: exit {out.returncode}: {out.stderr}"
