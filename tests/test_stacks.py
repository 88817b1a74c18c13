"""The table: its combinations, its refusals, the servers and the worker classes it names."""

import importlib.util

import pytest

from newstack.stacks import (
    COMBINATIONS,
    FRAMEWORKS,
    INVALID,
    PROTOCOLS,
    SERVERS,
    STACKS,
    WORKER_CLASSES,
    StackError,
    find_stack,
    find_worker_class,
    server_row,
)


def test_twelve_combinations_two_refusals():
    """Four stacks: each a dev target, and a prod target on each of the two servers."""
    assert len(COMBINATIONS) == 12
    assert SERVERS == ("gunicorn", "granian")  # gunicorn, the seed's, stays the default
    assert [c.id for c in COMBINATIONS if c.framework == "fastapi"] == [
        "fastapi-asgi-dev", "fastapi-asgi-prod", "fastapi-asgi-prod-granian"]
    assert {c.server for c in COMBINATIONS if c.target == "dev"} == {None}
    valid = {(s.framework, s.protocol) for s in STACKS}
    assert valid | set(INVALID) == {(f, p) for f in FRAMEWORKS for p in PROTOCOLS}
    assert not valid & set(INVALID)


@pytest.mark.parametrize("framework, protocol", sorted(INVALID))
def test_refusal_names_the_reason_and_the_valid_stacks(framework, protocol):
    with pytest.raises(StackError) as refused:
        find_stack(framework, protocol)
    message = str(refused.value)
    assert "\n" not in message
    assert all(s.key in message for s in STACKS)


def test_asgi_defaults_to_the_uvicorn_worker_package_not_the_deprecated_module():
    for stack in STACKS:
        default = stack.worker_classes[0]
        assert "uvicorn.workers" not in default.name
        if stack.protocol == "asgi":
            assert default.name == "uvicorn_worker.UvicornWorker"
            assert [w.name for w in stack.worker_classes] == [default.name, "asgi"]


@pytest.mark.parametrize("worker", WORKER_CLASSES, ids=lambda w: w.name)
def test_every_worker_class_resolves_in_gunicorn(worker):
    """gunicorn --check-config does not catch a wrong class: resolve each one ourselves."""
    from gunicorn.util import load_class
    from gunicorn.workers.base import Worker

    assert issubclass(load_class(worker.name), Worker)
    for package in worker.packages:
        module = package.split(">")[0].replace("-", "_")
        assert importlib.util.find_spec(module), package


def test_worker_class_of_the_other_protocol_is_refused():
    with pytest.raises(StackError, match="cannot serve WSGI"):
        find_worker_class(find_stack("flask", "wsgi"), "asgi")
    with pytest.raises(StackError, match="unknown worker class"):
        find_worker_class(find_stack("fastapi", "asgi"), "uvicorn-worker")


def test_granian_interfaces_are_granian_s_own_and_run_the_lifespan_where_there_is_one():
    from granian.constants import Interfaces

    interfaces = {s.key: Interfaces(server_row("granian").interface(s)) for s in STACKS}
    assert interfaces == {"fastapi-asgi": Interfaces.ASGI, "flask-wsgi": Interfaces.WSGI,
                          "django-wsgi": Interfaces.WSGI, "django-asgi": Interfaces.ASGINL}


# A third server, added to the table as a row and nothing else: what copier.yml, the CLI and the
# checks derive from the table must take it in with no other change.
FAKE_SERVER_ROW = '''
    Server(
        name="fakeserv",
        label="FakeServ",
        help="FakeServ (a test double)",
        packages=("fakeserv>=1",),
        argv=("fakeserv", "{app}", "--config", "fakeserv.toml"),
        config_file="fakeserv.toml",
        ships=("fakeserv.toml",),
        takes_worker_class=False,
        env_prefix="FAKESERV_",
        boot_log="fake worker up",
        settings_code="print('{}')",
        interfaces={"fastapi-asgi": "asgi3", "flask-wsgi": "wsgi1"},
        no_worker_class="FakeServ forks its own",
    ),'''

FAKE_SERVER_PROBE = '''
import importlib.util, json, pathlib, sys
spec = importlib.util.find_spec("newstack.stacks")
source = pathlib.Path(spec.origin).read_text()
end_of_servers = "\\n)\\nSERVERS: tuple"
assert source.count(end_of_servers) == 1
source = source.replace(end_of_servers, ROW + end_of_servers)
module = importlib.util.module_from_spec(spec)
sys.modules["newstack.stacks"] = module
exec(compile(source, spec.origin, "exec"), module.__dict__)

from typer.testing import CliRunner
from newstack import cli, copier_yml, render

config = copier_yml.config()
runner = CliRunner()
refusal = ""
try:
    render.Answers("shop", "flask", "wsgi", "prod", "gthread", "fakeserv").validate()
except Exception as error:
    refusal = str(error)
context = render.Answers("shop", "flask", "wsgi", "prod", None, "fakeserv").resolve().context()
print(json.dumps({
    "choices": config["server"]["choices"],
    "worker_when": config["worker_class"]["when"],
    "contexts": config["stacks"]["default"],
    "help": runner.invoke(cli.app, ["create", "--help"], terminal_width=200).output,
    "matrix": runner.invoke(cli.app, ["matrix"], terminal_width=250).output,
    "matrix_json": json.loads(runner.invoke(cli.app, ["matrix", "--json"]).output),
    "refusal": refusal,
    "context": {"prod_command": context.prod_command, "ships": context.ships,
                "interface": context.interface, "dependencies": context.dependencies},
}))
'''


def test_a_third_server_is_one_row_of_the_table():
    import json
    import subprocess
    import sys

    probe = FAKE_SERVER_PROBE.replace("ROW", repr(FAKE_SERVER_ROW), 1)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout)
    assert seen["choices"]["FakeServ (a test double)"]["value"] == "fakeserv"
    assert "FakeServ forks its own" in seen["choices"]["FakeServ (a test double)"]["validator"]
    assert "'fakeserv'" not in seen["worker_when"]  # it takes no worker class
    assert "fakeserv" in seen["help"]
    assert "fakeserv" in seen["matrix"] and "wsgi1" in seen["matrix"]
    ids = {c["id"] for c in seen["matrix_json"]["include"]}
    assert {"fastapi-asgi-prod-fakeserv", "django-wsgi-prod-fakeserv"} <= ids
    flask = seen["contexts"]["flask-wsgi-prod-fakeserv"]
    assert flask["prod_argv"] == ["fakeserv", "{package}:create_app()", "--config", "fakeserv.toml"]
    assert flask["interface"] == "wsgi1" and "fakeserv.toml" in flask["ships"]
    assert "gunicorn.conf.py" not in flask["ships"] and "fakeserv>=1" in flask["dependencies"]
    assert seen["refusal"] == ("a worker class applies to gunicorn only (FakeServ forks its "
                               "own); leave it out or choose --server gunicorn")
    assert seen["context"]["prod_command"] == "fakeserv 'shop:create_app()' --config fakeserv.toml"
    assert seen["context"]["interface"] == "wsgi1"
