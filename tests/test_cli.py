"""`newstack` as a user runs it: output, refusals with one line and an exit code, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newstack import naming, render
from newstack.errors import UsageError
from newstack.stacks import (
    COMBINATIONS,
    FRAMEWORKS,
    INVALID,
    PROTOCOLS,
    SERVERS,
    TARGETS,
    WORKER_CLASSES,
    invalid_reason,
    worker_class_reason,
)

from .bad_input import (
    FIGURES,
    SERVER_FOR_DEV,
    WORKER_CLASS_FOR_GRANIAN,
    one_line,
    run_main,
    settle,
    snapshot,
)
from .conftest import NEWSTACK, newstack, tree
from .test_naming import ACCEPTED_NAMES, REFUSED_NAMES


def test_version():
    from newstack import __version__

    result = newstack("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"newstack {__version__}"


def test_create_prints_the_commands_it_wired(tmp_path):
    result = newstack("create", "my-app", "--framework", "flask", "--protocol", "wsgi",
                      "--target", "prod", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "gunicorn 'my_app:create_app()' -c gunicorn.conf.py" in result.stdout
    assert "flask --app my_app run --debug" in result.stdout
    assert (tmp_path / "my-app" / "my_app" / "__init__.py").is_file()
    assert 'name = "my-app"' in (tmp_path / "my-app" / "pyproject.toml").read_text()


def test_create_with_granian_prints_its_command_and_writes_its_launcher(tmp_path):
    result = newstack("create", "api", "--framework", "django", "--protocol", "asgi",
                      "--target", "prod", "--server", "granian", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "python -m api.serve  # production (Granian, asginl)" in result.stdout
    project = tmp_path / "api"
    assert (project / "api" / "serve.py").is_file() and not (project / "gunicorn.conf.py").exists()
    assert "server: granian" in (project / ".copier-answers.yml").read_text()


def test_defaults_without_a_terminal(tmp_path):
    result = newstack("create", "svc", "--defaults", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    answers = (tmp_path / "svc" / ".copier-answers.yml").read_text()
    assert "framework: fastapi" in answers and "target: dev" in answers


def test_missing_options_without_a_terminal_is_refused(tmp_path):
    result = newstack("create", "svc", "--output-dir", str(tmp_path), input="")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--defaults" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("protocol", "framework"), [("wsgi", "flask"), ("asgi", "fastapi")])
def test_a_protocol_with_defaults_picks_a_framework_that_serves_it(tmp_path, protocol, framework):
    result = newstack("create", "svc", "--protocol", protocol, "--defaults",
                      "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    answers = (tmp_path / "svc" / ".copier-answers.yml").read_text()
    assert f"framework: {framework}" in answers and f"protocol: {protocol}" in answers


def test_without_a_terminal_an_invalid_pair_is_reported_before_what_is_missing(tmp_path):
    result = newstack("create", "svc", "--framework", "fastapi", "--protocol", "wsgi",
                      "--output-dir", str(tmp_path), input="")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "FastAPI/WSGI is not valid" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_readme_s_granian_command_runs_without_a_terminal(tmp_path):
    # Flask has one protocol: --protocol is not missing (README: create shop ... --server granian)
    result = newstack("create", "shop", "--framework", "flask", "--target", "prod", "--server",
                      "granian", "--output-dir", str(tmp_path), input="")
    assert result.returncode == 0, result.stderr
    answers = (tmp_path / "shop" / ".copier-answers.yml").read_text()
    assert "protocol: wsgi" in answers and "server: granian" in answers


@pytest.mark.parametrize("args", [
    ["--framework", "flask", "--framework", "django", "--target", "dev"],
    ["--defaults", "--defaults"],
    ["--defaults", "--target=dev", "--target", "prod"],
])
def test_an_option_given_twice_is_refused(tmp_path, args):
    result = newstack("create", "svc", "--output-dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "given more than once" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_failure_to_print_after_creating_says_the_project_was_made(tmp_path):
    with open("/dev/full", "w") as full:
        result = subprocess.run([*NEWSTACK, "create", "svc", "--defaults", "--output-dir",
                                 str(tmp_path)], stdout=full, stderr=subprocess.PIPE, text=True,
                                timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr == (f"newstack: error: created {tmp_path / 'svc'}, but could not print "
                             "its next steps: No space left on device\n")
    assert (tmp_path / "svc" / "pyproject.toml").is_file()


REFUSED = [
    (["--framework", "fastapi", "--protocol", "wsgi", "--target", "dev"], "FastAPI is ASGI-only"),
    (["--framework", "flask", "--protocol", "asgi", "--target", "prod"], "Flask is WSGI-only"),
    (["--framework", "rails", "--defaults"], "unknown framework 'rails'"),
    (["--protocol", "cgi", "--defaults"], "unknown protocol 'cgi'"),
    (["--target", "staging", "--defaults"], "unknown target 'staging'"),
    (["--target", "prod", "--worker-class", "uvicorn-worker", "--defaults"], "unknown worker class"),
    (["--framework", "flask", "--target", "prod", "--worker-class", "asgi", "--defaults"],
     "cannot serve WSGI"),
    (["--target", "dev", "--worker-class", "sync", "--defaults"], "prod target only"),
    (["--frame", "x"], "No such option"),
]


@pytest.mark.parametrize("args, reason", REFUSED, ids=[r for _, r in REFUSED])
def test_bad_options_get_one_line_exit_2_and_nothing_written(tmp_path, args, reason):
    result = newstack("create", "svc", "--output-dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert reason in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_invalid_combination_lists_the_valid_ones(tmp_path):
    result = newstack("create", "svc", "--framework", "fastapi", "--protocol", "wsgi",
                      "--target", "dev", "--output-dir", str(tmp_path))
    assert "fastapi-asgi, flask-wsgi, django-wsgi, django-asgi" in result.stderr


@pytest.mark.parametrize("name", ["flask", "test", "json", "class", "1app", "my app", "-x", ""])
def test_bad_names_are_refused(tmp_path, name):
    result = newstack("create", name, "--defaults", "--output-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("newstack: error: ") and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_existing_non_empty_destination_is_left_untouched(tmp_path):
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "notes.txt").write_text("mine")
    before = tree(tmp_path)
    result = newstack("create", "svc", "--defaults", "--output-dir", str(tmp_path))
    assert result.returncode == 2 and "not empty" in result.stderr
    assert tree(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["svc"]


def test_existing_empty_destination_is_used(tmp_path):
    (tmp_path / "svc").mkdir()
    result = newstack("create", "svc", "--defaults", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "svc" / "pyproject.toml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["svc"]  # no staging left behind


def test_matrix_json_lists_every_valid_combination():
    result = newstack("matrix", "--json")
    include = json.loads(result.stdout)["include"]
    assert [row["id"] for row in include] == [c.id for c in COMBINATIONS]
    assert {row["server"] for row in include} == {"", "gunicorn", "granian"}


def test_matrix_shows_commands_and_refusals():
    result = newstack("matrix", env={"COLUMNS": "250"})
    assert "uvicorn_worker.UvicornWorker (default)" in result.stdout
    assert "gunicorn {package}.main:app -c gunicorn.conf.py" in result.stdout
    assert "python -m {package}.serve" in result.stdout and "asginl" in result.stdout
    assert result.stdout.count("is not valid") == len(INVALID)


@pytest.mark.parametrize("columns", ["80", "0"])
def test_matrix_piped_prints_every_command_in_full(columns):
    result = newstack("matrix", env={"COLUMNS": columns})
    assert result.returncode == 0
    rows = result.stdout.splitlines()
    assert "…" not in result.stdout
    assert "Flask / WSGI | flask --app {package} run --debug | gunicorn (default) | " \
           "gunicorn {package}:create_app() -c gunicorn.conf.py | gthread (default), sync" in rows
    assert result.stdout.count("is not valid") == len(INVALID)


def drive_questionnaire(tmp_path, *options: str) -> str:
    """Run `newstack create shop OPTIONS` on a pseudo-terminal, accepting each default with
    Enter; return what it showed."""
    import os
    import pty
    import select
    import sys
    import time

    from .conftest import NEWSTACK

    pid, fd = pty.fork()
    if pid == 0:  # the child
        os.execv(sys.executable, [*NEWSTACK, "create", "shop", *options,
                                  "--output-dir", str(tmp_path)])
    screen = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                os.write(fd, b"\r")  # quiet: a question waits for its answer
                continue
            try:
                screen += os.read(fd, 65536)
            except OSError:  # the child closed the terminal: it is done
                break
    finally:
        _, status = os.waitpid(pid, 0)
    text = screen.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text[-2000:]
    return text


def test_on_a_terminal_it_asks_offering_only_valid_choices(tmp_path):
    text = drive_questionnaire(tmp_path)
    assert "Server protocol" in text  # asked: the framework, asked first, has two
    answers = (tmp_path / "shop" / ".copier-answers.yml").read_text()
    assert "protocol: asgi" in answers and "target: dev" in answers
    assert "Production server" not in text  # dev: no server to choose


def test_on_a_terminal_flask_is_not_asked_its_protocol(tmp_path):
    text = drive_questionnaire(tmp_path, "--framework", "flask")
    assert "Server protocol" not in text  # WSGI is Flask's only choice
    answers = (tmp_path / "shop" / ".copier-answers.yml").read_text()
    assert "protocol: wsgi" in answers and "target: dev" in answers


def test_on_a_terminal_prod_asks_for_the_server_then_gunicorn_s_worker_class(tmp_path):
    import re

    text = drive_questionnaire(tmp_path, "--framework", "django", "--target", "prod")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # terminal control sequences
    assert text.index("Production server") < text.index("gunicorn worker class")
    answers = (tmp_path / "shop" / ".copier-answers.yml").read_text()
    assert "server: gunicorn" in answers and "worker_class: gthread" in answers


# --------------------------------------------------------------------------------------------
# Bad input (issue 4, see bad_input.py): options

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


# --------------------------------------------------------------------------------------------
# Bad input: errors are one line, exit 2 for usage and 1 for the environment; --debug shows
# the traceback

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
# Bad input: signals at the edge (before the CLI runs, at a question)

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
# Bad input, the property: generated names and option combinations

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
