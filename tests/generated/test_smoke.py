"""`newstack smoke`: every combination booted with its README's command and probed; a broken
project fails with a reason that names what is broken."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from newstack import smoke
from newstack.stacks import COMBINATIONS, find_combination

from ..conftest import COMBINATION_IDS, copier_copy, newstack

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("cid", COMBINATION_IDS)
def test_every_server_of_every_combination_boots_and_answers(projects, tmp_path, cid):
    combination = find_combination(cid)
    results = smoke.smoke_project(projects[cid], combination, BIN, tmp_path)
    assert [r.server for r in results] == (["dev"] if cid.endswith("dev") else ["prod", "dev"])
    for result in results:
        assert result.passed, result.probes
        expected = {"page", "json", "sigterm", "log"} | ({"ws", "sse"} if "-asgi-" in cid else set())
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


# --------------------------------------------------------------------------------------------
# Settings as a user gives them: .env.example as `docker run --env-file` passes it, the
# ConfigMap, and a .env file in the project (read by every entry point; the environment wins).

PROD_IDS = [c.id for c in COMBINATIONS if c.target == "prod"]


def platform_env(project: Path, cid: str, port: int) -> dict[str, str]:
    """What a bare machine gives the server: PATH, a free port, nothing the project reads."""
    env = smoke.server_env(project, BIN, find_combination(cid), port)
    for name in ("WEB_CONCURRENCY", find_combination(cid).stack.secret_env):
        env.pop(name, None)
    return env


def env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as `docker run --env-file` reads them: `#` lines skipped, values verbatim
    (an empty value sets the variable to the empty string)."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def boots(project: Path, cid: str, env: dict[str, str], log: Path, which: str = "prod",
          host: str | None = None) -> str:
    """The README's `which` server, started in `env` after its set-up steps: "ok" once /healthz
    answers and the database takes a row, else why not. Stopped by its pid."""
    done = smoke.run_setup(project, env, which)
    if done is not None and done.returncode:
        return f"set-up failed: {done.stderr[-800:]}"
    command_env, argv = smoke.split_command(smoke.readme_commands(project)[f"{which}-command"])
    if which == "dev":
        argv += shlex.split(find_combination(cid).stack.dev_bind.format(
            host=smoke.HOST, port=env["PORT"]))
    server = smoke.Server(argv, project, {**env, **command_env}, log)
    headers = {**(smoke.PROXY_HEADERS if which == "prod" else {}), **({"Host": host} if host else {})}
    try:
        base = f"http://{smoke.HOST}:{env['PORT']}"
        server.wait_ready(f"{base}/healthz", headers)
        with httpx.Client(base_url=base, headers=headers, timeout=10,
                                trust_env=False) as client:
            smoke.check_database(client)
        return "ok"
    except smoke.SmokeError as error:
        return f"{error}: {log.read_text(errors='replace')[-1500:]}"
    finally:
        server.kill()


def copy(projects: dict[str, Path], cid: str, tmp_path: Path) -> Path:
    """The shared project, without the databases and static files other tests made in it."""
    project = tmp_path / "shop"
    shutil.copytree(projects[cid], project,
                    ignore=shutil.ignore_patterns("*.sqlite3", "staticfiles"))
    return project


def with_secret(values: dict[str, str], cid: str) -> dict[str, str]:
    secret = find_combination(cid).stack.secret_env
    return {**values, **({secret: "s" * 50} if secret else {})}


@pytest.mark.parametrize("cid", PROD_IDS)
def test_a_prod_project_starts_from_its_env_example_as_docker_passes_it(projects, tmp_path, cid):
    project = copy(projects, cid, tmp_path)
    values = with_secret(env_file((project / ".env.example").read_text()), cid)
    port = smoke.free_port()
    # the platform's port and address (docker maps the port; here a free one on 127.0.0.1)
    env = {**platform_env(project, cid, port), **values, "PORT": str(port), "HOST": smoke.HOST}
    assert boots(project, cid, env, tmp_path / "server.log") == "ok"


@pytest.mark.parametrize("cid", PROD_IDS)
def test_a_prod_project_starts_from_its_configmap(projects, tmp_path, cid):
    project = copy(projects, cid, tmp_path)
    configmap = yaml.safe_load((project / "deploy" / "k8s" / "configmap.yaml").read_text())
    values = with_secret(configmap["data"], cid)
    port = smoke.free_port()
    env = {**platform_env(project, cid, port), **values, "PORT": str(port), "HOST": smoke.HOST}
    # the Host the kubelet's probes send, which the ConfigMap allows
    assert boots(project, cid, env, tmp_path / "server.log", host="localhost") == "ok"


@pytest.mark.parametrize("cid", COMBINATION_IDS)
def test_every_entry_point_reads_dot_env_and_the_environment_wins(projects, tmp_path, cid):
    """.env is .env.example copied with the secret filled in (a dev project: no .env.example)
    and a database of its own: the migrations must create it and the server use it. The
    environment's PORT wins over the file's."""
    project = copy(projects, cid, tmp_path)
    example = project / ".env.example"
    values = with_secret(env_file(example.read_text()) if example.exists() else {}, cid)
    database = tmp_path / "from-dot-env.sqlite3"
    values["DATABASE_URL"] = f"sqlite:///{database}"
    (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    port = smoke.free_port()
    env = {**platform_env(project, cid, port), "WEB_CONCURRENCY": "1"}
    which = "prod" if find_combination(cid).server else "dev"
    assert boots(project, cid, env, tmp_path / "server.log", which) == "ok"
    assert database.exists(), "the migrations did not read DATABASE_URL from .env"
