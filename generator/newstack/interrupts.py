"""One home for interrupts and for staging what newstack writes.

The CLI turns SIGINT, SIGTERM, SIGHUP and SIGQUIT into `Interrupted`, which unwinds like Ctrl-C so that every
`finally` on the way out runs. `deferred()` holds both signals while the file system is
mid-change. `Staging` renders a project beside its destination and moves it into place only when
complete: afterwards either the whole project exists or nothing was written.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType

from .errors import Interrupted, UsageError

# SIGHUP (the terminal closed) and SIGQUIT (Ctrl-\\) end a process as SIGTERM does: all four
# unwind, so that what is being written is cleaned up.
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
                if hasattr(signal, name))


class Handler:
    """The CLI's signal handler: the first signal raises Interrupted, a second one is noted
    (it must not cut the cleanup short), a third ends the process at once."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def install(self) -> None:
        self.received.clear()
        for signum in SIGNALS:
            signal.signal(signum, self)

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)
        if len(self.received) == 1:
            raise Interrupted(signum)
        if len(self.received) > 2:  # insisting: the default action, at once
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    def behind(self, error: BaseException | None) -> Interrupted | None:
        """The interrupt that `error` is, or that was being handled when `error` was raised
        (cleanup on the way out can fail in turn, and must not hide the interrupt), or the one
        this handler raised and that CPython replaced on the way (by an error raised in the
        middle of an import, for instance)."""
        found = interrupt_in(error)
        if found is None and self.received and isinstance(error, Exception):
            return Interrupted(self.received[0])
        return found


HANDLER = Handler()  # installed by the CLI (cli.main)


def interrupt_in(error: BaseException | None) -> Interrupted | None:
    """The Interrupted among `error` and the exceptions it was raised from or while handling."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, Interrupted):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


@contextmanager
def deferred() -> Iterator[None]:
    """Hold the SIGNALS while the file system is mid-change, then hand the first that
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


@contextmanager
def private_tempdir() -> Iterator[Path]:
    """Point `tempfile` (copier's clones of the template, its copies of old and new versions)
    at a directory of newstack's own while inside, and remove it on the way out, whatever
    happens: an interrupt can cut copier's own cleanup short, or land before it has any."""
    with deferred():
        root = Path(tempfile.mkdtemp(prefix="newstack-tmp-"))
    saved, tempfile.tempdir = tempfile.tempdir, str(root)
    try:
        yield root
    finally:
        tempfile.tempdir = saved
        with deferred():
            shutil.rmtree(root, ignore_errors=True)


def in_tempdir(error: OSError, dest: Path) -> bool:
    """Whether `error` is about a file in the temporary directory (TMPDIR full, ...), not in
    the directory `dest` is staged in (which may well be under TMPDIR itself)."""
    top, beside = Path(tempfile.gettempdir()).resolve(), dest.parent.resolve()
    files = [Path(os.fsdecode(f)).resolve() for f in (error.filename, error.filename2) if f]
    return any(f.is_relative_to(top) and not f.is_relative_to(beside) for f in files)


class DestinationError(UsageError):
    """The destination cannot take a new project."""


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


def discard(staging: Path | None, made: list[Path]) -> None:
    """Remove the staging directory and the parents this run created, if they are empty."""
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
    for path in reversed(made):
        try:
            path.rmdir()
        except OSError:
            pass  # something else put a file in it meanwhile: not ours to remove


def keep_owner_and_mode(path: Path, was: os.stat_result) -> None:
    os.chmod(path, stat.S_IMODE(was.st_mode))
    if (was.st_uid, was.st_gid) != (path.stat().st_uid, path.stat().st_gid):
        try:
            os.chown(path, was.st_uid, was.st_gid)
        except PermissionError:  # another user's directory we may write in: ours now, as a
            pass                 # file we create in it would be


class Staging:
    """`with Staging(dest) as project:` render into `project`, then `commit()`: it is moved onto
    `dest` with one rename (same file system). Leaving the block without a commit, by an error
    or an interrupt, removes the staging directory and the parents this run created."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.made: list[Path] = []
        self.root: Path | None = None
        self.committed = False

    @property
    def outcome(self) -> str:
        return f"{self.dest} is complete" if self.committed else "nothing was written"

    def __enter__(self) -> Path:
        try:
            with deferred():
                make_parents(self.dest.parent, self.made)
                self.root = Path(tempfile.mkdtemp(prefix=f".{self.dest.name[:32]}.newstack-",
                                                  dir=self.dest.parent))
        except BaseException:  # __exit__ is not called when __enter__ fails
            self.__exit__(None, None, None)
            raise
        return self.root / "project"

    def commit(self) -> None:
        assert self.root is not None, "commit() inside the `with` block"
        with deferred():
            check_destination(self.dest)  # still free: do not replace what appeared meanwhile
            empty = self.dest.stat() if self.dest.is_dir() else None
            os.replace(self.root / "project", self.dest)  # atomic; an empty directory is replaced
            self.committed = True
            if empty is not None:  # the user's directory: its owner and mode, not mkdtemp's
                keep_owner_and_mode(self.dest, empty)
            discard(self.root, [])

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if not self.committed:
            with deferred():
                discard(self.root, self.made)
