"""Make `newstack create` cheaper while copier still does all the rendering.

`copier copy` of a full project costs most of its time in work that newstack's own runs do
not need (profiled with `python -X importtime` and pyinstrument):

- importing questionary and prompt_toolkit (some 40% of copier's import), which copier
  imports at module level but uses only to ask questions;
- compiling the same Jinja sources on every run (the templates, their paths, and each
  question's validator and default, several times over);
- about 23 `git` processes: 3 to find that the template is not a git repository, and one per
  rendered file to read the destination's core.fileMode (a no-op for files no git index
  tracks, as in newstack's fresh staging directory);
- PyYAML's pure-Python parser on copier.yml.

Each measure below leans on something copier does not promise (private names, module-level
imports, cached properties). Each checks what it relies on first and, where that no longer
holds, leaves copier alone: the run is slower, never different. tests/test_fast_copier.py
pins the assumptions against the installed copier.
"""

from __future__ import annotations

import hashlib
import importlib
import marshal
import os
import sys
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import cached_property
from pathlib import Path
from typing import Any

from .interrupts import HANDLER

# --------------------------------------------------------------------------------------------
# questionary and prompt_toolkit, only when asking

# What copier (9.x) imports from them at module level, in copier/_main.py and _user_data.py.
# While copier is imported for a run that asks nothing, these modules are stand-ins that hold
# exactly these names. Should copier import anything else from them, its import fails and is
# done again the ordinary way (see import_copier).
DEFERRED: dict[str, tuple[str, ...]] = {
    "questionary": ("confirm", "unsafe_prompt"),
    "questionary.prompts": (),
    "questionary.prompts.common": ("Choice",),
    "prompt_toolkit": (),
    "prompt_toolkit.lexers": ("PygmentsLexer",),
    "pygments.lexers.data": ("JsonLexer", "YamlLexer"),
}


class StandIn(types.ModuleType):
    """A module put in sys.modules only while copier is imported, in place of one it needs
    only for asking questions."""


def forwarder(module: str, name: str) -> Callable[..., Any]:
    """A callable that imports `module` for real when first called and calls its `name`."""

    def forward(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    return forward


def real_choice_class() -> Any:
    common = sys.modules.get("questionary.prompts.common")
    if common is None or isinstance(common, StandIn):
        return None
    return common.Choice


class Choice:
    """questionary's Choice, for runs that ask nothing: copier builds one per choice of a
    question to check answers against them, asking or not. Once questionary is imported for
    real (a run that asks: see import_copier), it builds questionary's own."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        real = real_choice_class()
        if real is not None:
            return real(*args, **kwargs)  # not a Choice: Python does not call __init__ again
        return super().__new__(cls)

    def __init__(self, title: Any, value: Any = None, disabled: str | None = None,
                 checked: bool | None = False, shortcut_key: str | bool | None = True,
                 description: str | None = None) -> None:
        # As questionary.prompts.common.Choice.__init__ (questionary 2.x).
        self.title = title
        self.disabled = disabled
        self.checked = checked if checked is not None else False
        self.shortcut_key = shortcut_key
        self.description = description
        if value is not None:
            self.value = value
        elif isinstance(title, list):
            self.value = "".join(token[1] for token in title)
        else:
            self.value = title


def stand_ins() -> dict[str, StandIn]:
    modules = {}
    for name, attributes in DEFERRED.items():
        module = StandIn(name, "stands in for the real module while copier is imported")
        for attribute in attributes:
            value = Choice if attribute == "Choice" else forwarder(name, attribute)
            setattr(module, attribute, value)
        modules[name] = module
    return modules


def import_copier(interactive: bool) -> types.ModuleType:
    """`import copier`; without questionary and prompt_toolkit if the run asks nothing and no
    one has imported them or copier yet. A run that asks imports them (for real)."""
    if not interactive and "copier" not in sys.modules and not DEFERRED.keys() & sys.modules:
        modules = stand_ins()
        sys.modules.update(modules)
        try:
            import copier
        except Exception as error:  # copier needs more of them now: import it the usual way
            if HANDLER.behind(error) is not None:  # an interrupt in disguise: not a retry
                raise
            for name in [n for n in sys.modules if n == "copier" or n.startswith("copier.")]:
                del sys.modules[name]
        finally:
            for name, module in modules.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]
    import copier

    if interactive:
        import questionary  # noqa: F401  copier's stand-ins forward to it from now on
    return copier


# --------------------------------------------------------------------------------------------
# copier's Worker, for a copy into newstack's fresh staging directory

def hooks_fit() -> bool:
    """Whether copier is still built the way the Worker below relies on: the template and the
    Jinja environment made once per Worker (cached properties), the template's VCS too."""
    main = sys.modules.get("copier._main")
    template_module = sys.modules.get("copier._template")
    worker = getattr(main, "Worker", None)
    template = getattr(template_module, "Template", None)
    return (isinstance(worker, type) and isinstance(template, type)
            and isinstance(worker.__dict__.get("template"), cached_property)
            and isinstance(worker.__dict__.get("jinja_env"), cached_property)
            and isinstance(template.__dict__.get("vcs"), cached_property))


def renders_in_place() -> bool:
    """Whether copier can be given newstack's git checkout as it is: copier would clone a git
    repository, at its latest tag, unless the Worker below tells it the template is a plain
    directory. Otherwise newstack copies the template files out of the checkout."""
    return hooks_fit()


def worker_class(base: type, plain: bool) -> type:
    class Worker(base):  # type: ignore[misc]
        """copier's Worker, less the work a copy into a fresh directory does not need."""

        @cached_property
        def template(self) -> Any:
            template = super().template
            if plain:  # newstack's own template: a directory, never a repository to clone
                template.__dict__["vcs"] = None  # no `git rev-parse`, `init`, `bundle verify`
            return template

        @cached_property
        def jinja_env(self) -> Any:
            environment = super().jinja_env
            cache_compiled(environment)
            return environment

        def _sync_git_index_executable_bit(self, dst_relpath: Any, src_mode: Any) -> None:
            """copier runs `git config core.fileMode` for each file written, to fix the mode
            of files a git index tracks; none does in a fresh staging directory."""

    return Worker


@contextmanager
def faster_copy(plain: bool) -> Iterator[None]:
    """While copier.run_copy runs, its Worker is the one above (for the whole process: newstack
    renders one project at a time). `plain`: the template is a plain directory (newstack's
    own), not a git repository."""
    main = sys.modules.get("copier._main")
    if main is None or not hooks_fit():
        yield
        return
    faster_yaml()
    base = main.Worker
    main.Worker = worker_class(base, plain)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        main.Worker = base  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# libyaml for copier.yml

def faster_yaml() -> None:
    """copier loads copier.yml with a subclass of yaml.SafeLoader made in
    copier._template.load_template_config: give that module (for the rest of the process) a
    yaml whose SafeLoader is the C one (same results, about 8x faster), when PyYAML was built
    with libyaml."""
    import yaml

    template_module = sys.modules.get("copier._template")
    if getattr(template_module, "yaml", None) is not yaml or not hasattr(yaml, "CSafeLoader"):
        return
    with_libyaml = types.ModuleType("yaml", "yaml, with CSafeLoader as SafeLoader")
    with_libyaml.__dict__.update(vars(yaml))
    with_libyaml.SafeLoader = yaml.CSafeLoader  # type: ignore[attr-defined]
    template_module.yaml = with_libyaml  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------
# Compiled Jinja sources, kept between runs

CACHE_FORMAT = "1"


def cache_root() -> Path:
    """newstack's directory in the user's cache directory (XDG_CACHE_HOME, ...)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "newstack"


def fingerprint(environment: Any) -> str | None:
    """Everything, besides the source and the template's name, that the code Jinja compiles
    depends on (the lexer's and code generator's settings, the extensions, which filters and
    tests exist and what they are passed), and what it is compiled for (Python's version).
    None if something in it has no stable description (a callable autoescape)."""
    import jinja2

    if callable(environment.autoescape):
        return None
    parts: list[object] = [CACHE_FORMAT, sys.version, sys.implementation.cache_tag,
                           jinja2.__version__, type(environment).__module__,
                           type(environment).__qualname__]
    for setting in ("block_start_string", "block_end_string", "variable_start_string",
                    "variable_end_string", "comment_start_string", "comment_end_string",
                    "line_statement_prefix", "line_comment_prefix", "trim_blocks",
                    "lstrip_blocks", "newline_sequence", "keep_trailing_newline", "optimized",
                    "autoescape", "is_async", "sandboxed"):
        parts.append((setting, getattr(environment, setting, None)))
    finalize = environment.finalize
    parts.append(("finalize", finalize is None, getattr(finalize, "jinja_pass_arg", None)))
    parts.append(("generator", environment.code_generator_class.__module__,
                  environment.code_generator_class.__qualname__))
    for attribute in ("intercepted_binops", "intercepted_unops"):
        parts.append((attribute, sorted(getattr(environment, attribute, ()))))
    for kind in ("filters", "tests"):
        parts.append((kind, sorted((name, str(getattr(function, "jinja_pass_arg", None)))
                                   for name, function in getattr(environment, kind).items())))
    for key, extension in sorted(environment.extensions.items()):
        source = getattr(sys.modules.get(type(extension).__module__), "__file__", None)
        try:
            stat = os.stat(source) if source else None
        except OSError:
            stat = None
        parts.append((key, extension.priority, source,
                      stat and (stat.st_size, stat.st_mtime_ns)))
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def private_directory(path: Path) -> bool:
    """Make `path` (mode 0700) if missing; True if it is a directory of this user's that no
    one else can write to: compiled code read from there is run."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        stat = path.lstat()
    except OSError:
        return False
    owner = getattr(os, "getuid", lambda: stat.st_uid)()
    return (path.is_dir() and not path.is_symlink() and stat.st_uid == owner
            and not stat.st_mode & 0o022)


def with_filename(code: types.CodeType, filename: str) -> types.CodeType:
    """`code` as if compiled from `filename` (its functions' code too)."""
    if code.co_filename == filename:
        return code
    consts = tuple(with_filename(c, filename) if isinstance(c, types.CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def read_code(path: Path) -> types.CodeType | None:
    try:
        with open(path, "rb") as file:
            code = marshal.loads(file.read())
    except (OSError, ValueError, EOFError, TypeError):
        return None  # missing, or not ours (damaged): compiled again and replaced
    return code if isinstance(code, types.CodeType) else None


def write_code(path: Path, code: types.CodeType) -> None:
    """Write atomically (a partial file is never read), ignoring any failure: a cache."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, marshal.dumps(code))
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError:
        pass
    finally:
        try:
            os.unlink(temporary)
        except OSError:
            pass


STALE = 60 * 24 * 3600  # seconds: entries older than this are removed when new ones are written


def prune(root: Path, now: float) -> None:
    """Remove entries and fingerprint directories not written for STALE seconds (an entry
    still in use is compiled and written again): the cache holds what recent versions of the
    template and of Jinja, copier and Python need, not every version ever used."""
    with suppress(OSError):
        for directory in os.scandir(root):
            if not directory.name.startswith("jinja-") or not directory.is_dir(
                    follow_symlinks=False):
                continue
            stale = now - directory.stat().st_mtime > STALE  # before removing entries in it
            for entry in os.scandir(directory.path):
                if now - entry.stat(follow_symlinks=False).st_mtime > STALE:
                    with suppress(OSError):
                        os.unlink(entry.path)
            if stale:
                with suppress(OSError):
                    os.rmdir(directory.path)  # if now empty


def cache_directory(root: Path | None, key: str) -> Path | None:
    """Where compiled code is kept between runs (None: in memory only)."""
    try:
        directory = (root or cache_root()) / f"jinja-{key[:32]}"
    except RuntimeError:  # no home directory
        return None
    return directory if private_directory(directory) else None


def cache_compiled(environment: Any, root: Path | None = None) -> None:
    """Make `environment` keep the code it compiles from a source string: in memory (copier
    compiles each question's validator and default again every time it renders them) and in
    the user's cache directory, keyed by the SHA-256 of the fingerprint of the environment,
    the template's name and its source. A template read from another place (a temporary copy)
    hits the same entry: the code's file name is set on the way out."""
    key = fingerprint(environment)
    if key is None:
        return
    compile_ = environment.compile
    memo: dict[tuple[str | None, str], types.CodeType] = {}
    where: list[Path | None] = []  # the directory, once checked (None: in memory only)
    pruned = False

    def directory() -> Path | None:
        if not where:
            where.append(cache_directory(root, key))
        return where[0]

    def compile(source: Any, name: str | None = None, filename: str | None = None,
                raw: bool = False, defer_init: bool = False) -> Any:
        nonlocal pruned
        if raw or defer_init or not isinstance(source, str):
            return compile_(source, name, filename, raw, defer_init)
        code = memo.get((name, source))
        if code is None:
            folder = directory()
            entry = hashlib.sha256(repr((key, name, source)).encode()).hexdigest()
            path = folder / entry if folder is not None else None
            code = read_code(path) if path is not None else None
            if code is None:
                code = compile_(source, name, filename)
                if path is not None:
                    write_code(path, code)
                    if not pruned:
                        pruned = True
                        prune(path.parent.parent, time.time())
            memo[(name, source)] = code
        return with_filename(code, filename or "<template>")

    environment.compile = compile
