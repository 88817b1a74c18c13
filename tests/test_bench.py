"""`newstack bench` works end to end: a short run of the real command (no speed is asserted)."""

from __future__ import annotations

import json
import os
import random
import sys

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
