"""`newstack bench` works end to end: a short run of the real command (no speed is asserted)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from newstack import bench
from newstack.stacks import find_combination

from .conftest import newstack


def test_short_bench_writes_table_json_and_plot(tmp_path):
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    result = newstack("bench", "flask-wsgi-prod", "--duration", "1", "--no-tune", "--json",
                      str(out), "--plot", str(png), env={"COLUMNS": "200"}, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "~5,000" in result.stdout  # the seed's claim, printed beside the measurement
    [row] = json.loads(out.read_text())["results"]
    assert row["combination"] == "flask-wsgi-prod" and not row["failure"]
    assert row["requests"] > 0 and row["workers"] >= 1 and row["memory_per_worker_mb"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_short_bench_of_a_granian_stack_counts_its_workers(tmp_path):
    out = tmp_path / "bench.json"
    env = {"COLUMNS": "200", "WEB_CONCURRENCY": "3", "GRANIAN_WORKERS": "3"}
    result = newstack("bench", "flask-wsgi-prod-granian", "--duration", "1", "--no-tune",
                      "--json", str(out), env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "flask-wsgi / Granian" in result.stdout and "Total time" in result.stdout
    [row] = json.loads(out.read_text())["results"]
    assert row["combination"] == "flask-wsgi-prod-granian" and row["server"] == "granian"
    assert not row["failure"] and row["requests"] > 0 and row["errors"] == 0
    # serve.py's default, one worker per core: the caller's WEB_CONCURRENCY and GRANIAN_* do not
    # leak into the bench
    assert row["workers"] == bench.cpu_count() and row["memory_per_worker_mb"] > 0


def test_the_default_runs_first_and_last_the_alternatives_shuffled_between():
    granian = find_combination("flask-wsgi-prod-granian")
    orders = {tuple(v.name for v in bench.plan(granian, 2, True, random.Random(seed)))
              for seed in range(20)}
    assert len(orders) > 1
    for names in orders:
        assert names[0] == names[-1] == bench.DEFAULT.name
        assert bench.DEFAULT.name not in names[1:-1]
        assert {"1 worker", "1 blocking thread", "16 blocking threads"} <= set(names)
    assert bench.plan(granian, 2, False, random.Random(0)) == [bench.DEFAULT]


def test_without_a_load_generator_it_says_what_to_install(tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    result = newstack("bench", "flask-wsgi-prod", env={"PATH": bin_dir})
    assert result.returncode == 1
    assert "install wrk" in result.stderr and result.stderr.count("\n") == 1


def test_dev_combinations_are_refused():
    result = newstack("bench", "flask-wsgi-dev")
    assert result.returncode == 2 and "prod combinations only" in result.stderr


BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def _run_of(stored):
    """A stored run (`newstack bench --json`) as the Run it was written from."""
    return bench.Run([bench.Measurement(**r) for r in stored["results"]],
                     stored["seconds_per_measurement"], stored["connections"], stored["cores"],
                     stored["seed"], tuple(stored["load_average_at_start"]),
                     stored["elapsed_seconds"])


def _stored_runs():
    for path in sorted(BENCHMARKS.glob("bench-*.json")):
        stored = json.loads(path.read_text())
        yield path.name, stored, _run_of(stored)


def test_the_stored_runs_summaries_are_recomputed_from_their_results():
    """The summary's keys come from the table (each server against SERVERS[0], each stack
    against its framework's default protocol) and still mean what BENCHMARKS.md quotes."""
    runs = list(_stored_runs())
    assert runs
    for name, stored, run in runs:
        assert run.summary() == stored["summary"], name
        assert list(stored["summary"]) == ["defaults", "to_fastapi_asgi", "granian_to_gunicorn",
                                           "peers", "django_asgi_to_wsgi"]
        # the reference stack against itself, on each server
        assert stored["summary"]["to_fastapi_asgi"]["fastapi-asgi-prod-granian"] == 1.0


def test_the_stored_workload_runs_figures_are_recomputed_from_their_results(capsys):
    """BENCHMARKS.md's workload tables quote these runs: each slice's summary, the matrix."""
    from rich.console import Console

    from newstack import bench_report

    paths = sorted(BENCHMARKS.glob("workloads-*.json"))
    assert len(paths) >= 2  # two runs: how far one run can be trusted
    for path in paths:
        stored = json.loads(path.read_text())
        run = _run_of(stored)
        assert stored["workloads"] == ["json", "db", "page", "write", "queries", "io"], path.name
        for workload, level in run.slices():
            summary = stored["summaries"][f"{workload} at {level}"]
            assert run.part(workload, level).summary() == summary, (path.name, workload)
        assert not [r for r in run.results if not r.ok], path.name
        Console(width=200).print(bench_report.matrix_table(run))
        fastapi = stored["summaries"]["db at 64"]["to_fastapi_asgi"]["fastapi-asgi-prod"]
        assert fastapi == 1.0
    assert "queries x 64" in capsys.readouterr().out


def _unreadable_texts(fig):
    """The figure's visible texts (titles, tick labels, bar labels, legend) that, once drawn,
    overlap one another, in pairs, or stick out of the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    FigureCanvasAgg(fig).draw()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    boxes = [(t.get_text(), t.get_window_extent()) for t in texts]
    return [(a, b) for i, (a, box) in enumerate(boxes) for b, other in boxes[i + 1:]
            if box.overlaps(other)] + [
        a for a, box in boxes if not (fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1)]


def test_the_plot_of_a_workload_run_is_the_seed_s_matrix_one_panel_per_workload(tmp_path):
    """190 measurements of six workloads: one bar each was unreadable, and the y label said
    /api/hello whatever the workload."""
    from newstack import bench_report

    stored = json.loads((BENCHMARKS / "workloads-2026-11-30a.json").read_text())
    run = _run_of(stored)
    fig = bench_report.figure(run)
    panels = [ax for ax in fig.axes if not ax.images]
    assert [ax.get_title().split()[0] for ax in panels] == stored["workloads"]
    # three panels a row, one axis: named on the first of each row
    assert [ax.get_ylabel() for ax in panels] == ["ratio to FastAPI, same server", "", ""] * 2
    for ax, workload in zip(panels, stored["workloads"], strict=True):
        assert f"{workload} on postgresql" in ax.get_title() or workload == "json"
        part = run.part(workload, 64)
        # a bar per default: its ratio to FastAPI on its server, its requests/s over it
        assert sorted(round(bar.get_height(), 2) for bar in ax.patches) == sorted(
            part.to_reference().values())
        assert len(ax.patches) == 8
        flask = part.default("flask-wsgi-prod")
        assert f"{flask.requests_per_s:,.0f}" in {t.get_text() for t in ax.texts}
        # the seed's claimed ratios (Flask 5,000, Django WSGI 3,000, Django ASGI 15,000 to
        # FastAPI's 20,000) across their stacks' bars
        claims = {round(segment[0][1], 2) for lines in ax.collections
                  for segment in lines.get_segments()}
        assert claims == {0.25, 0.15, 0.75}
    assert not [ax for ax in fig.axes if "/api/hello" in ax.get_ylabel()]
    heatmaps = [ax for ax in fig.axes if ax.get_title().startswith("defaults: ")]
    assert [ax.get_title().split()[1] for ax in heatmaps] == ["p99", "MB"]
    for ax in heatmaps:
        assert [t.get_text() for t in ax.get_yticklabels()] == stored["workloads"]
        assert len(ax.get_xticklabels()) == 8
    assert len(fig.axes) == len(stored["workloads"]) + 2  # no panel of every measurement
    assert "at 64 connections" in fig.get_suptitle()
    assert _unreadable_texts(fig) == []
    png = tmp_path / "plot.png"
    bench_report.plot(run, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_plot_of_a_json_run_keeps_every_measurement_and_names_its_route():
    from newstack import bench_report

    *_, (_, stored, run) = _stored_runs()
    fig = bench_report.figure(run)
    every, matrix, *heatmaps = fig.axes
    assert len(every.patches) == len(stored["results"])
    assert every.get_ylabel() == "requests/s (GET /api/hello)"
    assert matrix.get_title().startswith("json (") and len(matrix.patches) == 8
    assert matrix.get_ylabel() == "ratio to FastAPI, same server"
    assert [ax.get_yticklabels()[0].get_text() for ax in heatmaps] == ["json", "json"]
    # one stack without FastAPI (`newstack bench flask-wsgi-prod`): its requests/s, no claim
    flask = bench.Run([r for r in run.results if r.combination == "flask-wsgi-prod"], 3, 64, 2,
                      0, (0.0, 0.0, 0.0))
    _, matrix, *_ = bench_report.figure(flask).axes
    assert matrix.get_ylabel() == "requests/s" and not matrix.collections
    assert [round(bar.get_height()) for bar in matrix.patches] == [
        round(flask.default("flask-wsgi-prod").requests_per_s)]


def test_the_plot_shows_the_64_connection_level_else_the_first():
    from newstack import bench_report

    def run(*levels):
        return bench.Run([bench.Measurement("flask-wsgi-prod", bench.DEFAULT.name, "gunicorn",
                                            requests_per_s=100.0, connections=n) for n in levels],
                         3, levels[0], 2, 0, (0.0, 0.0, 0.0))

    assert bench_report.level_shown(run(16, 64, 256)) == 64
    assert bench_report.level_shown(run(256, 16)) == 256
    fig = bench_report.figure(run(16, 64, 256))
    assert "at 64 connections (of 16, 64, 256)" in fig.get_suptitle()
    assert "on gunicorn at" in fig.get_suptitle()  # the servers measured


def test_the_report_compares_servers_and_protocols_from_the_table(capsys):
    from newstack import bench_report

    *_, (_, stored, run) = _stored_runs()
    bench_report.report(run)
    out = capsys.readouterr().out
    assert "Granian against gunicorn" in out and "~15,000" in out
    ratio = stored["summary"]["django_asgi_to_wsgi"]["granian"]
    assert f"Django ASGI / Django WSGI under granian: {ratio:.2f}" in out


def test_tunings_and_peers_are_rows_of_the_table():
    from newstack.stacks import SERVERS, STACKS

    for combination in bench.PROD.values():
        names = [v.name for v in bench.variants(combination, 2)]
        peers = [f"peer: {p.label}" for p in combination.stack.peers]
        # the peers run once per stack, beside the default server
        assert [n for n in names if n.startswith("peer:")] == (
            peers if combination.server == SERVERS[0] else [])
        assert "1 worker" in names
    assert all(s.seed_claim for s in STACKS)
    django = bench.variants(find_combination("django-wsgi-prod"), 2)[-1]
    assert django.argv[:2] == ("gunicorn", "bench.wsgi:application")
    assert django.env == {"DJANGO_SETTINGS_MODULE": "bench.peer_settings"}
    workers = bench.variants(find_combination("flask-wsgi-prod-granian"), 2)[1]
    assert workers.name == "2 x cores + 1 workers"
    assert workers.env == {"WEB_CONCURRENCY": "5"}  # filled in for 2 cores
    pools = [v.env for v in bench.variants(find_combination("django-asgi-prod-granian"), 2)
             if v.name.startswith("pool ")]
    assert pools == [{"DB_POOL_SIZE": "10"}, {"DB_POOL_SIZE": "20"}]


def test_tunings_run_on_the_tuned_workloads_the_default_and_peers_on_all():
    from newstack.stacks import WORKLOADS

    levels = (16, 64)
    django = find_combination("django-wsgi-prod")
    default, *others = [bench.DEFAULT, *bench.variants(django, 2)]
    tuning, peer = others[0], others[-1]
    every = [(w.name, n) for w in WORKLOADS for n in levels]
    assert [(w.name, n) for w, n in bench.slices_of(django, default, WORKLOADS, levels)] == every
    assert [(w.name, n) for w, n in bench.slices_of(django, peer, WORKLOADS, levels)] == every
    tuned = bench.slices_of(django, tuning, WORKLOADS, levels)
    assert [(w.name, n) for w, n in tuned] == [(w, n) for w in ("db", "queries") for n in levels]
    # a run without a tuned workload tunes on what it measures
    json_only = bench.slices_of(django, tuning, WORKLOADS[:1], levels)
    assert [(w.name, n) for w, n in json_only] == [("json", 16), ("json", 64)]


def test_database_workloads_go_through_the_project_s_routes_on_sqlite_and_postgresql(tmp_path):
    out = tmp_path / "bench.json"
    for database in ("sqlite", "postgresql"):
        result = newstack("bench", "fastapi-asgi-prod", "--duration", "1", "--no-tune",
                          "--workload", "db", "--workload", "write", "--database", database,
                          "--connections", "8", "--connections", "32", "--json", str(out),
                          env={"COLUMNS": "200"}, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        for workload, level in (("db", 8), ("write", 8), ("db", 32), ("write", 32)):
            assert f"{workload} on {database} (" in result.stdout
            assert f"wrk {level} connections" in result.stdout
        stored = json.loads(out.read_text())
        assert stored["workloads"] == ["db", "write"] and stored["levels"] == [8, 32]
        assert list(stored["summaries"]) == ["db at 8", "db at 32", "write at 8", "write at 32"]
        assert sorted((r["workload"], r["connections"]) for r in stored["results"]) == [
            ("db", 8), ("db", 32), ("write", 8), ("write", 32)]
        for row in stored["results"]:
            # every request answered 2xx: a missing row, route or table would be an error here
            assert not row["failure"] and row["requests"] > 0 and row["errors"] == 0, row
            assert row["database"] == database
            assert (row["peak_connections"] > 0) is (database == "postgresql"), row  # sampled


def test_an_unknown_workload_or_database_is_one_line_naming_the_choices():
    for option, value in (("--workload", "fortunes"), ("--database", "mysql")):
        result = newstack("bench", "flask-wsgi-prod", option, value)
        assert result.returncode == 2, result.stderr
        assert value in result.stderr and result.stderr.count("\n") == 1
        assert ("json, db, page, write, queries, io" if option == "--workload" else "postgresql, sqlite") in (
            result.stderr)


@pytest.mark.parametrize("cid", ["fastapi-asgi-prod", "flask-wsgi-prod-granian",
                                 "django-wsgi-prod", "django-asgi-prod-granian"])
def test_the_injected_workloads_run_on_every_framework(tmp_path, cid):
    out = tmp_path / "bench.json"
    # 8 connections: 20 queries a request must not meet wrk's 2 s timeout on a busy machine
    result = newstack("bench", cid, "--duration", "1", "--no-tune", "--workload", "queries",
                      "--workload", "io", "--connections", "8", "--json", str(out),
                      env={"COLUMNS": "200"}, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for row in json.loads(out.read_text())["results"]:
        assert not row["failure"] and row["requests"] > 0 and row["errors"] == 0, row
        assert row["peak_connections"] > 0, row


def test_io_on_sqlite_is_refused_before_anything_runs():
    result = newstack("bench", "flask-wsgi-prod", "--workload", "io", "--database", "sqlite")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--workload io needs --database postgresql" in result.stderr


BAD_OPTIONS = [
    (["--duration", "nan"], "--duration nan: give the seconds of load"),
    (["--duration", "inf"], "--duration inf: give the seconds of load"),
    (["--duration", "1e300"], "--duration 1e+300: give the seconds of load"),
    (["--duration", "0"], "--duration 0: give the seconds of load"),
    (["--connections", "30000"], "--connections 30000: give 1 to"),
    (["--connections", "0"], "--connections 0: give 1 to"),
    (["--json", "{tmp}/missing/bench.json"], "no directory {tmp}/missing; create it first"),
    (["--plot", "{tmp}"], "is a directory; give a file name"),
]


@pytest.mark.parametrize(("args", "message"), BAD_OPTIONS, ids=[a[1] for a, _ in BAD_OPTIONS])
def test_bad_options_are_refused_before_anything_runs(tmp_path, args, message):
    """nan ran every measurement and exited 0; inf and 1e300 overflowed after generating the
    projects; a --json into a missing directory failed after the whole run."""
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    began = time.monotonic()
    result = newstack("bench", "flask-wsgi-prod", *args, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert message.replace("{tmp}", str(tmp_path)) in result.stderr, result.stderr
    assert time.monotonic() - began < 20  # refused up front: no project generated, no wrk
    assert list(tmp_path.iterdir()) == []


def test_smoke_json_into_a_missing_directory_is_refused_first(tmp_path):
    result = newstack("smoke", "flask-wsgi-dev", "--json", str(tmp_path / "no" / "r.json"),
                      timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "create it first" in result.stderr


def test_a_run_whose_measurements_failed_exits_non_zero(monkeypatch, tmp_path):
    from .bad_input import run_main

    failed = bench.Measurement("flask-wsgi-prod", bench.DEFAULT.name, "gunicorn",
                               failure="no request was answered in 3 s (12 socket errors)")
    run = bench.Run([failed], 3.0, 64, 2, 0, (0.0, 0.0, 0.0))
    monkeypatch.setattr(bench, "bench", lambda *args, **kwargs: run)
    monkeypatch.setattr(bench, "report", lambda run: None)
    out = tmp_path / "bench.json"
    code, _, err = run_main("bench", "flask-wsgi-prod", "--json", str(out))
    assert code == 1
    assert err == ("newstack: error: 1 of 1 measurements failed; the first, flask-wsgi-prod "
                   f"{bench.DEFAULT.name}: no request was answered in 3 s (12 socket errors)\n")
    assert json.loads(out.read_text())["results"][0]["failure"]  # written all the same


def test_the_measurements_are_written_before_the_tables_are_printed(monkeypatch, tmp_path):
    """A report that fails (a bug, a closed terminal) must not lose minutes of measurements."""
    from .bad_input import run_main

    measured = bench.Measurement("flask-wsgi-prod", bench.DEFAULT.name, "gunicorn",
                                 requests_per_s=1000.0, requests=3000)
    run = bench.Run([measured], 3.0, 64, 2, 0, (0.0, 0.0, 0.0))
    monkeypatch.setattr(bench, "bench", lambda *args, **kwargs: run)

    def broken(run):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(bench, "report", broken)
    out = tmp_path / "bench.json"
    run_main("bench", "flask-wsgi-prod", "--json", str(out))
    assert json.loads(out.read_text())["results"][0]["requests"] == 3000



@pytest.mark.parametrize("cid", ["fastapi-asgi-prod", "django-wsgi-prod"])
def test_the_peers_serve_the_database_workloads_their_own_way(cid, tmp_path):
    """full-stack-fastapi-template's sync sessions (its own routes), cookiecutter-django's
    settings (CONN_MAX_AGE=60, a transaction per request): real servers, real loads."""
    from newstack.stacks import WORKLOADS

    combination = find_combination(cid)
    database = bench.Database("sqlite")
    [project] = bench.generate_all([combination], tmp_path, lambda _: None, database).values()
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / bench.SCRIPT_NAME).write_text(bench.WRK_SCRIPT)
    [peer] = bench.peers(combination)
    slices = [(w, 4) for w in WORKLOADS if w.name in ("db", "write", "queries")]
    results = bench.measure(project, combination, peer, 1, slices, logs, database=database)
    assert [(r.workload, r.failure, r.errors) for r in results] == [
        (w.name, "", 0) for w, _ in slices]
    assert all(r.requests > 0 for r in results)  # errors counts non-2xx: a missing route 404s


def test_the_django_peer_runs_on_cookiecutter_django_s_database_settings(tmp_path):
    from newstack.render import Answers, generate

    combination = find_combination("django-wsgi-prod")
    project = generate(Answers.of(bench.PACKAGE, combination), tmp_path / bench.PACKAGE)
    bench.add_bench_files(project, combination)
    [peer] = bench.peers(combination)
    shown = "from django.conf import settings as s; d = s.DATABASES['default']; " \
            "print(d['ENGINE'], d['CONN_MAX_AGE'], d['ATOMIC_REQUESTS'], 'pool' in d['OPTIONS'])"
    env = {**os.environ, **peer.env, "DJANGO_SECRET_KEY": "x" * 50,
           "DATABASE_URL": "postgresql://u:p@127.0.0.1:5432/bench"}
    result = subprocess.run([sys.executable, "-c", shown], cwd=project, env=env, check=False,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["django.db.backends.postgresql", "60", "True", "False"], (
        result.stderr[-1000:])
