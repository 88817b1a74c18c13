"""copier.yml, generated from the table so that plain `copier copy` asks, refuses and renders
exactly what `newstack create` does. `python -m newstack.sync` writes it; a test fails when the
committed file is stale.
"""

from __future__ import annotations

import json
import keyword
import shlex
from dataclasses import asdict, dataclass, field, replace
from itertools import product
from typing import Any

from . import naming
from .stacks import (
    APPLIES,
    FRAMEWORKS,
    INVALID,
    LABELS,
    PRE_COMMIT_HOOKS_VERSION,
    PROTOCOLS,
    PYTHON_VERSION,
    RUFF_VERSION,
    SERVER_ROWS,
    SERVERS,
    STACKS,
    TARGET_ROWS,
    TARGETS,
    UV_VERSION,
    WORKER_CLASSES,
    Server,
    Stack,
    Target,
    WorkerClass,
    applies,
    default_protocol,
    fill_package,
    invalid_reason,
    lock_commands,
    worker_class_reason,
)

HEADER = """\
# GENERATED from generator/newstack/stacks.py and naming.py by `python -m newstack.sync`.
# Do not edit by hand: tests/test_sync.py fails when this file is stale.
"""


@dataclass(frozen=True)
class Context:
    """What the templates read as `stack.*` for one rendered combination. Every field exists
    for every combination; what does not apply is empty."""

    label: str
    dev_command: str
    dev_bind: str
    dependencies: list[str]
    test_dependencies: list[str]
    secret_env: str
    hosts_env: str
    extras: dict[str, list[str]]
    ships: list[str]  # the file names this combination switches on (Target.ships)
    server: str = ""
    server_label: str = ""
    prod_command: str = ""
    prod_argv: list[str] = field(default_factory=list)
    interface: str = ""  # the server's interface for this stack (Granian's --interface)
    cluster_workers: int = 0  # workers in one Kubernetes pod
    worker_class: str = ""
    gunicorn_class: str = ""
    worker_note: str = ""
    async_worker: bool = False
    default_worker: bool = False
    env: list[dict[str, Any]] = field(default_factory=list)  # Stack.env
    ruff_version: str = RUFF_VERSION  # the pre-commit hooks' revs (.pre-commit-config.yaml)
    pre_commit_hooks_version: str = PRE_COMMIT_HOOKS_VERSION
    prod_setup: list[dict[str, Any]] = field(default_factory=list)  # Stack.prod_setup
    no_lifespan: str = ""
    database: str = ""  # the project's database module ("" without a data layer)
    migrate: str = ""  # the command that applies the migrations
    migrations: list[str] = field(default_factory=list)  # the files it needs
    worker_short: str = ""  # names the worker class's partials, templates/_shared/workers/NAME/
    untyped: list[str] = field(default_factory=list)  # Stack.untyped, WorkerClass.untyped
    python_version: str = PYTHON_VERSION  # the image's and CI's Python
    uv_version: str = UV_VERSION  # the uv that makes and checks the locks
    # The locked dependencies: templates/_shared/locks/LOCK/ (one per set of requirements,
    # written by `python -m newstack.locks`), and the commands that make them (stacks.LOCK).
    lock: str = ""
    lock_commands: list[str] = field(default_factory=list)

    def filled(self, package: str) -> Context:
        """With `{package}` filled in, as copier fills it in copier.yml's `stack`."""
        return Context(**json.loads(fill_package(json.dumps(asdict(self)), package)))



def context_key(stack: Stack, target: str, answers: dict[str, str | None]) -> str:
    """The key of a combination's Context in copier.yml's `stacks`: the stack, the target, then
    each answer that applies to them (see CONTEXT_KEY, its twin in Jinja)."""
    server = answers.get("server")
    given = [answers[a.question] or "" for a in APPLIES if a(target, server)]
    return "-".join((stack.key, target, *given))


CONTEXT_KEY = "framework ~ '-' ~ protocol ~ '-' ~ target" + "".join(
    f" ~ ('-' ~ {a.question} if {a.jinja()} else '')" for a in APPLIES
)


def stack_context(stack: Stack, target: Target, server: Server | None = None,
                  worker: WorkerClass | None = None) -> Context:
    """The Context of one combination: a prod one names its server, and a worker class when
    that server takes one."""
    context = Context(
        label=stack.label,
        dev_command=stack.dev_command,
        dev_bind=stack.dev_bind,
        dependencies=list(stack.packages),
        test_dependencies=list(stack.test_packages),
        secret_env=stack.secret_env,
        hosts_env=stack.hosts_env,
        extras={name: list(packages) for name, packages in stack.extras},
        ships=[*stack.ships, *target.ships],
        env=[asdict(var) for var in stack.env],
        prod_setup=[asdict(step) for step in stack.prod_setup],
        no_lifespan=stack.no_lifespan,
        database=stack.database,
        migrate=stack.migrate,
        migrations=list(stack.migrations),
        untyped=list(stack.untyped),
        lock=f"{stack.key}-{target.name}",
        lock_commands=list(lock_commands(tuple(name for name, _ in stack.extras))),
    )
    if target.debug_env_in_dev_command:
        context = replace(context, dev_command=" ".join(filter(None, (stack.debug_env,
                                                                      stack.dev_command))))
    if server is not None:
        context = replace(
            context,
            dependencies=[*context.dependencies, *server.packages, *stack.prod_packages],
            ships=[*context.ships, *server.ships],
            server=server.name,
            server_label=server.label,
            prod_command=_shell_join(server.prod_argv(stack)),
            prod_argv=list(server.prod_argv(stack)),
            interface=server.interface(stack),
            cluster_workers=server.cluster_workers,
            lock=f"{context.lock}-{server.name}",
        )
    if worker is not None:
        context = replace(
            context,
            dependencies=[*context.dependencies, *worker.packages],
            ships=[*context.ships, *worker.ships],
            worker_class=worker.name,
            gunicorn_class=worker.gunicorn_class,
            worker_note=worker.note,
            async_worker=worker.async_worker,
            default_worker=worker == stack.worker_classes[0],
            cluster_workers=worker.cluster_workers,
            worker_short=worker.short,
            untyped=[*context.untyped, *worker.untyped],
            # worker classes that add no package share their server's lock
            lock=f"{context.lock}-{worker.short}" if worker.packages else context.lock,
        )
    return context


def _shell_join(argv: tuple[str, ...]) -> str:
    """shlex.join, quoting as it would once `{package}` (letters, digits, _) is filled in."""
    placeholder = "package0placeholder"
    joined = shlex.join(arg.replace("{package}", placeholder) for arg in argv)
    return joined.replace(placeholder, "{package}")


def all_contexts() -> dict[str, dict[str, Any]]:
    contexts = {}
    for stack, target in product(STACKS, TARGET_ROWS):
        servers: list[Server | None] = [
            s for s in SERVER_ROWS if applies("server", target.name, s.name)] or [None]
        for server in servers:
            name = server.name if server else None
            workers: list[WorkerClass | None] = [
                w for w in stack.worker_classes if applies("worker_class", target.name, name)
            ] or [None]
            for worker in workers:
                key = context_key(stack, target.name,
                                  {"server": name, "worker_class": worker.name if worker else None})
                contexts[key] = asdict(stack_context(stack, target, server, worker))
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
        "distribution": f"(project_name | lower | replace('_', '-')) in {sorted(naming.DISTRIBUTIONS)}",
        "special": f"{package} in {list(naming.SPECIAL)}",
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
            "help": " or ".join(f"{t.name} ({t.help})" for t in TARGET_ROWS),
            # Refuses `--data server=...` or `worker_class=...` where they cannot apply, as
            # newstack create does.
            "choices": {t.name: _choice(t.name, {a.question: a.refusal(t.name, None)
                                                 for a in APPLIES}) for t in TARGET_ROWS},
            "default": TARGETS[0],
        },
        "server": {
            "type": "str",
            "help": "Production server",
            "when": _when("server"),
            "choices": {s.help: _choice(s.name, {a.question: a.refusal(None, s.name)
                                                 for a in APPLIES}) for s in SERVER_ROWS},
            "default": SERVERS[0],
        },
        "worker_class": {
            "type": "str",
            "help": "gunicorn worker class",
            "when": _when("worker_class"),
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
            "validator": _computed("package_name"),
        },
        # Kubernetes object names: lowercase letters, digits and '-', at most 63 characters.
        "app_name": {
            "type": "str",
            "when": False,
            "default": "{{ (project_name | lower | replace('_', '-'))[:63] | trim('-') }}",
            "validator": _computed("app_name"),
        },
        "stacks": {"type": "yaml", "when": False, "default": all_contexts(),
                   "validator": _computed("stacks")},
        "stack": {
            "type": "json",  # parsed with json, much faster than copier's YAML
            "when": False,
            "default": "{{ stacks[%s] | to_json | replace('{package}', package_name) }}"  # noqa: UP031
            % CONTEXT_KEY,
            "validator": _computed("stack"),
        },
    }


def _computed(question: str) -> str:
    """A computed answer's validator. `when: false` hides a question, but copier still takes
    its answer from --data (unvalidated, unrecorded: `package_name='{{ 7*7 }}'` became a
    directory): copier runs the validator on an answer given, so it refuses any."""
    return _if_chain({GIVEN.format(question): f"{question} is computed from the project name "
                                              "and cannot be given; give project_name instead"})


def _when(question: str) -> str:
    return "{{ %s }}" % next(a for a in APPLIES if a.question == question).jinja()  # noqa: UP031


def _choice(value: str, refusals: dict[str, str | None]) -> dict[str, str]:
    """A choice whose validator refuses the answers given with --data that cannot apply to it."""
    messages = {GIVEN.format(question): why for question, why in refusals.items() if why}
    return {"value": value, "validator": _if_chain(messages)} if messages else {"value": value}


def _other(protocol: str) -> str:
    return next(p for p in PROTOCOLS if p != protocol)


def render() -> str:
    import yaml

    return HEADER + yaml.safe_dump(config(), sort_keys=False, width=100, allow_unicode=True)
