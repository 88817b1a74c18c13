"""Which async PostgreSQL driver a FastAPI project uses: psycopg 3 or asyncpg, measured.

    python benchmarks/async_driver.py [ROUNDS] [SECONDS]

Generates a FastAPI prod project, seeds 10,000 items in a throwaway PostgreSQL, and runs the
project's own prod command (gunicorn, one uvicorn worker, pool 10) twice: as generated (psycopg 3)
and with only the driver name changed to asyncpg. The two alternate, ROUNDS times (default 3),
each loaded by wrk for SECONDS (default 5) at 64 connections on two routes: one item by random id
and a page of 20. Prints requests/s per run and the median ratio asyncpg / psycopg. Machines here
are shared and noisy: compare the ratio, not the absolute figures.
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
ROUTES = {"one item": None, "page of 20": "/api/items?limit=20"}


def project(root: Path, driver: str) -> Path:
    dest = render.generate(render.Answers.of("shop", find_combination("fastapi-asgi-prod")),
                           root / driver)
    db = dest / "shop" / "db.py"
    db.write_text(db.read_text().replace('("postgresql+psycopg", ', f'("postgresql+{driver}", '))
    return dest


def measure(where: Path, env: dict[str, str], route: str, seconds: int, script: Path) -> float:
    port = smoke.free_port()
    env = {**env, "PORT": str(port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": "1",
           "GUNICORN_ACCESSLOG": ""}
    server = smoke.Server(["gunicorn", "shop.main:app", "-c", "gunicorn.conf.py"], where, env,
                          where / "server.log")
    try:
        server.wait_ready(f"http://127.0.0.1:{port}/healthz", {"host": "localhost"})
        url = f"http://127.0.0.1:{port}{ROUTES[route] or ''}"
        argv = ["wrk", "-t2", "-c64", f"-d{seconds}s", "-H", "Host: localhost"]
        argv += ["-s", str(script)] if ROUTES[route] is None else []
        subprocess.run([*argv, url], capture_output=True, check=True)  # warm up, not counted
        out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
        if "Non-2xx" in out or "Socket errors" in out:
            raise SystemExit(f"errors under load:\n{out}")
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    finally:
        server.stop(whole_group=False, timeout=30)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    root = Path(tempfile.mkdtemp(prefix="newstack-driver-"))
    script = root / "random.lua"
    script.write_text(LUA)
    try:
        with Cluster() as pg:
            url = pg.create_database("shop")
            env = {**os.environ, "DATABASE_URL": url}
            projects = {driver: project(root, driver) for driver in ("psycopg", "asyncpg")}
            subprocess.run(["alembic", "upgrade", "head"], cwd=projects["psycopg"], env=env,
                           check=True, capture_output=True)
            pg.psql("INSERT INTO items (name, note, created_at) SELECT 'item ' || n, '', now() "
                    "FROM generate_series(1, 10000) AS n", database="shop")
            results: dict[tuple[str, str], list[float]] = {}
            for n in range(rounds):
                order = ("psycopg", "asyncpg") if n % 2 == 0 else ("asyncpg", "psycopg")
                for route in ROUTES:
                    for driver in order:
                        rps = measure(projects[driver], env, route, seconds, script)
                        results.setdefault((route, driver), []).append(rps)
                        print(f"round {n + 1} {route:<11} {driver:<8} {rps:>9,.0f} req/s",
                              flush=True)
                        time.sleep(1)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for route in ROUTES:
        ratios = [a / p for a, p in zip(results[route, "asyncpg"], results[route, "psycopg"],
                                        strict=True)]
        print(f"{route}: asyncpg / psycopg median {statistics.median(ratios):.2f} "
              f"(runs {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
