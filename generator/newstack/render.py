"""Render a project with copier, into a temporary directory beside the destination that is
moved into place only when complete: either the whole project exists afterwards or nothing.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import REPOSITORY, __version__, bundle, naming
from .copier_yml import Context, stack_context
from .errors import Interrupted, NewstackError, UsageError, command_failure
from .interrupts import HANDLER, Staging, check_destination, deferred, in_tempdir, private_tempdir
from .stacks import (
    APPLIES,
    COMBINATIONS,
    FRAMEWORKS,
    PROTOCOLS,
    SERVERS,
    TARGETS,
    WORKER_CLASSES,
    Combination,
    Server,
    Stack,
    StackError,
    Target,
    WorkerClass,
    applies,
    check_choice,
    default_framework,
    default_protocol,
    find_stack,
    find_worker_class,
    protocols_of,
    server_row,
    target_row,
)

PACKAGED_TEMPLATE = Path(__file__).parent / "template"  # where the wheel carries it
PACKAGED_BUNDLE = PACKAGED_TEMPLATE / bundle.NAME
# `--template bundled`: the released versions the installed newstack carries, recorded as
# REPOSITORY (their published home), which `newstack update` reads from the bundle again.
BUNDLED = "bundled"
CHECKOUT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_ROOT = PACKAGED_TEMPLATE if PACKAGED_TEMPLATE.is_dir() else CHECKOUT_ROOT
EXAMPLES = CHECKOUT_ROOT / "examples"


@dataclass(frozen=True)
class Answers:
    """What `newstack create` was told (or a project recorded); None where copier is to ask."""

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
        if protocol is None and len(protocols_of(framework or "")) == 1:
            protocol = protocols_of(framework or "")[0]  # Flask: WSGI is its only choice
        if fill_defaults:  # only what was not given: an empty --target '' is refused, not filled
            framework = default_framework(protocol) if framework is None else framework
            if protocol is None and framework in FRAMEWORKS:
                protocol = default_protocol(framework)
            target = TARGETS[0] if target is None else target
            if server is None and applies("server", target, None):
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
        for name, value, allowed in (("framework", self.framework, FRAMEWORKS),
                                     ("protocol", self.protocol, PROTOCOLS),
                                     ("target", self.target, TARGETS),
                                     ("server", self.server, SERVERS)):
            if value is not None:
                check_choice(name, value, allowed)
        for rule in APPLIES:
            why = rule.refusal(self.target, self.server)
            if getattr(self, rule.question) is not None and why:
                raise StackError(why)
        if self.worker_class is not None:
            check_choice("worker class", self.worker_class, tuple(w.name for w in WORKER_CLASSES))
        if self.framework is not None and self.protocol is not None:
            stack = find_stack(self.framework, self.protocol)
            if self.worker_class is not None:
                find_worker_class(stack, self.worker_class)

    def data(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v is not None}

    def without_moot(self) -> Answers:
        """These answers less those that cannot apply to their target and server (a worker
        class recorded before a switch to Granian): copier drops those by itself."""
        moot: dict[str, Any] = {a.question: None for a in APPLIES
                                if not a(self.target, self.server)}
        return replace(self, **moot)

    def resolve(self) -> Resolved:
        """The table's rows for these answers, which must be complete and valid."""
        assert self.framework and self.protocol and self.target, "resolve() needs complete answers"
        stack = find_stack(self.framework, self.protocol)
        server = (server_row(self.server or SERVERS[0])
                  if applies("server", self.target, None) else None)
        worker = (find_worker_class(stack, self.worker_class)
                  if server and applies("worker_class", self.target, server.name) else None)
        return Resolved(naming.package_name(self.project_name), stack, target_row(self.target),
                        server, worker)


@dataclass(frozen=True)
class Resolved:
    """A project's answers resolved to rows of the table."""

    package: str
    stack: Stack
    target: Target
    server: Server | None
    worker: WorkerClass | None

    def context(self) -> Context:
        """What the templates see as `stack.*`."""
        return stack_context(self.stack, self.target, self.server, self.worker).filled(self.package)


REQUIRED = ("project_name", "framework", "protocol", "target")


def read_answers(project: Path) -> Answers:
    """A project's recorded answers; a UsageError naming the file and the key when they are
    not the answers newstack writes (a hand edit gone wrong, a merge)."""
    import yaml

    path = project / ".copier-answers.yml"
    text = path.read_text(errors="replace")
    try:
        recorded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        # where the broken construct began (the `[` of `framework: [x`), else where it broke
        mark = getattr(error, "context_mark", None) or getattr(error, "problem_mark", None)
        line = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
        where = f" at line {mark.line + 1} ({line.strip()[:60]})" if mark else ""
        raise UsageError(f"{path}: not valid YAML{where}: "
                         f"{getattr(error, 'problem', None) or 'unreadable'}; restore it "
                         "(git checkout -- .copier-answers.yml)") from error
    if not isinstance(recorded, dict):
        found = "nothing" if recorded is None else f"a YAML {type(recorded).__name__}"
        raise UsageError(f"{path}: expected KEY: VALUE answers (project_name, framework, ...), "
                         f"found {found}")
    for key in Answers.__dataclass_fields__:
        value = recorded.get(key)
        if value is None and key in REQUIRED:
            raise UsageError(f"{path}: {key} is missing; it records the {key} the project was "
                             "made with")
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{path}: {key} is {value!r}, expected a name such as "
                             f"{getattr(Answers.of('shop', COMBINATIONS[-1]), key) or 'shop'}")
    values: dict[str, Any] = {k: recorded.get(k) for k in Answers.__dataclass_fields__}
    return Answers(**values)


@contextmanager
def copier_source(source: str | None = None) -> Iterator[str | Path]:
    """`source` if given (BUNDLED: the installed newstack's released versions), else the
    packaged template as a plain directory. In a git checkout copier would clone the repo and
    warn about uncommitted changes: the checkout is used as it is if fast_copier can tell copier
    it is a plain directory, else a copy of just the template files."""
    from .fast_copier import renders_in_place

    if source == BUNDLED:
        with bundled_template() as versions:
            yield versions
        return
    if source is not None:
        yield source
        return
    if not (TEMPLATE_ROOT / ".git").exists() or renders_in_place():
        yield TEMPLATE_ROOT
        return
    tmp: Path | None = None
    try:  # not a TemporaryDirectory: an interrupt could cut its removal short
        with deferred():
            tmp = Path(tempfile.mkdtemp(prefix="newstack-template-"))
        shutil.copy2(TEMPLATE_ROOT / "copier.yml", tmp)
        shutil.copytree(TEMPLATE_ROOT / "templates", tmp / "templates")
        yield tmp
    finally:
        with deferred():
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def bundled_template() -> Iterator[Path]:
    """The git bundle of the template's released versions: the wheel's (built with it by
    hatch_build.py), or, running from a checkout, one built from it now."""
    if PACKAGED_BUNDLE.is_file():
        yield PACKAGED_BUNDLE
        return
    with tempfile.TemporaryDirectory(prefix="newstack-bundle-") as tmp:
        try:
            bundle.build(CHECKOUT_ROOT, Path(tmp, bundle.NAME))
        except bundle.BundleError as error:
            raise NewstackError(f"cannot bundle the template of {CHECKOUT_ROOT}: "
                                f"{error}") from error
        yield Path(tmp, bundle.NAME)


def template_source(template: str, vcs_ref: str | None = None,
                    what: str = "--template") -> str:
    """`--template` as copier should record it: BUNDLED as is, a git URL as given, a local git
    repository or bundle file as an absolute path (a relative one, or a plain directory, breaks
    `copier update` later). A local repository with uncommitted changes is refused when its
    HEAD would be rendered: copier would render the changes and record a commit that exists
    nowhere."""
    if template == BUNDLED:
        return template
    path = Path(template).expanduser()
    if not path.exists():
        if "://" in template or template.startswith(("git@", "gh:", "gl:")):
            return template
        raise UsageError(f"{what} {template}: no such directory, and not a git URL "
                         f"(or {BUNDLED}: the installed newstack's released versions)")
    if path.is_file() and git_output(path.parent, "bundle", "list-heads", str(path.resolve())):
        return str(path.resolve())  # a git bundle: copier clones it like a repository
    inside = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"],
                            capture_output=True, check=False, text=True)
    if inside.returncode != 0 or Path(inside.stdout.strip()).resolve() != path.resolve():
        raise UsageError(f"{what} {template} is not the root of a git repository (nor a "
                         "git bundle); `copier update` needs the template's tagged history")
    if renders_head(path, vcs_ref) and git_output(path, "status", "--porcelain"):
        raise UsageError(f"{what} {template} has uncommitted changes and no vX.Y.Z tag to "
                         "render instead: commit them first (copier would record a commit that "
                         "exists nowhere), or pass --vcs-ref TAG")
    return str(path.resolve())


def git_output(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False,
                          text=True).stdout.strip()


def renders_head(repo: Path, vcs_ref: str | None) -> bool:
    """Whether copier renders the working tree of `repo` (where it takes in uncommitted
    changes): at --vcs-ref HEAD, or by default when no tag is a release version."""
    if vcs_ref is not None:
        return vcs_ref == "HEAD"
    from packaging.version import InvalidVersion, Version

    for tag in git_output(repo, "tag", "--list").split():
        try:
            if not Version(tag).is_prerelease:
                return False
        except InvalidVersion:
            continue
    return True


def generate(answers: Answers, dest: Path, interactive: bool = False,
             template: str | None = None, vcs_ref: str | None = None) -> Path:
    """Render `answers` into `dest`, all or nothing (see Staging). Returns the destination.

    `template` (a git URL or local git repository, at `vcs_ref`, by default its latest tag;
    or BUNDLED) replaces the packaged template; copier records it as the project's source."""
    staging = Staging(dest.absolute())
    try:
        answers.validate()
        if vcs_ref is not None and template is None:
            raise UsageError(f"--vcs-ref applies to a --template only (--template {BUNDLED} "
                             "for the installed newstack's released versions)")
        source = template_source(template, vcs_ref) if template is not None else None
        check_destination(staging.dest)
        from .fast_copier import import_copier

        import_copier(interactive)  # first: copier_source asks how this copier is built
        with staging as project:
            with copier_source(source) as src:  # its copy is gone before the move
                run_copier(src, project, answers, interactive, vcs_ref, plain=source is None)
            if source in (None, BUNDLED):
                record_source(project)
            staging.commit()
    except BaseException as error:
        replacement = failure(error, staging)
        if replacement is error:
            raise
        raise replacement from error
    return staging.dest


def run_copier(src: str | Path, project: Path, answers: Answers, interactive: bool,
               vcs_ref: str | None, plain: bool) -> None:
    from .fast_copier import faster_copy, import_copier

    copier = import_copier(interactive)  # slow to import (0.25 s or more): only to render
    try:
        with faster_copy(plain=plain), private_tempdir():
            copier.run_copy(str(src), project, vcs_ref=vcs_ref, data=answers.data(),
                            defaults=not interactive, quiet=True, settings=copier.Settings())
    except KeyboardInterrupt as error:  # Ctrl-C at one of copier's questions
        raise Interrupted(signal.SIGINT) from error
    except ValueError as error:  # an answer given at copier's questions, refused
        if not str(error).startswith(("Validation error for question", "Invalid choice for")):
            raise
        raise UsageError(str(error)) from error
    except OSError as error:
        if getattr(error, "argv", None) is None:  # not git, run by copier (plumbum's error)
            raise
        raise NewstackError(f"could not fetch the template {src}: "
                            f"{command_failure(error)}") from error
    if not (project / ".copier-answers.yml").is_file():  # copier rendered a plain repository
        raise UsageError(f"--template {src} is not a newstack template: it rendered no "
                         ".copier-answers.yml (its root needs copier.yml)")


def failure(error: BaseException, staging: Staging) -> BaseException:
    """What to raise for `error`: the interrupt behind it, if any, saying what was left."""
    interrupted = HANDLER.behind(error)
    if interrupted is error:
        interrupted.outcome = staging.outcome
        return interrupted
    if interrupted:  # hidden by an error on the way out (a directory not removable, ...)
        return Interrupted(interrupted.signum, staging.outcome)
    if isinstance(error, OSError) and in_tempdir(error, staging.dest):  # TMPDIR full: not the destination
        return NewstackError(f"could not write a temporary file in {tempfile.gettempdir()}: "
                             f"{error.strerror or error} (set TMPDIR to a directory with room; "
                             f"{staging.outcome})")
    if isinstance(error, OSError):
        return NewstackError(f"could not write {staging.dest}: {error.strerror or error} "
                             f"({staging.outcome})")
    return error


def record_source(project: Path) -> None:
    """copier recorded the temporary copy (or bundle) it rendered from: record the published
    template instead, at this version's tag if copier recorded none (a plain directory). The
    installed newstack carries that tag in its bundle, where `newstack update` finds it."""
    answers = project / ".copier-answers.yml"
    lines = answers.read_text().splitlines()
    recorded = any(line.startswith("_commit:") for line in lines)
    commit = [] if recorded else [f"_commit: v{__version__}"]
    lines = [new for line in lines
             for new in ([*commit, f"_src_path: {REPOSITORY}"] if line.startswith("_src_path:")
                         else [line])]
    answers.write_text("\n".join(lines) + "\n")


def write_examples(root: Path = EXAMPLES) -> None:
    for combination in COMBINATIONS:
        dest = root / combination.id
        shutil.rmtree(dest, ignore_errors=True)
        generate(Answers.of("example", combination), dest)
