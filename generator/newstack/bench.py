"""Measure the prod stacks: each generated project started with its own prod command and
gunicorn.conf.py, warmed up, then loaded with wrk. Variants (worker count, worker class,
threads) and the peers' prod commands run the same way, in the same run, for ratios.

The load generator shares the machine with the server: figures are for comparing stacks and
variants measured in one run, not absolute capacities.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import psutil

from . import smoke
from .errors import NewstackError
from .stacks import COMBINATIONS, Combination

# The seed's "Decision Matrix - Performance is Important!", requests/s and memory as claimed.
SEED_CLAIMS = {
    "fastapi-asgi": (20_000, "Low"),
    "django-asgi": (15_000, "Medium"),
    "flask-wsgi": (5_000, "High"),
    "django-wsgi": (3_000, "High"),
}


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
    """The generated default, then the alternatives tried against it."""
    app = combination.stack.app.replace("{package}", "bench")
    # A peer's gunicorn gets `-c /dev/null`: it would otherwise load ./gunicorn.conf.py.
    found = [
        DEFAULT,
        Variant("1 worker", env={"WEB_CONCURRENCY": "1"}),
        Variant("no max_requests recycling", env={"GUNICORN_MAX_REQUESTS": "0"}),
    ]
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


@dataclass
class Measurement:
    combination: str
    variant: str
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
        "p50_ms": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M)[1]),
        "p99_ms": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M)[1]),
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
            connections: int, logs: Path) -> Measurement:
    result = Measurement(combination.id, variant.name)
    missing = [p for p in variant.packages if not _importable(p)]
    if missing:
        result.failure = f"needs {', '.join(missing)} (pip install 'newstack[bench]')"
        return result
    commands = smoke.readme_commands(project)
    port = smoke.free_port()
    bin_dir = Path(sys.executable).parent
    env = smoke.server_env(project, bin_dir, combination, port)
    env.pop("WEB_CONCURRENCY")  # the generated gunicorn.conf.py chooses, unless a variant does
    env["GUNICORN_ACCESSLOG"] = os.devnull  # logging every request would measure the log
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
        run_wrk(url, 1, connections, headers)  # warm-up: imports, caches, connections
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
          step: Callable[[str], None] = lambda _: None) -> list[Measurement]:
    from .render import Answers, generate

    load_generator()
    cores = cpu_count()
    results = []
    with smoke.workspace() as root:
        logs = root / "logs"
        logs.mkdir()
        for combination in combinations:
            answers = Answers.complete("bench", combination.framework, combination.protocol,
                                       "prod", None, fill_defaults=True)
            project = generate(answers, root / combination.id / "bench")
            setup_env, setup = smoke.split_command(
                smoke.readme_commands(project).get("prod-setup", "true"))
            subprocess.run(setup, cwd=project, check=True, capture_output=True,
                           env=smoke.server_env(project, Path(sys.executable).parent,
                                                combination, 0) | setup_env)
            for variant in variants(combination, cores) if tune else [DEFAULT]:
                step(f"{combination.id}: {variant.name}")
                results.append(measure(project, combination, variant, seconds, connections, logs))
    return results


def report(results: list[Measurement], seconds: float, connections: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.width = max(console.width, 140)
    cores = cpu_count()
    defaults = [r for r in results if r.variant == DEFAULT.name and not r.failure]
    fastest = max((r.requests_per_s for r in defaults), default=0) or 1
    table = Table(title=f"newstack bench: /api/hello, wrk {connections} connections x {seconds:g} s, "
                        f"{cores} cores shared with the load generator")
    for column in ("stack", "variant", "req/s", "vs best of stack", "p50 ms", "p99 ms",
                   "errors", "workers", "MB/worker", "MB total"):
        table.add_column(column, justify="left" if column in ("stack", "variant") else "right")
    best = {}
    for r in results:
        if not r.failure:
            best[r.combination] = max(best.get(r.combination, 0), r.requests_per_s)
    for r in results:
        if r.failure:
            table.add_row(r.combination, r.variant, "[red]failed[/]", *[""] * 7)
            console.print(f"[red]failed[/] {r.combination} {r.variant}: {r.failure}",
                          highlight=False)
            continue
        table.add_row(r.combination, r.variant, f"{r.requests_per_s:,.0f}",
                      f"{r.requests_per_s / best[r.combination]:.2f}", f"{r.p50_ms:.1f}",
                      f"{r.p99_ms:.1f}", str(r.errors), str(r.workers),
                      f"{r.memory_per_worker_mb:.0f}", f"{r.memory_total_mb:.0f}")
    console.print(table)
    seed = Table(title="The seed's decision matrix beside the measured defaults")
    for column in ("stack", "seed req/s", "seed memory", "measured req/s", "ratio to fastest",
                   "measured MB/worker"):
        seed.add_column(column)
    for r in defaults:
        claim, claimed_memory = SEED_CLAIMS[r.combination.rsplit("-", 1)[0]]
        seed.add_row(r.combination, f"~{claim:,}", claimed_memory, f"{r.requests_per_s:,.0f}",
                     f"{r.requests_per_s / fastest:.2f}",
                     f"{r.memory_per_worker_mb:.0f} ({r.memory_kind})")
    console.print(seed)
    console.print("Memory is PSS (shared pages split between processes) where the system allows, "
                  "else RSS; the load generator ran on the same machine.")


def to_json(results: list[Measurement]) -> str:
    cores = cpu_count()
    return json.dumps({"cores": cores, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                       "results": [asdict(r) for r in results]}, indent=2)


def plot(results: list[Measurement], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise NewstackError("--plot needs matplotlib: pip install 'newstack[bench]'") from error
    shown = [r for r in results if not r.failure]
    labels = [f"{r.combination}\n{r.variant}" for r in shown]
    fig, ax = plt.subplots(figsize=(max(8, len(shown) * 0.9), 5))
    ax.bar(range(len(shown)), [r.requests_per_s for r in shown],
           color=[f"C{COMBINATION_ORDER.get(r.combination, 0)}" for r in shown])
    ax.set_xticks(range(len(shown)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("requests/s (/api/hello)")
    ax.set_title("newstack bench: prod stacks and variants, same machine, same run")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


COMBINATION_ORDER = {c.id: i for i, c in enumerate(COMBINATIONS)}
