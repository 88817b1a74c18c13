"""`newstack smoke`: every combination booted with its README's command and probed; a broken
project fails with a reason that names what is broken."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from newstack import smoke
from newstack.stacks import find_combination

from ..conftest import COMBINATION_IDS, copier_copy, newstack

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("cid", COMBINATION_IDS)
def test_every_server_of_every_combination_boots_and_answers(projects, tmp_path, cid):
    combination = find_combination(cid)
    results = smoke.smoke_project(projects[cid], combination, BIN, tmp_path)
    assert [r.server for r in results] == (["dev"] if cid.endswith("dev") else ["prod", "dev"])
    for result in results:
        assert result.passed, result.probes
        expected = {"page", "json", "sigterm"} | ({"ws", "sse"} if "-asgi-" in cid else set())
        if combination.stack.database:  # /readyz, and a row written and read back
            expected.add("db")
        if result.server == "prod":
            expected.add("workers")
        assert set(result.probes) == expected


def test_a_project_made_by_plain_copier_boots(template_repo, tmp_path):
    project = tmp_path / "shop"
    made = copier_copy(template_repo, project, framework="django", protocol="asgi", target="prod")
    assert made.returncode == 0, made.stderr
    results = smoke.smoke_project(project, find_combination("django-asgi-prod"), BIN, tmp_path)
    assert [r.passed for r in results] == [True, True], [r.probes for r in results]


def test_a_wrong_worker_class_is_named(projects, tmp_path):
    project = tmp_path / "shop"
    shutil.copytree(projects["fastapi-asgi-prod"], project)
    config = project / "gunicorn.conf.py"
    config.write_text(config.read_text().replace('"shop.workers.UvicornWorker"', '"asgi"'))
    prod = smoke.smoke_server(project, find_combination("fastapi-asgi-prod"), "prod", BIN, tmp_path)
    assert not prod.passed
    reason = prod.probes["workers"]
    assert "'asgi'" in reason and "shop.workers.UvicornWorker" in reason


def test_a_missing_dependency_is_named_in_isolation(projects, tmp_path):
    project = tmp_path / "shop"
    shutil.copytree(projects["fastapi-asgi-prod"], project)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('    "uvicorn-worker>=0.3",\n', ""))
    bin_dir = smoke.isolated_env(project, tmp_path)
    combination = find_combination("fastapi-asgi-prod")
    prod = smoke.smoke_server(project, combination, "prod", bin_dir, tmp_path)
    assert not prod.passed
    assert "uvicorn_worker" in prod.probes["start"]


def test_cli_reports_a_table_and_json(tmp_path):
    out = tmp_path / "smoke.json"
    result = newstack("smoke", "flask-wsgi-dev", "--json", str(out), env={"COLUMNS": "150"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "flask-wsgi-dev" in result.stdout and "1 passed, 0 failed" in result.stdout
    [row] = json.loads(out.read_text())
    assert row["passed"] and row["command"] == "flask --app smoke run --debug"


def test_cli_refuses_unknown_combinations_and_ambiguous_choice():
    assert newstack("smoke", "flask-asgi-dev").returncode == 2
    assert newstack("smoke").returncode == 2
    assert newstack("smoke", "--all", "flask-wsgi-dev").returncode == 2
