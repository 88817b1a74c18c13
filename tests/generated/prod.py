"""The generated prod stacks, started with their README's command and loaded with wrk: what
test_prod.py and test_security.py share.

Servers are smoke's (own session, killed by process group whatever happens), listen on
127.0.0.1 only and run with WEB_CONCURRENCY=2. Every prod combination is here, on either
server: gunicorn (each worker class of an ASGI stack) and Granian. Each test process makes each
configuration's project once and keeps at most one server running: the load tests never compete
with a second server of their own process.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from newstack import render, smoke
from newstack.stacks import COMBINATIONS, Combination, WorkerClass, server_row

BIN = Path(sys.executable).parent
LOAD_SCRIPT = Path(__file__).with_name("load.lua")
CONNECTIONS = 64
THREADS = 2
SETTLE = 6  # seconds at most that wrk waits, once it stops sending, for the answers still due

# The kinds of run a server is started for, in the order a group runs them; each server row
# says what environment it needs for a kind (Server.test_env), and a kind it has none for is not
# run on it: "steady" (max_requests off, so that load, kill and reload tests are not confounded by
# recycling) and "recycling" (each worker recycled every 100-300 requests: several times in a few
# seconds of load, the two workers out of step; Granian has no count of requests to recycle by:
# see test_prod.test_max_requests_recycling_fails_no_request).


@dataclass(frozen=True)
class ProdConfig:
    """A prod combination: on gunicorn with one of its worker classes, on Granian (worker None)."""

    combination: Combination
    worker: WorkerClass | None

    @property
    def id(self) -> str:
        """fastapi-asgi-prod-uvicorn (gunicorn, a worker class), fastapi-asgi-prod-granian"""
        return self.combination.variant_id(self.worker)

    @property
    def server(self) -> str:
        return self.combination.server

    @property
    def asgi(self) -> bool:
        return self.combination.protocol == "asgi"

    @property
    def framework(self) -> str:
        return self.combination.framework


def worker_choices(combination: Combination) -> tuple[WorkerClass | None, ...]:
    """gunicorn: an ASGI stack's every worker class, a WSGI one's default; Granian: none."""
    if not server_row(combination.server).takes_worker_class:
        return (None,)
    classes = combination.stack.worker_classes
    return classes if combination.protocol == "asgi" else classes[:1]


# Every prod combination, on gunicorn (ASGI ones with each worker class they offer, WSGI ones
# with the default) and on Granian.
PROD_CONFIGS = [
    ProdConfig(c, w)
    for c in COMBINATIONS
    if c.target == "prod"
    for w in worker_choices(c)
]


def params(configs=PROD_CONFIGS) -> list:
    """pytest params, one xdist group per configuration: its tests share one process and server."""
    return [pytest.param(c, id=c.id, marks=pytest.mark.xdist_group(c.id)) for c in configs]


def record(request: pytest.FixtureRequest, config: ProdConfig, **figures) -> None:
    """Figures for the summary printed at the end of the run (conftest.py)."""
    request.node.user_properties.append(("prod", {"config": config.id, **figures}))


def make_project(config: ProdConfig, dest: Path) -> Path:
    answers = render.Answers.of("shop", config.combination, config.worker and config.worker.name)
    return render.generate(answers, dest)


class Running:
    """A prod server of one configuration."""

    lock: Path | None = None

    def __init__(self, config: ProdConfig, kind: str, project: Path, log: Path,
                 env: dict[str, str] | None = None):
        self.config, self.kind, self.project = config, kind, project
        self.port = smoke.free_port()
        self.base_url = f"http://{smoke.HOST}:{self.port}"
        platform = smoke.server_env(project, BIN, config.combination, self.port)
        command_env, argv = smoke.split_command(smoke.readme_commands(project)["prod-command"])
        self.env = {**platform, **command_env, **server_row(config.server).test_env[kind],
                    **(env or {})}
        self.settings = smoke.server_settings(project, BIN, self.env)
        self.server = smoke.Server(argv, project, self.env, log)
        try:
            self.server.wait_ready(f"{self.base_url}/healthz", smoke.PROXY_HEADERS)
            self.wait_listening(self.wait_workers(self.settings["workers"]))
        except BaseException:
            self.server.kill()
            raise

    @property
    def master(self) -> subprocess.Popen:
        return self.server.process

    def alive(self) -> bool:
        return self.master.poll() is None

    def log_text(self) -> str:
        return self.server.log.read_text(errors="replace")

    def boots(self) -> int:
        """Workers the server has started so far."""
        return self.log_text().count(server_row(self.config.server).boot_log)

    def workers(self) -> list[int]:
        try:
            return [p.pid for p in psutil.Process(self.master.pid).children()
                    if p.status() != psutil.STATUS_ZOMBIE]
        except psutil.Error:
            return []

    def wait_workers(self, count: int, exclude: set[int] = frozenset(),
                     timeout: float = 30) -> list[int]:
        """Wait until `count` workers run, none of them in `exclude`; return them."""
        deadline = time.monotonic() + timeout
        while True:
            workers = self.workers()
            if len(workers) == count and not exclude & set(workers):
                return workers
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(workers)} workers ({workers}) after {timeout:.0f} s, "
                                     f"expected {count} new ones: {self.server.log_tail()}")
            time.sleep(0.05)

    def wait_listening(self, workers: list[int], timeout: float = 30) -> None:
        """Wait until every worker listens on the port. gunicorn's inherit the master's socket;
        Granian's (on Linux) each open their own (SO_REUSEPORT) once the application is
        imported: a load started before would all go to the first worker up."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                listening = [pid for pid in workers if any(
                    c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == self.port
                    for c in psutil.Process(pid).net_connections(kind="tcp"))]
            except psutil.Error:
                listening = []
            if len(listening) == len(workers):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(listening)} of the workers {workers} listen after "
                                     f"{timeout:.0f} s: {self.server.log_tail()}")
            time.sleep(0.05)

    def held(self, pid: int) -> int:
        """Client connections a worker has open on the server's port."""
        connections = psutil.Process(pid).net_connections(kind="tcp")
        return sum(1 for c in connections
                   if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.port)

    def client(self, **kwargs) -> httpx.Client:
        kwargs.setdefault("headers", smoke.PROXY_HEADERS)
        return httpx.Client(base_url=self.base_url, timeout=10, trust_env=False, **kwargs)

    def stop(self) -> str:
        return self.server.stop(whole_group=False, timeout=self.settings["graceful_timeout"])

    def kill(self) -> None:
        self.server.kill()


class Servers:
    """Per test process: each configuration's project made once, at most one server running.
    `lock` is a file shared by the test processes (pytest-xdist): load runs one at a time."""

    def __init__(self, root: Path, lock: Path):
        self.root, self.lock = root, lock
        self.projects: dict[str, Path] = {}
        self.current: Running | None = None
        self.started = 0

    def project(self, config: ProdConfig) -> Path:
        if config.id not in self.projects:
            project = make_project(config, self.root / config.id / "shop")
            done = smoke.run_setup(project,
                                        smoke.server_env(project, BIN, config.combination, 0))
            assert done is None or done.returncode == 0, done.stderr[-2000:]
            self.projects[config.id] = project
        return self.projects[config.id]

    def get(self, config: ProdConfig, kind: str = "steady") -> Running:
        """The running server of this configuration and kind, started if need be."""
        current = self.current
        if current and current.config == config and current.kind == kind and current.alive():
            return current
        self.stop_all()
        self.started += 1
        log = self.root / f"{config.id}-{kind}-{self.started}.log"
        self.current = Running(config, kind, self.project(config), log)
        self.current.lock = self.lock
        return self.current

    def stop_all(self) -> None:
        if self.current:
            self.current.kill()
            self.current = None


@dataclass
class Load:
    """What wrk saw; see load.lua."""

    sent: int
    answered: int
    non2xx: int
    connect: int
    read: int
    write: int
    slow: int  # answered, but after wrk's 2 s timeout: counted, not failed

    def __add__(self, other: Load) -> Load:
        return Load(**{k: getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__})

    @property
    def lost(self) -> int:
        return self.sent - self.answered

    @property
    def failed(self) -> int:
        return self.lost + self.non2xx

    @property
    def socket_errors(self) -> int:
        return self.connect + self.read + self.write


@contextmanager
def exclusive(lock: Path | None) -> Iterator[None]:
    """Held by one test process at a time: two loads on two cores would measure each other."""
    if lock is None:
        yield
        return
    with open(lock, "a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def wrk_path() -> str:
    path = shutil.which("wrk")
    if not path:
        pytest.fail("wrk is not installed: apt-get install wrk (.ci/run does)")
    return path


def load(running: Running, seconds: int,
         events: list[tuple[float, Callable[[], None]]] = (), settle: int = SETTLE,
         paths: tuple[str, ...] = ("/api/hello", "/")) -> Load:
    """`CONNECTIONS` connections for at least `seconds`, alternating `paths`, as a TLS proxy
    would send them; `events` run at their times (seconds from the start) meanwhile. wrk then
    waits for the answers still due, `settle` seconds at most: where requests are lost, every
    one of them."""
    with exclusive(running.lock):
        deadline = int(time.time()) + 1 + seconds  # load.lua's clock counts whole seconds
        argv = [wrk_path(), "-t", str(THREADS), "-c", str(CONNECTIONS),
                "-d", f"{deadline - int(time.time()) + settle}s", "-s", str(LOAD_SCRIPT),
                *(arg for name, value in smoke.PROXY_HEADERS.items()
                  for arg in ("-H", f"{name}: {value}")),
                running.base_url, "--", str(deadline), ",".join(paths)]
        start = time.monotonic()
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
        reader.start()
        try:
            for at, action in events:
                time.sleep(max(0.0, start + at - time.monotonic()))
                action()
            # every answer due has come: stop wrk now rather than at its -d
            while process.poll() is None and lines.count("DRAINED\n") < THREADS:
                time.sleep(0.05)
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
            reader.join(10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    out = "".join(lines)
    found = re.search(r"^WRK (\{.*\})$", out, re.MULTILINE)
    assert found, f"wrk printed no result: {out[-1000:]} {process.stderr.read()[-1000:]}"
    return Load(**json.loads(found.group(1)))


class Watch(threading.Thread):
    """After a worker is killed: when the service answers a new connection again, and when the
    master has replaced the worker."""

    def __init__(self, running: Running, workers: list[int], since: float):
        super().__init__(daemon=True)
        self.running, self.before, self.since = running, set(workers), since
        self.answered_again: float | None = None
        self.replaced: float | None = None
        self.replacement: int | None = None
        self.attempts: list[str] = []

    def run(self) -> None:
        deadline = self.since + 30
        while time.monotonic() < deadline and None in (self.answered_again, self.replaced):
            if self.answered_again is None:
                began = time.monotonic()
                status = status_of(self.running.port, HEALTHZ, timeout=2)
                if status.startswith("HTTP/1.1 200 "):
                    self.answered_again = time.monotonic() - self.since
                self.attempts.append(f"at {began - self.since:.2f} s, in "
                                     f"{time.monotonic() - began:.2f} s: {status}")
            if self.replaced is None:
                workers = set(self.running.workers())
                new = workers - self.before
                if new and len(workers) == len(self.before):
                    self.replaced = time.monotonic() - self.since
                    self.replacement = new.pop()
            time.sleep(0.02)


def kill_worker(running: Running, into: dict) -> None:
    """SIGKILL one worker; count the connections it held (frozen first, so it takes no more)."""
    workers = running.workers()
    victim = workers[0]
    os.kill(victim, signal.SIGSTOP)
    into["held"] = running.held(victim)
    os.kill(victim, signal.SIGKILL)
    into["watch"] = watch = Watch(running, workers, time.monotonic())
    watch.start()


HEALTHZ = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + smoke.PROXY_LINES +
           b"Connection: close\r\n\r\n")


def wait_out_burst(probe: Callable[[], str], within: float) -> float:
    """Seconds until `probe` is first answered 200 after a burst of thousands of connects.

    Until the server has taken the burst, a probe waits behind it, or its SYN is dropped by
    the full accept queue and sent again a second later (uvicorn takes 5,000 in about a
    second, longer on a busy machine). The held connections are what the tests are about,
    not their arrival."""
    started = time.monotonic()
    while not (answer := probe()).startswith("HTTP/1.1 200"):
        assert time.monotonic() - started < within, f"no answer within {within:.0f} s: {answer}"
    return time.monotonic() - started


def status_of(port: int, request: bytes, timeout: float = 10) -> str:
    """The status line a raw request on a new connection is answered with, or what happened."""
    try:
        with socket.create_connection((smoke.HOST, port), timeout=timeout) as sock:
            try:
                sock.sendall(request)
            except OSError:  # the server may answer and close before reading it all
                pass
            received = b""
            while b"\r\n" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
    except OSError as error:
        return f"failed: {error.strerror or error!r}"
    return received.split(b"\r\n")[0].decode(errors="replace") or "closed without an answer"
