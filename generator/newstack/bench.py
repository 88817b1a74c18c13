"""Measure the prod stacks: each generated project started with its own prod command (gunicorn
and gunicorn.conf.py, or Granian through PKG/serve.py), warmed up, then loaded with wrk.
Variants (worker count, worker class, threads, event loop) and the peers' prod commands run the
same way, in the same run, for ratios.

The load generator shares the machine with the server: figures are for comparing stacks and
variants measured in one run, not absolute capacities. Order matters on a shared machine, so
every project is generated before the first measurement, each stack's variants run in a
shuffled order, and its generated default runs twice, first and last: the default's figure is
the mean of the two, and their spread shows the noise.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import mean

import psutil

from . import smoke
from .errors import NewstackError
from .stacks import COMBINATIONS, SERVERS, Combination, server_row

# The seed's "Decision Matrix - Performance is Important!", requests/s and memory as claimed.
SEED_CLAIMS = {
    "fastapi-asgi": (20_000, "Low"),
    "django-asgi": (15_000, "Medium"),
    "flask-wsgi": (5_000, "High"),
    "django-wsgi": (3_000, "High"),
}

# The prod combinations by id, and their ids by (stack key, server): ids are never taken apart.
PROD = {c.id: c for c in COMBINATIONS if c.target == "prod"}
PROD_ID = {(c.stack.key, c.server): c.id for c in PROD.values()}

# Seconds of load before each measurement: imports, caches, connections.
WARM_UP = 1
# serve.py's GRANIAN_BACKLOG: Granian's own default for blocking threads is half of backlog/workers.
GRANIAN_BACKLOG = 2048


@dataclass(frozen=True)
class Variant:
    """One way to run a stack: the generated default, a tuning alternative, or a peer's."""

    name: str
    env: dict[str, str] = field(default_factory=dict)  # on top of the default environment
    argv: tuple[str, ...] = ()  # replaces the README's prod command when set
    extra_args: tuple[str, ...] = ()  # appended to the prod command (gunicorn: CLI beats file)
    packages: tuple[str, ...] = ()  # imports the variant needs, checked before it runs


DEFAULT = Variant("default (generated)")


def variants(combination: Combination, cores: int) -> list[Variant]:
    """The alternatives tried against the generated default (which is not in the list).

    Not measured: gunicorn without max_requests recycling. The generated max_requests is
    100,000 (+ up to 10,000 jitter) per worker: no worker recycles within a run of a few
    seconds, so "recycling off" runs exactly the default's configuration."""
    if combination.server == "granian":
        return granian_variants(combination, cores)
    app = combination.stack.app.replace("{package}", "bench")
    # A peer's gunicorn gets `-c /dev/null`: it would otherwise load ./gunicorn.conf.py.
    found = [Variant("1 worker", env={"WEB_CONCURRENCY": "1"})]
    if combination.protocol == "asgi":
        found += [
            Variant("2 x cores + 1 workers", env={"WEB_CONCURRENCY": str(2 * cores + 1)}),
            Variant("gunicorn asgi worker", extra_args=("-k", "asgi")),
        ]
        if combination.framework == "fastapi":  # full-stack-fastapi-template's prod command
            found.append(Variant("peer: fastapi run --workers 4",
                                 argv=("fastapi", "run", "--workers", "4", "--host", "{host}",
                                       "--port", "{port}", "bench/main.py"),
                                 packages=("fastapi_cli",)))
    else:
        found += [
            Variant("cores workers", env={"WEB_CONCURRENCY": str(cores)}),
            Variant("sync worker", extra_args=("-k", "sync"), env={"GUNICORN_THREADS": "1"}),
            Variant("gthread 8 threads", env={"GUNICORN_THREADS": "8"}),
        ]
        if combination.framework == "django":  # cookiecutter-django: gunicorn, its defaults
            found.append(Variant("peer: gunicorn defaults (cookiecutter-django)",
                                 argv=("gunicorn", app, "-c", os.devnull, "--bind",
                                       "{host}:{port}")))
        else:  # cookiecutter-flask: gunicorn with gevent workers
            found.append(Variant("peer: gunicorn -k gevent (cookiecutter-flask)",
                                 argv=("gunicorn", app, "-c", os.devnull, "-k", "gevent",
                                       "--bind", "{host}:{port}"), packages=("gevent",)))
    return found


def granian_variants(combination: Combination, cores: int) -> list[Variant]:
    found = [
        Variant("1 worker", env={"WEB_CONCURRENCY": "1"}),
        Variant("2 x cores + 1 workers", env={"WEB_CONCURRENCY": str(2 * cores + 1)}),
    ]
    if combination.protocol == "wsgi":
        # Granian's own default when GRANIAN_BLOCKING_THREADS is not given: backpressure
        # (backlog / workers) / 2. Setting the variable to that value is the same thing.
        own = max(1, GRANIAN_BACKLOG // cores // 2)
        found += [
            Variant("1 blocking thread", env={"GRANIAN_BLOCKING_THREADS": "1"}),
            Variant("16 blocking threads", env={"GRANIAN_BLOCKING_THREADS": "16"}),
            Variant(f"Granian's own: {own} blocking threads",
                    env={"GRANIAN_BLOCKING_THREADS": str(own)}),
        ]
    else:
        # Granian's defaults are one runtime (I/O) thread per worker and --loop auto: rloop if
        # installed, else uvloop (which uvicorn[standard] installs), else asyncio.
        found += [
            Variant("asyncio loop", env={"GRANIAN_LOOP": "asyncio"}),
            Variant("2 runtime threads", env={"GRANIAN_RUNTIME_THREADS": "2"}),
        ]
    return found


def plan(combination: Combination, cores: int, tune: bool, rng: random.Random) -> list[Variant]:
    """The order one stack's measurements run in: the default first and last, the
    alternatives shuffled between."""
    if not tune:
        return [DEFAULT]
    others = variants(combination, cores)
    rng.shuffle(others)
    return [DEFAULT, *others, DEFAULT]


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
    failure: str = ""

    @property
    def stack(self) -> str:
        """fastapi-asgi for fastapi-asgi-prod and fastapi-asgi-prod-granian"""
        return PROD[self.combination].stack.key

    @property
    def ok(self) -> bool:
        return not self.failure


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

    def of(self, combination: str) -> list[Measurement]:
        return [r for r in self.results if r.combination == combination and r.ok]

    def combinations(self) -> list[str]:
        return list(dict.fromkeys(r.combination for r in self.results))

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

    def default_runs(self, combination: str) -> list[float]:
        return [r.requests_per_s for r in self.of(combination) if r.variant == DEFAULT.name]

    def best(self, combination: str) -> Measurement | None:
        """The fastest configuration measured for a stack on its server, peers' included;
        a configuration that answered with errors does not count."""
        clean = [r for r in self.of(combination) if not r.errors]
        return max(clean, key=lambda r: r.requests_per_s, default=None)

    def summary(self) -> dict:
        """The figures BENCHMARKS.md quotes: each default against the best configuration of
        its stack, Granian against gunicorn per stack, peers, Django ASGI against WSGI."""
        defaults = {}
        for cid in self.combinations():
            default, best = self.default(cid), self.best(cid)
            if default is None or best is None:
                continue
            defaults[cid] = {
                "default_requests_per_s": round(default.requests_per_s),
                "default_runs_requests_per_s": [round(x) for x in self.default_runs(cid)],
                "best_variant": best.variant,
                "best_requests_per_s": round(best.requests_per_s),
                "default_to_best": round(default.requests_per_s / best.requests_per_s, 2),
            }
        servers = {}
        for stack in dict.fromkeys(r.stack for r in self.results):
            gunicorn = self.default(PROD_ID[stack, "gunicorn"])
            granian = self.default(PROD_ID[stack, "granian"])
            if gunicorn is None or granian is None:
                continue
            servers[stack] = {
                name: round(getattr(granian, name) / getattr(gunicorn, name), 2)
                for name in ("requests_per_s", "p99_ms", "memory_per_worker_mb", "memory_total_mb")
                if getattr(gunicorn, name)
            }
        peers = {}
        for r in self.results:
            default = self.default(r.combination)
            if r.ok and r.variant.startswith("peer:") and default is not None:
                peers[f"{r.combination}: {r.variant}"] = {
                    "requests_per_s": round(r.requests_per_s), "errors": r.errors,
                    "p99_ms": round(r.p99_ms, 1),
                    "ours_to_theirs": round(default.requests_per_s / r.requests_per_s, 2)}
        django = {}
        for server in SERVERS:
            asgi = self.default(PROD_ID["django-asgi", server])
            wsgi = self.default(PROD_ID["django-wsgi", server])
            if asgi and wsgi:
                django[server] = round(asgi.requests_per_s / wsgi.requests_per_s, 2)
        return {"defaults": defaults, "granian_to_gunicorn": servers, "peers": peers,
                "django_asgi_to_wsgi": django}


def cpu_count() -> int:
    """CPUs this process may run on (a container's CPU set), as gunicorn.conf.py counts them."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


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


def run_wrk(url: str, seconds: float, connections: int, headers: dict[str, str]) -> dict:
    """wrk's figures: requests/s, p50 and p99 latency, requests and errors."""
    argv = [load_generator(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--latency"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 30,
                         check=True).stdout
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    errors += int((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1])
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "p50_ms": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)[1]),
        "p99_ms": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)[1]),
        "requests": int(re.search(r"(\d+) requests in", out)[1]),
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


def measure(project: Path, combination: Combination, variant: Variant, seconds: float,
            connections: int, logs: Path, order: int = 0) -> Measurement:
    result = Measurement(combination.id, variant.name, combination.server or "", order)
    missing = [p for p in variant.packages if not _importable(p)]
    if missing:
        result.failure = f"needs {', '.join(missing)} (pip install 'newstack[bench]')"
        return result
    commands = smoke.readme_commands(project)
    port = smoke.free_port()
    bin_dir = Path(sys.executable).parent
    env = smoke.server_env(project, bin_dir, combination, port)
    # The generated settings choose, unless a variant does: none of the caller's own.
    for name in [n for n in env if n.startswith(("GUNICORN_", "GRANIAN_"))]:
        del env[name]
    env.pop("WEB_CONCURRENCY")
    # Logging every request would measure the log: access logs off for both servers.
    env["GUNICORN_ACCESSLOG"] = os.devnull
    env["GRANIAN_LOG_ACCESS_ENABLED"] = "false"
    env.update(variant.env)
    if variant.argv:
        argv = [a.format(host=smoke.HOST, port=port) for a in variant.argv]
    else:
        command_env, argv = smoke.split_command(commands["prod-command"])
        env.update(command_env)
        argv += variant.extra_args
    headers = smoke.PROXY_HEADERS
    server = smoke.Server(argv, project, env, logs / f"{combination.id}-{len(os.listdir(logs))}.log")
    try:
        server.wait_ready(f"http://{smoke.HOST}:{port}/healthz", headers)
        url = f"http://{smoke.HOST}:{port}/api/hello"
        run_wrk(url, WARM_UP, connections, headers)  # imports, caches, connections
        for key, value in run_wrk(url, seconds, connections, headers).items():
            setattr(result, key, value)
        (result.workers, result.memory_per_worker_mb, result.memory_total_mb,
         result.memory_kind) = memory(server)
    except subprocess.CalledProcessError as error:
        result.failure = f"wrk failed: {(error.stderr or error.stdout or '').strip()[-200:]}"
    except (smoke.SmokeError, subprocess.SubprocessError, TypeError, ValueError) as error:
        result.failure = str(error)[:300]
    finally:
        server.kill()
    return result


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def bench(combinations: list[Combination], seconds: float, connections: int, tune: bool,
          step: Callable[[str], None] = lambda _: None, seed: int | None = None) -> Run:
    from .render import Answers, generate

    load_generator()
    began = time.monotonic()
    cores = cpu_count()
    seed = random.SystemRandom().randrange(10_000) if seed is None else seed
    rng = random.Random(seed)
    run = Run([], seconds, connections, cores, seed, os.getloadavg())
    with smoke.workspace() as root:
        logs = root / "logs"
        logs.mkdir()
        # Every project first: generating one (copier, collectstatic) right before a stack's
        # first measurement would slow that measurement.
        projects = {}
        for combination in combinations:
            step(f"generating {combination.id}")
            project = generate(Answers.of("bench", combination), root / combination.id / "bench")
            setup = smoke.run_prod_setup(
                project, smoke.server_env(project, Path(sys.executable).parent, combination, 0))
            if setup:
                setup.check_returncode()
            projects[combination] = project
        plans = {c: plan(c, cores, tune, rng) for c in combinations}
        total, done = sum(len(p) for p in plans.values()), 0
        for combination, series in plans.items():
            for order, variant in enumerate(series, 1):
                done += 1
                step(f"[{done}/{total}, {time.monotonic() - began:.0f} s] {combination.id}: "
                     f"{variant.name}")
                run.results.append(measure(projects[combination], combination, variant,
                                           seconds, connections, logs, order))
    run.elapsed = time.monotonic() - began
    return run


def _label(combination: str) -> str:
    return f"{PROD[combination].stack.key} / {server_row(PROD[combination].server).label}"


def report(run: Run) -> None:  # noqa: C901 - split in bench_report.py (next commit)
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.width = max(console.width, 140)
    results = run.results
    table = Table(title=f"newstack bench: /api/hello, wrk {run.connections} connections x "
                        f"{run.seconds:g} s after {WARM_UP} s of warm-up, {run.cores} cores shared "
                        f"with the load generator; order shuffled (--seed {run.seed})")
    for column in ("stack / server", "#", "variant", "req/s", "vs best", "p50 ms", "p99 ms",
                   "errors", "workers", "MB/worker", "MB total"):
        table.add_column(column, justify="left" if column in ("stack / server", "variant")
                         else "right")
    for r in results:
        if r.failure:
            table.add_row(_label(r.combination), str(r.order), r.variant, "[red]failed[/]",
                          *[""] * 7)
            console.print(f"[red]failed[/] {r.combination} {r.variant}: {r.failure}",
                          highlight=False)
            continue
        best = run.best(r.combination)
        table.add_row(_label(r.combination), str(r.order), r.variant, f"{r.requests_per_s:,.0f}",
                      f"{r.requests_per_s / best.requests_per_s:.2f}" if best else "",
                      f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", str(r.errors), str(r.workers),
                      f"{r.memory_per_worker_mb:.0f}", f"{r.memory_total_mb:.0f}")
    console.print(table)
    summary = run.summary()

    defaults = Table(title="Each generated default (mean of its runs, first and last) against "
                           "the best configuration measured for its stack and server")
    for column in ("stack / server", "default req/s", "its runs", "best", "req/s",
                   "default / best"):
        defaults.add_column(column, justify="left" if column in ("stack / server", "best")
                            else "right")
    for cid, d in summary["defaults"].items():
        defaults.add_row(_label(cid), f"{d['default_requests_per_s']:,}",
                         " / ".join(f"{x:,}" for x in d["default_runs_requests_per_s"]),
                         d["best_variant"], f"{d['best_requests_per_s']:,}",
                         f"{d['default_to_best']:.2f}")
    console.print(defaults)

    if summary["granian_to_gunicorn"]:
        trade = Table(title="Granian against gunicorn, generated defaults (ratio granian / "
                            "gunicorn: above 1 is more requests/s, slower p99, more memory)")
        for column in ("stack", "req/s gunicorn", "req/s Granian", "ratio", "p99 ms gunicorn",
                       "p99 ms Granian", "ratio", "MB/worker gunicorn", "MB/worker Granian",
                       "ratio", "MB total ratio"):
            trade.add_column(column, justify="left" if column == "stack" else "right")
        for stack, ratios in summary["granian_to_gunicorn"].items():
            gunicorn = run.default(PROD_ID[stack, "gunicorn"])
            granian = run.default(PROD_ID[stack, "granian"])
            trade.add_row(stack, f"{gunicorn.requests_per_s:,.0f}", f"{granian.requests_per_s:,.0f}",
                          f"{ratios['requests_per_s']:.2f}", f"{gunicorn.p99_ms:.1f}",
                          f"{granian.p99_ms:.1f}", f"{ratios.get('p99_ms', 0):.2f}",
                          f"{gunicorn.memory_per_worker_mb:.0f} x {gunicorn.workers}",
                          f"{granian.memory_per_worker_mb:.0f} x {granian.workers}",
                          f"{ratios.get('memory_per_worker_mb', 0):.2f}",
                          f"{ratios.get('memory_total_mb', 0):.2f}")
        console.print(trade)
    for name, peer in summary["peers"].items():
        console.print(f"peer {name}: {peer['requests_per_s']:,} req/s, {peer['errors']} errors, "
                      f"p99 {peer['p99_ms']} ms; ours / theirs {peer['ours_to_theirs']:.2f}",
                      highlight=False)
    for server, ratio in summary["django_asgi_to_wsgi"].items():
        console.print(f"Django ASGI / Django WSGI under {server}: {ratio:.2f}", highlight=False)

    fastest = max((run.default(cid).requests_per_s for cid in summary["defaults"]), default=0) or 1
    seed = Table(title="The seed's decision matrix beside the measured defaults")
    for column in ("stack", "seed req/s", "seed memory", "measured req/s", "ratio to fastest",
                   "measured MB/worker"):
        seed.add_column(column)
    for cid in summary["defaults"]:
        d = run.default(cid)
        claim, claimed_memory = SEED_CLAIMS[d.stack]
        seed.add_row(_label(cid), f"~{claim:,}", claimed_memory, f"{d.requests_per_s:,.0f}",
                     f"{d.requests_per_s / fastest:.2f}",
                     f"{d.memory_per_worker_mb:.0f} ({d.memory_kind})")
    console.print(seed)
    console.print("Memory is PSS (shared pages split between processes) where the system allows, "
                  "else RSS; the load generator ran on the same machine; access logs off for both "
                  f"servers. Load average at the start: "
                  f"{' '.join(f'{x:.2f}' for x in run.load_average)}. "
                  f"Total time: {run.elapsed:.0f} s.", highlight=False)


def to_json(run: Run) -> str:
    return json.dumps({
        "cores": run.cores, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds_per_measurement": run.seconds, "warm_up_seconds": WARM_UP,
        "connections": run.connections, "seed": run.seed,
        "load_average_at_start": [round(x, 2) for x in run.load_average],
        "elapsed_seconds": round(run.elapsed), "summary": run.summary(),
        "results": [asdict(r) for r in run.results]}, indent=2)


def plot(run: Run, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise NewstackError("--plot needs matplotlib: pip install 'newstack[bench]'") from error
    shown = [r for r in run.results if r.ok]
    fig = plt.figure(figsize=(max(10, len(shown) * 0.32), 10))
    grid = fig.add_gridspec(2, 3, height_ratios=(3, 2))
    ax = fig.add_subplot(grid[0, :])
    ax.bar(range(len(shown)), [r.requests_per_s for r in shown],
           color=[f"C{COMBINATION_ORDER.get(r.combination, 0)}" for r in shown])
    ax.set_xticks(range(len(shown)), [f"{_label(r.combination)}: {r.variant}" for r in shown],
                  rotation=70, ha="right", fontsize=6)
    ax.set_ylabel("requests/s (/api/hello)")
    ax.set_title("every measurement, in the order taken within each stack (defaults first and last)")
    stacks = list(dict.fromkeys(r.stack for r in shown))
    ratios = run.summary()["granian_to_gunicorn"]
    for i, (name, label) in enumerate((("requests_per_s", "requests/s"), ("p99_ms", "p99 ms"),
                                       ("memory_per_worker_mb", "MB per worker (PSS)"))):
        panel = fig.add_subplot(grid[1, i])
        for j, server in enumerate(SERVERS):
            values = [getattr(run.default(PROD_ID[s, server]) or Measurement("", ""), name)
                      for s in stacks]
            bars = panel.bar([k + (j - 0.5) * 0.4 for k in range(len(stacks))], values, 0.4,
                             label=server)
            panel.bar_label(bars, fmt="%.0f", fontsize=6)
        panel.set_xticks(range(len(stacks)),
                         [f"{s}\n{ratios[s][name]:.2f}" if name in ratios.get(s, {}) else s
                          for s in stacks], fontsize=7)
        panel.set_title(f"defaults: {label}", fontsize=9)
        panel.set_xlabel("under each stack: Granian / gunicorn", fontsize=7)
        if i == 0:
            panel.legend(fontsize=7)
    fig.suptitle(f"newstack bench: prod stacks on gunicorn and Granian, {run.cores} cores, "
                 "same machine, same run")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


COMBINATION_ORDER = {cid: i for i, cid in enumerate(PROD)}
