"""Render a project with copier, into a temporary directory beside the destination that is
moved into place only when complete: either the whole project exists afterwards or nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import REPOSITORY, __version__, naming
from .copier_yml import stack_context
from .errors import Interrupted, NewstackError, UsageError
from .stacks import (
    COMBINATIONS,
    FRAMEWORKS,
    PROTOCOLS,
    SERVER_FOR_DEV,
    SERVERS,
    TARGETS,
    WORKER_CLASS_FOR_DEV,
    WORKER_CLASS_FOR_GRANIAN,
    WORKER_CLASSES,
    Combination,
    StackError,
    check_choice,
    default_protocol,
    find_stack,
    find_worker_class,
)

PACKAGED_TEMPLATE = Path(__file__).parent / "template"  # where the wheel carries it
CHECKOUT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_ROOT = PACKAGED_TEMPLATE if PACKAGED_TEMPLATE.is_dir() else CHECKOUT_ROOT
EXAMPLES = CHECKOUT_ROOT / "examples"


class DestinationError(UsageError):
    """The destination cannot take a new project."""


@dataclass(frozen=True)
class Answers:
    """What `newstack create` was told; None where copier is to ask."""

    project_name: str
    framework: str | None
    protocol: str | None
    target: str | None
    worker_class: str | None = None
    server: str | None = None

    @classmethod
    def complete(cls, name: str, framework: str | None, protocol: str | None,
                 target: str | None, worker_class: str | None, fill_defaults: bool,
                 server: str | None = None) -> Answers:
        if fill_defaults:  # only what was not given: an empty --target '' is refused, not filled
            framework = FRAMEWORKS[0] if framework is None else framework
            if protocol is None and framework in FRAMEWORKS:
                protocol = default_protocol(framework)
            target = TARGETS[0] if target is None else target
            if server is None and target == "prod":
                server = SERVERS[0]
        return cls(name, framework, protocol, target, worker_class, server)

    @classmethod
    def of(cls, name: str, combination: Combination, worker_class: str | None = None) -> Answers:
        """The answers that make `combination` (with a worker class other than its default)."""
        return cls.complete(name, combination.framework, combination.protocol, combination.target,
                            worker_class, fill_defaults=True, server=combination.server)

    def validate(self) -> None:
        """Raise a UsageError naming what is wrong with the answers given."""
        naming.check(self.project_name)
        if self.framework is not None:
            check_choice("framework", self.framework, FRAMEWORKS)
        if self.protocol is not None:
            check_choice("protocol", self.protocol, PROTOCOLS)
        if self.target is not None:
            check_choice("target", self.target, TARGETS)
        if self.server is not None:
            check_choice("server", self.server, SERVERS)
        if self.target == "dev" and self.server is not None:
            raise StackError(SERVER_FOR_DEV)
        if self.target == "dev" and self.worker_class is not None:
            raise StackError(WORKER_CLASS_FOR_DEV)
        if self.server == "granian" and self.worker_class is not None:
            raise StackError(WORKER_CLASS_FOR_GRANIAN)
        if self.worker_class is not None:
            check_choice("worker class", self.worker_class, tuple(w.name for w in WORKER_CLASSES))
        if self.framework is not None and self.protocol is not None:
            stack = find_stack(self.framework, self.protocol)
            if self.worker_class is not None:
                find_worker_class(stack, self.worker_class)

    def data(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v is not None}

    def context(self) -> dict:
        """The table's values for these (complete) answers, as the templates see them."""
        stack = find_stack(self.framework, self.protocol)
        server = (self.server or SERVERS[0]) if self.target == "prod" else None
        worker = find_worker_class(stack, self.worker_class) if server == "gunicorn" else None
        context = stack_context(stack, self.target, server, worker)
        package = naming.package_name(self.project_name)
        return json.loads(json.dumps(context).replace("{package}", package))


def read_answers(project: Path) -> Answers:
    import yaml

    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return Answers(**{k: recorded.get(k) for k in Answers.__dataclass_fields__})


def check_destination(dest: Path) -> None:
    if dest.is_symlink():
        raise DestinationError(f"{dest} is a symbolic link; choose a new path "
                               "(nothing was changed)")
    if dest.exists() and not dest.is_dir():
        raise DestinationError(f"{dest} exists and is not a directory; choose a new path")
    if dest.is_dir() and any(dest.iterdir()):
        raise DestinationError(f"{dest} exists and is not empty; choose a new path (nothing was changed)")


def make_parents(directory: Path, made: list[Path]) -> None:
    """Create `directory` and its missing parents, appending each one made to `made` (so that a
    failure can remove them again). A symlink to a directory on the way is followed; anything
    else that is not a directory is refused."""
    missing = []
    for path in (directory, *directory.parents):
        if path.is_dir():
            break
        if path.is_symlink():
            raise DestinationError(f"{path} is a broken symbolic link; choose another directory")
        if path.exists():
            raise DestinationError(f"{path} exists and is not a directory; "
                                   "choose another directory")
        missing.append(path)
    for path in reversed(missing):
        path.mkdir()
        made.append(path)


SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the file system is mid-change, then hand the first that
    arrived to the handler that was in place. Without this an interrupt could land between
    the move into place and the cleanup, or half-way through removing the staging directory."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread runs signal handlers
        return
    arrived: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, _: arrived.append(signum))
                for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if arrived:
            handler = previous[arrived[0]]
            if callable(handler):
                handler(arrived[0], None)  # Python's SIGINT handler raises KeyboardInterrupt here
            elif handler != signal.SIG_IGN:
                signal.raise_signal(arrived[0])  # the default action: end the process


def discard(staging: Path | None, made: list[Path]) -> None:
    """Remove the staging directory and the parents this run created, if they are empty."""
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
    for path in reversed(made):
        try:
            path.rmdir()
        except OSError:
            pass  # something else put a file in it meanwhile: not ours to remove


@contextmanager
def copier_source(source: str | None = None) -> Iterator[str | Path]:
    """`source` if given, else the packaged template as a plain directory. In a git checkout
    copier would clone the repo and warn about uncommitted changes: the checkout is used as
    it is if fast_copier can tell copier it is a plain directory, else a copy of just the
    template files."""
    from .fast_copier import renders_in_place

    if source is not None:
        yield source
        return
    if not (TEMPLATE_ROOT / ".git").exists() or renders_in_place():
        yield TEMPLATE_ROOT
        return
    tmp: Path | None = None
    try:  # not a TemporaryDirectory: an interrupt could cut its removal short
        with signals_deferred():
            tmp = Path(tempfile.mkdtemp(prefix="newstack-template-"))
        shutil.copy2(TEMPLATE_ROOT / "copier.yml", tmp)
        shutil.copytree(TEMPLATE_ROOT / "templates", tmp / "templates")
        yield tmp
    finally:
        with signals_deferred():
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)


def template_source(template: str) -> str:
    """`--template` as copier should record it: a git URL as given, a local git repository as
    an absolute path (a relative one, or a plain directory, breaks `copier update` later)."""
    path = Path(template).expanduser()
    if not path.exists():
        if "://" in template or template.startswith(("git@", "gh:", "gl:")):
            return template
        raise UsageError(f"--template {template}: no such directory, and not a git URL")
    inside = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"],
                            capture_output=True, check=False, text=True)
    if inside.returncode != 0 or Path(inside.stdout.strip()).resolve() != path.resolve():
        raise UsageError(f"--template {template} is not the root of a git repository; "
                         "`copier update` needs the template's tagged history")
    return str(path.resolve())


def generate(answers: Answers, dest: Path, interactive: bool = False,
             template: str | None = None, vcs_ref: str | None = None) -> Path:
    """Render `answers` into `dest`, all or nothing. Returns the destination.

    `template` (a git URL or local git repository, at `vcs_ref`, by default its latest tag)
    replaces the packaged template; copier records it as the project's source.

    Rendered into a staging directory beside `dest` (same file system), moved into place with
    one rename when complete. On any failure or interrupt the staging directory, and any
    parent directory this call created, are removed: afterwards either the whole project
    exists or nothing was written."""
    committed = False
    try:
        answers.validate()
        if vcs_ref is not None and template is None:
            raise UsageError("--vcs-ref applies to a --template only (the packaged template "
                             "has one version)")
        source = template_source(template) if template is not None else None
        dest = dest.absolute()
        check_destination(dest)
        from .fast_copier import faster_copy, import_copier

        copier = import_copier(interactive)  # slow to import (0.25 s or more): only to render

        made: list[Path] = []
        staging: Path | None = None
        try:
            with signals_deferred():
                make_parents(dest.parent, made)
                staging = Path(tempfile.mkdtemp(prefix=f".{dest.name[:32]}.newstack-",
                                                dir=dest.parent))
            with copier_source(source) as src:
                try:
                    with faster_copy(plain=source is None):
                        copier.run_copy(
                            str(src),
                            staging / "project",
                            vcs_ref=vcs_ref,
                            data=answers.data(),
                            defaults=not interactive,
                            quiet=True,
                            settings=copier.Settings(),
                        )
                except KeyboardInterrupt as error:  # Ctrl-C at one of copier's questions
                    raise Interrupted(signal.SIGINT) from error
                except ValueError as error:  # an answer given at copier's questions, refused
                    if not str(error).startswith(("Validation error for question",
                                                  "Invalid choice for")):
                        raise
                    raise UsageError(str(error)) from error
            if source is None:
                record_source(staging / "project")
            with signals_deferred():
                check_destination(dest)  # still free: do not replace what appeared meanwhile
                os.replace(staging / "project", dest)  # atomic; an empty directory is replaced
                committed = True
                discard(staging, [])
        except BaseException:
            if not committed:
                with signals_deferred():
                    discard(staging, made)
            raise
    except BaseException as error:
        outcome = f"{dest} is complete" if committed else "nothing was written"
        interrupted = Interrupted.behind(error)
        if interrupted is error:
            interrupted.outcome = outcome
            raise
        if interrupted:  # hidden by an error on the way out (a directory not removable, ...)
            raise Interrupted(interrupted.signum, outcome) from error
        if isinstance(error, OSError):
            raise NewstackError(f"could not write {dest}: {error.strerror or error} "
                                f"({outcome})") from error
        raise
    return dest


def record_source(project: Path) -> None:
    """copier recorded the temporary copy it rendered from: record the published template at
    this version's tag instead, which is where `copier update` finds this template later."""
    answers = project / ".copier-answers.yml"
    lines = [
        line if not line.startswith("_src_path:") else f"_commit: v{__version__}\n_src_path: {REPOSITORY}"
        for line in answers.read_text().splitlines()
    ]
    answers.write_text("\n".join(lines) + "\n")


def write_examples(root: Path = EXAMPLES) -> None:
    for combination in COMBINATIONS:
        dest = root / combination.id
        shutil.rmtree(dest, ignore_errors=True)
        generate(Answers.of("example", combination), dest)
