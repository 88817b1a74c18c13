"""The one table: frameworks, protocols, targets, servers, worker classes and what each needs.

Everything else (the CLI's choices, `newstack matrix`, copier.yml, the tests, examples/ and the
CI matrix) is derived from the rows in this module: consumers ask a row, they never test a
value's name. Commands are written with `{package}` where the project's Python package name
goes; `fill_package` is the one place it is filled in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from typing import Literal

from .errors import UsageError

Framework = Literal["fastapi", "flask", "django"]
Protocol = Literal["wsgi", "asgi"]
TargetName = Literal["dev", "prod"]
ServerName = str  # a row of SERVER_ROWS: adding one is adding a row, not a type

FRAMEWORKS: tuple[Framework, ...] = ("fastapi", "flask", "django")
PROTOCOLS: tuple[Protocol, ...] = ("wsgi", "asgi")

LABELS = {
    "fastapi": "FastAPI",
    "flask": "Flask",
    "django": "Django",
    "wsgi": "WSGI",
    "asgi": "ASGI",
}

UVICORN = "uvicorn[standard]>=0.34"  # [standard]: websockets (plain uvicorn answers WS with 404)
PSYCOPG = "psycopg[binary]>=3.2"  # PostgreSQL, sync and async in one driver (binary: no compiler)
# The data layer of the SQLAlchemy stacks: the ORM, its migrations, SQLite and PostgreSQL drivers.
# alembic 1.16: alembic.ini's path_separator
SQLALCHEMY = ("sqlalchemy>=2.0", "alembic>=1.16", PSYCOPG)
SQLALCHEMY_ASYNC = ("sqlalchemy[asyncio]>=2.0", "alembic>=1.16", "aiosqlite>=0.20", PSYCOPG)
# Django's ORM and migrations are its own; its connection pool (5.1+) is psycopg_pool's.
PSYCOPG_POOL = "psycopg[binary,pool]>=3.2"
# Reads .env (the README's "copy .env.example to .env") in every entry point, the environment
# winning over the file, as docker's --env-file and Flask's CLI do; without it only docker read it.
DOTENV = "python-dotenv>=1.0"
# The project's own checks, in its test extra: `ruff check`, `ruff format --check`, `mypy`
# (pyproject.toml configures them; tests/test_render.py runs them on every generated project).
# ruff's formatter may change its style in a minor release: the test extra and the pre-commit
# hook (.pre-commit-config.yaml, its rev) take the release the templates are formatted for.
RUFF_VERSION = "0.17.6"
CHECKS = (f"ruff>={RUFF_VERSION},<0.{int(RUFF_VERSION.split('.')[1]) + 1}", "mypy>=1.15")
# pre-commit-hooks (trailing whitespace, end of file, YAML and TOML syntax) at this rev; newstack's
# test extra installs the same version to run those hooks over every generated project.
PRE_COMMIT_HOOKS_VERSION = "6.0.0"

# The Python of a prod project's image and of every project's CI: the same interpreter, so the
# CI tests the versions the image installs (a lock forks where a package drops an older Python).
PYTHON_VERSION = "3.12"
# Locked dependencies, hashed, in the requirements format that both `pip install
# --require-hashes -r` and uv install: the image installs LOCK (the dependencies and every
# extra but `test`), CI and a reproducible set-up install TEST_LOCK (the same pins plus the test
# extra). Universal (every platform and Python the project supports); made by uv from
# pyproject.toml, the one source of truth, kept current by `python -m newstack.locks`.
LOCK = "requirements.txt"
TEST_LOCK = "requirements-test.txt"
LOCK_OPTIONS = "--generate-hashes --universal --no-annotate"  # annotations name the project
# The uv that makes the locks (`python -m newstack.locks` refuses another) and that the
# project's CI runs to check them: another version may write the same pins differently.
UV_VERSION = "0.13.9"


def lock_commands(extras: tuple[str, ...]) -> tuple[str, str]:
    """The commands that make LOCK and TEST_LOCK from pyproject.toml (in the project, with uv);
    TEST_LOCK is constrained to LOCK's pins, so the tests run what the image runs."""
    runtime = "".join(f" --extra {name}" for name in extras)
    return (f"uv pip compile pyproject.toml{runtime} {LOCK_OPTIONS} -o {LOCK}",
            f"uv pip compile pyproject.toml --all-extras -c {LOCK} {LOCK_OPTIONS} -o {TEST_LOCK}")


def fill_package(text: str, package: str) -> str:
    """The one place `{package}` becomes the project's package name."""
    return text.replace("{package}", package)


@dataclass(frozen=True)
class Target:
    name: TargetName
    help: str
    # What a project of this target carries beyond the framework's tree: template file names
    # switch on these (`{% if 'Dockerfile' in stack.ships %}`), never on the target's name.
    ships: tuple[str, ...] = ()
    takes_server: bool = False  # a production server, chosen among SERVER_ROWS
    debug_env_in_dev_command: bool = False  # its dev command must switch debug on by itself


TARGET_ROWS = (
    Target("dev", "the framework's dev server"),
    Target(
        "prod",
        "a production server, Dockerfile, deploy files",
        ships=(".dockerignore", ".env.example", "Dockerfile", "deploy", "compose.yaml"),
        takes_server=True,
        debug_env_in_dev_command=True,  # a prod project's settings default to debug off
    ),
)
TARGETS: tuple[TargetName, ...] = tuple(t.name for t in TARGET_ROWS)


@dataclass(frozen=True)
class Tuning:
    """An alternative to a server's generated settings that `newstack bench` measures beside the
    default. `name` and the values of `env` may hold `{cores}` (the CPUs the bench may use) and
    `{cores_x2_plus_1}`, filled in for the machine."""

    name: str
    env: dict[str, str] = field(default_factory=dict)  # on top of the generated environment
    args: tuple[str, ...] = ()  # appended to the prod command (gunicorn: its CLI beats its file)
    protocols: tuple[Protocol, ...] = PROTOCOLS  # the stacks it applies to


@dataclass(frozen=True)
class Peer:
    """Another project template's production command for a stack, measured by `newstack bench`
    beside the default server's: `{app}` is the stack's app, `{package}` the package, `{host}`
    and `{port}` the address."""

    label: str  # "gunicorn -k gevent (cookiecutter-flask)"
    argv: tuple[str, ...]
    imports: tuple[str, ...] = ()  # modules it needs (`pip install 'newstack[bench]'`)


@dataclass(frozen=True)
class SeedClaim:
    """The seed's "Decision Matrix - Performance is Important!" for a stack, as claimed."""

    requests_per_s: int
    memory: str  # "Low", "Medium", "High"


@dataclass(frozen=True)
class Server:
    """A production server."""

    name: ServerName
    label: str
    help: str  # the choice's text in copier's questionnaire
    packages: tuple[str, ...]
    argv: tuple[str, ...]  # the prod command; `{app}` is the stack's app, `{package}` the package
    config_file: str  # where the project keeps its settings
    ships: tuple[str, ...]  # the files it adds to a prod project (see Target.ships)
    takes_worker_class: bool  # its workers are chosen among WORKER_CLASSES
    env_prefix: str  # every setting can be given as an environment variable with this prefix
    boot_log: str  # what its log says when it starts a worker
    # Python run in a prod project (cwd: the project) that prints its server's settings as JSON:
    # workers, worker_class (None when it takes none) and graceful_timeout.
    settings_code: str
    interfaces: dict[str, str] = field(default_factory=dict)  # stack key -> its --interface
    no_worker_class: str = ""  # why it takes no worker class
    cluster_workers: int = 1  # workers in one Kubernetes pod (CPU limit one core)
    # Environment for the prod tests' kinds of run (tests/generated/prod.py): "steady" must not
    # recycle workers; "recycling" recycles them every few hundred requests (absent: it cannot).
    test_env: dict[str, dict[str, str]] = field(default_factory=dict)
    # `newstack bench`: the alternatives it measures beside the generated default, the
    # and the environment that turns the access log off.
    tunings: tuple[Tuning, ...] = ()
    access_log_off: dict[str, str] = field(default_factory=dict)

    def prod_argv(self, stack: Stack) -> tuple[str, ...]:
        return tuple(arg.replace("{app}", stack.app) for arg in self.argv)

    def interface(self, stack: Stack) -> str:
        return self.interfaces.get(stack.key, "")


# The database pool of an ASGI worker's event loop (DB_POOL_SIZE, default 5; Django ASGI's
# db.run threads too), tried on both servers: WSGI pools follow the threads, tuned already.
ASGI_POOL_TUNINGS = tuple(
    Tuning(f"pool {size} per worker", env={"DB_POOL_SIZE": str(size)}, protocols=("asgi",))
    for size in (10, 20))

SERVER_ROWS = (
    Server(
        name="gunicorn",
        label="gunicorn",
        help="gunicorn (with gunicorn.conf.py)",
        # 25.1: native asgi worker stable, control socket setting exists
        packages=("gunicorn>=25.1",),
        argv=("gunicorn", "{app}", "-c", "gunicorn.conf.py"),
        config_file="gunicorn.conf.py",
        ships=("gunicorn.conf.py",),
        takes_worker_class=True,
        env_prefix="GUNICORN_",
        boot_log="Booting worker with pid",
        # gunicorn.conf.py, run as gunicorn runs it
        settings_code="import json, runpy; s = runpy.run_path('gunicorn.conf.py'); print(json.dumps("
        "{k: s.get(k) for k in ('workers', 'worker_class', 'graceful_timeout')}))",
        test_env={
            "steady": {"GUNICORN_MAX_REQUESTS": "0"},
            "recycling": {"GUNICORN_MAX_REQUESTS": "100", "GUNICORN_MAX_REQUESTS_JITTER": "200"},
        },
        # Not measured: max_requests recycling off. The generated max_requests is 100,000 (+ up
        # to 10,000 jitter) per worker: no worker recycles within a bench run, so "off" runs
        # exactly the default's configuration.
        tunings=(
            Tuning("1 worker", env={"WEB_CONCURRENCY": "1"}),
            Tuning("2 x cores + 1 workers", env={"WEB_CONCURRENCY": "{cores_x2_plus_1}"},
                   protocols=("asgi",)),
            Tuning("gunicorn asgi worker", args=("-k", "asgi"), protocols=("asgi",)),
            *ASGI_POOL_TUNINGS,
            Tuning("cores workers", env={"WEB_CONCURRENCY": "{cores}"}, protocols=("wsgi",)),
            # about as many threads in flight as the default (16 against 20 on 2 cores), in 2 processes
            Tuning("cores workers, 8 threads",
                   env={"WEB_CONCURRENCY": "{cores}", "GUNICORN_THREADS": "8"}, protocols=("wsgi",)),
            Tuning("sync worker", env={"GUNICORN_THREADS": "1"}, args=("-k", "sync"),
                   protocols=("wsgi",)),
            Tuning("gthread 8 threads", env={"GUNICORN_THREADS": "8"}, protocols=("wsgi",)),
        ),
        access_log_off={"GUNICORN_ACCESSLOG": "/dev/null"},
    ),
    Server(
        name="granian",
        label="Granian",
        help="Granian (a Rust HTTP server)",
        packages=("granian>=2.8",),  # 2.8: asginl, respawn of failed workers, workers_kill_timeout
        # Granian reads no configuration file: the module maps the environment onto it.
        argv=("python", "-m", "{package}.serve"),
        config_file="{package}/serve.py",
        ships=("serve.py", "test_serve.py"),
        takes_worker_class=False,
        env_prefix="GRANIAN_",
        boot_log="Spawning worker-",
        # serve.py's defaults, overridden by the environment as Granian's command line does
        settings_code="import json, os, {package}.serve as s; d = s.defaults(); d.update((k, v) "
        "for k, v in os.environ.items() if k.startswith('GRANIAN_')); print(json.dumps({"
        "'workers': int(d['GRANIAN_WORKERS']), 'worker_class': None, "
        "'graceful_timeout': int(d['GRANIAN_WORKERS_KILL_TIMEOUT'])}))",
        interfaces={
            "fastapi-asgi": "asgi",  # runs FastAPI's lifespan
            "flask-wsgi": "wsgi",
            "django-wsgi": "wsgi",
            # Django and Channels have no lifespan: under `asgi` Granian logs an error at each start
            "django-asgi": "asginl",
        },
        no_worker_class="Granian runs its own workers",
        # Granian recycles nothing unless told to (GRANIAN_WORKERS_LIFETIME / _MAX_RSS are off)
        test_env={"steady": {}},
        tunings=(
            Tuning("1 worker", env={"WEB_CONCURRENCY": "1"}),
            Tuning("2 x cores + 1 workers", env={"WEB_CONCURRENCY": "{cores_x2_plus_1}"}),
            Tuning("1 blocking thread", env={"GRANIAN_BLOCKING_THREADS": "1"},
                   protocols=("wsgi",)),
            Tuning("16 blocking threads", env={"GRANIAN_BLOCKING_THREADS": "16"},
                   protocols=("wsgi",)),
            # Granian's defaults are one runtime (I/O) thread per worker and --loop auto: rloop
            # if installed, else uvloop (which uvicorn[standard] installs), else asyncio.
            Tuning("asyncio loop", env={"GRANIAN_LOOP": "asyncio"}, protocols=("asgi",)),
            Tuning("2 runtime threads", env={"GRANIAN_RUNTIME_THREADS": "2"},
                   protocols=("asgi",)),
            *ASGI_POOL_TUNINGS,
        ),
        access_log_off={"GRANIAN_LOG_ACCESS_ENABLED": "false"},
    ),
)
SERVERS: tuple[ServerName, ...] = tuple(s.name for s in SERVER_ROWS)  # the first is the default


@dataclass(frozen=True)
class WorkerClass:
    name: str  # the choice (`--worker-class`): a gunicorn worker class
    short: str  # in ids: fastapi-asgi-prod-uvicorn
    protocol: Protocol
    packages: tuple[str, ...]
    async_worker: bool  # async workers default to one per core, sync ones to 2 x cores + 1
    note: str
    # A subclass of it that the project ships in {package}/workers.py and gunicorn.conf.py
    # names instead ("" when the class is used as it is).
    subclass: str = ""
    untyped: tuple[str, ...] = ()  # see Stack.untyped

    @property
    def gunicorn_class(self) -> str:
        """What gunicorn.conf.py sets as worker_class (with `{package}`)."""
        return self.subclass or self.name

    @property
    def ships(self) -> tuple[str, ...]:
        return ("workers.py",) if self.subclass else ()

    @property
    def cluster_workers(self) -> int:
        # gunicorn workers in one Kubernetes pod, whose CPU limit is one core: the same rule as
        # gunicorn.conf.py (which would count the node's cores, not the pod's limit).
        return 1 if self.async_worker else 3


WORKER_CLASSES = (
    WorkerClass(
        "uvicorn_worker.UvicornWorker",
        "uvicorn",
        "asgi",
        ("uvicorn-worker>=0.3",),
        True,
        "uvicorn's event loop and HTTP parser under gunicorn's process manager "
        "(the uvicorn-worker package; uvicorn.workers.UvicornWorker is deprecated)",
        # stops without dropping requests on kept-alive connections, enforces gunicorn's
        # request limits (uvicorn ignores them)
        subclass="{package}.workers.UvicornWorker",
        untyped=("uvicorn_worker.*",),
    ),
    WorkerClass(
        "asgi",
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
        "gthread",
        "wsgi",
        (),
        False,
        "threads per worker and keep-alive; holds slow clients better than sync",
    ),
    WorkerClass("sync", "sync", "wsgi", (), False, "one request at a time per worker process"),
)


@dataclass(frozen=True)
class Stack:
    framework: Framework
    protocol: Protocol
    app: str  # the import path the server serves
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
    ships: tuple[str, ...] = ()  # files of the framework's tree only this stack has
    seed_claim: SeedClaim | None = None  # what the seed claimed for it (`newstack bench`)
    peers: tuple[Peer, ...] = ()  # other templates' prod commands, measured beside ours
    # The settings a prod project of this stack reads beyond those every stack reads (PORT,
    # WEB_CONCURRENCY, FORWARDED_ALLOW_IPS, the two above, its server's): the README's table,
    # .env.example and deploy/k8s/configmap.yaml each loop over them once.
    env: tuple[EnvVar, ...] = ()
    prod_setup: tuple[SetupStep, ...] = ()  # what a prod project runs before it serves
    no_lifespan: str = ""  # why its ASGI application has no lifespan ("" when it has one)
    # The data layer: the project's module that checks the database settings and sizes the pool
    # (`check_settings()`, `pool_size()`), the command that applies its migrations (a separate
    # step: never run by the workers) and the files that command needs.
    database: str = ""
    migrate: str = ""
    migrations: tuple[str, ...] = ()
    # Modules it imports that ship no type hints: mypy takes what they give as Any (pyproject.toml)
    untyped: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.framework}-{self.protocol}"

    @property
    def label(self) -> str:
        return f"{LABELS[self.framework]} / {LABELS[self.protocol]}"

    @property
    def realtime(self) -> bool:
        """It serves WebSockets and Server-Sent Events (the seed's section 3: ASGI only)."""
        return self.protocol == "asgi"

    @property
    def worker_classes(self) -> tuple[WorkerClass, ...]:
        """The gunicorn worker classes that can serve this stack, the default first."""
        return tuple(w for w in WORKER_CLASSES if w.protocol == self.protocol)


@dataclass(frozen=True)
class EnvVar:
    """An environment variable a stack's prod project reads: one row of the README's table."""

    names: tuple[str, ...]  # set together, in one row of the README
    default: str  # the README's cells (Markdown)
    what: str
    example: str | None = None  # its value in .env.example (None: not listed there)
    example_note: str = ""  # the comment above it in .env.example (lines)
    cluster: str | None = None  # its value in deploy/k8s/configmap.yaml (None: not set there)
    cluster_note: str = ""  # the comment in configmap.yaml (lines)


@dataclass(frozen=True)
class SetupStep:
    """A command a prod project runs before it serves: the README shows it, the Dockerfile runs
    it at build time."""

    command: str
    needs: tuple[str, ...]  # the project's files it needs besides the package
    note: str  # why and how the Dockerfile runs it


DJANGO_ENV = (
    EnvVar(("DJANGO_DEBUG",), "`0`", "never `1` in production"),
    EnvVar(("DJANGO_SECURE_SSL_REDIRECT",), "`1`", "redirect plain HTTP to HTTPS (not `/healthz`)",
           example="1", cluster="1",
           example_note="Set to 0 only when no TLS-terminating proxy sits in front (local tries)."),
    EnvVar(("DJANGO_SECURE_HSTS_SECONDS",), "`31536000`", "HSTS max-age"),
    EnvVar(("DJANGO_SECURE_HSTS_PRELOAD",), "`0`",
           "`1` adds HSTS `preload`: a lasting commitment (every subdomain HTTPS-only), so only "
           "once that holds, then submit the domain to hstspreload.org"),
    EnvVar(("DJANGO_CSRF_TRUSTED_ORIGINS",), "none",
           "origins allowed to POST forms, e.g. `https://example.com`"),
    EnvVar(("DJANGO_LOG_LEVEL",), "`INFO`", "log level"),
    EnvVar(("DJANGO_STATIC_ROOT",), "`staticfiles/`", "where the collected static files are"),
)
# Every stack with a data layer reads these (see each project's database module).
DATABASE_ENV = (
    EnvVar(("DATABASE_URL",), "a SQLite file, `{package}.sqlite3`",
           "`postgresql://USER:PASSWORD@HOST:PORT/NAME` for PostgreSQL (a secret: it holds the "
           "password)", example="",
           example_note="The database: postgresql://USER:PASSWORD@HOST:5432/NAME. Empty: a SQLite "
           "file in the working directory\n(one host only; every worker shares it)."),
    EnvVar(("DB_POOL_SIZE",), "ASGI `5`, WSGI the worker's threads",
           "connections each worker process holds at most: workers x this x replicas must stay "
           "below PostgreSQL's `max_connections`",
           example="", example_note="Connections per worker process (empty: 5 on ASGI, the "
           "worker's threads on WSGI).",
           cluster_note="Database connections: pods (hpa.yaml's maxReplicas at most) x "
           "WEB_CONCURRENCY x DB_POOL_SIZE\n(unset: 5 on ASGI, the worker's threads on WSGI) must "
           "stay below PostgreSQL's max_connections\nminus a reserve. Each pod prints its share at "
           "start: \"database budget: W workers x P connections\"."),
)
ALEMBIC = ("alembic upgrade head", ("alembic.ini", "migrations"))
# Django's migrations live in the package (copied with it); manage.py runs them.
DJANGO_MIGRATE = ("python manage.py migrate", ("manage.py",))

DJANGO_SETUP = (
    SetupStep("python manage.py collectstatic --noinput", ("manage.py",),
              "Static files are collected at build time, without the secret key (it needs none, "
              "and none is baked in)."),
)

STACKS = (
    Stack(
        framework="fastapi",
        protocol="asgi",
        app="{package}.main:app",
        dev_command="uvicorn {package}.main:app --reload",
        dev_bind="--host {host} --port {port}",
        packages=("fastapi>=0.115", UVICORN, "jinja2>=3.1", *SQLALCHEMY_ASYNC, DOTENV),
        prod_packages=(),
        test_packages=("pytest>=8", "httpx2>=2", *CHECKS),  # starlette 1.x testclient: httpx is deprecated
        secret_env="",
        hosts_env="ALLOWED_HOSTS",
        seed_claim=SeedClaim(20_000, "Low"),
        # full-stack-fastapi-template's prod command, on its sync sessions (bench.py)
        peers=(Peer("fastapi run --workers 4", ("fastapi", "run", "--workers", "4", "--host",
                                                "{host}", "--port", "{port}", "{package}/main.py"),
                    imports=("fastapi_cli",)),),
        env=(EnvVar(("ENABLE_DOCS",), "`0`", "`1` serves `/docs`, `/redoc` and `/openapi.json`",
                    example="0", example_note="Set to 1 to serve /docs, /redoc and /openapi.json.",
                    cluster="0"), *DATABASE_ENV),
        database="{package}.db",
        migrate=ALEMBIC[0],
        migrations=ALEMBIC[1],
    ),
    Stack(
        framework="flask",
        protocol="wsgi",
        app="{package}:create_app()",
        dev_command="flask --app {package} run --debug",
        dev_bind="--host {host} --port {port}",
        packages=("flask>=3.1", *SQLALCHEMY, DOTENV),
        prod_packages=(),
        test_packages=("pytest>=8", *CHECKS),
        secret_env="FLASK_SECRET_KEY",
        hosts_env="FLASK_TRUSTED_HOSTS",
        env=DATABASE_ENV,
        database="{package}.db",
        migrate=ALEMBIC[0],
        migrations=ALEMBIC[1],
        seed_claim=SeedClaim(5_000, "High"),
        # cookiecutter-flask: gunicorn with gevent workers (`-c /dev/null`: not our
        # gunicorn.conf.py)
        peers=(Peer("gunicorn -k gevent (cookiecutter-flask)",
                    ("gunicorn", "{app}", "-c", "/dev/null", "-k", "gevent", "--bind",
                     "{host}:{port}"), imports=("gevent",)),),
    ),
    Stack(
        framework="django",
        protocol="wsgi",
        app="{package}.wsgi:application",
        dev_command="python manage.py runserver",
        dev_bind="{host}:{port}",
        packages=("django>=5.2", PSYCOPG_POOL, DOTENV),
        prod_packages=("whitenoise>=6.8",),
        test_packages=("pytest>=8", *CHECKS),
        secret_env="DJANGO_SECRET_KEY",
        hosts_env="DJANGO_ALLOWED_HOSTS",
        debug_env="DJANGO_DEBUG=1",
        ships=("wsgi.py",),
        seed_claim=SeedClaim(3_000, "High"),
        # cookiecutter-django: gunicorn with its defaults, on its database settings (bench.py)
        peers=(Peer("gunicorn defaults, CONN_MAX_AGE=60 (cookiecutter-django)",
                    ("gunicorn", "{app}", "-c", "/dev/null", "--bind", "{host}:{port}")),),
        env=(*DJANGO_ENV, *DATABASE_ENV),
        prod_setup=DJANGO_SETUP,
        untyped=("django.*",),
        database="{package}.db",
        migrate=DJANGO_MIGRATE[0],
        migrations=DJANGO_MIGRATE[1],
    ),
    Stack(
        framework="django",
        protocol="asgi",
        app="{package}.asgi:application",
        dev_command="uvicorn {package}.asgi:application --reload",
        dev_bind="--host {host} --port {port}",
        # asgiref (Django's own dependency): sync_to_async, imported by the project
        packages=("django>=5.2", "channels>=4.2", UVICORN, PSYCOPG_POOL, "asgiref>=3.8",
                  DOTENV),
        # servestatic: WhiteNoise's async fork; WhiteNoise buffers whole files under ASGI
        prod_packages=("servestatic>=3",),
        test_packages=("pytest>=8", "daphne>=4.1", *CHECKS),  # channels.testing imports daphne
        secret_env="DJANGO_SECRET_KEY",
        hosts_env="DJANGO_ALLOWED_HOSTS",
        debug_env="DJANGO_DEBUG=1",
        # More than one process (workers or replicas) needs a shared channel layer for group
        # messages; settings.py uses it when REDIS_URL is set.
        extras=(("redis", ("channels-redis>=4.2",)),),
        ships=("asgi.py", "consumers.py", "middleware.py"),
        seed_claim=SeedClaim(15_000, "Medium"),
        env=(*DJANGO_ENV, EnvVar(
            ("REDIS_URL",), "none: in-memory",
            "the Channels layer shared by workers and replicas (`redis` extra)", example="",
            example_note="A shared channel layer, needed with more than one worker or replica: "
            "redis://HOST:6379/0\n(the image installs the redis extra: pip install \".[redis]\"). "
            "Empty: in memory, one process.",
            cluster_note="More than one pod needs a shared channel layer for group messages: put "
            "REDIS_URL\n(redis://HOST:6379/0, with its password) in the Secret. Without it, each "
            "process has its own."), *DATABASE_ENV),
        prod_setup=DJANGO_SETUP,
        no_lifespan="Django and Channels do not implement the lifespan protocol",
        untyped=("django.*", "channels.*", "daphne.*", "servestatic.*"),
        database="{package}.db",
        migrate=DJANGO_MIGRATE[0],
        migrations=DJANGO_MIGRATE[1],
    ),
)

INVALID = {
    ("fastapi", "wsgi"): "FastAPI is ASGI-only: under a WSGI adapter its lifespan never runs "
    "and WebSockets answer 404",
    ("flask", "asgi"): "Flask is WSGI-only: under an ASGI adapter WebSockets answer 500 and "
    "every request costs a thread hop",
}


def target_row(name: str) -> Target:
    return next(t for t in TARGET_ROWS if t.name == name)


def server_row(name: str) -> Server:
    return next(s for s in SERVER_ROWS if s.name == name)


@dataclass(frozen=True)
class Combination:
    stack: Stack
    target: TargetName
    server: ServerName | None = None  # prod only: one of SERVERS

    @property
    def id(self) -> str:
        """fastapi-asgi-dev, fastapi-asgi-prod (gunicorn, the default), fastapi-asgi-prod-granian"""
        suffix = f"-{self.server}" if self.server and self.server != SERVERS[0] else ""
        return f"{self.stack.key}-{self.target}{suffix}"

    def variant_id(self, worker: WorkerClass | None) -> str:
        """The id with a worker class: fastapi-asgi-prod-uvicorn, fastapi-asgi-prod-asgi."""
        return f"{self.id}-{worker.short}" if worker else self.id

    @property
    def framework(self) -> Framework:
        return self.stack.framework

    @property
    def protocol(self) -> Protocol:
        return self.stack.protocol

    @property
    def server_row(self) -> Server | None:
        return server_row(self.server) if self.server else None


COMBINATIONS = tuple(
    Combination(stack, target.name, server)
    for stack, target in product(STACKS, TARGET_ROWS)
    for server in (SERVERS if target.takes_server else (None,))
)


# --------------------------------------------------------------------------------------------
# Which answers apply when: written once, read by the Python checks, `newstack update`,
# copier.yml's `when:` and validators, and the templates' context.


@dataclass(frozen=True)
class Applies:
    """An answer that applies only to some targets (and servers)."""

    question: str
    noun: str  # "a worker class"
    targets: tuple[TargetName, ...]
    servers: tuple[ServerName, ...] | None = None  # None: any server

    def __call__(self, target: str | None, server: str | None) -> bool:
        return target in self.targets and (self.servers is None or server in self.servers)

    def refusal(self, target: str | None, server: str | None) -> str | None:
        """Why this answer, given, cannot apply to `target` and `server` (None: it can)."""
        if target is not None and target not in self.targets:
            return (f"{self.noun} applies to the {' or '.join(self.targets)} target only "
                    f"({target} runs {target_row(target).help})")
        if self.servers is not None and server is not None and server not in self.servers:
            only = " or ".join(self.servers)
            return (f"{self.noun} applies to {only} only ({server_row(server).no_worker_class}); "
                    f"leave it out or choose --server {self.servers[0]}")
        return None

    def jinja(self) -> str:
        """The same condition as a Jinja expression over copier's answers."""
        condition = f"target in {list(self.targets)}"
        if self.servers is not None:
            condition += f" and server in {list(self.servers)}"
        return condition


APPLIES = (
    Applies("server", "a server", tuple(t.name for t in TARGET_ROWS if t.takes_server)),
    Applies(
        "worker_class",
        "a worker class",
        tuple(t.name for t in TARGET_ROWS if t.takes_server),
        tuple(s.name for s in SERVER_ROWS if s.takes_worker_class),
    ),
)


def applies(question: str, target: str | None, server: str | None) -> bool:
    return next(a for a in APPLIES if a.question == question)(target, server)


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


def default_protocol(framework: str) -> Protocol:
    return next(s.protocol for s in STACKS if s.framework == framework)


# What `newstack bench` measures: one request of each workload, through a generated project's
# own routes (those of every stack), pool and driver.
@dataclass(frozen=True)
class Workload:
    """What one request of a measurement does, through the generated project's routes."""

    name: str
    what: str  # for --help and the report
    path: str  # {id}: a random row id, 1 to the rows the bench seeds (bench.ROWS)
    method: str = "GET"
    body: str = ""
    database: bool = True  # whether it needs a database set up and seeded
    postgresql_only: bool = False  # SQL that SQLite does not have
    injected: bool = False  # its route is added by the bench (bench.BENCH_ROUTES), not shipped
    # Whether the servers' tunings are measured on it: the defaults and the peers run every
    # workload, the tunings only those the defaults are chosen by (all of a run's workloads when
    # it has none of them), which keeps `bench --all` with every workload within ~15 minutes.
    tuned: bool = False


WORKLOADS = (
    Workload("json", "a small JSON answer, no database (GET /api/hello)", "/api/hello",
             database=False),
    Workload("db", "one row by random id (GET /api/items/ID)", "/api/items/{id}", tuned=True),
    Workload("page", "the landing page: the 10 newest rows as escaped HTML (GET /)", "/"),
    Workload("write", "create a row (POST /api/items, JSON)", "/api/items", "POST",
             '{"name": "bench", "note": "written by newstack bench"}'),
    Workload("queries", "20 rows by random id, one query each", "/api/items/bench/queries",
             injected=True, tuned=True),
    # Not shipped: a route that holds a connection 10 ms on request is a denial of service.
    Workload("io", "waits 10 ms on PostgreSQL (SELECT pg_sleep(0.01)), the case where an event "
             "loop should beat a thread pool", "/api/items/bench/io", postgresql_only=True,
             injected=True),
)
DATABASES = ("postgresql", "sqlite")


def protocols_of(framework: str) -> tuple[Protocol, ...]:
    """The protocols `framework` can serve (empty for an unknown framework)."""
    return tuple(s.protocol for s in STACKS if s.framework == framework)


def default_framework(protocol: str | None) -> Framework:
    """The first framework that can serve `protocol` (any protocol: the first framework)."""
    return next((s.framework for s in STACKS if protocol in (None, s.protocol)), FRAMEWORKS[0])
