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

    interfaces = {s.key: Interfaces(s.granian_interface) for s in STACKS}
    assert interfaces == {"fastapi-asgi": Interfaces.ASGI, "flask-wsgi": Interfaces.WSGI,
                          "django-wsgi": Interfaces.WSGI, "django-asgi": Interfaces.ASGINL}
