"""Report a bench run (bench.py measures it): rich tables on the terminal and a matplotlib chart.

Every comparison is read off the table in stacks.py: each server against the default server
(SERVERS[0]), each stack against the stack of its framework's default protocol, each stack's
seed claim beside its measured default.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from .bench import (
    PROD,
    REFERENCE,
    WARM_UP,
    DefaultFigures,
    Measurement,
    Run,
    protocol_pairs,
)
from .errors import NewstackError
from .stacks import LABELS, SERVERS, WORKLOADS, ServerName, server_row

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.gridspec import GridSpec

# Each combination's colour in the chart: its place in the table.
COMBINATION_ORDER = {cid: i for i, cid in enumerate(PROD)}


def _label(combination: str) -> str:
    """fastapi-asgi / Granian"""
    prod = PROD[combination]
    server = prod.server_row
    return f"{prod.stack.key} / {server.label if server else ''}"


def _and(words: list[str]) -> str:
    """gunicorn and Granian; gunicorn, Granian and FakeServ"""
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def report(run: Run) -> None:
    console = Console()
    console.width = max(console.width, 140)
    console.print(results_table(run, console))
    defaults = run.defaults_to_best()
    console.print(defaults_table(defaults))
    for server in SERVERS[1:]:
        table = server_table(run, server)
        if table is not None:
            console.print(table)
    print_comparisons(run, console)
    console.print(seed_table(run, defaults))
    console.print("Memory is PSS (shared pages split between processes) where the system allows, "
                  "else RSS; the load generator ran on the same machine; access logs off for "
                  "every server. Load average at the start: "
                  f"{' '.join(f'{x:.2f}' for x in run.load_average)}. "
                  f"Total time: {run.elapsed:.0f} s.", highlight=False)


def _table(title: str, columns: tuple[str, ...], left: tuple[str, ...]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column in left else "right")
    return table


def _workload(run: Run) -> str:
    """json: GET /api/hello; db on postgresql: ..."""
    workload = next(w for w in WORKLOADS if w.name == (run.workloads() or ["json"])[0])
    databases = {r.database for r in run.results if r.database}
    where = f" on {', '.join(sorted(databases))}" if databases else ""
    return f"{workload.name}{where} ({workload.what})"


def results_table(run: Run, console: Console) -> Table:
    """Every measurement in the order taken; a failure is also printed, with its reason."""
    table = _table(f"newstack bench: {_workload(run)}, wrk {run.connections} connections x "
                   f"{run.seconds:g} s after {WARM_UP} s of warm-up, {run.cores} cores shared "
                   f"with the load generator; order shuffled (--seed {run.seed})",
                   ("stack / server", "#", "variant", "req/s", "vs best", "p50 ms", "p99 ms",
                    "errors", "workers", "MB/worker", "MB total", "DB conns"),
                   ("stack / server", "variant"))
    for r in run.results:
        if r.failure:
            table.add_row(_label(r.combination), str(r.order), r.variant, "[red]failed[/]",
                          *[""] * 8)
            console.print(f"[red]failed[/] {r.combination} {r.variant}: {r.failure}",
                          highlight=False)
            continue
        best = run.best(r.combination)
        table.add_row(_label(r.combination), str(r.order), r.variant, f"{r.requests_per_s:,.0f}",
                      f"{r.requests_per_s / best.requests_per_s:.2f}" if best else "",
                      f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", str(r.errors), str(r.workers),
                      f"{r.memory_per_worker_mb:.0f}", f"{r.memory_total_mb:.0f}",
                      str(r.peak_connections) if r.database == "postgresql" else "")
    return table


def defaults_table(defaults: dict[str, DefaultFigures]) -> Table:
    table = _table("Each generated default (mean of its runs, first and last) against the best "
                   "configuration measured for its stack and server",
                   ("stack / server", "default req/s", "its runs", "best", "req/s",
                    "default / best"), ("stack / server", "best"))
    for cid, d in defaults.items():
        table.add_row(_label(cid), f"{d['default_requests_per_s']:,}",
                      " / ".join(f"{x:,}" for x in d["default_runs_requests_per_s"]),
                      d["best_variant"], f"{d['best_requests_per_s']:,}",
                      f"{d['default_to_best']:.2f}")
    return table


def server_table(run: Run, server: ServerName) -> Table | None:
    """`server`'s defaults against the default server's, stack by stack (None: no stack was
    measured on both)."""
    ratios = run.server_ratios(server)
    if not ratios:
        return None
    base, other = server_row(SERVERS[0]), server_row(server)
    table = _table(f"{other.label} against {base.label}, generated defaults (ratio {other.name} "
                   f"/ {base.name}: above 1 is more requests/s, slower p99, more memory)",
                   ("stack", f"req/s {base.label}", f"req/s {other.label}", "ratio",
                    f"p99 ms {base.label}", f"p99 ms {other.label}", "ratio",
                    f"MB/worker {base.label}", f"MB/worker {other.label}", "ratio",
                    "MB total ratio"), ("stack",))
    for stack, r in ratios.items():
        ours, theirs = run.default_of(stack, SERVERS[0]), run.default_of(stack, server)
        if ours is None or theirs is None:
            continue
        table.add_row(stack, f"{ours.requests_per_s:,.0f}", f"{theirs.requests_per_s:,.0f}",
                      f"{r.get('requests_per_s', 0):.2f}", f"{ours.p99_ms:.1f}",
                      f"{theirs.p99_ms:.1f}", f"{r.get('p99_ms', 0):.2f}",
                      f"{ours.memory_per_worker_mb:.0f} x {ours.workers}",
                      f"{theirs.memory_per_worker_mb:.0f} x {theirs.workers}",
                      f"{r.get('memory_per_worker_mb', 0):.2f}",
                      f"{r.get('memory_total_mb', 0):.2f}")
    return table


def print_comparisons(run: Run, console: Console) -> None:
    """The peers against our defaults, and each stack against its framework's default
    protocol."""
    for name, peer in run.peer_figures().items():
        console.print(f"peer {name}: {peer['requests_per_s']:,} req/s, {peer['errors']} errors, "
                      f"p99 {peer['p99_ms']} ms; ours / theirs {peer['ours_to_theirs']:.2f}",
                      highlight=False)
    for stack, base in protocol_pairs():
        framework = LABELS[stack.framework]
        for server, ratio in run.protocol_ratios(stack, base).items():
            console.print(f"{framework} {LABELS[stack.protocol]} / {framework} "
                          f"{LABELS[base.protocol]} under {server}: {ratio:.2f}", highlight=False)


def seed_table(run: Run, defaults: dict[str, DefaultFigures]) -> Table:
    measured = {cid: d for cid in defaults if (d := run.default(cid)) is not None}
    ratios = run.to_reference()
    reference = LABELS[REFERENCE.framework]
    columns = ("stack", "seed req/s", f"seed: ratio to {reference}", "seed memory",
               "measured req/s", f"ratio to {reference} (same server)", "measured MB/worker")
    table = _table("The seed's decision matrix beside the measured defaults", columns, columns)
    for cid, d in measured.items():
        table.add_row(_label(cid), *_claim(cid), f"{d.requests_per_s:,.0f}",
                      f"{ratios[cid]:.2f}" if cid in ratios else "",
                      f"{d.memory_per_worker_mb:.0f} ({d.memory_kind})")
    return table


def _claim(cid: str) -> tuple[str, str, str]:
    """The seed's requests/s for a stack, as claimed and as a ratio to the reference's, and its
    memory."""
    claim, top = PROD[cid].stack.seed_claim, REFERENCE.seed_claim
    if claim is None or top is None:
        return "", "", ""
    return (f"~{claim.requests_per_s:,}", f"{claim.requests_per_s / top.requests_per_s:.2f}",
            claim.memory)


def matrix_table(run: Run) -> Table:
    """Every workload side by side: each default's requests/s and its ratio to the reference's
    on the same server, beside the seed's claimed ratio."""
    parts = {(w, c): run.part(w, c) for w, c in run.slices()}
    reference = LABELS[REFERENCE.framework]
    table = _table(f"The seed's decision matrix per workload: generated defaults, requests/s "
                   f"(ratio to {reference} on the same server)",
                   ("stack / server", f"seed: ratio to {reference}",
                    *(f"{w} x {c}" for w, c in parts)), ("stack / server",))
    for cid in run.combinations():
        cells = []
        for part in parts.values():
            default, ratio = part.default(cid), part.to_reference().get(cid)
            cells.append(f"{default.requests_per_s:,.0f} ({ratio:.2f})" if default and ratio
                         else "")
        table.add_row(_label(cid), _claim(cid)[1], *cells)
    return table


def plot(run: Run, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise NewstackError("--plot needs matplotlib: pip install 'newstack[bench]'") from error
    shown = [r for r in run.results if r.ok]
    fig = plt.figure(figsize=(max(10, len(shown) * 0.32), 10))
    grid = fig.add_gridspec(2, 3, height_ratios=(3, 2))
    _every_measurement(fig, grid, shown)
    _default_panels(fig, grid, run, list(dict.fromkeys(r.stack for r in shown)))
    labels = [server_row(s).label for s in SERVERS]
    fig.suptitle(f"newstack bench: prod stacks on {_and(labels)}, {run.cores} cores, "
                 "same machine, same run")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _every_measurement(fig: Figure, grid: GridSpec, shown: list[Measurement]) -> None:
    ax = fig.add_subplot(grid[0, :])
    ax.bar(range(len(shown)), [r.requests_per_s for r in shown],
           color=[f"C{COMBINATION_ORDER.get(r.combination, 0)}" for r in shown])
    ax.set_xticks(range(len(shown)), [f"{_label(r.combination)}: {r.variant}" for r in shown],
                  rotation=70, ha="right", fontsize=6)
    ax.set_ylabel("requests/s (/api/hello)")
    ax.set_title("every measurement, in the order taken within each stack (defaults first and last)")


def _default_panels(fig: Figure, grid: GridSpec, run: Run, stacks: list[str]) -> None:
    """The defaults side by side, one bar per server; under each stack, each other server's
    ratio to the default server."""
    ratios = {server: run.server_ratios(server) for server in SERVERS[1:]}
    width = 0.8 / len(SERVERS)
    versus = ", ".join(f"{server_row(s).label} / {server_row(SERVERS[0]).label}"
                       for s in SERVERS[1:])
    for i, (name, title) in enumerate((("requests_per_s", "requests/s"), ("p99_ms", "p99 ms"),
                                       ("memory_per_worker_mb", "MB per worker (PSS)"))):
        panel = fig.add_subplot(grid[1, i])
        for j, server in enumerate(SERVERS):
            values = [getattr(run.default_of(s, server) or Measurement("", ""), name)
                      for s in stacks]
            bars = panel.bar([k + (j - (len(SERVERS) - 1) / 2) * width
                              for k in range(len(stacks))], values, width, label=server)
            panel.bar_label(bars, fmt="%.0f", fontsize=6)
        panel.set_xticks(range(len(stacks)),
                         ["\n".join([s, *(f"{r[s][name]:.2f}" for r in ratios.values()
                                          if name in r.get(s, {}))]) for s in stacks],
                         fontsize=7)
        panel.set_title(f"defaults: {title}", fontsize=9)
        panel.set_xlabel(f"under each stack: {versus}", fontsize=7)
        if i == 0:
            panel.legend(fontsize=7)
