"""What is derived from the table and committed must match what the table gives today."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from newstack import REPOSITORY, __version__, copier_yml, render
from newstack.stacks import COMBINATIONS

from .conftest import GIT, REPO, run, tree


def test_copier_yml_is_generated_from_the_table():
    assert (REPO / "copier.yml").read_text() == copier_yml.render(), (
        "copier.yml is stale: run `python -m newstack.sync`"
    )


@pytest.mark.parametrize("cid", [c.id for c in COMBINATIONS])
def test_example_matches_what_generation_gives_today(tmp_path, cid):
    combination = next(c for c in COMBINATIONS if c.id == cid)
    render.generate(render.Answers.of("example", combination), tmp_path / cid)
    assert tree(REPO / "examples" / cid) == tree(tmp_path / cid), (
        f"examples/{cid} is stale: run `python -m newstack.sync`"
    )


def test_repository_url_matches_pyproject():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["urls"]["Repository"] == REPOSITORY


VERSION_TAG = re.compile(r"v\d+\.\d+\.\d+")


def changelog_versions() -> list[str]:
    return re.findall(r"^## (\d+\.\d+\.\d+)\b", (REPO / "CHANGELOG.md").read_text(), re.MULTILINE)


def version_tags(repo: Path, *where: str) -> list[str]:
    listed = run(["git", "tag", "--list", *where], cwd=repo, check=True).stdout.split()
    return [tag for tag in listed if VERSION_TAG.fullmatch(tag)]


def check_tags(repo: Path, version: str, released: list[str]) -> None:
    """A vX.Y.Z tag on HEAD names `version`; every earlier one has a changelog entry and is
    not newer than it (CI clones may carry no tags at all: then there is nothing to contradict)."""
    assert set(version_tags(repo, "--points-at", "HEAD")) <= {f"v{version}"}, (
        f"HEAD is tagged for another version than {version}")
    for tag in version_tags(repo, "--merged", "HEAD"):
        assert tag[1:] in released, f"{tag} has no CHANGELOG.md entry"
        assert tuple(map(int, tag[1:].split("."))) <= tuple(map(int, version.split(".")))


def test_changelog_top_entry_is_the_version():
    assert changelog_versions()[0] == __version__


def test_projects_record_this_versions_tag():
    for combination in COMBINATIONS:
        answers = (REPO / "examples" / combination.id / ".copier-answers.yml").read_text()
        assert f"_commit: v{__version__}\n_src_path: {REPOSITORY}\n" in answers


def test_git_tags_agree_with_the_version():
    check_tags(REPO, __version__, changelog_versions())


def test_a_disagreeing_tag_is_caught(tmp_path):
    git = [*GIT, "-C", str(tmp_path)]
    run([*git, "init", "-q"], check=True)
    run([*git, "commit", "-q", "--allow-empty", "-m", "one"], check=True)
    run([*git, "tag", "v0.1.0"], check=True)
    check_tags(tmp_path, "0.1.0", ["0.1.0"])
    with pytest.raises(AssertionError, match="another version"):
        check_tags(tmp_path, "0.2.0", ["0.2.0", "0.1.0"])
    run([*git, "commit", "-q", "--allow-empty", "-m", "two"], check=True)
    run([*git, "tag", "v0.2.0"], check=True)
    with pytest.raises(AssertionError, match="v0.1.0 has no CHANGELOG.md entry"):
        check_tags(tmp_path, "0.2.0", ["0.2.0"])
    with pytest.raises(AssertionError):
        check_tags(tmp_path, "0.1.5", ["0.1.5", "0.1.0"])  # HEAD is v0.2.0: wrong tag


def test_newstacks_own_code_passes_ruff():
    """ruff's default rules over generator/ and tests/, as over every generated project."""
    lint = run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_newstacks_own_code_passes_mypy_strict():
    """mypy --strict over generator/ (pyproject.toml's [tool.mypy])."""
    typed = run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=REPO)
    assert typed.returncode == 0, typed.stdout + typed.stderr
