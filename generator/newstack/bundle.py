"""The template's released versions as one git bundle, carried by the wheel so that the version
a project records is always in what its user installed, and `newstack update` needs no network.

Each vX.Y.Z tag of the checkout (up to this version) becomes a commit holding just the template
(TEMPLATE_FILES at that tag), tagged the same and chained in version order; this version is the
working tree's template, tagged v{__version__} unless the checkout has that tag already (then
the two must hold the same files: a template changed after its release needs a new version).
Commits carry fixed authors and dates, so the same versions always give the same commit ids.
A fresh clone without tags (or an sdist, no git at all) gives a bundle of this version alone.

Standard library only: the wheel's build hook (hatch_build.py) runs it in hatchling's
isolated environment.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

NAME = "newstack.bundle"
TEMPLATE_FILES = ("copier.yml", "templates")  # what copier reads; the wheel carries the same
VERSION_TAG = re.compile(r"v(\d+)\.(\d+)\.(\d+)")
FIXED = {"GIT_AUTHOR_NAME": "newstack", "GIT_AUTHOR_EMAIL": "newstack@invalid",
         "GIT_COMMITTER_NAME": "newstack", "GIT_COMMITTER_EMAIL": "newstack@invalid",
         "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z"}


class BundleError(Exception):
    """The checkout cannot give an honest bundle (the message says why and what to do)."""


def version_key(tag: str) -> tuple[int, ...]:
    match = VERSION_TAG.fullmatch(tag)
    assert match, tag
    return tuple(map(int, match.groups()))


def read_version(root: Path) -> str:
    """__version__ of the checkout at `root` (as hatchling reads it, without importing)."""
    text = (root / "generator" / "newstack" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "(\d+\.\d+\.\d+)"$', text, re.MULTILINE)
    if match is None:
        raise BundleError(f"no __version__ = \"X.Y.Z\" in {root}/generator/newstack/__init__.py")
    return match.group(1)


def git(*args: str, cwd: Path, env: dict[str, str] | None = None,
        stdin: str | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, input=stdin,
                          env={**os.environ, **FIXED, **(env or {})}, check=False)
    if done.returncode != 0:
        raise BundleError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def version_tags(root: Path) -> list[str]:
    """The vX.Y.Z tags of the checkout at `root`, oldest first ([] outside a git checkout)."""
    inside = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"],
                            capture_output=True, text=True, check=False)
    if inside.returncode != 0 or Path(inside.stdout.strip()).resolve() != root.resolve():
        return []
    tags = git("tag", "--list", "v*", cwd=root).split()
    return sorted((t for t in tags if VERSION_TAG.fullmatch(t)), key=version_key)


def build(root: Path, out: Path, version: str | None = None) -> list[str]:
    """Write the bundle of the checkout at `root` to `out`; returns its tags, oldest first."""
    version = version or read_version(root)
    tags = [t for t in version_tags(root) if version_key(t) <= version_key(f"v{version}")]
    with tempfile.TemporaryDirectory(prefix="newstack-bundle-") as tmp:
        repo = Path(tmp, "repo.git")
        git("init", "-q", "--bare", str(repo), cwd=Path(tmp))
        if tags:
            # Unpacked: a pack's deltas, reused by `bundle create`, depend on how the checkout
            # happens to be packed, and the bundle must be the same bytes from the same tags.
            git("-c", "fetch.unpackLimit=1000000000", "fetch", "-q", "--no-tags",
                str(root.resolve()),
                *(f"refs/tags/{t}:refs/sources/{t}" for t in tags), cwd=repo)
        parent: list[str] = []
        trees: dict[str, str] = {}
        for tag in tags:
            listed = git("ls-tree", f"refs/sources/{tag}^{{commit}}", "--", *TEMPLATE_FILES,
                         cwd=repo)
            if not listed:
                raise BundleError(f"tag {tag} holds no template ({', '.join(TEMPLATE_FILES)})")
            trees[tag] = git("mktree", cwd=repo, stdin=listed + "\n")
            parent = commit(repo, trees[tag], parent, tag)
        working = working_tree(repo, root)
        top = f"v{version}"
        if top in trees and trees[top] != working:
            raise BundleError(f"the template (copier.yml, templates/) differs from tag {top}, "
                              f"and the version is still {version}: open the next one "
                              "(python -m newstack.release --open X.Y.Z, see CHANGELOG.md)")
        if top not in trees:
            parent = commit(repo, working, parent, top)
        git("update-ref", "refs/heads/main", parent[1], cwd=repo)
        git("symbolic-ref", "HEAD", "refs/heads/main", cwd=repo)
        for ref in git("for-each-ref", "--format=%(refname)", "refs/sources", cwd=repo).split():
            git("update-ref", "-d", ref, cwd=repo)
        staged = Path(tmp, NAME)
        # One thread: the delta search of several threads packs the same objects differently
        # from run to run, and a wheel built from the sdist must carry the same bundle.
        git("-c", "pack.threads=1", "bundle", "create", "-q", str(staged), "--all", cwd=repo)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staged, out)
    return [*tags, *([] if top in trees else [top])]


def commit(repo: Path, tree: str, parent: list[str], tag: str) -> list[str]:
    """A commit of `tree` after `parent` (["-p", id] or []), tagged `tag`; the next parent."""
    made = git("commit-tree", tree, *parent, "-m", f"newstack {tag[1:]}: the template", cwd=repo)
    git("tag", "-f", tag, made, cwd=repo)
    return ["-p", made]


def working_tree(repo: Path, root: Path) -> str:
    """The tree of TEMPLATE_FILES as they are in `root` (git's ignore rules apply)."""
    index = {"GIT_INDEX_FILE": str(repo / "working.index"), "GIT_WORK_TREE": str(root.resolve())}
    git("--git-dir", str(repo), "add", "--", *TEMPLATE_FILES, cwd=root, env=index)
    return git("--git-dir", str(repo), "write-tree", cwd=root, env=index)


def tags_of(bundle: Path) -> list[str]:
    """The vX.Y.Z tags a bundle carries, oldest first."""
    heads = git("bundle", "list-heads", str(bundle), cwd=bundle.parent).splitlines()
    tags = [line.split()[-1].removeprefix("refs/tags/") for line in heads]
    return sorted((t for t in tags if VERSION_TAG.fullmatch(t)), key=version_key)
