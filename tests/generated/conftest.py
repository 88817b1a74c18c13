"""What only the system tests of generated projects need: the order prod servers run in, the
lock on load, the prod servers and their figures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SERVER_KINDS = ("steady", "stop", "recycling")  # the order a group runs in


def pytest_configure(config):
    kinds = ", ".join(SERVER_KINDS)
    config.addinivalue_line("markers", f"server(kind): the kind of prod server a test uses "
                            f"({kinds}); a configuration's tests run in that order")


def pytest_collection_modifyitems(items):
    """Each prod configuration's tests together (one xdist group, see prod.params), those using
    the same kind of server one after another: each server is started once."""
    def key(item):
        group = item.get_closest_marker("xdist_group")
        kind = item.get_closest_marker("server")
        if not group:
            return ("", 0)
        return (group.args[0], SERVER_KINDS.index(kind.args[0]) if kind else 0)

    items.sort(key=key)  # stable: otherwise in the order written


@pytest.fixture(scope="session")
def load_lock(tmp_path_factory) -> Path:
    """A file every test process of the run locks while it loads a server (prod.py
    exclusive()): two loads on two cores would measure each other."""
    # the base temporary directory of the whole run, shared by pytest-xdist's workers
    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if os.environ.get("PYTEST_XDIST_WORKER") else shared
    return shared / "prod-load.lock"


@pytest.fixture(scope="session")
def servers(tmp_path_factory, load_lock):
    from .prod import Servers

    pool = Servers(tmp_path_factory.mktemp("prod"), load_lock)
    yield pool
    pool.stop_all()


SUMMARY = (  # column title, what it shows, the figures (prod.record keys) it joins with " / "
    ("load", "served / failed / socket errors", ("served", "failed", "socket_errors")),
    ("SIGKILL a worker", "held / failed / answered in s / replaced in s",
     ("kill_held", "kill_failed", "kill_answered_again", "kill_replaced")),
    ("SIGHUP", "served / failed / workers replaced",
     ("reload_served", "reload_failed", "reload_replaced")),
    ("SIGTERM", "completed / exited in s", ("stop_completed", "stop_exited")),
    ("max_requests", "recycles / served / failed / socket errors",
     ("recycles", "recycle_served", "recycle_failed", "recycle_socket_errors")),
    ("oversized", "line / fields / field", ("limits",)),
    ("bandit", "medium+high (low)", ("bandit",)),
    ("hadolint", "", ("hadolint",)),
    ("PostgreSQL", "read req/s / budget / peak connections", ("db_rps", "db_budget", "db_peak")),
    ("SQLite", "read req/s", ("db_sqlite_rps",)),
    ("PostgreSQL away 3 s", "503s / ready again in s", ("db_outage_503", "db_recovered_s")),
)


def prod_summary(terminalreporter, config):
    """Per prod configuration, the figures its tests recorded (prod.record), as a table and as
    JSON: in $PROD_FIGURES when set, else prod-figures.json in pytest's base temporary directory
    (which later pytest runs may delete)."""
    rows: dict[str, dict] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name == "prod":
                    rows.setdefault(value["config"], {}).update(value)
    if not rows:
        return
    import json

    path = Path(os.environ.get("PROD_FIGURES") or
                config._tmp_path_factory.getbasetemp() / "prod-figures.json")
    path.write_text(json.dumps(rows, indent=2, sort_keys=True))
    table = [["configuration", *(title for title, _, _ in SUMMARY)],
             ["", *(what for _, what, _ in SUMMARY)]]
    for cid in sorted(rows):
        table.append([cid, *(" / ".join(str(rows[cid].get(k, "-")) for k in keys)
                             for _, _, keys in SUMMARY)])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    terminalreporter.section("prod stacks")
    for row in table:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths))
        terminalreporter.write_line(line.rstrip())
    terminalreporter.write_line(f"(JSON: {path})")
