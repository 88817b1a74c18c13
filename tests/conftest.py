"""Shared fixtures: every combination rendered once per session, the CLI run as a user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from newstack import render
from newstack.stacks import COMBINATIONS, Combination

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
    """Relative path -> content of every file under root, caches and collected static files
    (the smoke tests run `collectstatic` in the shared projects) left out."""
    skip = {"__pycache__", ".pytest_cache", ".ruff_cache", "staticfiles"}
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not skip & set(p.relative_to(root).parts)
    }


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


# --- prod stacks under load (tests/prod.py, test_prod.py, test_security.py) ---------------------

SERVER_KINDS = ("steady", "stop", "recycling")  # the order a group runs in


def pytest_configure(config):
    kinds = ", ".join(SERVER_KINDS)
    config.addinivalue_line("markers", f"server(kind): the kind of prod server a test uses "
                            f"({kinds}); a configuration's tests run in that order")


def pytest_collection_modifyitems(items):
    """Each prod configuration's tests together (one xdist group, see prod.params), those using
    the same kind of server one after another: each server is started once."""
    def key(item):
        group = item.get_closest_marker("xdist_group")
        kind = item.get_closest_marker("server")
        if not group:
            return ("", 0)
        return (group.args[0], SERVER_KINDS.index(kind.args[0]) if kind else 0)

    items.sort(key=key)  # stable: otherwise in the order written


@pytest.fixture(scope="session")
def load_lock(tmp_path_factory) -> Path:
    """A file every test process of the run locks while it loads a server (tests/prod.py
    exclusive()): two loads on two cores would measure each other."""
    # the base temporary directory of the whole run, shared by pytest-xdist's workers
    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if os.environ.get("PYTEST_XDIST_WORKER") else shared
    return shared / "prod-load.lock"


@pytest.fixture(scope="session")
def servers(tmp_path_factory, load_lock):
    from .prod import Servers

    pool = Servers(tmp_path_factory.mktemp("prod"), load_lock)
    yield pool
    pool.stop_all()


SUMMARY = (  # column title, what it shows, the figures (prod.record keys) it joins with " / "
    ("load", "served / failed / socket errors", ("served", "failed", "socket_errors")),
    ("SIGKILL a worker", "held / failed / answered in s / replaced in s",
     ("kill_held", "kill_failed", "kill_answered_again", "kill_replaced")),
    ("SIGHUP", "served / failed / workers replaced",
     ("reload_served", "reload_failed", "reload_replaced")),
    ("SIGTERM", "completed / exited in s", ("stop_completed", "stop_exited")),
    ("max_requests", "recycles / served / failed / socket errors",
     ("recycles", "recycle_served", "recycle_failed", "recycle_socket_errors")),
    ("oversized", "line / fields / field", ("limits",)),
    ("bandit", "medium+high (low)", ("bandit",)),
    ("hadolint", "", ("hadolint",)),
)


def pytest_terminal_summary(terminalreporter, config):
    figures_summary(terminalreporter)
    prod_summary(terminalreporter, config)


def prod_summary(terminalreporter, config):
    """Per prod configuration, the figures its tests recorded (prod.record), as a table and as
    JSON: in $PROD_FIGURES when set, else prod-figures.json in pytest's base temporary directory
    (which later pytest runs may delete)."""
    rows: dict[str, dict] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name == "prod":
                    rows.setdefault(value["config"], {}).update(value)
    if not rows:
        return
    import json

    path = Path(os.environ.get("PROD_FIGURES") or
                config._tmp_path_factory.getbasetemp() / "prod-figures.json")
    path.write_text(json.dumps(rows, indent=2, sort_keys=True))
    table = [["configuration", *(title for title, _, _ in SUMMARY)],
             ["", *(what for _, what, _ in SUMMARY)]]
    for cid in sorted(rows):
        table.append([cid, *(" / ".join(str(rows[cid].get(k, "-")) for k in keys)
                             for _, _, keys in SUMMARY)])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    terminalreporter.section("prod stacks")
    for row in table:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths))
        terminalreporter.write_line(line.rstrip())
    terminalreporter.write_line(f"(JSON: {path})")
