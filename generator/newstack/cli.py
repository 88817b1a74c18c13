"""The `newstack` command: thin typer commands over the table and the renderer."""

from __future__ import annotations

import io
import json
import shlex
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core

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


class _Command(typer.core.TyperCommand):
    """A command that refuses an option given twice (click silently keeps the last)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _, _, order = self.make_parser(ctx).parse_args(args=list(args))
        seen: set[str | None] = set()
        for param in order:
            once = getattr(param, "param_type_name", "") == "option" and not param.multiple
            if once and param.name in seen:
                raise typer.BadParameter("given more than once; give it once", ctx,
                                         param)  # type: ignore[arg-type]
            seen.add(param.name)
        return super().parse_args(ctx, args)


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


@app.command(cls=_Command)
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

    given = Answers.complete(name, framework, protocol, target, worker_class,
                             fill_defaults=False, server=server)  # Flask's one protocol filled
    given.validate()  # what was given is wrong before anything is missing
    asked = None not in (given.framework, given.protocol, given.target)
    interactive = not asked and not defaults and sys.stdin.isatty() and sys.stdout.isatty()
    if not asked and not defaults and not interactive:
        missing = [f"--{n}" for n in ("framework", "protocol", "target")
                   if getattr(given, n) is None]
        raise UsageError(f"missing {', '.join(missing)} and no terminal to ask on; "
                         "give them or pass --defaults")
    answers = Answers.complete(name, given.framework, given.protocol, target, worker_class,
                               fill_defaults=not interactive, server=server)
    dest = generate(answers, output_dir / name, interactive=interactive, template=template,
                    vcs_ref=vcs_ref)
    recorded = read_answers(dest)
    try:
        _print_next_steps(dest, recorded)
        sys.stdout.flush()
    except OSError as error:  # stdout full or closed: the project is there all the same
        _drop_stdout()
        raise NewstackError(f"created {dest}, but could not print its next steps: "
                            f"{error.strerror or error}") from error


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit does not fail a second time."""
    import os

    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, io.UnsupportedOperation):  # not a file (tests capture it)
        pass


@app.command(cls=_Command)
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
    if not outcome.changed:
        print(f"{path.absolute()}: {versions}; nothing {'would change' if pretend else 'changed'}")
    elif pretend:
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
    typer.echo(f"  cd {shlex.quote(str(dest))}")
    typer.echo('  python -m venv .venv && . .venv/bin/activate && pip install -e ".[test]"')
    if context.migrate:
        typer.echo(f"  {context.migrate}  " + typer.style("# the database", **dim))
    typer.echo(f"  {context.dev_command}  " + typer.style("# development server", **dim))
    if context.prod_command:
        how = context.worker_class or f"{context.server_label}, {context.interface}"
        typer.echo(f"  {context.prod_command}  " + typer.style(f"# production ({how})", **dim))
    typer.echo("  python -m pytest  " + typer.style("# its tests", **dim))


@app.command(cls=_Command)
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

    columns = ("framework / protocol", "dev command", "prod server", "prod command",
               "worker classes / interface")
    rows = []
    for stack in STACKS:
        workers = ", ".join(w.name + (" (default)" if i == 0 else "")
                            for i, w in enumerate(stack.worker_classes))
        for i, server in enumerate(SERVER_ROWS):
            rows.append((stack.label, stack.dev_command,
                         server.name + (" (default)" if i == 0 else ""),
                         " ".join(server.prod_argv(stack)),
                         workers if server.takes_worker_class else server.interface(stack)))
    console = Console(soft_wrap=True)
    table = Table(title="newstack stacks", expand=False)
    for column in columns:
        table.add_column(column)
    for i, row in enumerate(rows):  # a stack's label and dev command on its first row only
        table.add_row(*(row if i == 0 or rows[i - 1][0] != row[0] else ("", "", *row[2:])))
    # A table cut to the width crops the commands (`{package}.ma…`), and a width of 0 (COLUMNS=0)
    # prints nothing: piped, or where the table does not fit, one row per line, in full.
    needed = sum(max(len(c) for c in column) + 3 for column in zip(columns, *rows)) + 1
    if not console.is_terminal or needed > console.width:
        print(" | ".join(columns))
        for row in rows:
            print(" | ".join(row))
        print("{package} stands for the project's package name. Refused:")
        for framework, protocol in INVALID:
            print(f"  {invalid_reason(framework, protocol)}")
        return
    console.print(table)
    console.print("{package} stands for the project's package name. Refused:")
    for framework, protocol in INVALID:
        console.print(f"  [red]{invalid_reason(framework, protocol)}[/]")


@app.command(cls=_Command)
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
    _check_output("--json", json_file)
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


@app.command(cls=_Command)
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
        bool, typer.Option(help="Also measure the alternatives to each default (on the db and "
                                "queries workloads when the run has them), and the peers.")
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
    for level in levels:
        benching.check_options(duration, level)
    _check_output("--json", json_file)
    _check_output("--plot", plot_file)
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
    if json_file:  # first: minutes of measurements are kept whatever happens next
        json_file.write_text(benching.to_json(run))
    benching.report(run)
    if plot_file:
        benching.plot(run, plot_file)
    failed = [m for m in run.results if not m.ok]
    if failed:
        raise NewstackError(f"{len(failed)} of {len(run.results)} measurements failed; the "
                            f"first, {failed[0].combination} {failed[0].variant}: "
                            f"{failed[0].failure}")


def _check_output(option: str, path: Path | None) -> None:
    """Refuse, before hours of work, a file that cannot be written at the end."""
    import os

    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {path}: no directory {path.parent}; create it first")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{option} {path}: not writable here")


def main() -> None:
    """Console entry point: errors become one line and an exit code, never a traceback
    (unless --debug is given). SIGINT, SIGTERM, SIGHUP and SIGQUIT unwind like Ctrl-C so that what is being
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
