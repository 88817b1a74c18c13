"""Report a bench run (bench.py measures it): rich tables on the terminal and a matplotlib chart.

Every comparison is read off the table in stacks.py: each server against the default server
(SERVERS[0]), each stack against the stack of its framework's default protocol, each stack's
seed claim beside its measured default.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from .bench import (
    PROD,
    PROD_ID,
    REFERENCE,
    WARM_UP,
    DefaultFigures,
    Measurement,
    Run,
    protocol_pairs,
)
from .errors import NewstackError
from .stacks import LABELS, SERVERS, STACKS, WORKLOADS, ServerName, server_row

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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
    figure(run).savefig(path, dpi=110)


def level_shown(run: Run) -> int:
    """The concurrency level the chart shows: 64 connections if the run measured it (the level
    BENCHMARKS.md and the defaults are judged at), else the run's first."""
    levels = run.levels() or [run.connections]
    return 64 if 64 in levels else levels[0]


def figure(run: Run) -> Figure:
    """The chart: the seed's decision matrix, one panel per workload (each default's ratio to
    the reference on the same server, the seed's claimed ratio marked), then the defaults' p99
    and memory per worker, workload by workload. A run of one workload at one level also shows
    every measurement, as taken."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise NewstackError("--plot needs matplotlib: pip install 'newstack[bench]'") from error
    level, workloads = level_shown(run), run.workloads() or ["json"]
    shown = [r for r in run.results if r.ok]
    every = len(run.slices()) == 1
    columns = min(3, len(workloads))
    rows = -(-len(workloads) // columns)
    heights = [*([3.0] if every else []), *[2.6] * rows, 0.9 + 0.35 * len(workloads)]
    fig = Figure(figsize=(max(15, len(shown) * 0.32) if every else 15,
                          sum(heights) + 1.4 + (2.5 if every else 0)), layout="constrained")
    grid = fig.add_gridspec(len(heights), 2 * columns, height_ratios=heights)
    if every:
        _every_measurement(fig.add_subplot(grid[0, :]), shown, workloads[0])
    # ratios when every default has the reference's beside it, else requests/s (a run of
    # other stacks only)
    ratios = all(c in part.to_reference() for part in (run.part(w, level) for w in workloads)
                 for c in part.combinations() if part.default(c))
    first = None
    for i, workload in enumerate(workloads):
        row, column = every + i // columns, i % columns
        panel = fig.add_subplot(grid[row, 2 * column:2 * column + 2],
                                sharey=first if ratios else None)
        _matrix_panel(panel, run.part(workload, level), ratios, legend=i == 0)
        if ratios and column:  # the shared axis is named once per row
            panel.set_ylabel("")
        first = first or panel
    combinations = [c for c in PROD if c in run.combinations()]
    memory = "MB per worker, " + " or ".join(sorted({r.memory_kind for r in shown}))
    for side, (name, title) in enumerate((("p99_ms", "p99 ms"), ("memory_per_worker_mb", memory))):
        _defaults_heatmap(fig.add_subplot(grid[-1, side * columns:(side + 1) * columns]), run,
                          level, workloads, combinations, name, title)
    levels = run.levels()
    at = f"{level} connections" + (f" (of {', '.join(map(str, levels))})" if len(levels) > 1
                                   else "")
    which = "per workload" if len(workloads) > 1 else f"on {workloads[0]}"
    servers = [server_row(s).label for s in SERVERS
               if any(PROD[c].server == s for c in run.combinations())] or ["no server"]
    fig.suptitle(f"newstack bench: the seed's decision matrix {which}, generated defaults of "
                 f"the prod stacks on {_and(servers)} at {at}\n"
                 f"wrk {run.seconds:g} s per measurement, {run.cores} cores shared with the load "
                 "generator, same machine, same run; over each bar its requests/s", fontsize=11)
    return fig


def _every_measurement(ax: Axes, shown: list[Measurement], workload: str) -> None:
    ax.bar(range(len(shown)), [r.requests_per_s for r in shown],
           color=[f"C{COMBINATION_ORDER.get(r.combination, 0)}" for r in shown])
    ax.set_xticks(range(len(shown)), [f"{_label(r.combination)}: {r.variant}" for r in shown],
                  rotation=70, ha="right", fontsize=6)
    what = next(w for w in WORKLOADS if w.name == workload)
    ax.set_ylabel(f"requests/s ({what.method} {what.path})")
    ax.set_title("every measurement, in the order taken within each stack (defaults first and "
                 "last)")


def _matrix_panel(ax: Axes, part: Run, ratios: bool, legend: bool) -> None:
    """One workload: each default's ratio to the reference on its server (or its requests/s
    when the run lacks the reference), its requests/s over its bar, and the seed's claimed
    ratio across its stack's bars."""
    stacks = [s.key for s in STACKS if s.key in part.stacks()]
    servers = [s for s in SERVERS if any(PROD[c].server == s for c in part.combinations())]
    to_reference, width = part.to_reference(), 0.8 / max(1, len(servers))
    for j, server in enumerate(servers):
        cids = [PROD_ID.get((s, server), "") for s in stacks]
        defaults = [part.default(c) if c else None for c in cids]
        offsets = [k + (j - (len(servers) - 1) / 2) * width for k in range(len(stacks))]
        values = [(to_reference.get(c, 0.0) if ratios else d.requests_per_s) if d else 0.0
                  for c, d in zip(cids, defaults, strict=True)]
        bars = ax.bar(offsets, values, width, color=f"C{SERVERS.index(server)}",
                      label=server_row(server).label)
        ax.bar_label(bars, [f"{d.requests_per_s:,.0f}" if d else "" for d in defaults],
                     fontsize=6, padding=2)
    if ratios:
        claims = {k: claim for k, s in enumerate(stacks)
                  if s != REFERENCE.key and (claim := _claim(PROD_ID[s, SERVERS[0]])[1])}
        for n, (k, claim) in enumerate(claims.items()):  # one legend entry ("_": none)
            ax.hlines(float(claim), k - 0.45, k + 0.45, colors="black", linestyles="dashed",
                      linewidth=1.2, label="_claim" if n else "seed's claimed ratio")
        ax.axhline(1.0, color="grey", linewidth=0.6, zorder=0)
        ax.set_ylabel(f"ratio to {LABELS[REFERENCE.framework]}, same server", fontsize=8)
    else:
        ax.set_ylabel("requests/s", fontsize=8)
    ax.set_xticks(range(len(stacks)), stacks, fontsize=8)
    ax.margins(y=0.15)
    ax.set_title(textwrap.fill(_workload(part), 60), fontsize=9)
    if legend:
        ax.legend(fontsize=7, loc="upper right")


def _defaults_heatmap(ax: Axes, run: Run, level: int, workloads: list[str],
                      combinations: list[str], name: str, title: str) -> None:
    """One figure of the defaults, a row per workload and a column per stack and server."""
    cells = [[getattr(run.part(w, level).default(c) or Measurement("", ""), name)
              for c in combinations] for w in workloads]
    # shaded from the least to the most within each workload: p99 spans 10 ms to seconds
    # across workloads
    ax.imshow([[(v - min(row)) / ((max(row) - min(row)) or 1.0) for v in row] for row in cells],
              cmap="Oranges", vmin=0, vmax=1.4, aspect="auto")
    for i, row in enumerate(cells):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value:.0f}" if value else "", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(combinations)),
                  [_label(c).replace(" / ", "\n") for c in combinations], fontsize=7)
    ax.set_yticks(range(len(workloads)), workloads, fontsize=8)
    ax.set_title(f"defaults: {title}; darker is more, within each workload", fontsize=9)
