"""Shared fixtures: every combination rendered once per session, the CLI run as a user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from newstack import render
from newstack.postgres import Cluster
from newstack.stacks import COMBINATIONS, PYTHON_VERSION, Combination

REPO = Path(__file__).resolve().parents[1]
COMBINATION_IDS = [c.id for c in COMBINATIONS]
NEWSTACK = [sys.executable, "-m", "newstack"]


def run(args, cwd=None, env=None, timeout=600, check=False, **kwargs):
    return subprocess.run(args, cwd=cwd, env={**os.environ, **(env or {})}, text=True,
                          capture_output=True, timeout=timeout, check=check, **kwargs)


def newstack(*args, cwd=None, **kwargs):
    """`newstack ARGS`, exactly as a user runs it (errors are formatted at the console edge)."""
    return run([*NEWSTACK, *args], cwd=cwd, **kwargs)


def answers_for(combination: Combination, name: str = "shop") -> render.Answers:
    return render.Answers.of(name, combination)


def image_python() -> str:
    """The image's Python: as uv finds it, or as pyenv installed it (pyenv's shim for a version
    that is not selected fails, and uv stops at it)."""
    from uv import find_uv_bin  # newstack's test extra has it

    found = subprocess.run([find_uv_bin(), "python", "find", "--no-python-downloads",
                            PYTHON_VERSION], capture_output=True, text=True, check=False)
    if found.returncode == 0 and found.stdout.strip():
        return found.stdout.strip()
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for python in sorted(pyenv.glob(f"versions/{PYTHON_VERSION}.*/bin/python{PYTHON_VERSION}")):
        return str(python)
    pytest.fail(f"Python {PYTHON_VERSION}, the generated image's, is not installed: the locks "
                f"fork on it (Django). Install it (e.g. `pyenv install {PYTHON_VERSION}`).",
                pytrace=False)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A throwaway PostgreSQL for the session (per xdist worker), started when first needed."""
    with Cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def projects(tmp_path_factory) -> dict[str, Path]:
    """Every combination, made by `newstack create`, keyed by combination id."""
    root = tmp_path_factory.mktemp("projects")
    made = {}
    for combination in COMBINATIONS:
        result = newstack("create", "shop", "--framework", combination.framework, "--protocol",
                          combination.protocol, "--target", combination.target,
                          *(["--server", combination.server] if combination.server else []),
                          "--output-dir", str(root / combination.id))
        assert result.returncode == 0, result.stderr
        made[combination.id] = root / combination.id / "shop"
    return made


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory) -> Path:
    """A git repository holding the working tree as it is now (committed or not): what a user
    would `copier copy` from."""
    return git_template(tmp_path_factory.mktemp("template") / "newstack")


GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


def git_template(clone: Path) -> Path:
    """A git repository at `clone` holding the working tree as it is now, one commit."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                 cwd=REPO, check=True).stdout
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, clone / name)
    run([*GIT, "init", "-q"], cwd=clone, check=True)
    run([*GIT, "add", "-A"], cwd=clone, check=True)
    run([*GIT, "commit", "-qm", "template"], cwd=clone, check=True)
    return clone


def copier_copy(src: Path, dest: Path, **data: str):
    args = [sys.executable, "-m", "copier", "copy", "--defaults", "--vcs-ref", "HEAD", "--quiet"]
    for key, value in data.items():
        args += ["--data", f"{key}={value}"]
    return run([*args, str(src), str(dest)])


def tree(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under root, caches, collected static files and
    SQLite databases (the smoke tests run `collectstatic` and the migrations in the shared
    projects) left out."""
    skip = {"__pycache__", ".pytest_cache", ".ruff_cache", "staticfiles"}
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not skip & set(p.relative_to(root).parts)
        and ".sqlite3" not in p.name
    }


@pytest.fixture
def arena(tmp_path) -> Path:
    """tmp_path/out is where projects go; it and tmp_path/outside hold files that are not
    ours. Returns tmp_path/out; snapshots are taken of the whole of tmp_path."""
    out = tmp_path / "out"
    for base in (out, tmp_path / "outside"):
        (base / "sub").mkdir(parents=True)
        (base / "notes.txt").write_text("mine\n")
        (base / "sub" / "data.bin").write_bytes(bytes(range(256)))
        (base / "sub" / "script.sh").write_text("#!/bin/sh\n")
        (base / "sub" / "script.sh").chmod(0o755)
        (base / "link").symlink_to("notes.txt")
    (out / "other-project" / "other_project").mkdir(parents=True)
    (out / "other-project" / "other_project" / "__init__.py").write_text("")
    return out


@pytest.fixture(scope="session", autouse=True)
def _report_bad_input_figures():
    """The bad-input figures (tests/bad_input.py), printed once when the test process ends."""
    yield
    from .bad_input import report_figures

    report_figures()


def figures_summary(terminalreporter):
    """The figures tests recorded with record_property("figures", ...), one line each, also
    under pytest-xdist (user properties travel with the reports)."""
    lines = [value for report in terminalreporter.stats.get("passed", []) +
             terminalreporter.stats.get("failed", [])
             if report.when == "call"
             for name, value in getattr(report, "user_properties", []) if name == "figures"]
    if lines:
        terminalreporter.section("figures")
        for line in sorted(lines):
            terminalreporter.write_line(line)


def pytest_terminal_summary(terminalreporter, config):
    """Here and not in generated/conftest.py: pytest-xdist's controller, which prints the
    summary, collects nothing and so loads no conftest.py below this one."""
    from .generated.conftest import prod_summary

    figures_summary(terminalreporter)
    prod_summary(terminalreporter, config)
