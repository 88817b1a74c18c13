"""`newstack bench` works end to end: a short run of the real command (no speed is asserted)."""

from __future__ import annotations

import json
import os
import sys

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


def test_without_a_load_generator_it_says_what_to_install(tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    result = newstack("bench", "flask-wsgi-prod", env={"PATH": bin_dir})
    assert result.returncode == 1
    assert "install wrk" in result.stderr and result.stderr.count("\n") == 1


def test_dev_combinations_are_refused():
    result = newstack("bench", "flask-wsgi-dev")
    assert result.returncode == 2 and "prod combinations only" in result.stderr
