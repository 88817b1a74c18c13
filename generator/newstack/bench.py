"""Measure the prod stacks: each generated project started with its own prod command (gunicorn
and gunicorn.conf.py, or Granian through PKG/serve.py), warmed up, then loaded with wrk on one or
more workloads (WORKLOADS) through the project's own routes, pool and driver: a JSON answer, a
row by id, the landing page, a write; on a PostgreSQL the bench starts, or on SQLite files.
Variants (the servers' tunings and the stacks' peers, both rows of the table in stacks.py) run
the same way, in the same run, for ratios. The tables and the chart are bench_report's.

The load generator shares the machine with the server: figures are for comparing stacks and
variants measured in one run, not absolute capacities. Order matters on a shared machine, so
every project is generated before the first measurement, each stack's variants run in a
shuffled order, and its generated default runs twice, first and last: the default's figure is
the mean of the two, and their spread shows the noise.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import mean
from typing import TypedDict

import psutil

from . import smoke
from .errors import NewstackError, UsageError
from .postgres import Cluster
from .stacks import (
    COMBINATIONS,
    DATABASES,
    SERVER_ROWS,
    SERVERS,
    STACKS,
    WORKLOADS,
    Combination,
    Peer,
    ServerName,
    Stack,
    Tuning,
    Workload,
    default_protocol,
    fill_package,
    find_stack,
)

# The combinations with a production server by id, and their ids by (stack key, server): ids
# are never taken apart.
PROD = {c.id: c for c in COMBINATIONS if c.server is not None}
PROD_ID = {(c.stack.key, c.server): c.id for c in PROD.values()}
# The stack the others are compared with: the seed's fastest claim (FastAPI).
REFERENCE = max((s for s in STACKS if s.seed_claim), key=lambda s: s.seed_claim.requests_per_s
                if s.seed_claim else 0)

# The package name of every generated project the bench measures.
PACKAGE = "bench"
# Seconds of load before each measurement: imports, caches, connections.
WARM_UP = 1
# Rows each project's database holds before the load, as TechEmpower's World table.
ROWS = 10_000
# The routes of the injected workloads (Workload.injected), added to a generated project's items
# module (and urls.py) by the bench only: through the project's own session or ORM, pool and
# driver. Keyed by stack; the names they use are those the templates give.
BENCH_MARK = "\n\n# Added by newstack bench for its queries and io workloads, not part of the project.\n"
BENCH_ROUTES = {
    "fastapi-asgi": """import random as _random  # noqa: E402

from sqlalchemy import text as _text  # noqa: E402


@router.get("/bench/queries")
async def _bench_queries(db: Session) -> list[ItemOut]:
    found = [await db.get(Item, _random.randint(1, ROWS)) for _ in range(20)]
    return [ItemOut.model_validate(item) for item in found if item]


@router.get("/bench/io")
async def _bench_io(db: Session) -> dict[str, float]:
    await db.execute(_text("SELECT pg_sleep(0.01)"))
    return {"waited": 0.01}
""",
    "flask-wsgi": """import random as _random  # noqa: E402

from sqlalchemy import text as _text  # noqa: E402


@blueprint.get("/bench/queries")
def _bench_queries() -> Response:
    found = [db.session().get(Item, _random.randint(1, ROWS)) for _ in range(20)]
    return jsonify([item.to_json() for item in found if item])


@blueprint.get("/bench/io")
def _bench_io() -> Response:
    db.session().execute(_text("SELECT pg_sleep(0.01)"))
    return jsonify(waited=0.01)
""",
    "django-wsgi": """import random as _random  # noqa: E402

from django.db import connection as _connection  # noqa: E402


def _queries():
    found = [Item.objects.filter(id=_random.randint(1, ROWS)).first() for _ in range(20)]
    return [item.as_json() for item in found if item]


def _io():
    with _connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.01)")


def _bench_queries(request):
    return JsonResponse(_queries(), safe=False)


def _bench_io(request):
    _io()
    return JsonResponse({"waited": 0.01})
""",
}
BENCH_ROUTES["django-asgi"] = BENCH_ROUTES["django-wsgi"].replace(
    "def _bench_queries(request):\n    return JsonResponse(_queries()",
    "async def _bench_queries(request):\n    return JsonResponse(await db.run(_queries)").replace(
    "def _bench_io(request):\n    _io()", "async def _bench_io(request):\n    await db.run(_io)")
# full-stack-fastapi-template's database access, for its peer (PEER_PATHS): sync sessions in
# `def` routes, which FastAPI runs on its thread pool, from an engine with SQLAlchemy's default
# pool (5 connections and 10 overflow), created by each worker at its first request.
BENCH_ROUTES["fastapi-asgi"] += """

from collections.abc import Iterator as _Iterator  # noqa: E402
from functools import cache as _cache  # noqa: E402

from sqlalchemy import create_engine as _create_engine  # noqa: E402
from sqlalchemy.orm import Session as _SyncSession  # noqa: E402

from .db import database_url as _database_url  # noqa: E402


@_cache
def _sync_engine():
    return _create_engine(_database_url(sync=True))


def _sync_session() -> _Iterator[_SyncSession]:
    with _SyncSession(_sync_engine()) as db:
        yield db


_PeerSession = Annotated[_SyncSession, Depends(_sync_session)]


@router.get("/peer/queries")
def _peer_queries(db: _PeerSession) -> list[ItemOut]:
    found = [db.get(Item, _random.randint(1, ROWS)) for _ in range(20)]
    return [ItemOut.model_validate(item) for item in found if item]


@router.get("/peer/io")
def _peer_io(db: _PeerSession) -> dict[str, float]:
    db.execute(_text("SELECT pg_sleep(0.01)"))
    return {"waited": 0.01}


@router.post("/peer", status_code=status.HTTP_201_CREATED)
def _peer_create(item: ItemIn, db: _PeerSession) -> ItemOut:
    row = Item(name=item.name, note=item.note, created_at=datetime.now(UTC))
    db.add(row)
    db.commit()
    return ItemOut.model_validate(row)


@router.get("/peer/{item_id}")
def _peer_get(item_id: ItemId, db: _PeerSession) -> ItemOut:
    row = db.get(Item, item_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"item {item_id} not found")
    return ItemOut.model_validate(row)
"""
PEER_PATHS = {"fastapi-asgi": {"db": "/api/items/peer/{id}", "queries": "/api/items/peer/queries",
                               "io": "/api/items/peer/io", "write": "/api/items/peer"}}
# cookiecutter-django's database settings, for its peer (PEER_ENV): persistent connections
# (CONN_MAX_AGE=60) instead of a pool, a transaction per request.
PEER_ENV = {"django-wsgi": {"DJANGO_SETTINGS_MODULE": f"{PACKAGE}.peer_settings"}}
PEER_SETTINGS = """from .settings import *  # noqa: F403

_default = DATABASES["default"]  # noqa: F405
_default.update(CONN_MAX_AGE=60, ATOMIC_REQUESTS=True)
if "postgresql" in _default["ENGINE"]:
    _default["ENGINE"] = "django.db.backends.postgresql"
    _default["OPTIONS"].pop("pool", None)
"""
# Django's routes are in urls.py: before the admin's.
DJANGO_URLS = ('    path("admin/", ',
               ('    path("api/items/bench/queries", items._bench_queries),\n'
                '    path("api/items/bench/io", items._bench_io),\n    path("admin/", '))


def add_bench_files(project: Path, combination: Combination) -> None:
    """The injected workloads' routes (BENCH_ROUTES) and, in Django projects, the peer's
    settings (PEER_SETTINGS), in a generated project."""
    package = project / PACKAGE
    items = package / "items.py"
    routes = BENCH_ROUTES[combination.stack.key].replace("ROWS", str(ROWS))
    items.write_text(items.read_text() + BENCH_MARK + routes)
    urls = package / "urls.py"
    if urls.exists():
        old, new = DJANGO_URLS
        text = urls.read_text()
        if old not in text:
            raise NewstackError(f"{urls} has no admin route to put the bench's routes before")
        urls.write_text(text.replace(old, new, 1))
        (package / "peer_settings.py").write_text(BENCH_MARK.lstrip() + PEER_SETTINGS)


# wrk's requests for a workload: the path (a random id in place of {id}), method, body and the
# ids' range from the script's arguments.
SCRIPT_NAME = "workload.lua"
WRK_SCRIPT = """
function init(args)
  path, method, body, rows = args[1], args[2], args[3], tonumber(args[4])
  if body ~= "" then wrk.headers["Content-Type"] = "application/json" else body = nil end
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

request = function()
  local id = tostring(math.random(1, rows))
  return wrk.format(method, (string.gsub(path, "{id}", id)), nil, body)
end
"""

MAX_SECONDS = 3600  # of load per measurement: an hour
MAX_CONNECTIONS = 10_000


def check_options(seconds: float, connections: int) -> None:
    """Refuse, before any project is generated, what no measurement can run with (nan, inf and
    1e300 seconds, more connections than sockets may be opened)."""
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS):
        raise UsageError(f"--duration {seconds:g}: give the seconds of load per measurement, "
                         f"more than 0 and at most {MAX_SECONDS}")
    most = max_connections()
    if not 1 <= connections <= most:
        raise UsageError(f"--connections {connections}: give 1 to {most} (wrk and the server "
                         f"each hold one socket per connection: at most {MAX_CONNECTIONS}, and "
                         "within the open-file limit, `ulimit -n`)")


def max_connections() -> int:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, soft - 256))  # the rest: logs, pipes, the app's own


@dataclass(frozen=True)
class Variant:
    """One way to run a stack: the generated default, a tuning alternative, or a peer's."""

    name: str
    env: dict[str, str] = field(default_factory=dict)  # on top of the default environment
    argv: tuple[str, ...] = ()  # replaces the README's prod command when set
    extra_args: tuple[str, ...] = ()  # appended to the prod command (gunicorn: CLI beats file)
    packages: tuple[str, ...] = ()  # imports the variant needs, checked before it runs
    paths: dict[str, str] = field(default_factory=dict)  # workload name -> its own route


DEFAULT = Variant("default (generated)")


def machine_counts(cores: int) -> dict[str, int]:
    """What a Tuning's `{...}` stand for on this machine (see stacks.Tuning)."""
    return {"cores": cores, "cores_x2_plus_1": 2 * cores + 1}


def tuning_variant(tuning: Tuning, counts: dict[str, int]) -> Variant:
    return Variant(tuning.name.format_map(counts),
                   env={k: v.format_map(counts) for k, v in tuning.env.items()},
                   extra_args=tuning.args)


def peer_variant(peer: Peer, stack: Stack) -> Variant:
    """A peer's command, `{host}` and `{port}` left for `measure` to fill in."""
    argv = tuple(fill_package(a.replace("{app}", stack.app), PACKAGE) for a in peer.argv)
    return Variant(f"peer: {peer.label}", argv=argv, packages=peer.imports,
                   env=PEER_ENV.get(stack.key, {}), paths=PEER_PATHS.get(stack.key, {}))


def variants(combination: Combination, cores: int) -> list[Variant]:
    """The alternatives tried against the generated default (which is not in the list): the
    server's tunings for the stack's protocol, then the stack's peers (see `peers`)."""
    server = combination.server_row
    if server is None:
        raise NewstackError(f"{combination.id} has no production server to measure")
    counts = machine_counts(cores)
    return [*(tuning_variant(t, counts) for t in server.tunings
              if combination.protocol in t.protocols), *peers(combination)]


def peers(combination: Combination) -> list[Variant]:
    """The stack's peers, measured beside its default server only (once per stack)."""
    if combination.server != SERVERS[0]:
        return []
    return [peer_variant(p, combination.stack) for p in combination.stack.peers]


def plan(combination: Combination, cores: int, tune: bool, rng: random.Random) -> list[Variant]:
    """The order one stack's measurements run in: the default first and last, the
    alternatives shuffled between."""
    if not tune:
        return [DEFAULT]
    others = variants(combination, cores)
    rng.shuffle(others)
    return [DEFAULT, *others, DEFAULT]


def slices_of(combination: Combination, variant: Variant, workloads: tuple[Workload, ...],
              levels: tuple[int, ...]) -> list[tuple[Workload, int]]:
    """What one variant is measured on: the default and the peers on every workload and level,
    the tunings on the tuned workloads only (Workload.tuned), or on all when a run has none."""
    tuned = [w for w in workloads if w.tuned] or workloads
    every = variant == DEFAULT or variant in peers(combination)
    return [(w, n) for w, n in itertools.product(workloads, levels) if every or w in tuned]


@dataclass
class Measurement:
    combination: str
    variant: str
    server: str = ""
    order: int = 0  # its place in its stack's series (1 = first)
    requests_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    requests: int = 0
    errors: int = 0  # non-2xx/3xx responses and socket errors
    workers: int = 0
    memory_per_worker_mb: float = 0.0
    memory_total_mb: float = 0.0
    memory_kind: str = "PSS"
    workload: str = "json"
    connections: int = 0  # wrk's, when the run measured several levels (0: the run's)
    database: str = ""  # postgresql or sqlite, for workloads that use one
    peak_connections: int = 0  # PostgreSQL's client connections, sampled every 50 ms
    failure: str = ""

    @property
    def stack(self) -> str:
        """fastapi-asgi for fastapi-asgi-prod and fastapi-asgi-prod-granian"""
        return PROD[self.combination].stack.key

    @property
    def ok(self) -> bool:
        return not self.failure


class DefaultFigures(TypedDict):
    default_requests_per_s: int
    default_runs_requests_per_s: list[int]
    best_variant: str
    best_requests_per_s: int
    default_to_best: float


class PeerFigures(TypedDict):
    requests_per_s: int
    errors: int
    p99_ms: float
    ours_to_theirs: float


# What the server comparisons divide: a server's default by the default server's.
RATIO_FIGURES = ("requests_per_s", "p99_ms", "memory_per_worker_mb", "memory_total_mb")


def server_key(server: ServerName) -> str:
    """The summary's key for a server against the default server: granian_to_gunicorn."""
    return f"{server}_to_{SERVERS[0]}"


def protocol_pairs() -> list[tuple[Stack, Stack]]:
    """Each stack whose protocol is not its framework's default, with the stack of the default
    protocol: (django-asgi, django-wsgi)."""
    return [(s, find_stack(s.framework, default_protocol(s.framework))) for s in STACKS
            if s.protocol != default_protocol(s.framework)]


def protocol_key(stack: Stack, base: Stack) -> str:
    """The summary's key for a stack against its framework's default: django_asgi_to_wsgi."""
    return f"{stack.framework}_{stack.protocol}_to_{base.protocol}"


@dataclass
class Run:
    """A bench run: its measurements in the order they were taken, and how it was taken."""

    results: list[Measurement]
    seconds: float  # of load per measurement, after WARM_UP
    connections: int
    cores: int
    seed: int  # of the shuffled order (`--seed` repeats it)
    load_average: tuple[float, float, float]  # when the run began
    elapsed: float = 0.0  # seconds, generation of the projects included

    def workloads(self) -> list[str]:
        return list(dict.fromkeys(r.workload for r in self.results))

    def levels(self) -> list[int]:
        """The concurrency levels measured (wrk's connections)."""
        return list(dict.fromkeys(r.connections or self.connections for r in self.results))

    def slices(self) -> list[tuple[str, int]]:
        return [(w, c) for w in self.workloads() or ["json"] for c in self.levels() or
                [self.connections]]

    def part(self, workload: str, connections: int | None = None) -> Run:
        """This run's measurements of one workload (at one level), as a run of their own."""
        level = connections or self.connections
        return Run([r for r in self.results if r.workload == workload
                    and (connections is None or (r.connections or self.connections) == level)],
                   self.seconds, level, self.cores, self.seed, self.load_average, self.elapsed)

    def of(self, combination: str) -> list[Measurement]:
        return [r for r in self.results if r.combination == combination and r.ok]

    def combinations(self) -> list[str]:
        return list(dict.fromkeys(r.combination for r in self.results))

    def stacks(self) -> list[str]:
        return list(dict.fromkeys(r.stack for r in self.results))

    def default(self, combination: str) -> Measurement | None:
        """The generated default: the mean of its runs (first and last of its stack)."""
        runs = [r for r in self.of(combination) if r.variant == DEFAULT.name]
        if not runs:
            return None
        summary = Measurement(combination, DEFAULT.name, runs[0].server,
                              memory_kind=runs[0].memory_kind)
        for name in ("requests_per_s", "p50_ms", "p99_ms", "memory_per_worker_mb",
                     "memory_total_mb"):
            setattr(summary, name, mean(getattr(r, name) for r in runs))
        summary.requests = sum(r.requests for r in runs)
        summary.errors = sum(r.errors for r in runs)
        summary.workers = runs[0].workers
        return summary

    def default_of(self, stack: str, server: ServerName) -> Measurement | None:
        """The generated default of a stack key on a server."""
        return self.default(PROD_ID[stack, server])

    def default_runs(self, combination: str) -> list[float]:
        return [r.requests_per_s for r in self.of(combination) if r.variant == DEFAULT.name]

    def best(self, combination: str) -> Measurement | None:
        """The fastest configuration measured for a stack on its server, peers' included;
        a configuration that answered with errors does not count."""
        clean = [r for r in self.of(combination) if not r.errors]
        return max(clean, key=lambda r: r.requests_per_s, default=None)

    def defaults_to_best(self) -> dict[str, DefaultFigures]:
        """Each combination's default against the best configuration of its stack there."""
        found: dict[str, DefaultFigures] = {}
        for cid in self.combinations():
            default, best = self.default(cid), self.best(cid)
            if default is None or best is None:
                continue
            found[cid] = {
                "default_requests_per_s": round(default.requests_per_s),
                "default_runs_requests_per_s": [round(x) for x in self.default_runs(cid)],
                "best_variant": best.variant,
                "best_requests_per_s": round(best.requests_per_s),
                "default_to_best": round(default.requests_per_s / best.requests_per_s, 2),
            }
        return found

    def server_ratios(self, server: ServerName) -> dict[str, dict[str, float]]:
        """Per stack key, `server`'s default divided by the default server's (SERVERS[0]),
        figure by figure (RATIO_FIGURES; a figure the default server measured as 0 is left
        out)."""
        found = {}
        for stack in self.stacks():
            base, other = self.default_of(stack, SERVERS[0]), self.default_of(stack, server)
            if base is None or other is None:
                continue
            found[stack] = {name: round(getattr(other, name) / getattr(base, name), 2)
                            for name in RATIO_FIGURES if getattr(base, name)}
        return found

    def peer_figures(self) -> dict[str, PeerFigures]:
        """Each peer measured ("combination: peer: label"), and our default's requests/s over
        the peer's."""
        found: dict[str, PeerFigures] = {}
        for r in self.results:
            default = self.default(r.combination)
            if r.ok and r.variant.startswith("peer:") and default is not None:
                found[f"{r.combination}: {r.variant}"] = {
                    "requests_per_s": round(r.requests_per_s), "errors": r.errors,
                    "p99_ms": round(r.p99_ms, 1),
                    "ours_to_theirs": round(default.requests_per_s / r.requests_per_s, 2)}
        return found

    def protocol_ratios(self, stack: Stack, base: Stack) -> dict[ServerName, float]:
        """Per server, `stack`'s default requests/s over `base`'s (same framework, the default
        protocol)."""
        found = {}
        for server in SERVERS:
            ours, theirs = self.default_of(stack.key, server), self.default_of(base.key, server)
            if ours and theirs:
                found[server] = round(ours.requests_per_s / theirs.requests_per_s, 2)
        return found

    def to_reference(self) -> dict[str, float]:
        """Per combination, its default's requests/s over the reference stack's default on the
        same server (REFERENCE: the seed's fastest, FastAPI): the seed's matrix as ratios, which
        hold across machines where absolute figures do not."""
        found = {}
        for cid in self.combinations():
            combination = PROD[cid]
            assert combination.server is not None  # PROD holds prod combinations only
            ours = self.default(cid)
            reference = self.default_of(REFERENCE.key, combination.server)
            if ours and reference:
                found[cid] = round(ours.requests_per_s / reference.requests_per_s, 2)
        return found

    def summary(self) -> dict[str, object]:
        """The figures BENCHMARKS.md quotes, as the JSON's "summary":

        - "defaults": per combination id, its default (mean of its runs, and each run) against
          the best configuration measured for it (`defaults_to_best`);
        - "to_fastapi_asgi": per combination id, its default over the reference stack's on the
          same server (`to_reference`);
        - "<server>_to_<default server>" for each server but the first of SERVERS
          (granian_to_gunicorn): per stack key, that server's default over the default
          server's for requests/s, p99 and memory (`server_ratios`);
        - "peers": per "combination: variant", the peer's figures and ours / theirs;
        - "<framework>_<protocol>_to_<default protocol>" for each stack whose protocol is not
          its framework's default (django_asgi_to_wsgi): per server, its requests/s over that
          of the same framework's default-protocol stack (`protocol_ratios`).
        """
        found: dict[str, object] = {"defaults": self.defaults_to_best(),
                                    f"to_{REFERENCE.key.replace('-', '_')}": self.to_reference()}
        for server in SERVERS[1:]:
            found[server_key(server)] = self.server_ratios(server)
        found["peers"] = self.peer_figures()
        for stack, base in protocol_pairs():
            found[protocol_key(stack, base)] = self.protocol_ratios(stack, base)
        return found


def cpu_count() -> int:
    """CPUs this process may run on (a container's CPU set), as gunicorn.conf.py counts them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_generator() -> str:
    wrk = shutil.which("wrk")
    if not wrk:
        raise NewstackError("no load generator found: install wrk (Debian/Ubuntu: "
                            "apt-get install wrk; macOS: brew install wrk)")
    return wrk


def _ms(value: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value)
    if not found:
        raise ValueError(f"unexpected wrk latency {value!r}")
    number, unit = found.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}[unit]


def _found(pattern: str, text: str) -> str:
    """The first group of `pattern` in wrk's output."""
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        raise ValueError(f"no {pattern!r} in wrk's output")
    return match[1]


class WrkFigures(TypedDict):
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def run_wrk(url: str, seconds: float, connections: int, headers: dict[str, str],
            script: tuple[Path, str, str, str, str] | None = None) -> WrkFigures:
    """wrk's figures: requests/s, p50 and p99 latency, requests and errors. `script`: the Lua
    script and its arguments (path, method, body) when the requests are not GET `url`."""
    argv = [load_generator(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--latency"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    tail = ["-s", str(script[0]), url, "--", *script[1:]] if script else [url]
    out = subprocess.run([*argv, *tail], capture_output=True, text=True, timeout=seconds + 30,
                         check=True).stdout
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non_2xx[1]) if non_2xx else 0
    return {
        "requests_per_s": float(_found(r"Requests/sec:\s+([\d.]+)", out)),
        "p50_ms": _ms(_found(r"^\s+50%\s+(\S+)", out)),
        "p99_ms": _ms(_found(r"^\s+99%\s+(\S+)", out)),
        "requests": int(_found(r"(\d+) requests in", out)),
        "errors": errors,
    }


def memory(server: smoke.Server) -> tuple[int, float, float, str]:
    """Worker count, memory per worker and in total (master included), in MB."""
    master = psutil.Process(server.process.pid)
    processes = [master, *master.children(recursive=True)]
    kind = "PSS"
    sizes = []
    for process in processes:
        try:
            try:
                sizes.append(process.memory_full_info().pss)
            except (psutil.AccessDenied, AttributeError):
                kind = "RSS"
                sizes.append(process.memory_info().rss)
        except psutil.NoSuchProcess:  # a worker recycled meanwhile
            continue
    workers = sizes[1:] or sizes
    mb = 1024 * 1024
    return len(sizes) - 1, sum(workers) / len(workers) / mb, sum(sizes) / mb, kind


def bench_env(project: Path, combination: Combination, variant: Variant,
              port: int) -> dict[str, str]:
    """The server's environment: the platform's, the generated settings unless the variant
    says otherwise, access logs off."""
    env = smoke.server_env(project, Path(sys.executable).parent, combination, port)
    # The generated settings choose, unless a variant does: none of the caller's own.
    prefixes = tuple(s.env_prefix for s in SERVER_ROWS)
    for name in [n for n in env if n.startswith(prefixes)]:
        del env[name]
    env.pop("WEB_CONCURRENCY")
    # Logging every request would measure the log: access logs off for every server.
    for server in SERVER_ROWS:
        env.update(server.access_log_off)
    env.update(variant.env)
    return env


def measure(project: Path, combination: Combination, variant: Variant, seconds: float,
            slices: list[tuple[Workload, int]], logs: Path, order: int = 0,
            database: Database | None = None) -> list[Measurement]:
    """One server, started once, measured on each (workload, connections) slice in turn."""
    results = [Measurement(combination.id, variant.name, combination.server or "", order,
                           workload=workload.name, connections=connections,
                           database=database.kind if database and workload.database else "")
               for workload, connections in slices]
    missing = [p for p in variant.packages if not _importable(p)]
    if missing:
        for result in results:
            result.failure = f"needs {', '.join(missing)} (pip install 'newstack[bench]')"
        return results
    port = smoke.free_port()
    env = bench_env(project, combination, variant, port)
    if database:
        env["DATABASE_URL"] = database.urls[combination]
    if variant.argv:
        argv = [a.format(host=smoke.HOST, port=port) for a in variant.argv]
    else:
        command_env, argv = smoke.split_command(smoke.readme_commands(project)["prod-command"])
        env.update(command_env)
        argv += variant.extra_args
    server = smoke.Server(argv, project, env, logs / f"{combination.id}-{len(os.listdir(logs))}.log")
    try:
        server.wait_ready(f"http://{smoke.HOST}:{port}/healthz", smoke.PROXY_HEADERS)
    except smoke.SmokeError as error:
        server.kill()
        for result in results:
            result.failure = str(error)[:300]
        return results
    try:
        for (workload, _), result in zip(slices, results, strict=True):
            peak = database.peak(combination) if database and workload.database else None
            measure_slice(server, f"http://{smoke.HOST}:{port}", logs / SCRIPT_NAME, workload,
                          variant.paths.get(workload.name, workload.path), seconds, result, peak)
    finally:
        server.kill()
    return results


def measure_slice(server: smoke.Server, url: str, script: Path, workload: Workload, path: str,
                  seconds: float, result: Measurement, peak: Peak | None) -> None:
    """Warm up (imports, caches, connections), then load `path` as `workload` says: the figures
    go into `result`."""
    args = (script, path, workload.method, workload.body, str(ROWS))
    headers = smoke.PROXY_HEADERS
    try:
        run_wrk(url, WARM_UP, result.connections, headers, args)
        if peak:
            peak.start()
        for key, value in run_wrk(url, seconds, result.connections, headers, args).items():
            setattr(result, key, value)
        if not result.requests:
            raise smoke.SmokeError(f"no request was answered in {seconds:g} s "
                                   f"({result.errors} socket errors)")
        (result.workers, result.memory_per_worker_mb, result.memory_total_mb,
         result.memory_kind) = memory(server)
    except subprocess.CalledProcessError as error:
        result.failure = f"wrk failed: {(error.stderr or error.stdout or '').strip()[-200:]}"
    except (smoke.SmokeError, subprocess.SubprocessError, TypeError, ValueError) as error:
        result.failure = str(error)[:300]
    finally:
        if peak:
            result.peak_connections = peak.stop()


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


class Peak(threading.Thread):
    """Samples one database's client connections every 50 ms until stopped: the peak."""

    def __init__(self, url: str, name: str) -> None:
        super().__init__(daemon=True)
        self.url, self.name, self.peak = url, name, 0
        self.done = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as connection:
            while True:  # at least one sample, however soon it is stopped
                row = connection.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type "
                    "= 'client backend'", (self.name,)).fetchone()
                self.peak = max(self.peak, row[0] if row else 0)
                if self.done.wait(0.05):
                    break

    def stop(self) -> int:
        self.done.set()
        self.join(10)
        return self.peak


@dataclass
class Database:
    """The projects' databases: one each, migrated by the project's own set-up steps and seeded
    with ROWS items. PostgreSQL: one server the bench starts (postgres.Cluster); SQLite: a file
    in each project."""

    kind: str
    cluster: Cluster | None = None
    urls: dict[Combination, str] = field(default_factory=dict)

    def create(self, combination: Combination, project: Path) -> str:
        name = combination.id.replace("-", "_")
        if self.cluster:
            url = self.urls[combination] = self.cluster.create_database(name)
        else:
            url = self.urls[combination] = f"sqlite:///{project / name}.sqlite3"
        return url

    def seed(self, combination: Combination) -> None:
        name = combination.id.replace("-", "_")
        if self.cluster:
            self.cluster.psql("INSERT INTO items (name, note, created_at) SELECT 'item ' || n, "
                              f"'', now() FROM generate_series(1, {ROWS}) AS n", database=name)
            return
        import sqlite3

        with sqlite3.connect(self.urls[combination].removeprefix("sqlite:///")) as connection:
            connection.execute(
                f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) "
                "INSERT INTO items (name, note, created_at) "
                "SELECT 'item ' || i, '', datetime('now') FROM n")

    def peak(self, combination: Combination) -> Peak | None:
        if not self.cluster:
            return None
        return Peak(self.cluster.url, combination.id.replace("-", "_"))


def generate_all(combinations: list[Combination], root: Path, step: Callable[[str], None],
                 database: Database | None = None) -> dict[Combination, Path]:
    """Every project first, set up (migrated and seeded when the workloads use a database):
    generating one (copier, collectstatic) right before a stack's first measurement would slow
    that measurement."""
    from .render import Answers, generate

    projects = {}
    for combination in combinations:
        step(f"generating {combination.id}")
        project = generate(Answers.of(PACKAGE, combination), root / combination.id / PACKAGE)
        add_bench_files(project, combination)
        env = smoke.server_env(project, Path(sys.executable).parent, combination, 0)
        if database:
            env["DATABASE_URL"] = database.create(combination, project)
        setup = smoke.run_setup(project, env)
        if setup:
            setup.check_returncode()
        if database:
            database.seed(combination)
        projects[combination] = project
    return projects


def bench(combinations: list[Combination], seconds: float, levels: tuple[int, ...], tune: bool,
          step: Callable[[str], None] = lambda _: None, seed: int | None = None,
          workloads: tuple[Workload, ...] = WORKLOADS[:1],
          database_kind: str = DATABASES[0]) -> Run:
    load_generator()
    began = time.monotonic()
    cores = cpu_count()
    seed = random.SystemRandom().randrange(10_000) if seed is None else seed
    rng = random.Random(seed)
    run = Run([], seconds, levels[0], cores, seed, os.getloadavg())
    needs_database = any(w.database for w in workloads)
    with smoke.workspace() as root, contextlib.ExitStack() as stack:
        logs = root / "logs"
        logs.mkdir()
        (logs / SCRIPT_NAME).write_text(WRK_SCRIPT)
        database = None
        if needs_database:
            cluster = (stack.enter_context(Cluster(max_connections=200))
                       if database_kind == "postgresql" else None)
            database = Database(database_kind, cluster)
        projects = generate_all(combinations, root, step, database)
        plans = {c: plan(c, cores, tune, rng) for c in combinations}
        chosen = [[slices_of(c, v, workloads, levels) for v in series]
                  for c, series in plans.items()]
        total, done = sum(len(s) for slices in chosen for s in slices), 0
        for (combination, series), slices in zip(plans.items(), chosen, strict=True):
            for order, (variant, mine) in enumerate(zip(series, slices, strict=True), 1):
                step(f"[{done}/{total} measured, {time.monotonic() - began:.0f} s] "
                     f"{combination.id}: {variant.name}")
                run.results += measure(projects[combination], combination, variant, seconds,
                                       mine, logs, order, database)
                done += len(mine)
    run.elapsed = time.monotonic() - began
    return run


def to_json(run: Run) -> str:
    """The run: "summary" is its first workload's at its first level (the format of the stored
    runs), "summaries" each workload's at each level ("db at 64")."""
    (first, level), *_ = run.slices()
    return json.dumps({
        "cores": run.cores, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds_per_measurement": run.seconds, "warm_up_seconds": WARM_UP,
        "connections": run.connections, "seed": run.seed,
        "load_average_at_start": [round(x, 2) for x in run.load_average],
        "elapsed_seconds": round(run.elapsed), "workloads": run.workloads(),
        "levels": run.levels(), "summary": run.part(first, level).summary(),
        "summaries": {f"{w} at {c}": run.part(w, c).summary() for w, c in run.slices()},
        "results": [asdict(r) for r in run.results]}, indent=2)


# cli.py's calls: the tables and the chart are bench_report's.


def report(run: Run) -> None:
    """The tables, workload by workload, then the workloads side by side."""
    from rich.console import Console

    from .bench_report import matrix_table
    from .bench_report import report as print_tables

    for workload, connections in run.slices():
        print_tables(run.part(workload, connections))
    if len(run.slices()) > 1:
        Console(width=max(Console().width, 140)).print(matrix_table(run))


def plot(run: Run, path: Path) -> None:
    from .bench_report import plot as write_png

    write_png(run, path)
