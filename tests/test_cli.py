"""`newstack` as a user runs it: output, refusals with one line and an exit code, nothing written."""

from __future__ import annotations

import json

import pytest

from newstack.stacks import COMBINATIONS, INVALID

from .conftest import newstack, tree


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
    text = drive_questionnaire(tmp_path, "--framework", "flask")
    assert "Flask/ASGI is not valid" in text  # shown, but not selectable
    answers = (tmp_path / "shop" / ".copier-answers.yml").read_text()
    assert "protocol: wsgi" in answers and "target: dev" in answers
    assert "Production server" not in text  # dev: no server to choose


def test_on_a_terminal_prod_asks_for_the_server_then_gunicorn_s_worker_class(tmp_path):
    import re

    text = drive_questionnaire(tmp_path, "--framework", "fastapi", "--target", "prod")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # terminal control sequences
    assert text.index("Production server") < text.index("gunicorn worker class")
    answers = (tmp_path / "shop" / ".copier-answers.yml").read_text()
    assert "server: gunicorn" in answers and "worker_class: uvicorn_worker.UvicornWorker" in answers
