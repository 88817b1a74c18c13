"""Bad input, hostile destinations, failing disks and signals (issue 4): what their tests share
(tests/test_naming.py, test_cli.py, test_copier_yml.py, test_render.py; the `arena` fixture is in
conftest.py).

Every attempt is settled by `settle()`, which snapshots the whole arena (the output directory,
what was already in it, and a sibling `outside/` directory) before and after, and requires:
no traceback; either the complete project at the destination (exit 0) or nothing new at all
(exit != 0, one line on stderr); and every pre-existing file, directory and link unchanged
byte for byte (content, mode, mtime, link target). It also counts, and the figures are printed
when the test process ends (`python -m pytest -n 0 -s tests/test_naming.py tests/test_cli.py
tests/test_copier_yml.py tests/test_render.py` shows them; set NEWSTACK_FIGURES=path to have
them appended there as JSON).
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import signal
import stat
import sys
import traceback
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from newstack import interrupts, naming
from newstack.stacks import APPLIES, Combination, find_stack

from .conftest import REPO, newstack, tree

SERVER_FOR_DEV = APPLIES[0].refusal("dev", None)
WORKER_CLASS_FOR_GRANIAN = APPLIES[1].refusal("prod", "granian")

# --------------------------------------------------------------------------------------------
# Counting and settling one attempt

FIGURES: Counter = Counter()  # tried, by kind; tracebacks; partial; changed; created; refused


def report_figures() -> None:
    """Print the figures counted so far (and append them to $NEWSTACK_FIGURES), if any."""
    attempts = sum(v for k, v in FIGURES.items() if k.startswith("tried:"))
    if not attempts:
        return
    figures = {
        "attempts": attempts,
        "bad inputs tried": attempts - FIGURES["tried:accepted"],
        "by kind": {k[6:]: v for k, v in sorted(FIGURES.items()) if k.startswith("tried:")},
        "tracebacks": FIGURES["tracebacks"],
        "partial directories left": FIGURES["partial"],
        "pre-existing files changed": FIGURES["changed"],
        "projects created (complete)": FIGURES["created"],
        "refused (nothing written)": FIGURES["refused"],
    }
    print("\nissue 4 figures:", json.dumps(figures))
    if os.environ.get("NEWSTACK_FIGURES"):
        with open(os.environ["NEWSTACK_FIGURES"], "a") as out:
            out.write(json.dumps(figures) + "\n")


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root (not root itself): kind, mode, mtime and bytes or link target."""
    entries = {}
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow symlinks
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            info = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                entries[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                entries[rel] = ("dir", info.st_mode)
            elif stat.S_ISREG(info.st_mode):
                entries[rel] = ("file", info.st_mode, info.st_mtime_ns, path.read_bytes())
            else:  # a FIFO or a socket: never read (a FIFO would block)
                entries[rel] = ("other", info.st_mode, info.st_mtime_ns)
    return entries

def one_line(stderr: str) -> bool:
    return stderr.startswith("newstack: ") and stderr.count("\n") == 1 and stderr.endswith("\n")


def settle(root: Path, before: dict, code: int | None, stderr: str, kind: str,
           dest: Path | None = None, name: str | None = None, cid: str | None = None) -> str:
    """Count and check one attempt against the snapshot `before` of `root`. Returns "created"
    (dest holds a complete project) or "refused" (nothing new under root)."""
    after = snapshot(root)
    FIGURES[f"tried:{kind}"] += 1
    dest_rel = str(dest.relative_to(root)) if dest is not None and code == 0 else None
    new = [p for p in after if p not in before]
    # Once created, the project (and any --output-dir made for it) is new; nothing else may be.
    partial = [p for p in new if dest_rel is None or not (
        p == dest_rel or p.startswith(dest_rel + os.sep) or dest_rel.startswith(p + os.sep))]
    changed = [p for p in before if p != dest_rel and after.get(p) != before[p]]
    FIGURES["tracebacks"] += "Traceback" in stderr
    FIGURES["partial"] += bool(partial)
    FIGURES["changed"] += len(changed)
    assert "Traceback" not in stderr, stderr
    assert partial == [], f"left behind: {partial[:10]} (exit {code}, {stderr!r})"
    assert changed == [], f"changed: {changed[:10]}"
    if code == 0:
        assert dest is not None
        assert_complete(dest, name or dest.name, cid)
        FIGURES["created"] += 1
        return "created"
    assert code not in (None, 0)
    assert new == []
    FIGURES["refused"] += 1
    return "refused"


def example_files(cid: str, package: str, app: str = "example") -> set[str]:
    """The files a project of this combination has: those of examples/CID, package renamed, and
    the systemd unit named after the app (copier.yml's app_name)."""
    files = set(tree(REPO / "examples" / cid)) - {"deploy/example.service"}
    if (REPO / "examples" / cid / "deploy" / "example.service").exists():
        files.add(f"deploy/{app}.service")
    return {f"{package}/{f[len('example/'):]}" if f.startswith("example/") else f for f in files}


def assert_complete(project: Path, name: str, cid: str | None) -> None:
    """The render checks, cheap enough to run for every created project: every file present,
    every .py file compiles, nothing left unrendered, the answers recorded."""
    import yaml

    package = naming.check(name)
    files = tree(project)
    answers = yaml.safe_load(files[".copier-answers.yml"])
    if cid is None:
        stack = find_stack(answers["framework"], answers["protocol"])
        cid = Combination(stack, answers["target"], answers.get("server")).id
    app = name.lower().replace("_", "-")[:63].strip("-")  # copier.yml's app_name
    assert set(files) == example_files(cid, package, app), f"{project} is not complete"
    assert answers["project_name"] == name
    for rel, content in files.items():
        text = content.decode()
        if rel.endswith(".py"):
            ast.parse(text, filename=rel)
        assert not unrendered(rel, text), rel


def unrendered(rel: str, text: str) -> bool:
    """Whether the file `rel` holds Jinja that copier left unrendered."""
    if rel.endswith(".html"):  # the apps' own templates use {{ }} on purpose
        return False
    if rel.startswith(".github/workflows/"):  # GitHub's own expressions: ${{ github.ref }}
        text = re.sub(r"\$\{\{ [\w.]+ \}\}", "", text)
    return "{{" in text or "{%" in text


def create(root: Path, out: Path, name: str, *options: str, kind: str, cid: str | None = None,
           **kwargs):
    """`newstack create` as a subprocess, options first and the name after `--` (so that names
    starting with '-' are names), settled against a snapshot of root."""
    before = snapshot(root)
    result = newstack("create", "--output-dir", str(out), *options, "--", name, cwd=out,
                      **kwargs)
    outcome = settle(root, before, result.returncode, result.stderr, kind, out / name, name, cid)
    return result, outcome


def run_main(*args: str) -> tuple[int, str, str]:
    """`newstack ARGS` in this process: exit code, stdout, stderr. Anything escaping main()
    is recorded as the traceback a user would see. Signal handlers and sys state restored."""
    from newstack import cli

    saved_signals = {s: signal.getsignal(s) for s in interrupts.SIGNALS}
    saved = sys.argv, sys.stdin
    out, err = io.StringIO(), io.StringIO()
    sys.argv, sys.stdin = ["newstack", *args], io.StringIO("")
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                cli.main()
                code = 0
            except SystemExit as exit:
                code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
            except BaseException:  # noqa: BLE001 - what the user would see
                err.write(traceback.format_exc())
                code = 1
    finally:
        sys.argv, sys.stdin = saved
        for signum, handler in saved_signals.items():
            signal.signal(signum, handler)
    return code, out.getvalue(), err.getvalue()
