"""Bad input, hostile destinations, failing disks and signals (issue 4).

Every attempt is settled by `settle()`, which snapshots the whole arena (the output directory,
what was already in it, and a sibling `outside/` directory) before and after, and requires:
no traceback; either the complete project at the destination (exit 0) or nothing new at all
(exit != 0, one line on stderr); and every pre-existing file, directory and link unchanged
byte for byte (content, mode, mtime, link target). It also counts, and the figures are printed
when the module ends (`pytest tests/test_bad_input.py -p no:xdist -s` shows them; set
NEWSTACK_FIGURES=path to have them appended there as JSON).
"""

from __future__ import annotations

import ast
import errno
import importlib.metadata
import io
import json
import os
import pathlib
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newstack import fast_copier, naming, render
from newstack.errors import UsageError
from newstack.stacks import (
    FRAMEWORKS,
    PROTOCOLS,
    SERVER_FOR_DEV,
    SERVER_PACKAGES,
    SERVERS,
    STACKS,
    TARGETS,
    WORKER_CLASS_FOR_GRANIAN,
    WORKER_CLASSES,
    Combination,
    find_stack,
    invalid_reason,
    worker_class_reason,
)

from .conftest import NEWSTACK, REPO, copier_copy, newstack, tree

# --------------------------------------------------------------------------------------------
# Counting and settling one attempt

FIGURES: Counter = Counter()  # tried, by kind; tracebacks; partial; changed; created; refused


@pytest.fixture(scope="module", autouse=True)
def _report_figures():
    yield
    attempts = sum(v for k, v in FIGURES.items() if k.startswith("tried:"))
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


def example_files(cid: str, package: str) -> set[str]:
    """The files a project of this combination has: those of examples/CID, package renamed."""
    files = set(tree(REPO / "examples" / cid))
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
    assert set(files) == example_files(cid, package), f"{project} is not complete"
    assert answers["project_name"] == name
    for rel, content in files.items():
        text = content.decode()
        if rel.endswith(".py"):
            ast.parse(text, filename=rel)
        if not rel.endswith(".html"):  # the apps' own templates use {{ }} on purpose
            assert "{{" not in text and "{%" not in text, rel


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

    saved_signals = {s: signal.getsignal(s) for s in render.SIGNALS}
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


# --------------------------------------------------------------------------------------------
# 1. Names

REFUSED_NAMES = [
    "", ".", "..", "../escape", "a/b", "a\\b", "./shop", "~", "~root",
    "my app", " shop", "shop ", "\tshop", "it's", 'say"hi"', "`id`", "$(touch pwned)",
    "${HOME}", "a;touch pwned", "a|b", "a&b", "a>b", "*", "?", "-x", "--help", "--debug", "x-",
    "_x",
    "a\nb", "shop\n", "\nshop", "shop\r", "{{ 7*7 }}", "{{7*7}}", "{% raw %}", "{%raw%}x",
    "{# c #}", "café", "naïve", "Ωmega", "名前", "ＡＢＣ", "x\u200bx", "x" * 65, "x" * 300,
    "class", "def", "import", "Import", "async", "lambda", "False-",
    "flask", "django", "fastapi", "gunicorn", "uvicorn", "test", "json", "email", "Flask",
    "JSON", "uvicorn-worker", "tests", "os", "click", "itsdangerous", "anyio", "pydantic-core",
    "1app", "123", "9-lives",
]
ACCEPTED_NAMES = {"Shop": "shop", "my-app": "my_app", "A1": "a1", "match": "match",
                  "x" * 64: "x" * 64, "a__b--c": "a__b__c", "None": "none", "True": "true",
                  "yes": "yes", "null": "null"}


# One of each kind, as a user types them (a subprocess each); all of them in-process below.
TYPED_NAMES = ["", ".", "..", "../escape", "a/b", "my app", "it's", "$(touch pwned)",
               "a;touch pwned", "a\nb", "shop\n", "{{ 7*7 }}", "{% raw %}", "café", "x" * 300,
               "class", "flask", "test", "json", "click", "1app", "-x", "--help"]


@pytest.mark.parametrize("name", TYPED_NAMES, ids=ascii)
def test_bad_names_are_refused_with_the_rule_and_nothing_is_written(arena, name):
    rule = naming.broken_rule(name)
    assert rule, name
    result, outcome = create(arena.parent, arena, name, "--defaults", kind="name")
    assert outcome == "refused" and result.returncode == 2
    assert result.stderr == f"newstack: error: {naming.message(rule, name)}\n"


@pytest.mark.parametrize("name", REFUSED_NAMES, ids=ascii)
def test_bad_names_are_refused_in_process_too(arena, name):
    rule = naming.broken_rule(name)
    assert rule, name
    before = snapshot(arena.parent)
    code, _, err = run_main("create", "--defaults", "--output-dir", str(arena), "--", name)
    assert settle(arena.parent, before, code, err, "name") == "refused"
    assert code == 2 and err == f"newstack: error: {naming.message(rule, name)}\n"


def test_an_absolute_path_as_the_name_is_refused(arena):
    name = str(arena.parent / "outside" / "abs")
    result, outcome = create(arena.parent, arena, name, "--defaults", kind="name")
    assert outcome == "refused" and result.returncode == 2
    assert naming.message(naming.broken_rule(name), name) in result.stderr


@pytest.mark.parametrize("name", ["a\0b", "\0", "shop\0", "a\0" + "x" * 300])
def test_a_nul_in_the_name_is_refused(arena, name):
    """argv cannot carry NUL (exec refuses it), so the CLI is driven in-process."""
    before = snapshot(arena.parent)
    code, _, err = run_main("create", "--defaults", "--output-dir", str(arena), "--", name)
    assert settle(arena.parent, before, code, err, "name") == "refused"
    assert code == 2 and one_line(err) and naming.message(naming.broken_rule(name), name) in err


@pytest.mark.parametrize("name, package", ACCEPTED_NAMES.items(), ids=lambda v: v[:12])
def test_good_names_give_a_complete_project_with_a_well_defined_package(arena, name, package):
    result, outcome = create(arena.parent, arena, name, "--framework", "flask", "--protocol",
                             "wsgi", "--target", "prod", kind="accepted", cid="flask-wsgi-prod")
    assert outcome == "created", result.stderr
    assert (arena / name / package / "__init__.py").is_file()
    assert f"gunicorn '{package}:create_app()'" in result.stdout


def test_names_are_refused_with_one_line_whatever_the_options(arena):
    """The name is checked before anything else is done with it."""
    result, outcome = create(arena.parent, arena, "{{ 7*7 }}", "--framework", "flask",
                             "--protocol", "asgi", kind="name")
    assert outcome == "refused" and result.returncode == 2


def installed_modules() -> tuple[set[str], set[str]]:
    """Top-level modules of what the stacks install, following dependencies (as installed
    here), and the distributions that are not installed."""
    from packaging.requirements import Requirement

    wanted = {r for s in STACKS for r in (*s.packages, *s.prod_packages, *s.test_packages,
                                          *(r for _, extra in s.extras for r in extra))}
    wanted |= {r for w in WORKER_CLASSES for r in w.packages}
    wanted |= {r for packages in SERVER_PACKAGES.values() for r in packages}
    todo, seen, missing, modules = [Requirement(r) for r in wanted], set(), set(), set()
    while todo:
        req = todo.pop()
        key = (req.name.lower().replace("_", "-"), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            missing.add(req.name)
            continue
        for spec in dist.requires or []:
            dep = Requirement(spec)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e})
                                         for e in (req.extras or {""})):
                todo.append(dep)
        top_level = dist.read_text("top_level.txt")
        if top_level:
            modules |= set(top_level.split())
        else:
            for file in dist.files or []:
                first = file.parts[0]
                if first.endswith((".dist-info", ".data")) or first == "..":
                    continue
                modules.add(first.split(".")[0] if len(file.parts) == 1 else first)
    return {m for m in modules if m.isidentifier() and not m.startswith("_")}, missing


def test_every_module_the_stacks_install_is_reserved():
    """A Flask project named `click` makes `flask run` import it instead of click: every
    top-level module the stacks bring, dependencies included, must be refused as a name."""
    modules, missing = installed_modules()
    if len(missing) > 5:
        pytest.skip(f"the stacks are not installed here: {sorted(missing)}")
    assert sorted(m for m in modules if m.lower() not in naming.RESERVED) == []
    assert all(name == name.lower() for name in naming.RESERVED)


# --------------------------------------------------------------------------------------------
# 2. Options

BAD_OPTIONS = [
    (["--framework", "rails", "--defaults"], "unknown framework 'rails'"),
    (["--framework", "", "--defaults"], "unknown framework ''"),
    (["--protocol", "", "--defaults"], "unknown protocol ''"),
    (["--target", "", "--defaults"], "unknown target ''"),
    (["--target", "prod", "--worker-class", "", "--defaults"], "unknown worker class ''"),
    (["--target", "dev", "--worker-class", "", "--defaults"], "prod target only"),
    (["--framework", "{{ 7*7 }}", "--defaults"], "unknown framework '{{ 7*7 }}'"),
    (["--framework", "Flask", "--defaults"], "unknown framework 'Flask'"),
    (["--protocol", "cgi", "--defaults"], "unknown protocol 'cgi'"),
    (["--protocol", "asgi\n", "--defaults"], "unknown protocol 'asgi\\n'"),
    (["--target", "staging", "--defaults"], "unknown target 'staging'"),
    (["--target", "$(id)", "--defaults"], "unknown target '$(id)'"),
    (["--target", "prod", "--worker-class", "uvicorn.workers.UvicornWorker", "--defaults"],
     "unknown worker class 'uvicorn.workers.UvicornWorker'"),
    (["--target", "prod", "--worker-class", "eventlet", "--defaults"], "unknown worker class"),
    (["--framework", "fastapi", "--protocol", "wsgi", "--target", "dev"],
     invalid_reason("fastapi", "wsgi")),
    (["--framework", "flask", "--protocol", "asgi", "--target", "prod"],
     invalid_reason("flask", "asgi")),
    (["--framework", "flask", "--target", "prod", "--worker-class", "asgi", "--defaults"],
     worker_class_reason("wsgi", "asgi")),
    (["--framework", "django", "--protocol", "asgi", "--target", "prod", "--worker-class",
      "gthread"], worker_class_reason("asgi", "gthread")),
    (["--target", "dev", "--worker-class", "sync", "--defaults"], "prod target only"),
    (["--framework", "flask", "--target", "dev", "--worker-class", "gthread", "--defaults"],
     "prod target only"),
    (["--target", "prod", "--server", "uvicorn", "--defaults"],
     "unknown server 'uvicorn'; choose one of: gunicorn, granian"),
    (["--target", "prod", "--server", "Granian", "--defaults"], "unknown server 'Granian'"),
    (["--target", "prod", "--server", "", "--defaults"], "unknown server ''"),
    (["--target", "dev", "--server", "granian", "--defaults"], SERVER_FOR_DEV),
    (["--framework", "django", "--protocol", "asgi", "--target", "prod", "--server", "granian",
      "--worker-class", "asgi"], WORKER_CLASS_FOR_GRANIAN),
    (["--framework", "django"], "missing --protocol, --target and no terminal to ask on"),
    (["--frame", "x"], "No such option: --frame"),
    (["--defaults=1"], "Option '--defaults' does not take a value"),
]


@pytest.mark.parametrize("args, reason", BAD_OPTIONS, ids=[r[:40] for _, r in BAD_OPTIONS])
def test_bad_options_are_refused_with_one_line_and_exit_2(arena, args, reason):
    before = snapshot(arena.parent)
    result = newstack("create", "--output-dir", str(arena), *args, "--", "svc", input="")
    assert settle(arena.parent, before, result.returncode, result.stderr, "option") == "refused"
    assert result.returncode == 2 and one_line(result.stderr), result.stderr
    assert reason in result.stderr


def test_usage_errors_from_the_parser_point_at_newstacks_help(arena):
    result = newstack("create", "--frame", "x", "svc")
    assert result.stderr.endswith("(see newstack create --help)\n"), result.stderr
    result = newstack("create")
    assert result.returncode == 2 and one_line(result.stderr)
    assert "Missing argument" in result.stderr
    result = newstack("create", "svc", "--framework", cwd=arena)
    assert result.returncode == 2 and one_line(result.stderr)
    assert "requires an argument" in result.stderr
    FIGURES["tried:option"] += 3


# The same answers given to plain `copier copy --data`: refused too, nothing written, and the
# same reason. copier's own CLI prints a traceback ending in the validator's message; a template
# cannot change that, so only the reason is compared.
COPIER_REFUSED = [
    ({"project_name": "../escape"}, naming.message("pattern", "x")),
    ({"project_name": "shop\n"}, naming.message("pattern", "x")),
    ({"project_name": "{{ 7*7 }}"}, naming.message("pattern", "x")),
    ({"project_name": "x" * 300}, naming.message("length", "x")),
    ({"project_name": "class"}, naming.message("keyword", "class")),
    ({"project_name": "flask"}, naming.message("reserved", "flask")),
    ({"project_name": "click"}, naming.message("reserved", "click")),
    ({"framework": "fastapi", "protocol": "wsgi"}, invalid_reason("fastapi", "wsgi")),
    ({"framework": "flask", "protocol": "asgi"}, invalid_reason("flask", "asgi")),
    ({"framework": "flask", "target": "prod", "worker_class": "asgi"},
     worker_class_reason("wsgi", "asgi")),
    # Unknown values: copier's own choice check answers ("Invalid choice for 'framework':
    # 'rails' is not in [...]"); the reason shared with newstack is the value and the question.
    ({"framework": "rails"}, ("framework", "'rails'")),
    ({"protocol": "cgi"}, ("protocol", "'cgi'")),
    ({"target": "staging"}, ("target", "'staging'")),
    ({"target": "prod", "worker_class": "eventlet"}, ("worker", "'eventlet'")),
    ({"framework": "flask", "target": "dev", "worker_class": "gthread"}, "prod target only"),
    ({"target": "prod", "server": "uvicorn"}, ("server", "'uvicorn'")),
    ({"framework": "flask", "target": "dev", "server": "granian"}, SERVER_FOR_DEV),
    ({"framework": "flask", "target": "prod", "server": "granian", "worker_class": "sync"},
     WORKER_CLASS_FOR_GRANIAN),
]


@pytest.mark.parametrize("data, reason", COPIER_REFUSED,
                         ids=[ascii(p.values[0] if hasattr(p, "values") else p[0])[:40]
                              for p in COPIER_REFUSED])
def test_plain_copier_copy_refuses_the_same_answers_for_the_same_reason(
        template_repo, arena, data, reason):
    name = data.get("project_name", "svc")
    options = [f"--{k.replace('_', '-')}={v}" for k, v in data.items() if k != "project_name"]
    ours = newstack("create", "--output-dir", str(arena), "--defaults", *options, "--", name)
    assert ours.returncode == 2 and one_line(ours.stderr), ours.stderr
    before = snapshot(arena.parent)
    theirs = copier_copy(template_repo, arena / "svc", **data)
    assert theirs.returncode != 0, "copier accepted it"
    after = snapshot(arena.parent)
    FIGURES["tried:copier"] += 1
    FIGURES["partial"] += after.keys() != before.keys()
    FIGURES["changed"] += sum(after.get(p) != v for p, v in before.items())
    assert after == before
    message = theirs.stderr.rstrip().splitlines()[-1]  # copier's last line: the ValueError
    for text in (reason,) if isinstance(reason, str) else reason:
        assert text in ours.stderr and text in message, (ours.stderr, message)


# --------------------------------------------------------------------------------------------
# 3. Destinations

def test_an_existing_non_empty_destination_is_refused_and_untouched(arena):
    (arena / "svc" / ".git").mkdir(parents=True)
    (arena / "svc" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (arena / "svc" / "pyproject.toml").write_text("[project]\nname = 'mine'\n")
    os.utime(arena / "svc" / "pyproject.toml", ns=(1, 1))
    result, outcome = create(arena.parent, arena, "svc", "--defaults", kind="destination")
    assert outcome == "refused" and result.returncode == 2 and "not empty" in result.stderr


@pytest.mark.parametrize("kind", ["file", "fifo", "link-to-dir", "link-to-empty-dir",
                                  "link-to-file", "dangling-link", "link-loop"])
def test_a_destination_that_is_not_a_plain_directory_is_refused(arena, kind):
    dest = arena / "svc"
    if kind == "file":
        dest.write_text("mine\n")
    elif kind == "fifo":
        os.mkfifo(dest)
    elif kind == "link-to-dir":
        dest.symlink_to("sub")
    elif kind == "link-to-empty-dir":
        (arena / "empty").mkdir()
        dest.symlink_to("empty")
    elif kind == "link-to-file":
        dest.symlink_to("notes.txt")
    elif kind == "dangling-link":
        dest.symlink_to(arena.parent / "nowhere")
    else:
        dest.symlink_to("svc")
    result, outcome = create(arena.parent, arena, "svc", "--defaults", kind="destination")
    assert outcome == "refused" and result.returncode == 2 and one_line(result.stderr)
    assert ("symbolic link" if "link" in kind else "not a directory") in result.stderr


@pytest.mark.parametrize("where", ["notes.txt", "notes.txt/sub", "link/sub", "dangling",
                                   "dangling/deeper"])
def test_an_output_dir_through_a_file_or_broken_link_is_refused(arena, where):
    (arena / "dangling").symlink_to("gone")
    before = snapshot(arena.parent)
    result = newstack("create", "--defaults", "--output-dir", str(arena / where), "svc")
    assert settle(arena.parent, before, result.returncode, result.stderr, "destination") \
        == "refused"
    assert result.returncode == 2 and one_line(result.stderr), result.stderr


def test_an_output_dir_that_is_a_symlink_to_a_directory_is_followed(arena):
    (arena / "elsewhere").mkdir()
    (arena / "here").symlink_to("elsewhere")
    before = snapshot(arena.parent)
    result = newstack("create", "--defaults", "--output-dir", str(arena / "here"), "svc")
    assert result.returncode == 0, result.stderr
    settle(arena.parent, before, result.returncode, result.stderr, "accepted",
           arena / "elsewhere" / "svc", cid="fastapi-asgi-dev")
    assert os.readlink(arena / "here") == "elsewhere"


def test_missing_output_dirs_are_made_and_removed_again_on_failure(arena, monkeypatch):
    """--output-dir a/b/c: made when the project is; gone again when it could not be."""
    before = snapshot(arena.parent)
    calls = []

    def fail(*args, **kwargs):
        calls.append(args)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkdtemp", fail)
    code, _, err = run_main("create", "--defaults", "--output-dir", str(arena / "a" / "b" / "c"),
                              "svc")
    assert calls and settle(arena.parent, before, code, err, "failure") == "refused"
    assert code == 1 and err.endswith("No space left on device (nothing was written)\n")


@contextmanager
def mounted(where: Path, options: str):
    """A tmpfs at `where` (root with CAP_SYS_ADMIN only), unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    made = shutil.which("mount") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True, text=True, check=False)
    if not made or made.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.mark.parametrize("below", ["", "new/deeper"])
def test_a_read_only_parent_fails_with_one_line_and_exit_1(arena, below):
    """Root ignores permission bits, so a read-only tmpfs is mounted when this runs as root;
    otherwise the directory is made read-only with chmod."""
    ro = arena / "ro"
    with mounted(ro, "ro,size=64k") as is_mount:
        if not is_mount:
            if os.geteuid() == 0:
                pytest.skip("root, and no tmpfs can be mounted: nothing here is read-only")
            ro.chmod(0o555)
        try:
            before = snapshot(arena.parent)
            result = newstack("create", "--defaults", "--output-dir", str(ro / below), "svc")
            assert settle(arena.parent, before, result.returncode, result.stderr,
                          "destination") == "refused"
            assert result.returncode == 1 and one_line(result.stderr), result.stderr
            assert "Read-only file system" in result.stderr or "Permission denied" in result.stderr
        finally:
            if not is_mount:
                ro.chmod(0o755)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="no /proc")
@pytest.mark.parametrize("where", ["/proc/newstack-test", "/proc/self/newstack-test"])
def test_an_unwritable_system_directory_fails_with_one_line_and_exit_1(where):
    result = newstack("create", "--defaults", "--output-dir", where, "svc")
    FIGURES["tried:destination"] += 1
    assert result.returncode == 1 and one_line(result.stderr), result.stderr
    assert not Path(where).exists()


@pytest.mark.parametrize("size", ["8k", "24k", "48k", "64k", "1m"])
def test_a_disk_that_fills_up_leaves_nothing_or_the_whole_project(arena, size):
    """A real full disk: a tmpfs of `size` (root only). The django-asgi-prod project takes
    about 80k of tmpfs pages: the small ones fill up part-way, 1m fits."""
    with mounted(arena / "disk", f"size={size}") as is_mount:
        if not is_mount:
            pytest.skip("cannot mount a tmpfs here (needs root); see the simulated failures")
        (arena / "disk" / "mine.txt").write_text("mine\n")
        result, outcome = create(arena.parent, arena / "disk", "svc", "--framework", "django",
                                 "--protocol", "asgi", "--target", "prod", kind="failure",
                                 cid="django-asgi-prod")
        if size == "1m":
            assert outcome == "created"
        else:
            assert outcome == "refused" and result.returncode == 1 and one_line(result.stderr)
            assert "No space left on device (nothing was written)" in result.stderr


@pytest.mark.parametrize("inodes", [3, 8, 14])
def test_running_out_of_inodes_leaves_nothing(arena, inodes):
    """fastapi-asgi-dev needs 16 inodes: the staging directory, the project, 14 entries."""
    with mounted(arena / "disk", f"nr_inodes={inodes}") as is_mount:
        if not is_mount:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        result, outcome = create(arena.parent, arena / "disk", "svc", "--defaults",
                                 kind="failure")
        assert outcome == "refused" and result.returncode == 1 and one_line(result.stderr)


# Writes failing part-way, simulated in-process: copier writes each file with
# Path.write_bytes; the Nth write writes half its bytes and then fails with ENOSPC.
def count_writes(args: list[str], tmp: Path) -> int:
    calls = []
    real = pathlib.Path.write_bytes

    def counting(self, data):
        calls.append(self)
        return real(self, data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pathlib.Path, "write_bytes", counting)
        code, _, err = run_main("create", "--output-dir", str(tmp), *args, "svc")
    assert code == 0, err
    return len(calls)


PROD_ARGS = ["--framework", "fastapi", "--protocol", "asgi", "--target", "prod"]


def test_a_write_failing_part_way_leaves_nothing_at_every_point(arena, tmp_path, monkeypatch):
    total = count_writes(PROD_ARGS, tmp_path / "count")
    assert total > 10
    real = pathlib.Path.write_bytes
    for fail_at in range(total):
        calls = []

        def failing(self, data, fail_at=fail_at, calls=calls):
            calls.append(self)
            if len(calls) - 1 == fail_at:
                real(self, data[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device", str(self))
            return real(self, data)

        monkeypatch.setattr(pathlib.Path, "write_bytes", failing)
        before = snapshot(arena.parent)
        code, _, err = run_main("create", "--output-dir", str(arena), *PROD_ARGS, "svc")
        assert settle(arena.parent, before, code, err, "failure") == "refused"
        assert code == 1 and one_line(err), err
        assert err == (f"newstack: error: could not write {arena / 'svc'}: No space left on "
                       "device (nothing was written)\n")


@pytest.mark.parametrize("where", ["mkdtemp", "record_source", "replace", "makedirs"])
def test_failures_around_the_rendering_leave_nothing(arena, monkeypatch, where):
    """The steps newstack takes itself: making the staging directory, recording the source,
    the final move, making a missing --output-dir."""
    def fail(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    if where == "mkdtemp":
        monkeypatch.setattr(tempfile, "mkdtemp", fail)
    elif where == "record_source":
        monkeypatch.setattr(pathlib.Path, "write_text", fail)
    elif where == "replace":
        monkeypatch.setattr(os, "replace", fail)
    else:
        real = pathlib.Path.mkdir

        def mkdir(self, *args, **kwargs):
            return fail() if self.name == "c" else real(self, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    output = arena / "a" / "b" / "c" if where == "makedirs" else arena
    before = snapshot(arena.parent)
    code, _, err = run_main("create", "--output-dir", str(output), "--defaults", "svc")
    assert settle(arena.parent, before, code, err, "failure") == "refused"
    assert code == 1 and err.endswith(": Input/output error (nothing was written)\n"), err


def test_a_destination_that_appears_while_rendering_is_not_replaced(arena, monkeypatch):
    real = render.record_source

    def meanwhile(project):
        real(project)
        (arena / "svc").mkdir()
        (arena / "svc" / "theirs.txt").write_text("theirs\n")

    monkeypatch.setattr(render, "record_source", meanwhile)
    code, _, err = run_main("create", "--output-dir", str(arena), "--defaults", "svc")
    assert code == 2 and one_line(err) and "not empty" in err
    assert sorted(p.name for p in arena.iterdir()) == sorted(
        ["sub", "notes.txt", "link", "other-project", "svc"])
    assert (arena / "svc" / "theirs.txt").read_text() == "theirs\n"
    FIGURES["tried:destination"] += 1


# --------------------------------------------------------------------------------------------
# Signals

def signal_during(monkeypatch, target, attr, signum, before=True):
    """Make `target.attr` send `signum` to this process as it runs (before or after the real
    call), as a signal arriving at that very moment would."""
    real = getattr(target, attr)

    def sending(*args, **kwargs):
        if before:
            os.kill(os.getpid(), signum)
        result = real(*args, **kwargs)
        if not before:
            os.kill(os.getpid(), signum)
        return result

    monkeypatch.setattr(target, attr, sending)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("moment", ["rendering", "mkdtemp", "record_source", "cleanup"])
def test_a_signal_before_the_move_leaves_nothing(arena, monkeypatch, signum, moment):
    """Deterministic moments: while copier writes a file, while the staging directory is
    made, while the source is recorded, and half-way through removing the staging directory
    after a failure (deferred until it is gone)."""
    if moment == "rendering":
        signal_during(monkeypatch, pathlib.Path, "write_bytes", signum)
    elif moment == "mkdtemp":
        signal_during(monkeypatch, tempfile, "mkdtemp", signum, before=False)
    elif moment == "record_source":
        signal_during(monkeypatch, render, "record_source", signum)
    else:
        monkeypatch.setattr(render, "record_source", lambda project: (_ for _ in ()).throw(
            OSError(errno.EIO, "Input/output error")))
        real_rmtree = shutil.rmtree

        def rmtree(path, *args, **kwargs):  # a signal after the first file is removed
            first = next(Path(path).rglob("*.py"), None) if ".svc.newstack-" in str(path) else None
            if first:
                first.unlink()
                os.kill(os.getpid(), signum)
            return real_rmtree(path, *args, **kwargs)

        monkeypatch.setattr(shutil, "rmtree", rmtree)
    before = snapshot(arena.parent)
    code, _, err = run_main("create", "--output-dir", str(arena), "--defaults", "svc")
    assert settle(arena.parent, before, code, err, "signal") == "refused"
    name = signal.Signals(signum).name
    assert code == 128 + signum
    assert err == f"newstack: interrupted by {name}; nothing was written\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("before", [True, False])
def test_a_signal_during_the_move_keeps_the_complete_project(arena, monkeypatch, signum,
                                                              before):
    signal_during(monkeypatch, os, "replace", signum, before=before)
    snap = snapshot(arena.parent)
    code, _, err = run_main("create", "--output-dir", str(arena), "--defaults", "svc")
    assert code == 128 + signum
    name = signal.Signals(signum).name
    assert err == f"newstack: interrupted by {name}; {arena / 'svc'} is complete\n"
    assert settle(arena.parent, snap, 0, err, "signal", arena / "svc", "svc") == "created"


def losing_the_interrupt(signum):
    """What CPython's import machinery can do when a signal handler raises mid-import: the
    handler's exception is replaced by another one, with no trace of it (seen: TypeError
    'expected a message argument', from PyErr_SetImportError)."""
    def lossy(*args, **kwargs):
        lost = False
        try:
            os.kill(os.getpid(), signum)
            time.sleep(0.01)
        except BaseException:  # noqa: BLE001 - the Interrupted the handler raised
            lost = True
        if lost:
            raise TypeError("expected a message argument")
    return lossy


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("when", ["rendering", "after"])
def test_an_interrupt_replaced_by_another_error_is_still_an_interrupt(arena, monkeypatch,
                                                                      signum, when):
    if when == "rendering":
        real = pathlib.Path.write_bytes
        lossy = losing_the_interrupt(signum)
        calls = []

        def write_bytes(self, data):
            calls.append(self)
            if len(calls) == 3:
                lossy()
            return real(self, data)

        monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
    else:  # while the next steps are printed, once the project is in place
        monkeypatch.setattr(render, "read_answers", losing_the_interrupt(signum))
    before = snapshot(arena.parent)
    code, _, err = run_main("create", "--output-dir", str(arena), "--defaults", "svc")
    name = signal.Signals(signum).name
    assert code == 128 + signum
    if when == "rendering":
        assert err == f"newstack: interrupted by {name}; nothing was written\n"
        assert settle(arena.parent, before, code, err, "signal") == "refused"
    else:
        assert err == f"newstack: interrupted by {name}\n"
        assert settle(arena.parent, before, 0, err, "signal", arena / "svc") == "created"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_template_copy_is_removed_leaves_no_copy(arena, monkeypatch, signum):
    """Where copier cannot be told that newstack's git checkout is a plain directory (see
    fast_copier), newstack renders from a copy of its template in the temporary directory: an
    interrupt while that copy is removed must not leave half of it there either."""
    monkeypatch.setattr(fast_copier, "renders_in_place", lambda: False)
    tmp = arena.parent / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        if Path(path).name.startswith("newstack-template-"):
            next(Path(path).rglob("*.jinja")).unlink()
            os.kill(os.getpid(), signum)
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    before = snapshot(arena.parent)
    code, _, err = run_main("create", "--output-dir", str(arena), "--defaults", "svc")
    assert code == 128 + signum
    assert [p.name for p in tmp.iterdir() if p.name.startswith("newstack-")] == []
    assert settle(arena.parent, before, code, err, "signal") == "refused"


DELAYS = [0.0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_at_any_moment_leaves_the_whole_project_or_nothing(arena, signum):
    """`newstack create` as a subprocess (its own process group, as on a terminal), the
    signal sent to the group at several delays after the staging directory appears: before
    the rendering, during it, during the move and after. Every time: the complete project or
    nothing, and no staging directory left."""
    outcomes = Counter()
    for delay in DELAYS:
        shutil.rmtree(arena / "svc", ignore_errors=True)
        before = snapshot(arena.parent)
        process = subprocess.Popen(
            [*NEWSTACK, "create", "--output-dir", str(arena), "--framework", "django",
             "--protocol", "asgi", "--target", "prod", "svc"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        began = time.monotonic()
        while not any(arena.glob(".svc.newstack-*")) and process.poll() is None:
            assert time.monotonic() - began < 60
            time.sleep(0.002)
        time.sleep(delay)
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
        _, err = process.communicate(timeout=60)
        created = (arena / "svc").exists()  # then settle() checks that it is complete
        outcome = settle(arena.parent, before, 0 if created else process.returncode, err,
                         "signal", arena / "svc", "svc", "django-asgi-prod")
        outcomes[outcome] += 1
        if outcome == "refused":
            assert process.returncode == 128 + signum and one_line(err), (delay, err)
            assert "nothing was written" in err
        else:  # the signal came after the move: the project is whole, whatever the exit says
            assert process.returncode in (0, 128 + signum, -signum), (delay, err)
    assert outcomes["refused"] >= 1  # the sweep did interrupt generation mid-way


SLOW_TYPER_IMPORT = """
import os, sys, time

class SlowTyper:  # announces the import of typer on a pipe, then takes its time
    def find_spec(self, name, path=None, target=None):
        if name == "typer":
            os.write(int(os.environ["ANNOUNCE_FD"]), b"importing typer\\n")
            time.sleep(5)
        return None

sys.meta_path.insert(0, SlowTyper())
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_python_imports_the_cli_is_one_line(arena, tmp_path, signum):
    """Ctrl-C right after pressing Enter lands while Python still imports the CLI, before
    cli.main's handlers exist. The entry point's own handler answers then: one line, 128+N."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SLOW_TYPER_IMPORT)
    read_end, write_end = os.pipe()
    before = snapshot(arena.parent)
    process = subprocess.Popen(
        [*NEWSTACK, "create", "--output-dir", str(arena), "--defaults", "svc"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, pass_fds=(write_end,),
        env={**os.environ, "ANNOUNCE_FD": str(write_end), "PYTHONPATH": os.pathsep.join(
            [str(hooks), *filter(None, [os.environ.get("PYTHONPATH")])])})
    try:
        os.close(write_end)
        with os.fdopen(read_end, "rb") as announced:
            assert announced.readline() == b"importing typer\n"
        process.send_signal(signum)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum
    assert err == f"newstack: interrupted by {name}; nothing was written\n"
    assert settle(arena.parent, before, process.returncode, err, "signal") == "refused"


@pytest.mark.parametrize("how", ["ctrl-c", "SIGTERM"])
def test_interrupted_at_a_question_on_a_terminal(arena, how):
    """On a terminal copier asks; Ctrl-C there is a key, not a signal (the prompt reads the
    terminal raw), and SIGTERM can come from anywhere. Either way: one line, nothing written."""
    import pty
    import select

    before = snapshot(arena.parent)
    pid, fd = pty.fork()
    if pid == 0:  # the child: newstack, to be asked everything
        os.execv(sys.executable, [*NEWSTACK, "create", "--output-dir", str(arena), "svc"])
    screen, sent = b"", False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    screen += os.read(fd, 65536)
                except OSError:  # the child closed the terminal: it is done
                    break
            if not sent and b"Web framework" in screen:
                time.sleep(0.2)
                if how == "ctrl-c":
                    os.write(fd, b"\x03")
                else:
                    os.kill(pid, signal.SIGTERM)
                sent = True
    finally:
        _, status = os.waitpid(pid, 0)
    text = screen.decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    assert sent, text[-2000:]
    name = "SIGINT" if how == "ctrl-c" else "SIGTERM"
    assert code == (130 if how == "ctrl-c" else 143), text[-2000:]
    assert text.rstrip().endswith(f"newstack: interrupted by {name}; nothing was written")
    assert settle(arena.parent, before, code, "" if "Traceback" not in text else text,
                  "signal") == "refused"


# --------------------------------------------------------------------------------------------
# 4. Errors: one line, exit 2 for usage and 1 for the environment, tracebacks with --debug

def test_debug_shows_the_traceback(arena):
    result = newstack("--debug", "create", "--defaults", "--output-dir", str(arena), "1app")
    assert result.returncode == 1 and "Traceback" in result.stderr
    assert "ProjectNameError: " + naming.message("pattern", "1app") in result.stderr
    FIGURES["tried:name"] += 1


@pytest.mark.parametrize("args", [["--", "--debug"], ["--framework", "--debug", "svc"]],
                         ids=["name", "value"])
def test_debug_as_a_name_or_a_value_is_not_the_debug_option(arena, args):
    before = snapshot(arena.parent)
    result = newstack("create", "--defaults", "--output-dir", str(arena), *args)
    assert settle(arena.parent, before, result.returncode, result.stderr, "option") == "refused"
    assert result.returncode == 2 and one_line(result.stderr), result.stderr


# --------------------------------------------------------------------------------------------
# 5. The property: generated names and option combinations

# Option values that do not start with '-' (click would read those as options: refused with
# one line too, but not the refusal predicted below).
JUNK = st.text(st.characters(codec="utf-8"), max_size=12).filter(lambda v: v[:1] != "-")
GOOD = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,14}[A-Za-z0-9]", fullmatch=True)
NAMES = st.one_of(  # about half of them usable
    GOOD, GOOD, GOOD,
    st.sampled_from(REFUSED_NAMES + list(ACCEPTED_NAMES) + ["a\0b", "shop"]),
    st.sampled_from(sorted(naming.RESERVED)).map(lambda n: n.replace("_", "-").title()),
    st.text(st.characters(codec="utf-8"), max_size=70),
)
WORKERS = [w.name for w in WORKER_CLASSES]


@st.composite
def attempts(draw):
    name = draw(NAMES)
    given = {}
    for option, values in (("framework", FRAMEWORKS), ("protocol", PROTOCOLS),
                           ("target", TARGETS), ("server", SERVERS), ("worker_class", WORKERS)):
        valid = st.sampled_from(values)
        rare = option in ("server", "worker_class")  # given when they cannot apply: refused
        given[option] = draw(st.one_of(st.none(), st.none(), *[st.none()] * rare,
                                       valid, *[valid] * (not rare), JUNK))
    defaults = draw(st.sampled_from([True, True, True, False]))
    place = draw(st.sampled_from(["new", "new", "new", "empty", "deeper", "non-empty", "file",
                                  "link"]))
    return name, given, defaults, place


def should_be_refused(name: str, given: dict, defaults: bool, place: str) -> bool:
    """The model: what `newstack create` must refuse."""
    if not defaults and None in (given["framework"], given["protocol"], given["target"]):
        return True  # no terminal to ask on
    try:
        render.Answers.complete(name, **given, fill_defaults=True).validate()
    except UsageError:
        return True
    return place in ("non-empty", "file", "link")


@settings(max_examples=int(os.environ.get("NEWSTACK_EXAMPLES", "50")), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(attempt=attempts())
def test_property_complete_project_or_nothing_and_never_a_traceback(tmp_path, attempt):
    name, given, defaults, place = attempt
    options = [arg for option, value in given.items() if value is not None
               for arg in (f"--{option.replace('_', '-')}", value)]
    options += ["--defaults"] if defaults else []
    refuse = should_be_refused(name, given, defaults, place)
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    out = root / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    usable = naming.broken_rule(name) is None
    if usable and place == "empty":
        (out / name).mkdir()
    elif usable and place == "non-empty":
        (out / name).mkdir()
        (out / name / "keep.txt").write_text("keep\n")
    elif usable and place == "file":
        (out / name).write_text("a file\n")
    elif usable and place == "link":
        (out / name).symlink_to(out / "notes.txt")
    output = out / "x" / "y" if place == "deeper" else out
    before = snapshot(root)
    code, _, stderr = run_main("create", "--output-dir", str(output), *options, "--", name)
    outcome = settle(root, before, code, stderr, "property" if refuse else "accepted",
                     output / name, name if usable else None)
    assert outcome == ("refused" if refuse else "created"), (code, stderr)
    if refuse:
        assert code == 2 and one_line(stderr), stderr  # all of these are usage errors
        rule = naming.broken_rule(name)
        if rule and defaults:
            assert stderr == f"newstack: error: {naming.message(rule, name)}\n"
    shutil.rmtree(root)
