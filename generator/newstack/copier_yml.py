"""copier.yml, generated from the table so that plain `copier copy` asks, refuses and renders
exactly what `newstack create` does. `python -m newstack.sync` writes it; a test fails when the
committed file is stale.
"""

from __future__ import annotations

import keyword
import shlex
from typing import Any

from . import naming
from .stacks import (
    FRAMEWORKS,
    INVALID,
    LABELS,
    PROTOCOLS,
    SERVER_FOR_DEV,
    SERVER_PACKAGES,
    SERVERS,
    STACKS,
    TARGETS,
    WORKER_CLASS_FOR_DEV,
    WORKER_CLASS_FOR_GRANIAN,
    WORKER_CLASSES,
    Stack,
    WorkerClass,
    default_protocol,
    invalid_reason,
    worker_class_reason,
)

HEADER = """\
# GENERATED from generator/newstack/stacks.py and naming.py by `python -m newstack.sync`.
# Do not edit by hand: tests/test_sync.py fails when this file is stale.
"""

# context_key() as a Jinja expression
CONTEXT_KEY = (
    "framework ~ '-' ~ protocol ~ '-' ~ target ~ ('-' ~ (worker_class if server == 'gunicorn' "
    "else server) if target == 'prod' else '')"
)


def context_key(stack: Stack, target: str, server: str | None, worker: WorkerClass | None) -> str:
    key = f"{stack.key}-{target}"
    return f"{key}-{worker.name if worker else server}" if target == "prod" else key


def stack_context(stack: Stack, target: str, server: str | None = None,
                  worker: WorkerClass | None = None) -> dict[str, Any]:
    """What the templates read as `stack.*` for one rendered combination: a prod one names its
    server, and a worker class when that server is gunicorn."""
    context: dict[str, Any] = {
        "server": server or "",
        "label": stack.label,
        "dev_command": stack.dev_command,
        "dev_bind": stack.dev_bind,
        "dependencies": list(stack.packages),
        "test_dependencies": list(stack.test_packages),
        "secret_env": stack.secret_env,
        "hosts_env": stack.hosts_env,
        "extras": {name: list(packages) for name, packages in stack.extras},
    }
    if target == "prod":
        context["dependencies"] += [*SERVER_PACKAGES[server], *stack.prod_packages]
        context.update(
            dev_command=" ".join(filter(None, (stack.debug_env, stack.dev_command))),
            prod_command=_shell_join(stack.prod_argv(server)),
            prod_argv=list(stack.prod_argv(server)),
        )
    if server:
        context["server_label"] = LABELS[server]
    if server == "granian":
        context.update(
            granian_interface=stack.granian_interface,
            # Granian workers in one Kubernetes pod, whose CPU limit is one core
            cluster_workers=1,
        )
    if worker:
        context["dependencies"] += worker.packages
        context.update(
            worker_class=worker.name,
            gunicorn_class=worker.gunicorn_class,
            worker_note=worker.note,
            async_worker=worker.async_worker,
            default_worker=worker == stack.worker_classes[0],
            # gunicorn workers in one Kubernetes pod, whose CPU limit is one core: the same rule
            # as gunicorn.conf.py (which would count the node's cores, not the pod's limit).
            cluster_workers=1 if worker.async_worker else 3,
        )
    return context


def _shell_join(argv: tuple[str, ...]) -> str:
    """shlex.join, quoting as it would once `{package}` (letters, digits, _) is filled in."""
    placeholder = "package0placeholder"
    joined = shlex.join(arg.replace("{package}", placeholder) for arg in argv)
    return joined.replace(placeholder, "{package}")


def all_contexts() -> dict[str, dict[str, Any]]:
    contexts = {}
    for stack in STACKS:
        contexts[context_key(stack, "dev", None, None)] = stack_context(stack, "dev")
        for worker in stack.worker_classes:
            contexts[context_key(stack, "prod", "gunicorn", worker)] = stack_context(
                stack, "prod", "gunicorn", worker)
        contexts[context_key(stack, "prod", "granian", None)] = stack_context(
            stack, "prod", "granian")
    return contexts


# An answer given with --data where it cannot apply. Not `NAME is defined`: an update also
# defines the answers recorded before, which the change may make moot (a worker class when
# switching to Granian), and copier drops those by itself.
GIVEN = "'{0}' in _copier_conf.data"


def _if_chain(cases: dict[str, str]) -> str:
    """A Jinja expression that prints the message of the first true condition."""
    parts = [f"{'if' if i == 0 else 'elif'} {cond} %}}{msg}{{%" for i, (cond, msg) in
             enumerate(cases.items())]
    return "{% " + " ".join(parts) + " endif %}"


def _jinja_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def name_validator() -> str:
    name = "project_name"
    package = "(project_name | lower | replace('-', '_'))"
    rules = {
        "empty": f"not {name}",
        "length": f"{name} | length > {naming.MAX_LENGTH}",
        "pattern": f"not ({name} | regex_search({_jinja_str(naming.PATTERN)}))",
        "keyword": f"{package} in {sorted(keyword.kwlist)}",
        "reserved": f"{package} in {sorted(naming.RESERVED)}",
    }
    messages = {
        cond: naming.MESSAGES[rule]
        .replace("{name}", "{{ project_name }}")
        .replace("{package}", "{{ package_name }}")
        for rule, cond in rules.items()
    }
    return _if_chain(messages).replace("package_name", package[1:-1])


def config() -> dict[str, Any]:
    worker_default = {p: next(w.name for w in WORKER_CLASSES if w.protocol == p) for p in PROTOCOLS}
    return {
        "_min_copier_version": "9.4",
        "_subdirectory": "templates/{{ framework }}",
        "_answers_file": ".copier-answers.yml",
        "project_name": {
            "type": "str",
            "help": "Project name (a distribution name; 'my-app' gives the package my_app)",
            "default": "{{ _folder_name }}",
            "validator": name_validator(),
        },
        "framework": {
            "type": "str",
            "help": "Web framework",
            "choices": {LABELS[f]: f for f in FRAMEWORKS},
            "default": FRAMEWORKS[0],
        },
        "protocol": {
            "type": "str",
            "help": "Server protocol",
            "choices": {
                LABELS[p]: {
                    "value": p,
                    "validator": _if_chain(
                        {f"framework == '{f}'": invalid_reason(f, p) for (f, q) in INVALID if q == p}
                    ),
                }
                for p in PROTOCOLS
            },
            "default": "{{ %s[framework] }}" % {f: default_protocol(f) for f in FRAMEWORKS},
        },
        "target": {
            "type": "str",
            "help": "dev (the framework's dev server) or prod (a production server, Dockerfile, "
                    "deploy files)",
            "choices": {
                # Refuses `--data server=...` or `worker_class=...` for dev, as newstack create does.
                "dev": {"value": "dev", "validator": _if_chain({
                    GIVEN.format("server"): SERVER_FOR_DEV,
                    GIVEN.format("worker_class"): WORKER_CLASS_FOR_DEV})},
                "prod": {"value": "prod"},
            },
            "default": TARGETS[0],
        },
        "server": {
            "type": "str",
            "help": "Production server",
            "when": "{{ target == 'prod' }}",
            "choices": {
                "gunicorn (with gunicorn.conf.py)": {"value": "gunicorn"},
                "Granian (a Rust HTTP server)": {
                    "value": "granian",
                    "validator": _if_chain({GIVEN.format("worker_class"): WORKER_CLASS_FOR_GRANIAN}),
                },
            },
            "default": SERVERS[0],
        },
        "worker_class": {
            "type": "str",
            "help": "gunicorn worker class",
            "when": "{{ target == 'prod' and server == 'gunicorn' }}",
            "choices": {
                w.name: {
                    "value": w.name,
                    "validator": _if_chain(
                        {f"protocol != '{w.protocol}'": worker_class_reason(_other(w.protocol), w.name)}
                    ),
                }
                for w in WORKER_CLASSES
            },
            "default": "{{ %s[protocol] }}" % worker_default,  # noqa: UP031 - Jinja's braces
        },
        "package_name": {
            "type": "str",
            "when": False,
            "default": "{{ project_name | lower | replace('-', '_') }}",
        },
        # Kubernetes object names: lowercase letters, digits and '-', at most 63 characters.
        "app_name": {
            "type": "str",
            "when": False,
            "default": "{{ (project_name | lower | replace('_', '-'))[:63] | trim('-') }}",
        },
        "stacks": {"type": "yaml", "when": False, "default": all_contexts()},
        "stack": {
            "type": "json",  # parsed with json, much faster than copier's YAML
            "when": False,
            "default": "{{ stacks[%s] | to_json | replace('{package}', package_name) }}"  # noqa: UP031
            % CONTEXT_KEY,
        },
    }


def _other(protocol: str) -> str:
    return next(p for p in PROTOCOLS if p != protocol)


def render() -> str:
    import yaml

    return HEADER + yaml.safe_dump(config(), sort_keys=False, width=100, allow_unicode=True)
