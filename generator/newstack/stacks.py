"""The one table: frameworks, protocols, targets, worker classes and what each stack needs.

Everything else (the CLI's choices, `newstack matrix`, copier.yml, the tests, examples/ and the
CI matrix) is derived from the data in this module. Commands are written with `{package}` where
the project's Python package name goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from .errors import UsageError

FRAMEWORKS = ("fastapi", "flask", "django")
PROTOCOLS = ("wsgi", "asgi")
TARGETS = ("dev", "prod")
SERVERS = ("gunicorn", "granian")  # of the prod target; the first is the default

LABELS = {
    "fastapi": "FastAPI",
    "flask": "Flask",
    "django": "Django",
    "wsgi": "WSGI",
    "asgi": "ASGI",
    "dev": "dev",
    "prod": "prod",
    "gunicorn": "gunicorn",
    "granian": "Granian",
}

GUNICORN = "gunicorn>=25.1"  # 25.1: native asgi worker stable, control socket setting exists
UVICORN = "uvicorn[standard]>=0.34"  # [standard]: websockets (plain uvicorn answers WS with 404)
GRANIAN = "granian>=2.8"  # 2.8: asginl, respawn of failed workers, workers_kill_timeout
SERVER_PACKAGES = {"gunicorn": (GUNICORN,), "granian": (GRANIAN,)}


@dataclass(frozen=True)
class WorkerClass:
    name: str  # the choice (`--worker-class`): a gunicorn worker class
    protocol: str
    packages: tuple[str, ...]
    async_worker: bool  # async workers default to one per core, sync ones to 2 x cores + 1
    note: str
    # A subclass of it that the project ships in {package}/workers.py and gunicorn.conf.py
    # names instead ("" when the class is used as it is).
    subclass: str = ""

    @property
    def gunicorn_class(self) -> str:
        """What gunicorn.conf.py sets as worker_class (with `{package}`)."""
        return self.subclass or self.name


WORKER_CLASSES = (
    WorkerClass(
        "uvicorn_worker.UvicornWorker",
        "asgi",
        ("uvicorn-worker>=0.3",),
        True,
        "uvicorn's event loop and HTTP parser under gunicorn's process manager "
        "(the uvicorn-worker package; uvicorn.workers.UvicornWorker is deprecated)",
        # stops without dropping requests on kept-alive connections, enforces gunicorn's
        # request limits (uvicorn ignores them)
        subclass="{package}.workers.UvicornWorker",
    ),
    WorkerClass(
        "asgi",
        "asgi",
        (),
        True,
        "gunicorn's native ASGI worker: no extra package, enforces gunicorn's request limits",
        # stops without closing kept-alive connections under requests already on their way
        subclass="{package}.workers.ASGIWorker",
    ),
    WorkerClass(
        "gthread",
        "wsgi",
        (),
        False,
        "threads per worker and keep-alive; holds slow clients better than sync",
    ),
    WorkerClass("sync", "wsgi", (), False, "one request at a time per worker process"),
)


@dataclass(frozen=True)
class Stack:
    framework: str
    protocol: str
    app: str  # the import path the server serves
    granian_interface: str  # Granian's --interface for this stack
    dev_command: str
    dev_bind: str  # appended to the dev command to choose the address, e.g. by `newstack smoke`
    packages: tuple[str, ...]  # needed by both targets
    prod_packages: tuple[str, ...]  # needed by the prod target only, besides its server's
    test_packages: tuple[str, ...]
    secret_env: str  # the environment variable holding the secret key ("" when none is used)
    hosts_env: str  # the environment variable listing the allowed Host names
    debug_env: str = ""  # what a prod project's dev command sets to run in debug mode
    # Optional dependency groups of the generated project, e.g. ("redis", ("channels-redis",)):
    # `pip install ".[redis]"`; the prod Dockerfile installs them all.
    extras: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.framework}-{self.protocol}"

    @property
    def label(self) -> str:
        return f"{LABELS[self.framework]} / {LABELS[self.protocol]}"

    @property
    def worker_classes(self) -> tuple[WorkerClass, ...]:
        """The gunicorn worker classes that can serve this stack, the default first."""
        return tuple(w for w in WORKER_CLASSES if w.protocol == self.protocol)

    def prod_argv(self, server: str) -> tuple[str, ...]:
        if server == "granian":
            # Granian reads no configuration file: the module maps the environment onto it.
            return ("python", "-m", "{package}.serve")
        return ("gunicorn", self.app, "-c", "gunicorn.conf.py")


STACKS = (
    Stack(
        framework="fastapi",
        protocol="asgi",
        app="{package}.main:app",
        granian_interface="asgi",  # runs FastAPI's lifespan
        dev_command="uvicorn {package}.main:app --reload",
        dev_bind="--host {host} --port {port}",
        packages=("fastapi>=0.115", UVICORN, "jinja2>=3.1"),
        prod_packages=(),
        test_packages=("pytest>=8", "httpx2>=2"),  # starlette 1.x testclient: httpx is deprecated
        secret_env="",
        hosts_env="ALLOWED_HOSTS",
    ),
    Stack(
        framework="flask",
        protocol="wsgi",
        app="{package}:create_app()",
        granian_interface="wsgi",
        dev_command="flask --app {package} run --debug",
        dev_bind="--host {host} --port {port}",
        packages=("flask>=3.1",),
        prod_packages=(),
        test_packages=("pytest>=8",),
        secret_env="FLASK_SECRET_KEY",
        hosts_env="FLASK_TRUSTED_HOSTS",
    ),
    Stack(
        framework="django",
        protocol="wsgi",
        app="{package}.wsgi:application",
        granian_interface="wsgi",
        dev_command="python manage.py runserver",
        dev_bind="{host}:{port}",
        packages=("django>=5.2",),
        prod_packages=("whitenoise>=6.8",),
        test_packages=("pytest>=8",),
        secret_env="DJANGO_SECRET_KEY",
        hosts_env="DJANGO_ALLOWED_HOSTS",
        debug_env="DJANGO_DEBUG=1",
    ),
    Stack(
        framework="django",
        protocol="asgi",
        app="{package}.asgi:application",
        # Django and Channels have no lifespan: under `asgi` Granian logs an error at each start
        granian_interface="asginl",
        dev_command="uvicorn {package}.asgi:application --reload",
        dev_bind="--host {host} --port {port}",
        packages=("django>=5.2", "channels>=4.2", UVICORN),
        # servestatic: WhiteNoise's async fork; WhiteNoise buffers whole files under ASGI
        prod_packages=("servestatic>=3",),
        test_packages=("pytest>=8", "daphne>=4.1"),  # channels.testing imports daphne
        secret_env="DJANGO_SECRET_KEY",
        hosts_env="DJANGO_ALLOWED_HOSTS",
        debug_env="DJANGO_DEBUG=1",
        # More than one process (workers or replicas) needs a shared channel layer for group
        # messages; settings.py uses it when REDIS_URL is set.
        extras=(("redis", ("channels-redis>=4.2",)),),
    ),
)

INVALID = {
    ("fastapi", "wsgi"): "FastAPI is ASGI-only: under a WSGI adapter its lifespan never runs "
    "and WebSockets answer 404",
    ("flask", "asgi"): "Flask is WSGI-only: under an ASGI adapter WebSockets answer 500 and "
    "every request costs a thread hop",
}


@dataclass(frozen=True)
class Combination:
    stack: Stack
    target: str
    server: str | None = None  # prod only: one of SERVERS

    @property
    def id(self) -> str:
        """fastapi-asgi-dev, fastapi-asgi-prod (gunicorn, the default), fastapi-asgi-prod-granian"""
        suffix = f"-{self.server}" if self.server and self.server != SERVERS[0] else ""
        return f"{self.stack.key}-{self.target}{suffix}"

    @property
    def framework(self) -> str:
        return self.stack.framework

    @property
    def protocol(self) -> str:
        return self.stack.protocol


COMBINATIONS = tuple(
    Combination(stack, target, server)
    for stack, target in product(STACKS, TARGETS)
    for server in ((None,) if target == "dev" else SERVERS)
)


WORKER_CLASS_FOR_DEV = (
    "a worker class applies to the prod target only (dev runs the framework's dev server)"
)
SERVER_FOR_DEV = "a server applies to the prod target only (dev runs the framework's dev server)"
WORKER_CLASS_FOR_GRANIAN = (
    "a worker class applies to gunicorn only (Granian runs its own workers); "
    "leave it out or choose --server gunicorn"
)


class StackError(UsageError):
    """A choice of framework, protocol, target or worker class that is not in the table."""


def valid_ids() -> str:
    return ", ".join(s.key for s in STACKS)


def invalid_reason(framework: str, protocol: str) -> str:
    reason = INVALID[(framework, protocol)]
    return f"{LABELS[framework]}/{LABELS[protocol]} is not valid: {reason}; valid stacks: {valid_ids()}"


def worker_class_reason(protocol: str, worker_class: str) -> str:
    names = ", ".join(w.name for w in WORKER_CLASSES if w.protocol == protocol)
    return f"worker class {worker_class!r} cannot serve {LABELS[protocol]}; choose one of: {names}"


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise StackError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")


def find_stack(framework: str, protocol: str) -> Stack:
    check_choice("framework", framework, FRAMEWORKS)
    check_choice("protocol", protocol, PROTOCOLS)
    for stack in STACKS:
        if (stack.framework, stack.protocol) == (framework, protocol):
            return stack
    raise StackError(invalid_reason(framework, protocol))


def find_worker_class(stack: Stack, worker_class: str | None) -> WorkerClass:
    if worker_class is None:
        return stack.worker_classes[0]
    for w in WORKER_CLASSES:
        if w.name == worker_class:
            if w.protocol != stack.protocol:
                raise StackError(worker_class_reason(stack.protocol, worker_class))
            return w
    names = ", ".join(w.name for w in WORKER_CLASSES)
    raise StackError(f"unknown worker class {worker_class!r}; choose one of: {names}")


def find_combination(combination_id: str) -> Combination:
    for c in COMBINATIONS:
        if c.id == combination_id:
            return c
    ids = ", ".join(c.id for c in COMBINATIONS)
    raise StackError(f"unknown combination {combination_id!r}; choose one of: {ids}")


def default_protocol(framework: str) -> str:
    return next(s.protocol for s in STACKS if s.framework == framework)
