"""The bundle of the template's released versions (newstack/bundle.py), as the wheel carries it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml

from newstack import __version__, bundle

from .conftest import GIT, REPO, run

MAIN = "templates/fastapi/{{ package_name }}/main.py.jinja"


def checkout(root: Path, version: str = "0.2.0") -> Path:
    """A git checkout holding a small template (copier.yml, templates/) and a version."""
    (root / "templates" / "app").mkdir(parents=True)
    (root / "copier.yml").write_text("_subdirectory: templates/app\nname:\n  type: str\n"
                                     "  default: x\n")
    (root / "templates" / "app" / "hello.txt.jinja").write_text("hello {{ name }} one\n")
    (root / "templates" / "app" / "{{ _copier_conf.answers_file }}.jinja").write_text(
        "{{ _copier_answers | to_nice_yaml }}")
    (root / "generator" / "newstack").mkdir(parents=True)
    (root / "generator" / "newstack" / "__init__.py").write_text(f'__version__ = "{version}"\n')
    (root / "notes.txt").write_text("not the template\n")
    run([*GIT, "init", "-q"], cwd=root, check=True)
    run([*GIT, "add", "-A"], cwd=root, check=True)
    run([*GIT, "commit", "-qm", "one"], cwd=root, check=True)
    return root


def change(root: Path, text: str, tag: str | None = None) -> None:
    (root / "templates" / "app" / "hello.txt.jinja").write_text(text)
    run([*GIT, "commit", "-qam", text], cwd=root, check=True)
    if tag:
        run([*GIT, "tag", tag], cwd=root, check=True)


def render(source: Path, ref: str | None, dest: Path) -> str:
    """copier's rendering of `source` at `ref` (None: its latest tag)."""
    result = run([sys.executable, "-m", "copier", "copy", "--defaults", "--quiet",
                  *(["--vcs-ref", ref] if ref else []), str(source), str(dest)])
    assert result.returncode == 0, result.stderr
    return (dest / "hello.txt").read_text()


def test_tags_and_this_version_are_bundled_each_with_its_own_template(tmp_path):
    root = checkout(tmp_path / "repo")
    run([*GIT, "tag", "v0.1.0"], cwd=root, check=True)
    change(root, "hello {{ name }} two\n", tag="v0.1.1")
    change(root, "hello {{ name }} three\n", tag="v0.3.0")  # newer than the version: left out
    (root / "templates" / "app" / "hello.txt.jinja").write_text("hello {{ name }} now\n")

    out = tmp_path / "out" / bundle.NAME
    assert bundle.build(root, out) == ["v0.1.0", "v0.1.1", "v0.2.0"]

    assert bundle.tags_of(out) == ["v0.1.0", "v0.1.1", "v0.2.0"]
    assert render(out, "v0.1.0", tmp_path / "a") == "hello x one\n"
    assert render(out, "v0.1.1", tmp_path / "b") == "hello x two\n"
    assert render(out, "v0.2.0", tmp_path / "c") == "hello x now\n"  # uncommitted, as packaged
    latest = render(out, None, tmp_path / "d")
    assert latest == "hello x now\n"
    assert yaml.safe_load((tmp_path / "d" / ".copier-answers.yml").read_text())["_commit"] \
        == "v0.2.0"
    files = run(["git", "ls-tree", "-r", "--name-only", "v0.1.0"], cwd=clone(out, tmp_path))
    assert sorted(files.stdout.splitlines()) == [
        "copier.yml", "templates/app/hello.txt.jinja",
        "templates/app/{{ _copier_conf.answers_file }}.jinja"]  # the template only


def clone(out: Path, tmp_path: Path) -> Path:
    target = tmp_path / "clone"
    if not target.exists():
        run(["git", "clone", "-q", str(out), str(target)], check=True)
    return target


def test_the_same_versions_give_the_same_commits(tmp_path):
    root = checkout(tmp_path / "repo")
    run([*GIT, "tag", "v0.1.0"], cwd=root, check=True)
    change(root, "hello {{ name }} two\n")
    bundle.build(root, tmp_path / "1.bundle")
    heads = run(["git", "bundle", "list-heads", "1.bundle"], cwd=tmp_path).stdout
    run([*GIT, "commit", "-q", "--allow-empty", "-m", "later, same template"], cwd=root,
        check=True)
    bundle.build(root, tmp_path / "2.bundle")
    assert run(["git", "bundle", "list-heads", "2.bundle"], cwd=tmp_path).stdout == heads


def test_the_same_versions_give_the_same_bytes_however_the_checkout_is_packed(tmp_path):
    """A wheel built from the sdist must carry the release's bundle byte for byte: deltas
    reused from the checkout's packs (which `git gc` rewrites) made them differ."""
    root = checkout(tmp_path / "repo")
    lines = [f"line {i}: {'x' * (i % 70)}" for i in range(300)]  # similar files: deltas
    for version in range(3):
        for n in range(400):  # enough objects for pack-objects to share them among threads
            lines[n % 300] = f"file {n} changed in v0.1.{version}"
            (root / "templates" / "app" / f"f{n}.txt").write_text("\n".join(lines))
        run([*GIT, "add", "-A"], cwd=root, check=True)
        run([*GIT, "commit", "-qm", f"v0.1.{version}"], cwd=root, check=True)
        run([*GIT, "tag", f"v0.1.{version}"], cwd=root, check=True)
    bundle.build(root, tmp_path / "loose.bundle")
    run(["git", "gc", "-q", "--aggressive", "--prune=now"], cwd=root, check=True)
    bundle.build(root, tmp_path / "packed.bundle")
    assert (tmp_path / "loose.bundle").read_bytes() == (tmp_path / "packed.bundle").read_bytes()


def test_a_tagged_version_whose_template_changed_is_refused(tmp_path):
    root = checkout(tmp_path / "repo", version="0.1.0")
    run([*GIT, "tag", "v0.1.0"], cwd=root, check=True)
    assert bundle.build(root, tmp_path / "same.bundle") == ["v0.1.0"]  # the tag, as it is
    (root / "notes.txt").write_text("not the template: no matter\n")
    assert bundle.build(root, tmp_path / "same.bundle") == ["v0.1.0"]
    (root / "templates" / "app" / "hello.txt.jinja").write_text("hello {{ name }} edited\n")
    with pytest.raises(bundle.BundleError, match="differs from tag v0.1.0, and the version is "
                       r"still 0.1.0: open the next one \(python -m newstack.release --open"):
        bundle.build(root, tmp_path / "changed.bundle")
    assert not (tmp_path / "changed.bundle").exists()


def test_without_git_history_this_version_alone(tmp_path):
    """An sdist, or a checkout without tags (CI's fresh clone of an unreleased main)."""
    root = checkout(tmp_path / "repo")
    shutil.rmtree(root / ".git")
    assert bundle.build(root, tmp_path / "sdist.bundle") == ["v0.2.0"]
    assert render(tmp_path / "sdist.bundle", "v0.2.0", tmp_path / "a") == "hello x one\n"


def test_this_checkout_bundles_its_versions(tmp_path):
    """What the wheel will carry: this version, after every earlier tag (a template changed
    since this version's tag fails here before the wheel build does)."""
    tags = [t for t in bundle.version_tags(REPO)
            if bundle.version_key(t) < bundle.version_key(f"v{__version__}")]
    assert bundle.build(REPO, tmp_path / bundle.NAME) == [*tags, f"v{__version__}"]


def test_a_bad_version_line_is_named(tmp_path):
    root = checkout(tmp_path / "repo")
    (root / "generator" / "newstack" / "__init__.py").write_text("__version__ = 2\n")
    with pytest.raises(bundle.BundleError, match="no __version__"):
        bundle.build(root, tmp_path / "x.bundle")
    assert run(["git", "status", "--porcelain"], cwd=root).stdout == (
        " M generator/newstack/__init__.py\n")
