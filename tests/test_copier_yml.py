"""copier.yml's validators: plain `copier copy` refuses what `newstack create` refuses, for the
same reason, and writes nothing."""

from __future__ import annotations

import pytest

from newstack import naming
from newstack.stacks import invalid_reason, worker_class_reason

from .bad_input import (
    FIGURES,
    SERVER_FOR_DEV,
    WORKER_CLASS_FOR_GRANIAN,
    one_line,
    snapshot,
)
from .conftest import copier_copy, newstack

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


COMPUTED = [
    ("package_name", "{{ 7*7 }}"),
    ("app_name", "svc\n  evil: injected"),
    ("app_name", "svc"),  # even a harmless value: the template computes it, no one else
    ("stack", "{}"),
    ("stacks", "{}"),
]


@pytest.mark.parametrize(("question", "value"), COMPUTED, ids=[c[0] + ascii(c[1])[:12]
                                                              for c in COMPUTED])
def test_plain_copier_copy_refuses_a_computed_answer(template_repo, arena, question, value):
    """`when: false` hides a question but copier still takes its answer from --data: the
    package directory was named `{{ 7*7 }}`, keys were injected into deploy/k8s/*.yaml."""
    before = snapshot(arena.parent)
    theirs = copier_copy(template_repo, arena / "svc", project_name="svc", target="prod",
                         **{question: value})
    assert theirs.returncode != 0, "copier accepted it"
    assert snapshot(arena.parent) == before
    message = theirs.stderr.rstrip().splitlines()[-1]
    assert f"{question} is computed from the project name and cannot be given" in message
