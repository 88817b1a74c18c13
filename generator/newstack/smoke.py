"""Boot generated projects with their own commands and probe them over real sockets.

The commands are read from the generated README (the lines after its `<!-- newstack:... -->`
markers), never rebuilt from the table: what is probed is what a user would run.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from .stacks import Combination, fill_package

HOST = "127.0.0.1"
START_TIMEOUT = 60.0  # the first start of an isolated environment compiles every module
DEV_STOP_TIMEOUT = 10.0
# What a TLS-terminating proxy in front of a prod stack adds; Django prod redirects without it.
# Both: Granian's proxy-header wrapper reads the scheme only from a request that names a client.
PROXY_HEADERS = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
PROXY_LINES = "".join(f"{name}: {value}\r\n" for name, value in PROXY_HEADERS.items()).encode()


# Every probe, in the order they run and are reported.
PROBES = ("install", "setup", "start", "page", "json", "db", "ws", "sse", "workers", "sigterm",
          "log")
# Lines no start, request or stop of a generated server may log: tracebacks, errors, and what
# servers say when the application lacks something (a route, the lifespan protocol).
LOG_ERRORS = re.compile(r"Traceback \(most recent call last\)|\[ERROR\]|^ERROR:|Error while "
                        r"closing socket|'lifespan' protocol appears unsupported|Not Found: ",
                        re.MULTILINE)


class SmokeError(Exception):
    """A probe failed; the message says why."""


@dataclass
class Result:
    combination: str
    server: str  # "dev" or "prod": which of the README's commands was started
    command: str
    started_in: float | None = None
    seconds: float = 0.0  # from start to stopped, probes included
    probes: dict[str, str] = field(default_factory=dict)  # probe -> "ok" or the reason it failed

    @property
    def passed(self) -> bool:
        return self.started_in is not None and all(v == "ok" for v in self.probes.values())


def readme_commands(project: Path) -> dict[str, str]:
    """The commands the generated README prints, by marker: dev-command, prod-setup, prod-command."""
    readme = (project / "README.md").read_text()
    return dict(re.findall(r"<!-- newstack:([\w-]+) -->\n```sh\n(.+?)\n```", readme))


# The README's steps before a server starts, by its marker: the migrations (every target), then
# what a prod build does (Django's collectstatic: the Dockerfile runs it at build time).
SETUP_STEPS = {"dev": ("migrate",), "prod": ("migrate", "prod-setup")}


def run_setup(project: Path, env: dict[str, str],
              which: str = "prod") -> subprocess.CompletedProcess[str] | None:
    """The README's set-up steps for its `which` server, in `env`: the first that failed, else
    the last, or None when the project has none."""
    commands = readme_commands(project)
    done = None
    for marker in SETUP_STEPS[which]:
        if marker not in commands:
            continue
        setup_env, argv = split_command(commands[marker])
        done = subprocess.run(argv, cwd=project, env={**env, **setup_env}, capture_output=True,
                              check=False, text=True, timeout=120)
        if done.returncode:
            break
    return done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def split_command(command: str) -> tuple[dict[str, str], list[str]]:
    """`A=1 B=2 prog args` -> ({A: 1, B: 2}, [prog, args]), as a shell would run it."""
    words = shlex.split(command)
    env = {}
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    return env, words


def server_env(project: Path, bin_dir: Path, combination: Combination, port: int) -> dict[str, str]:
    """What a platform would give the server: a port, the secrets the stack requires."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FLASK_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", HOST=HOST, PORT=str(port),
               WEB_CONCURRENCY="2", PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("VIRTUAL_ENV", None)
    if combination.stack.secret_env:
        env[combination.stack.secret_env] = secrets.token_urlsafe(50)
    return env


class Server:
    """A server process started in its own session, so that its whole process group can be
    checked and, whatever happens, killed."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], log: Path):
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self.pgid = self.process.pid

    def log_tail(self, lines: int = 3) -> str:
        text = self.log.read_text(errors="replace").strip().splitlines()
        useful = [line.strip() for line in text if line.strip()]
        return " | ".join(useful[-lines:]) or "(no output)"

    def group(self) -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(process.pid) == self.pgid and process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
            except (ProcessLookupError, psutil.Error):
                pass
        return found

    def wait_ready(self, url: str, headers: dict[str, str]) -> float:
        start = time.monotonic()
        while time.monotonic() - start < START_TIMEOUT:
            if self.process.poll() is not None:
                raise SmokeError(f"exited with code {self.process.returncode} before /healthz "
                                 f"answered: {self.log_tail()}")
            try:
                if httpx.get(url, headers=headers, timeout=1, trust_env=False).status_code == 200:
                    return time.monotonic() - start
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SmokeError(f"/healthz did not answer 200 within {START_TIMEOUT:.0f} s: {self.log_tail()}")

    def stop(self, whole_group: bool, timeout: float) -> str:
        """SIGTERM (to the main process, as an orchestrator sends it, or to the whole group, as a
        terminal's Ctrl-C does), then check that every process of the group is gone in time."""
        start = time.monotonic()
        try:
            if whole_group:
                os.killpg(self.pgid, signal.SIGTERM)
            else:
                self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return f"still running {timeout:.0f} s after SIGTERM"
        except ProcessLookupError:
            pass
        while self.group() and time.monotonic() - start < timeout:
            time.sleep(0.1)
        left = self.group()
        if left:
            names = ", ".join(f"{p.pid} {' '.join(p.cmdline()[:3])}" for p in left)
            return f"left behind after SIGTERM: {names}"
        return "ok"

    def kill(self) -> None:
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass


def probe(results: dict[str, str], name: str, check: Callable[[], None]) -> None:
    try:
        check()
        results[name] = "ok"
    except Exception as error:  # noqa: BLE001 - every failure becomes the probe's reason
        results[name] = str(error) or type(error).__name__


def expect(condition: bool, reason: str) -> None:
    if not condition:
        raise SmokeError(reason)


def search(pattern: str, text: str, reason: str) -> re.Match[str]:
    """The first match of `pattern` in `text`; SmokeError(reason) when there is none."""
    match = re.search(pattern, text)
    if match is None:
        raise SmokeError(reason)
    return match


def check_page(client: httpx.Client) -> None:
    page = client.get("/")
    expect(page.status_code == 200, f"/ answered {page.status_code}")
    kind = page.headers.get("content-type", "")
    expect(kind.startswith("text/html"), f"/ is {kind!r}, not text/html")
    link = search(r'<link rel="stylesheet" href="([^"]+)"', page.text, "/ links no stylesheet")
    css = client.get(link.group(1))
    expect(css.status_code == 200, f"{link.group(1)} answered {css.status_code}")
    kind = css.headers.get("content-type", "")
    expect(kind.startswith("text/css"), f"{link.group(1)} is {kind!r}, not text/css")


    icon = client.get("/favicon.ico")  # every browser asks for it
    kind = icon.headers.get("content-type", "")
    expect(icon.status_code == 200 and kind.startswith("image/"),
           f"/favicon.ico answered {icon.status_code} {kind!r}, not an image")


def check_head(port: int, headers: bytes) -> None:
    """HEAD / is answered 200 with no body. Over a raw socket: a client library drops a body
    sent to HEAD, or reads it as the next response."""
    request = b"HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + headers + b"\r\n"
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    expect(status.split()[1:2] == ["200"], f"HEAD / answered {status!r}")
    expect(body == b"", f"HEAD / answered with a body of {len(body)} bytes")


def check_log(server: Server) -> None:
    found = LOG_ERRORS.search(server.log.read_text(errors="replace"))
    expect(found is None, f"the log says {found and found.group(0)!r}: {server.log_tail(5)}")


def check_json(client: httpx.Client) -> None:
    response = client.get("/api/hello")
    expect(response.status_code == 200, f"/api/hello answered {response.status_code}")
    kind = response.headers.get("content-type", "")
    expect(kind.startswith("application/json"), f"/api/hello is {kind!r}, not JSON")
    expect("message" in response.json(), "/api/hello has no message")


def check_database(client: httpx.Client) -> None:
    """Ready, and a row written through the API reads back."""
    ready = client.get("/readyz")
    expect(ready.status_code == 200, f"/readyz answered {ready.status_code}: {ready.text[:200]}")
    name = f"smoke {secrets.token_hex(4)} <&>"
    created = client.post("/api/items", json={"name": name})
    expect(created.status_code == 201, f"POST /api/items answered {created.status_code}: "
           f"{created.text[:200]}")
    read = client.get(f"/api/items/{created.json()['id']}")
    expect(read.status_code == 200 and read.json()["name"] == name,
           f"the item written did not read back: {read.status_code} {read.text[:200]}")


def check_websocket(port: int, headers: dict[str, str]) -> None:
    from websockets.sync.client import connect
    from websockets.typing import Origin

    origin = Origin(f"http://{HOST}:{port}")
    with connect(f"ws://{HOST}:{port}/ws/echo", origin=origin, additional_headers=headers,
                 proxy=None, open_timeout=5) as websocket:
        websocket.send("ping")
        reply = websocket.recv(timeout=5)
    expect(reply == "ping", f"/ws/echo answered {reply!r}")


def check_events(client: httpx.Client, interval: float = 0.3) -> None:
    """At least two events, the first read before the stream ends: streamed, not buffered."""
    arrived = []
    with client.stream("GET", f"/api/events?count=3&interval={interval}") as response:
        kind = response.headers.get("content-type", "")
        expect(kind.startswith("text/event-stream"), f"/api/events is {kind!r}")
        for line in response.iter_lines():
            if line.startswith("data:"):
                arrived.append(time.monotonic())
    expect(len(arrived) >= 2, f"/api/events sent {len(arrived)} events")
    expect(arrived[-1] - arrived[0] >= interval, "/api/events arrived all at once (buffered)")


def server_settings(project: Path, bin_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """What a prod project's server is set to run with (workers, graceful_timeout, and
    gunicorn's worker_class), read in the project's own environment."""
    from .render import read_answers

    resolved = read_answers(project).resolve()
    assert resolved.server is not None, f"{project} has no production server"
    code = fill_package(resolved.server.settings_code, resolved.package)
    out = subprocess.run([str(bin_dir / "python"), "-c", code], cwd=project, env=env,
                         capture_output=True, text=True, check=True, timeout=30)
    settings: dict[str, Any] = json.loads(out.stdout)
    return settings


def check_workers(server: Server, settings: dict[str, Any], expected_class: str | None) -> None:
    """The worker class the table names is in use (gunicorn), and as many workers run as the
    settings ask for."""
    log = server.log.read_text(errors="replace")
    if expected_class is not None:
        expect(settings["worker_class"] == expected_class,
               f"gunicorn.conf.py sets worker_class {settings['worker_class']!r}, the table says "
               f"{expected_class!r}")
        used = search(r"Using worker: (\S+)", log, "gunicorn did not log its worker class")
        expect(used.group(1) == expected_class,
               f"worker class in use is {used.group(1)!r}, the table says {expected_class!r}")
    deadline = time.monotonic() + 15
    while True:  # workers boot one after another
        workers = psutil.Process(server.process.pid).children()
        if len(workers) == settings["workers"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    expect(len(workers) == settings["workers"],
           f"{len(workers)} worker processes running, the settings ask for {settings['workers']}")


def gunicorn_class(project: Path, combination: Combination) -> str | None:
    """The worker class the table says a prod project's gunicorn.conf.py names (None: the
    project's server takes no worker class)."""
    from .render import read_answers

    return read_answers(project).resolve().context().gunicorn_class or None


def smoke_server(project: Path, combination: Combination, which: str, bin_dir: Path,
                 logs: Path) -> Result:
    """Start one of the README's servers (dev or prod), probe it, stop it."""
    command = readme_commands(project)[f"{which}-command"]
    result = Result(combination.id, which, command)
    began = time.monotonic()
    try:
        _smoke_server(project, combination, which, bin_dir, logs, result)
    finally:
        result.seconds = round(time.monotonic() - began, 2)
    return result


def _smoke_server(project: Path, combination: Combination, which: str, bin_dir: Path,
                  logs: Path, result: Result) -> None:
    command = result.command
    port = free_port()
    env = server_env(project, bin_dir, combination, port)
    command_env, argv = split_command(command)
    env.update(command_env)
    prod = which == "prod"
    if not prod:  # dev servers take the address on their command line
        argv += shlex.split(combination.stack.dev_bind.format(host=HOST, port=port))
    headers = PROXY_HEADERS if prod else {}
    done = run_setup(project, env, which)
    if done and done.returncode:
        result.probes["setup"] = f"{shlex.join(done.args)!r} failed: {done.stderr[-300:]}"
        return
    settings = server_settings(project, bin_dir, env) if prod else {}
    server = Server(argv, project, env, logs / f"{combination.id}-{which}.log")
    try:
        try:
            result.started_in = round(server.wait_ready(f"http://{HOST}:{port}/healthz", headers), 2)
        except SmokeError as error:
            result.probes["start"] = str(error)
            return
        with httpx.Client(base_url=f"http://{HOST}:{port}", headers=headers, timeout=10,
                          trust_env=False) as client:
            lines = PROXY_LINES if prod else b""

            def check_pages() -> None:
                check_page(client)
                check_head(port, lines)

            probe(result.probes, "page", check_pages)
            probe(result.probes, "json", lambda: check_json(client))
            if combination.stack.database:
                probe(result.probes, "db", lambda: check_database(client))
            if combination.stack.realtime:
                probe(result.probes, "ws", lambda: check_websocket(port, headers))
                probe(result.probes, "sse", lambda: check_events(client))
        if prod:
            expected = gunicorn_class(project, combination)
            probe(result.probes, "workers", lambda: check_workers(server, settings, expected))
        timeout = settings.get("graceful_timeout") or DEV_STOP_TIMEOUT
        result.probes["sigterm"] = server.stop(whole_group=not prod, timeout=timeout + 5)
        probe(result.probes, "log", lambda: check_log(server))
    finally:
        server.kill()


def smoke_project(project: Path, combination: Combination, bin_dir: Path, logs: Path,
                  step: Callable[[str], None] = lambda _: None) -> list[Result]:
    """Every server the README of a project gives: its target's, and a prod project's dev one."""
    servers = ["prod", "dev"] if combination.server else ["dev"]
    results = []
    for which in servers:
        step(f"{combination.id}: {which} server")
        results.append(smoke_server(project, combination, which, bin_dir, logs))
    return results


def isolated_env(project: Path, where: Path) -> Path:
    """A fresh virtual environment with only what the project's pyproject.toml declares."""
    uv = _uv()
    venv = where / "venv"
    if uv:
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True,
                       capture_output=True, timeout=300)
        install = [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python")]
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        install = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    done = subprocess.run([*install, str(project)], capture_output=True, check=False, text=True,
                          timeout=900)
    if done.returncode:
        raise SmokeError(f"installing {project.name} failed: {done.stderr.strip()[-300:]}")
    return venv / "bin"


def _uv() -> str | None:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        from shutil import which

        return which("uv")


@contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="newstack-smoke-") as tmp:
        yield Path(tmp)


def smoke(combinations: list[Combination], isolated: bool,
          step: Callable[[str], None] = lambda _: None) -> list[Result]:
    from .render import Answers, generate

    results = []
    with workspace() as root:
        logs = root / "logs"
        logs.mkdir()
        for combination in combinations:
            step(f"{combination.id}: generating")
            project = generate(Answers.of("smoke", combination), root / combination.id / "smoke")
            bin_dir = Path(sys.executable).parent
            if isolated:
                step(f"{combination.id}: installing its own environment")
                try:
                    bin_dir = isolated_env(project, root / combination.id)
                except SmokeError as error:
                    results.append(Result(combination.id, combination.target, "",
                                          probes={"install": str(error)}))
                    continue
            results.extend(smoke_project(project, combination, bin_dir, logs, step))
    return results


def report(results: list[Result]) -> None:
    from rich.console import Console
    from rich.table import Table

    seen = {p for r in results for p in r.probes}
    probes = [p for p in PROBES if p in seen]
    table = Table(title="newstack smoke")
    for column in ("combination", "server", "up in", *probes, "took"):
        table.add_column(column, no_wrap=True)
    for r in results:
        cells = [r.probes.get(p, "") for p in probes]
        table.add_row(
            r.combination, r.server,
            f"{r.started_in:.1f} s" if r.started_in is not None else "[red]no[/]",
            *("[green]ok[/]" if c == "ok" else "[red]FAIL[/]" if c else "-" for c in cells),
            f"{r.seconds:.1f} s",
        )
    console = Console()
    console.width = max(console.width, 110)
    console.print(table)
    for r in results:
        for name, outcome in r.probes.items():
            if outcome != "ok":
                console.print(f"[red]FAILED[/] {r.combination} {r.server} {name}: {outcome}",
                              markup=True, highlight=False, soft_wrap=True)


def to_json(results: list[Result]) -> str:
    return json.dumps([{**asdict(r), "passed": r.passed} for r in results], indent=2)
