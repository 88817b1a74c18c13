"""`python -m newstack.release X.Y.Z` refuses, with one line and nothing changed, what would
make a wrong release. (A whole release, twice, and its wheel: tests/test_wheel.py.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .conftest import GIT, run

CHANGELOG = "# Changelog\n\nPolicy.\n\n## 0.2.0 (unreleased)\n\n- new\n\n## 0.1.0 (2026-01-01)\n"


def checkout(root: Path, changelog: str = CHANGELOG) -> Path:
    (root / "generator" / "newstack").mkdir(parents=True)
    ours = Path(__file__).resolve().parents[1] / "generator" / "newstack"
    for name in ("__init__.py", "bundle.py", "release.py"):
        (root / "generator" / "newstack" / name).write_text((ours / name).read_text())
    (root / "CHANGELOG.md").write_text(changelog)
    run([*GIT, "init", "-q"], cwd=root, check=True)
    run([*GIT, "add", "-A"], cwd=root, check=True)
    run([*GIT, "commit", "-qm", "one"], cwd=root, check=True)
    run([*GIT, "tag", "v0.1.0"], cwd=root, check=True)
    return root


def release(root: Path, *args: str):
    return run([sys.executable, "-m", "newstack.release", *args], cwd=root,
               env={"PYTHONPATH": str(root / "generator")})


def state(root: Path) -> tuple[str, ...]:
    return tuple(run(["git", *args], cwd=root).stdout
                 for args in (["status", "--porcelain"], ["tag"], ["rev-parse", "HEAD"]))


@pytest.mark.parametrize(("changelog", "args", "dirty", "message"), [
    (CHANGELOG, ["0.2"], False, "version '0.2': expected X.Y.Z, e.g. 0.2.0"),
    (CHANGELOG, ["0.1.0"], False, "v0.1.0 is not newer than the tag v0.1.0"),
    (CHANGELOG, ["0.0.5"], False, "v0.0.5 is not newer than the tag v0.1.0"),
    (CHANGELOG, ["0.2.0"], True, "has uncommitted changes: commit or stash them first"),
    (CHANGELOG.replace(" (unreleased)", " (2026-02-01)"), ["0.2.0"], False,
     "CHANGELOG.md's top entry is not '## X.Y.Z (unreleased)': add it"),
])
def test_release_refuses(tmp_path, changelog, args, dirty, message):
    root = checkout(tmp_path / "repo", changelog)
    if dirty:
        (root / "draft.txt").write_text("draft")
    before = state(root)
    result = release(root, *args)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("newstack.release: ") and message in line, line
    assert state(root) == before


def test_release_needs_a_version(tmp_path):
    result = release(checkout(tmp_path / "repo"))
    assert result.returncode == 2 and "the following arguments are required: version" \
        in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--open", "0.3.0"], "CHANGELOG.md already opens with '## 0.2.0 (unreleased)'"),
    (["--open", "0.1.0"], "v0.1.0 is not newer than the tag v0.1.0"),
])
def test_open_refuses(tmp_path, args, message):
    root = checkout(tmp_path / "repo")
    before = state(root)
    result = release(root, *args)
    assert result.returncode == 1
    assert result.stderr == f"newstack.release: {message}\n"
    assert state(root) == before
