"""Three replicas of each prod stack, each started with the project's own prod command, behind
the project's generated nginx config, all on 127.0.0.1. Under load (wrk) one replica is killed
with SIGKILL (its whole process group, as when a container or machine dies) and restarted a
second later: no idempotent GET fails, WebSockets and Server-Sent Events keep working through
nginx, and nginx's access log shows the requests spread over the replicas.

What the test changes in the generated nginx config is said in tests/generated/proxy.py. Every
process started here is stopped by its process group, whatever happens; the load runs
LOAD_SECONDS.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from newstack import render
from newstack.smoke import (
    HOST,
    PROXY_HEADERS,
    Server,
    check_events,
    check_json,
    check_page,
    free_port,
    readme_commands,
    run_setup,
    server_env,
    split_command,
)
from newstack.stacks import COMBINATIONS, Combination

from ..conftest import answers_for
from .prod import exclusive
from .proxy import Site, read_access_log, start

PROD = [c for c in COMBINATIONS if c.target == "prod"]
BIN = Path(sys.executable).parent
REPLICAS = 3
KILLED = 1  # the replica that is killed and restarted
LOAD_SECONDS = 6
CONNECTIONS = 64
KILL_AT, RESTART_AT = 2.0, 3.0  # seconds into the load
BACK_WITHIN = 15.0  # the restarted replica takes requests again within this many seconds
AGENT = "newstack-replicas"  # wrk's requests, told apart in the access log
WRK_HINT = "wrk is not installed: `apt-get install -y wrk` (.ci/run installs it)"

# Idempotent GETs over three routes; every status is counted, so a 3xx is seen too (wrk's own
# summary counts only statuses above 399).
WRK_SCRIPT = """\
local paths = {"/api/hello", "/", "/healthz"}
local n = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function request()
  n = n + 1
  return wrk.format("GET", paths[n % #paths + 1], {["User-Agent"] = "{agent}"})
end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  io.write("STATUSES")
  for status, count in pairs(total) do io.write(string.format(" %d=%d", status, count)) end
  local e = summary.errors
  io.write(string.format("\\nSUMMARY requests=%d connect=%d read=%d write=%d timeout=%d "
    .. "seconds=%.2f max_ms=%.1f\\n", summary.requests, e.connect, e.read, e.write, e.timeout,
    summary.duration / 1e6, latency.max / 1e3))
end
""".replace("{agent}", AGENT)


def wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        pytest.fail(WRK_HINT, pytrace=False)
    return found


@contextmanager
def workspace() -> Iterator[Path]:
    """A directory for one stack; NEWSTACK_KEEP=1 keeps it (logs, access log) for a look."""
    root = Path(tempfile.mkdtemp(prefix="newstack-replicas-"))
    # Run as root, nginx's workers drop to an unprivileged user: they must read the static files.
    root.chmod(0o755)
    try:
        yield root
    finally:
        if not os.environ.get("NEWSTACK_KEEP"):
            shutil.rmtree(root, ignore_errors=True)


def distinct_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def stop(server: Server, timeout: float = 30) -> None:
    """SIGTERM to the main process, then SIGKILL to whatever of its group is left."""
    if server.process.poll() is None:
        server.stop(whole_group=False, timeout=timeout)
    if server.process.poll() is None or server.group():
        server.kill()


class Stack:
    """The replicas of one project, each started with the command its README gives for running
    behind nginx (the prod command, on 127.0.0.1, worker recycling off) on a port of its own,
    as the README says to run more replicas."""

    def __init__(self, project: Path, combination: Combination, root: Path, exits: ExitStack):
        self.project, self.combination, self.root, self.exits = project, combination, root, exits
        commands = readme_commands(project)
        self.command_env, self.argv = split_command(commands["nginx-command"])
        self.ports = distinct_ports(REPLICAS)
        self.secret = secrets.token_urlsafe(50)  # every replica needs the same one
        self.servers: dict[int, Server] = {}
        self.starts = Counter()

    def env(self, port: int) -> dict[str, str]:
        env = server_env(self.project, BIN, self.combination, port)
        env.update(self.command_env)
        env["PORT"] = str(port)
        if self.combination.stack.secret_env:
            env[self.combination.stack.secret_env] = self.secret
        return env

    def run_setup(self) -> None:
        done = run_setup(self.project, self.env(0))
        assert done is None or done.returncode == 0, f"{done.args}: {done.stderr[-2000:]}"

    def start(self, index: int) -> None:
        self.starts[index] += 1
        log = self.root / f"replica{index}-{self.starts[index]}.log"
        server = Server(self.argv, self.project, self.env(self.ports[index]), log)
        self.exits.callback(stop, server)
        self.servers[index] = server

    def wait_ready(self, index: int) -> None:
        url = f"http://{HOST}:{self.ports[index]}/healthz"
        self.servers[index].wait_ready(url, PROXY_HEADERS)

    def kill(self, index: int) -> None:
        self.servers[index].kill()

    def address(self, index: int) -> str:
        return f"{HOST}:{self.ports[index]}"


def websocket_echo(port: int, context: ssl.SSLContext) -> None:
    # The asyncio client, not websockets.sync: the sync client reads the TLS socket on a thread
    # of its own while it sends the handshake, and CPython's ssl is not safe for that (the
    # request was not sent at all, in about 1 of 300 handshakes under load; cpython#77271).
    from websockets.asyncio.client import connect

    async def echo() -> None:
        async with connect(f"wss://{HOST}:{port}/ws/echo", ssl=context,
                           origin=f"https://{HOST}", proxy=None, open_timeout=10) as websocket:
            await websocket.send("ping")
            assert await asyncio.wait_for(websocket.recv(), 10) == "ping"

    asyncio.run(echo())


def streams(client: httpx.Client, port: int, context: ssl.SSLContext, asgi: bool) -> dict[str, str]:
    """The page and its stylesheet, and on ASGI stacks a WebSocket echo and an event stream,
    through nginx: 'ok' or what went wrong, for each."""
    checks = {"page": lambda: check_page(client)}
    if asgi:
        checks["ws"] = lambda: websocket_echo(port, context)
        checks["sse"] = lambda: check_events(client, interval=0.2)
    outcome = {}
    for name, check in checks.items():
        try:
            check()
            outcome[name] = "ok"
        except Exception as error:  # noqa: BLE001 - reported with the others below
            outcome[name] = f"{type(error).__name__}: {error}"
    return outcome


def cut_in_transit(nginx_log: Path, address: str) -> list[str]:
    """Responses the killed replica had begun to send: nginx had its status line and headers
    (and passed them on), then the connection died. No proxy can retry those."""
    return [line for line in nginx_log.read_text().splitlines()
            if "while reading upstream," in line and f'upstream: "http://{address}/' in line]


def parse_wrk(output: str) -> tuple[dict[str, float], Counter]:
    summary = re.search(r"^SUMMARY (.+)$", output, re.MULTILINE)
    statuses = re.search(r"^STATUSES(.*)$", output, re.MULTILINE)
    assert summary and statuses, output
    figures = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", summary.group(1))}
    counts = Counter({int(s): int(n) for s, n in re.findall(r"(\d+)=(\d+)", statuses.group(1))})
    return figures, counts


@pytest.mark.parametrize("combination", PROD, ids=[c.id for c in PROD])
def test_a_killed_replica_costs_no_request_nginx_can_retry(combination, record_property,
                                                          load_lock):
    asgi = combination.protocol == "asgi"
    with workspace() as root, ExitStack() as exits:
        project = render.generate(answers_for(combination), root / "shop")
        replicas = Stack(project, combination, root, exits)
        replicas.run_setup()
        for index in range(REPLICAS):
            replicas.start(index)
        for index in range(REPLICAS):
            replicas.wait_ready(index)

        http_port, https_port = distinct_ports(2)
        while {http_port, https_port} & set(replicas.ports):
            http_port, https_port = distinct_ports(2)
        static = project / "staticfiles" if combination.framework == "django" else None
        site = Site(root / "nginx", replicas.ports, http_port, https_port, static)
        nginx = start(project, site, root / "nginx.log")
        exits.callback(stop, nginx)

        context = ssl.create_default_context(cafile=str(site.cert))
        client = exits.enter_context(httpx.Client(base_url=f"https://{HOST}:{https_port}",
                                                  verify=context, timeout=15, trust_env=False))
        deadline = time.monotonic() + 15
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert nginx.process.poll() is None, nginx.log_tail(10)
            assert time.monotonic() < deadline, f"nginx did not answer: {nginx.log_tail(10)}"
            time.sleep(0.1)

        # Before the load: every route through nginx, plain HTTP sent to HTTPS.
        check_json(client)
        before = streams(client, https_port, context, asgi)
        if static:  # collectstatic's hashed copy, from nginx, cached for good
            href = re.search(r'href="(/static/[^"]+)"', client.get("/").text).group(1)
            css = client.get(href)
            assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
            assert "immutable" in css.headers["cache-control"], css.headers
        redirect = httpx.get(f"http://{HOST}:{http_port}/api/hello", trust_env=False)
        assert redirect.status_code == 301
        assert redirect.headers["location"] == f"https://{HOST}/api/hello"

        # No other load of this run meanwhile (tests/generated/prod.py takes the same lock): two
        # loads on two shared cores make both figures noise.
        with exclusive(load_lock):
            # The load, with one replica killed and restarted in the middle of it.
            script = root / "load.lua"
            script.write_text(WRK_SCRIPT)
            load = subprocess.Popen([wrk(), "-t2", f"-c{CONNECTIONS}", f"-d{LOAD_SECONDS}s",
                                     "--timeout", "10s",
                                     "-s", str(script), f"https://{HOST}:{https_port}/"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
            exits.callback(lambda: load.poll() is None and load.kill())
            started = time.monotonic()
            sleep_until(started + KILL_AT)
            killed_at = time.time()
            replicas.kill(KILLED)
            during = streams(client, https_port, context, asgi)
            sleep_until(started + RESTART_AT)
            restarted_at = time.time()
            replicas.start(KILLED)
            replicas.wait_ready(KILLED)
            output, _ = load.communicate(timeout=LOAD_SECONDS + 60)
            assert load.returncode == 0, output
            figures, statuses = parse_wrk(output)

            after = streams(client, https_port, context, asgi)
            # The restarted replica is back in nginx's rotation (it waits out fail_timeout first).
            back, back_after = replicas.address(KILLED), None
            deadline = time.monotonic() + BACK_WITHIN
            while back_after is None and time.monotonic() < deadline:
                client.get("/api/hello", headers={"User-Agent": "newstack-after-restart"})
                served = [e for e in read_access_log(site)
                          if e.served_by == back and e.msec > restarted_at]
                if served:
                    back_after = served[0].msec - restarted_at
                else:
                    time.sleep(0.05)

        log = read_access_log(site)
        load_entries = [e for e in log if e.agent == AGENT]
        served_by = Counter(e.served_by for e in load_entries)
        retried = [e for e in load_entries if len(e.upstreams) > 1]
        dead_tried = [e for e in retried if back in e.upstreams[:-1]]
        while_dead = [e for e in load_entries
                      if e.served_by == back and killed_at + 0.2 < e.msec < restarted_at]
        static_served = None
        if static:  # the stylesheet came from nginx itself, not from a replica
            static_served = [e for e in log if e.path.startswith("/static/")]

        failed = int(sum(figures[k] for k in ("connect", "read", "write", "timeout"))
                     + sum(n for s, n in statuses.items() if not 200 <= s < 300))
        in_transit = cut_in_transit(nginx.log, back)
        shares = " / ".join(f"{served_by[replicas.address(i)] / max(len(load_entries), 1):.0%}"
                            for i in range(REPLICAS))
        line = (f"{combination.id}: {int(figures['requests']):,} requests through nginx in "
                f"{figures['seconds']:.1f} s ({figures['requests'] / figures['seconds']:,.0f}/s, "
                f"max latency {figures['max_ms']:.0f} ms); failed during the replica kill: "
                f"{failed} ({len(in_transit)} cut in transit); {len(retried)} retried on "
                f"another replica "
                f"({len(dead_tried)} after trying the killed one); served by replica 1/2/3: "
                f"{shares} (replica {KILLED + 1} killed at {KILL_AT:.0f} s, restarted at "
                f"{RESTART_AT:.0f} s, serving again {back_after or float('nan'):.1f} s after "
                f"its restart)")
        record_property("figures", line)
        print(line)

        assert (before, during, after) == ({k: "ok" for k in before},) * 3, (before, during, after)
        # Every GET that nginx could retry succeeded. The only failures allowed are responses
        # the killed replica was in the middle of writing at the instant of SIGKILL.
        assert failed == len(in_transit), (output, statuses, in_transit)
        assert figures["read"] == len(in_transit) and set(statuses) == {200}, (output, statuses)
        for cut in in_transit:  # nginx logs local time to the second
            at = time.mktime(time.strptime(cut[:19], "%Y/%m/%d %H:%M:%S"))
            assert killed_at - 2 < at < killed_at + 2, (cut, killed_at)
        assert figures["requests"] > 100, output
        # nginx logged what wrk counted, plus 499 for what was in flight when wrk closed its
        # connections at the end (at most one per connection).
        logged = Counter(e.status for e in load_entries)
        assert set(logged) <= {200, 499}, logged
        assert figures["requests"] <= logged[200], logged
        assert sum(logged.values()) <= figures["requests"] + failed + CONNECTIONS, logged
        assert all(served_by[replicas.address(i)] > 0 for i in range(REPLICAS)), served_by
        assert max(served_by.values()) < 0.8 * len(load_entries), served_by
        assert dead_tried, "no request was sent to the killed replica: the kill was not under load"
        assert not while_dead, while_dead[:3]
        assert back_after is not None, f"replica {KILLED + 1} took no request after its restart"
        if static_served is not None:
            assert static_served and all(e.upstreams == [] and e.status == 200
                                         for e in static_served), static_served
