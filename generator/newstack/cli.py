"""The `newstack` command: thin typer commands over the table and the renderer."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from . import __version__
from .errors import Interrupted, NewstackError, UsageError
from .stacks import (
    COMBINATIONS,
    DATABASES,
    FRAMEWORKS,
    PROTOCOLS,
    SERVER_ROWS,
    SERVERS,
    STACKS,
    TARGETS,
    WORKER_CLASSES,
    WORKLOADS,
)

if TYPE_CHECKING:
    from .render import Answers

app = typer.Typer(
    help="Generate a runnable Python web service wired to the right server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich's help formatter costs ~80 ms at every start
)


def _version(value: bool) -> None:
    if value:
        print(f"newstack {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    pass


def _one_of(values: Iterable[str]) -> str:
    return "One of: " + ", ".join(values) + "."


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Project name; 'my-app' gives the package my_app.")],
    framework: Annotated[str | None, typer.Option(help=_one_of(FRAMEWORKS))] = None,
    protocol: Annotated[str | None, typer.Option(help=_one_of(PROTOCOLS))] = None,
    target: Annotated[str | None, typer.Option(help=_one_of(TARGETS))] = None,
    server: Annotated[
        str | None,
        typer.Option(help=f"Production server (prod; default {SERVERS[0]}). " + _one_of(SERVERS)),
    ] = None,
    worker_class: Annotated[
        str | None,
        typer.Option(help="gunicorn worker class (prod). " + _one_of(w.name for w in WORKER_CLASSES)),
    ] = None,
    output_dir: Annotated[
        Path, typer.Option(help="Directory in which the project directory is created.")
    ] = Path("."),
    defaults: Annotated[
        bool, typer.Option("--defaults", help="Use the defaults for options not given, never ask.")
    ] = False,
    template: Annotated[
        str | None,
        typer.Option(help="Template to render instead of the packaged one: a git URL or a local "
                     "git repository, recorded for `newstack update`; 'bundled': the released "
                     "versions this newstack carries."),
    ] = None,
    vcs_ref: Annotated[
        str | None, typer.Option(help="Tag or commit of --template (default: its latest tag).")
    ] = None,
) -> None:
    """Create a project. Options not given are asked on a terminal, offering only valid choices."""
    from .render import Answers, generate, read_answers

    asked = None not in (framework, protocol, target)
    interactive = not asked and not defaults and sys.stdin.isatty() and sys.stdout.isatty()
    if not asked and not defaults and not interactive:
        missing = [f"--{n}" for n, v in (("framework", framework), ("protocol", protocol),
                                          ("target", target)) if v is None]
        raise UsageError(f"missing {', '.join(missing)} and no terminal to ask on; "
                         "give them or pass --defaults")
    answers = Answers.complete(name, framework, protocol, target, worker_class,
                               fill_defaults=not interactive, server=server)
    dest = generate(answers, output_dir / name, interactive=interactive, template=template,
                    vcs_ref=vcs_ref)
    _print_next_steps(dest, read_answers(dest))


@app.command()
def update(
    path: Annotated[Path, typer.Argument(help="The project (a clean git working tree).")] = Path(),
    data: Annotated[
        list[str] | None,
        typer.Option("--data", help="KEY=VALUE: change an answer, e.g. target=prod "
                     "(target, server and worker_class only)."),
    ] = None,
    conflict: Annotated[
        str, typer.Option(help="How to leave conflicts: inline (<<<<<<< markers) or rej "
                          "(FILE.rej beside the file).")
    ] = "inline",
    vcs_ref: Annotated[
        str | None,
        typer.Option(help="Template tag or commit to update to (default: the latest tag)."),
    ] = None,
    pretend: Annotated[
        bool, typer.Option("--pretend", help="Show what would change (in a clone); change nothing.")
    ] = False,
    template: Annotated[
        str | None,
        typer.Option(help="Re-point the project: render its version and the new one from this "
                     "git URL or local git repository (a fork, a mirror), or 'bundled' (the "
                     "released versions this newstack carries), and record it."),
    ] = None,
) -> None:
    """Update a project to the template's latest version (copier update), keeping your edits.
    newstack's own template comes from the versions the installed newstack carries (no
    network). Shows what changed; conflicts are left as markers or .rej files and exit 1."""
    from .render import BUNDLED
    from .update import update as run_update

    outcome = run_update(path, data or [], conflict, vcs_ref, pretend, template)
    source = (f"the versions newstack {__version__} carries" if outcome.source == BUNDLED
              else outcome.source)
    if outcome.version_before != outcome.version_after:
        versions = f"template {outcome.version_before} -> {outcome.version_after}"
    else:
        versions = f"template {outcome.version_after}, " + (
            "answers changed" if data else "no newer version")
    versions += f" (from {source})"
    if pretend:
        print(f"{path.absolute()}: {versions}; {len(outcome.changed)} files would change "
              "(--pretend: nothing was changed):")
    else:
        print(f"{path.absolute()}: {versions}; {len(outcome.changed)} files changed "
              "(review with `git diff`, then commit):")
    for line in outcome.changed:
        print(f"  {line}")
    if outcome.conflicts:
        where = "the <<<<<<< markers" if conflict == "inline" else "the .rej files"
        print(f"newstack: conflicts {'would be left ' if pretend else ''}in "
              f"{', '.join(outcome.conflicts)}: resolve {where}, then commit", file=sys.stderr)
        raise typer.Exit(1)


def _print_next_steps(dest: Path, answers: Answers) -> None:
    # click's styling, not rich's: importing rich would cost more than the rest of this output
    resolved = answers.resolve()
    context = resolved.context()
    dim = {"dim": True}
    typer.echo(typer.style("Created", fg="green") + f" {dest} ({context.label}, "
               f"{resolved.target.name})")
    typer.echo(f"  cd {dest}")
    typer.echo('  python -m venv .venv && . .venv/bin/activate && pip install -e ".[test]"')
    if context.migrate:
        typer.echo(f"  {context.migrate}  " + typer.style("# the database", **dim))
    typer.echo(f"  {context.dev_command}  " + typer.style("# development server", **dim))
    if context.prod_command:
        how = context.worker_class or f"{context.server_label}, {context.interface}"
        typer.echo(f"  {context.prod_command}  " + typer.style(f"# production ({how})", **dim))
    typer.echo("  python -m pytest  " + typer.style("# its tests", **dim))


@app.command()
def matrix(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the valid combinations as a CI matrix.")
    ] = False,
) -> None:
    """Print which framework/protocol combinations are valid and the commands each runs."""
    if as_json:
        include = [{"id": c.id, "framework": c.framework, "protocol": c.protocol,
                    "target": c.target, "server": c.server or ""} for c in COMBINATIONS]
        print(json.dumps({"include": include}))
        return
    from rich.console import Console
    from rich.table import Table

    from .stacks import INVALID, invalid_reason

    table = Table(title="newstack stacks", expand=False)
    for column in ("framework / protocol", "dev command", "prod server", "prod command",
                   "worker classes / interface"):
        table.add_column(column)
    for stack in STACKS:
        workers = ", ".join(w.name + (" (default)" if i == 0 else "")
                            for i, w in enumerate(stack.worker_classes))
        for i, server in enumerate(SERVER_ROWS):
            table.add_row(stack.label if i == 0 else "", stack.dev_command if i == 0 else "",
                          server.name + (" (default)" if i == 0 else ""),
                          " ".join(server.prod_argv(stack)),
                          workers if server.takes_worker_class else server.interface(stack))
    console = Console(soft_wrap=True)
    console.print(table)
    console.print("{package} stands for the project's package name. Refused:")
    for framework, protocol in INVALID:
        console.print(f"  [red]{invalid_reason(framework, protocol)}[/]")


@app.command()
def smoke(
    combinations: Annotated[
        list[str] | None,
        typer.Argument(help="Combinations to boot, e.g. fastapi-asgi-prod (see `newstack matrix`)."),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every valid combination.")] = False,
    isolated: Annotated[
        bool,
        typer.Option(help="Give each project a fresh environment installed only from its own "
                     "pyproject.toml."),
    ] = False,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the results to this file.")
    ] = None,
) -> None:
    """Generate each combination, start it with the command its README prints, probe it over
    real sockets (HTML, CSS, JSON, WebSocket, SSE, workers), stop it with SIGTERM."""
    from rich.console import Console

    from . import smoke as smoking
    from .stacks import find_combination

    if all_ == bool(combinations):
        raise UsageError("name combinations or pass --all (not both); "
                         f"combinations: {', '.join(c.id for c in COMBINATIONS)}")
    chosen = list(COMBINATIONS) if all_ else [find_combination(c) for c in combinations or []]
    console = Console(stderr=True)
    began = time.monotonic()
    with console.status("starting") as status:
        results = smoking.smoke(chosen, isolated, step=lambda text: status.update(text))
    smoking.report(results)
    if json_file:
        json_file.write_text(smoking.to_json(results))
    failed = [r for r in results if not r.passed]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed "
          f"({time.monotonic() - began:.0f} s)")
    if failed:
        raise typer.Exit(1)


@app.command()
def bench(
    combinations: Annotated[
        list[str] | None,
        typer.Argument(help="Prod combinations to measure, e.g. fastapi-asgi-prod "
                            "fastapi-asgi-prod-granian."),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every prod combination (both servers).")] = False,
    duration: Annotated[float, typer.Option(help="Seconds of load per measurement.")] = 3.0,
    connections: Annotated[
        list[int] | None,
        typer.Option(metavar="N", help="Concurrent connections (repeat for several levels, e.g. "
                                       "16, 64, 256; default 64)."),
    ] = None,
    tune: Annotated[
        bool, typer.Option(help="Also measure the alternatives to each default, and the peers.")
    ] = True,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the shuffled order (default: a random one).")
    ] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write results here.")] = None,
    plot_file: Annotated[Path | None, typer.Option("--plot", help="Write a bar chart PNG.")] = None,
    workload: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME",
                     help="What each request does (repeat for several; default json): "
                          + "; ".join(f"{w.name}: {w.what}" for w in WORKLOADS) + "."),
    ] = None,
    database: Annotated[
        str, typer.Option(metavar="KIND",
                          help="The database of the workloads that use one: postgresql (a "
                               "server the bench starts, 10,000 rows) or sqlite (a file per "
                               "project).")
    ] = DATABASES[0],
) -> None:
    """Measure the prod stacks, on gunicorn and on Granian, with wrk: requests/s, p50/p99
    latency, errors, memory per worker, beside the seed's claimed figures."""
    from rich.console import Console

    from . import bench as benching
    from .stacks import find_combination

    if all_ == bool(combinations):
        raise UsageError("name prod combinations or pass --all (not both)")
    chosen = ([c for c in COMBINATIONS if c.server] if all_
              else [find_combination(c) for c in combinations or []])
    if not all(c.server for c in chosen):
        raise UsageError("bench measures prod combinations only (their production servers)")
    levels = tuple(dict.fromkeys(connections or [64]))
    if duration <= 0 or min(levels) <= 0:
        raise UsageError("--duration and --connections must be positive")
    names = {w.name: w for w in WORKLOADS}
    unknown = [w for w in workload or [] if w not in names]
    if unknown:
        raise UsageError(f"unknown --workload {unknown[0]!r}; expected one of: "
                         f"{', '.join(names)}")
    if database not in DATABASES:
        raise UsageError(f"unknown --database {database!r}; expected one of: "
                         f"{', '.join(DATABASES)}")
    workloads = tuple(names[w] for w in dict.fromkeys(workload or [WORKLOADS[0].name]))
    needs = [w.name for w in workloads if w.postgresql_only]
    if needs and database != "postgresql":
        raise UsageError(f"--workload {needs[0]} needs --database postgresql (SQLite has no "
                         "pg_sleep)")
    with Console(stderr=True).status("starting") as status:
        run = benching.bench(chosen, duration, levels, tune,
                             step=lambda text: status.update(text), seed=seed,
                             workloads=workloads, database_kind=database)
    benching.report(run)
    if json_file:
        json_file.write_text(benching.to_json(run))
    if plot_file:
        benching.plot(run, plot_file)


def main() -> None:
    """Console entry point: errors become one line and an exit code, never a traceback
    (unless --debug is given). SIGINT and SIGTERM unwind like Ctrl-C so that what is being
    written is cleaned up, then exit 130 or 143 with one line."""
    from .interrupts import HANDLER

    HANDLER.install()
    try:
        code = app(prog_name="newstack", standalone_mode=False)
    except BaseException as error:
        if _debugging() and not isinstance(error, SystemExit):
            raise
        code = _one_line(error, HANDLER.behind(error))
    finally:
        HANDLER.received.clear()  # in-process callers (tests) go on without a stale signal
    sys.exit(code if isinstance(code, int) else 0)


def _debugging() -> bool:
    """--debug is newstack's own option: before the command, not a name or value after it."""
    for arg in sys.argv[1:]:
        if arg == "--" or not arg.startswith("-"):
            return False
        if arg == "--debug":
            return True
    return False


def _one_line(error: BaseException, interrupted: Interrupted | None) -> int:
    """Print `error` as one line on stderr; return the exit code it carries."""
    import signal

    try:
        from typer._click import exceptions as click_errors  # typer 0.2x carries its own click
    except ImportError:
        from click import exceptions as click_errors  # type: ignore[no-redef]

    if isinstance(error, SystemExit):
        raise error
    if interrupted is not None:
        outcome = f"; {interrupted.outcome}" if interrupted.outcome else ""
        print(f"newstack: interrupted by {signal.Signals(interrupted.signum).name}{outcome}",
              file=sys.stderr)
        return interrupted.exit_code
    if isinstance(error, (getattr(click_errors, "Abort", typer.Abort), typer.Abort,
                          KeyboardInterrupt)):
        print("newstack: interrupted; nothing was written", file=sys.stderr)
        return 130
    if isinstance(error, click_errors.ClickException):
        context = getattr(error, "ctx", None)
        hint = f"{context.command_path} --help" if context else "newstack --help"
        print(f"newstack: error: {error.format_message()} (see {hint})", file=sys.stderr)
        return error.exit_code
    if isinstance(error, NewstackError):
        print(f"newstack: error: {error}", file=sys.stderr)
        return error.exit_code
    if not isinstance(error, Exception):
        raise error
    print(f"newstack: unexpected error: {error!r} (--debug shows the traceback)", file=sys.stderr)
    return 1
