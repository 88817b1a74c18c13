"""The release step: `python -m newstack.release X.Y.Z`, in a clean checkout of main.

It sets __version__, dates CHANGELOG.md's "(unreleased)" entry as X.Y.Z, regenerates what
records the version (examples/), commits "Release X.Y.Z", tags it vX.Y.Z and builds the wheel
into dist/, whose bundle (newstack/bundle.py) then carries every vX.Y.Z tag of the checkout,
this one included. Pushing and uploading are left to the maintainer (it prints the commands).

`python -m newstack.release --open X.Y.Z` opens the next version after a release, with the
first change to what a project contains: __version__ and a "## X.Y.Z (unreleased)" entry
(nothing committed).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from . import bundle

CHECKOUT = Path(__file__).resolve().parents[2]
UNRELEASED = re.compile(r"^## (\d+\.\d+\.\d+) \(unreleased\)$", re.MULTILINE)
ENTRY = re.compile(r"^## (\d+\.\d+\.\d+)\b.*$", re.MULTILINE)


class ReleaseError(Exception):
    pass


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def check(root: Path, version: str) -> str:
    """Refuse what would make a wrong release, before anything changes; returns CHANGELOG.md
    with the unreleased entry dated as `version`."""
    check_newer(root, version)
    if not (root / ".git").exists():
        raise ReleaseError(f"{root} is not a git checkout")
    if git(root, "status", "--porcelain"):
        raise ReleaseError(f"{root} has uncommitted changes: commit or stash them first")
    changelog = (root / "CHANGELOG.md").read_text()
    top = ENTRY.search(changelog)
    if top is None or not UNRELEASED.fullmatch(top.group(0)):
        raise ReleaseError("CHANGELOG.md's top entry is not '## X.Y.Z (unreleased)': add it, "
                           "with what changed since the last release")
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    return changelog[:top.start()] + f"## {version} ({today})" + changelog[top.end():]


def check_newer(root: Path, version: str) -> None:
    if not bundle.VERSION_TAG.fullmatch(f"v{version}"):
        raise ReleaseError(f"version {version!r}: expected X.Y.Z, e.g. 0.2.0")
    later = [t for t in bundle.version_tags(root)
             if bundle.version_key(t) >= bundle.version_key(f"v{version}")]
    if later:
        raise ReleaseError(f"v{version} is not newer than the tag {later[-1]}")


def set_version(root: Path, version: str, changelog: str) -> None:
    """Write `version` and `changelog`, and regenerate what records the version (examples/)."""
    init = root / "generator" / "newstack" / "__init__.py"
    init.write_text(re.sub(r'^__version__ = ".*"$', f'__version__ = "{version}"',
                           init.read_text(), count=1, flags=re.MULTILINE))
    (root / "CHANGELOG.md").write_text(changelog)
    env = {**os.environ, "PYTHONPATH": str(root / "generator")}
    subprocess.run([sys.executable, "-m", "newstack.sync"], cwd=root, env=env, check=True)


def open_version(root: Path, version: str) -> None:
    """Open `version` for the changes after a release (see the module's docstring)."""
    check_newer(root, version)
    changelog = (root / "CHANGELOG.md").read_text()
    top = ENTRY.search(changelog)
    if top is not None and UNRELEASED.fullmatch(top.group(0)):
        raise ReleaseError(f"CHANGELOG.md already opens with '{top.group(0)}'")
    at = top.start() if top else len(changelog)
    set_version(root, version, f"{changelog[:at]}## {version} (unreleased)\n\n{changelog[at:]}")
    print(f"newstack {version} opened: add what changed under '## {version} (unreleased)' in "
          "CHANGELOG.md, and commit")


def release(root: Path, version: str) -> Path:
    """Release `version` from the checkout at `root`; returns the wheel."""
    set_version(root, version, check(root, version))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"Release {version}")
    git(root, "tag", "-a", f"v{version}", "-m", f"newstack {version}")
    dist = root / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(dist), str(root)], capture_output=True, text=True, check=False)
    if built.returncode != 0:
        raise ReleaseError(f"v{version} is tagged, but the wheel failed to build: "
                           f"{built.stderr.strip()}")
    wheel = dist / f"newstack-{version}-py3-none-any.whl"
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as archive:
        carried = bundle.tags_of(Path(archive.extract(f"newstack/template/{bundle.NAME}", tmp)))
    if f"v{version}" not in carried:
        raise ReleaseError(f"the wheel's bundle lacks v{version} ({carried})")
    print(f"newstack {version}: commit {git(root, 'rev-parse', '--short', 'HEAD')}, tag "
          f"v{version}, {wheel.relative_to(root)} (template versions: {', '.join(carried)})\n"
          f"publish: git push origin HEAD v{version} && python -m twine upload "
          f"{wheel.relative_to(root)}")
    return wheel


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m newstack.release", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version", help="X.Y.Z, newer than every vX.Y.Z tag")
    parser.add_argument("--open", action="store_true",
                        help="open X.Y.Z for the next changes instead of releasing")
    arguments = parser.parse_args()
    try:
        if arguments.open:
            open_version(CHECKOUT, arguments.version)
        else:
            release(CHECKOUT, arguments.version)
    except ReleaseError as error:
        sys.exit(f"newstack.release: {error}")


if __name__ == "__main__":
    main()
