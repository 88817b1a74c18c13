"""Where a Django ASGI project runs its database work, measured: db.run's threads (as generated),
the worker's one shared thread (Django's async ORM methods), stock Django (a thread per request),
and Django WSGI's gthread workers beside them.

    python benchmarks/django_asgi_orm.py [ROUNDS] [SECONDS]

Generates the Django ASGI and WSGI prod projects (gunicorn, 4 workers, pools of 5 and 4), seeds
10,000 items in a throwaway PostgreSQL and loads each configuration with wrk at 64 connections on
two routes: one item by random id (`/api/items/N`), and one that waits 10 ms on the database
(`SELECT pg_sleep(0.01)`, injected here, through the same pool). The configurations alternate,
ROUNDS times (default 2), SECONDS each (default 5). Prints requests/s per run and the median ratio
of each to the generated one. Machines here are shared and noisy: compare the ratios.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from newstack import render, smoke
from newstack.postgres import Cluster
from newstack.stacks import find_combination

LUA = """
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/api/items/" .. math.random(1, 10000), {["Host"] = "localhost"})
end
"""
ROUTES = {"one item": None, "waits 10 ms": "/api/wait"}
WAIT_VIEW = '''

def _wait():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.01)")


{prefix}def wait(request):
    {call}
    return JsonResponse({{"waited": 0.01}})
'''
ONE_THREAD = ("return await sync_to_async(call, thread_sensitive=False, executor=_threads)()",
              "return await sync_to_async(call)()  # the worker's one shared thread")


def project(root: Path, name: str) -> tuple[Path, list[str]]:
    """The generated project of configuration `name`, patched as it says, and its prod argv."""
    protocol = "wsgi" if name == "wsgi" else "asgi"
    dest = render.generate(render.Answers.of("shop", find_combination(f"django-{protocol}-prod")),
                           root / name)
    package = dest / "shop"
    urls = package / "urls.py"
    urls.write_text(urls.read_text().replace(
        '    path("admin/", ', '    path("api/wait", items.wait),\n    path("admin/", '))
    call = "_wait()" if protocol == "wsgi" else "await db.run(_wait)"
    items = package / "items.py"
    items.write_text(items.read_text() + WAIT_VIEW.format(
        prefix="async " if protocol == "asgi" else "", call=call))
    db = package / "db.py"
    if name in ("one thread", "stock Django"):
        db.write_text(db.read_text().replace(*ONE_THREAD))
    if name == "stock Django":
        asgi = package / "asgi.py"
        asgi.write_text(asgi.read_text().replace("django_application = ASGIHandler()",
                                                 "django_application = asgi.ASGIHandler()"))
    return dest, ["gunicorn", f"shop.{protocol}:application", "-c", "gunicorn.conf.py"]


def measure(where: Path, argv: list[str], env: dict[str, str], route: str, seconds: int,
            script: Path) -> float:
    port = smoke.free_port()
    env = {**env, "PORT": str(port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": "4",
           "GUNICORN_ACCESSLOG": "", "DJANGO_SECRET_KEY": "bench-" * 10,
           "DJANGO_SECURE_SSL_REDIRECT": "0"}
    server = smoke.Server(argv, where, env, where / "server.log")
    try:
        server.wait_ready(f"http://127.0.0.1:{port}/healthz", {"host": "localhost"})
        url = f"http://127.0.0.1:{port}{ROUTES[route] or ''}"
        wrk = ["wrk", "-t2", "-c64", f"-d{seconds}s", "-H", "Host: localhost"]
        wrk += ["-s", str(script)] if ROUTES[route] is None else []
        subprocess.run([*wrk[:3], "-d1s", *wrk[4:], url], capture_output=True, check=True)
        out = subprocess.run([*wrk, url], capture_output=True, text=True, check=True).stdout
        if "Non-2xx" in out or "Socket errors" in out:
            raise SystemExit(f"errors under load:\n{out}\n{(where / 'server.log').read_text()}")
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        assert found, out
        return float(found.group(1))
    finally:
        server.stop(whole_group=False, timeout=30)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    names = ("db.run threads", "one thread", "stock Django", "wsgi")
    root = Path(tempfile.mkdtemp(prefix="newstack-django-asgi-"))
    script = root / "random.lua"
    script.write_text(LUA)
    results: dict[tuple[str, str], list[float]] = {}
    try:
        with Cluster() as pg:
            env = {**os.environ, "DATABASE_URL": pg.create_database("shop")}
            projects = {name: project(root, name) for name in names}
            where, _ = projects["wsgi"]
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=where,
                           env={**env, "DJANGO_SECRET_KEY": "x"}, check=True)
            pg.psql("INSERT INTO items (name, note, created_at) SELECT 'item ' || n, '', now() "
                    "FROM generate_series(1, 10000) AS n", database="shop")
            for n in range(rounds):
                order = names if n % 2 == 0 else names[::-1]
                for route in ROUTES:
                    for name in order:
                        rps = measure(*projects[name], env, route, seconds, script)
                        results.setdefault((route, name), []).append(rps)
                        print(f"round {n + 1} {route:<12} {name:<15} {rps:>9,.0f} req/s",
                              flush=True)
                        time.sleep(1)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for route in ROUTES:
        for name in names[1:]:
            ratios = [other / ours for other, ours in
                      zip(results[route, name], results[route, names[0]], strict=True)]
            print(f"{route}: {name} / db.run threads median {statistics.median(ratios):.2f} "
                  f"(runs {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
