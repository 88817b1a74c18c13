"""`newstack update`: copier's own update on a generated project, its git history as the
safety net. copier renders the project's recorded template version with its recorded answers,
takes the difference to the project as the user's edits and replays them onto the new version;
what cannot be replayed is left as conflict markers (or .rej files), never dropped.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from . import REPOSITORY, __version__
from .bundle import VERSION_TAG
from .errors import Interrupted, NewstackError, UsageError, command_failure
from .interrupts import private_tempdir

# The answers an update may change. framework, protocol and project_name shape the very code a
# user has edited (another framework's files, a renamed package): a new project, not an update.
CHANGEABLE = ("target", "server", "worker_class")
Conflict = Literal["inline", "rej"]
CONFLICTS: tuple[Conflict, ...] = ("inline", "rej")
RESTORE = "`git reset --hard && git clean -fd` restores it"


@dataclass(frozen=True)
class Outcome:
    version_before: str
    version_after: str
    source: str  # where both versions were rendered from
    changed: list[str]  # `git status --short` lines
    conflicts: list[str]  # files with conflict markers, or with a .rej file beside them


def git(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=project, capture_output=True, check=False, text=True)


def parse_data(items: list[str]) -> dict[str, str]:
    data = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--data {item!r}: expected KEY=VALUE, e.g. --data target=prod")
        if key not in CHANGEABLE:
            raise UsageError(f"--data {key}: an update can change only {', '.join(CHANGEABLE)} "
                             "(framework, protocol and project_name shape the code itself)")
        data[key] = value
    return data


def check_project(project: Path, data: dict[str, str]) -> dict[str, str]:
    """Refuse, with nothing changed, what copier would refuse or get wrong. Returns the data
    to pass to copier."""
    from .render import read_answers

    if not (project / ".copier-answers.yml").is_file():
        raise UsageError(f"{project} is not a generated project (no .copier-answers.yml)")
    status = git(project, "status", "--porcelain", "--", ".")
    if status.returncode != 0:
        raise UsageError(f"{project} is not in a git repository; commit it first (git init && "
                         "git add -A && git commit -m initial) so the update can be reviewed")
    if status.stdout.strip():
        raise UsageError(f"{project} has uncommitted changes; commit or stash them first "
                         "(copier updates a clean working tree only; nothing was changed)")
    # What no longer applies after the change (a worker class when switching to Granian) is
    # not asked, and copier drops it.
    replace(replace(read_answers(project), **data).without_moot(), **data).validate()
    return data


def update(project: Path, items: list[str], conflict: str = "inline",
           vcs_ref: str | None = None, pretend: bool = False,
           template: str | None = None) -> Outcome:
    """Update `project`; with `pretend`, a fresh clone of its repository (the working tree is
    clean, so the clone is the project) and report what would change. `template` re-points
    the project: both its recorded version and the new one are rendered from there."""
    from .render import template_source

    how = next((c for c in CONFLICTS if c == conflict), None)
    if how is None:
        raise UsageError(f"--conflict {conflict!r}: choose one of: {', '.join(CONFLICTS)}")
    project = project.absolute()
    data = check_project(project, parse_data(items))
    source = source_of(project, template_source(template, vcs_ref) if template else None,
                       vcs_ref)
    if not pretend:
        return apply(project, data, how, vcs_ref, source)
    top = Path(git(project, "rev-parse", "--show-toplevel").stdout.strip())
    with tempfile.TemporaryDirectory(prefix="newstack-pretend-") as tmp:
        subprocess.run(["git", "clone", "-q", str(top), tmp + "/clone"], check=True,
                       capture_output=True)
        return apply(Path(tmp, "clone", project.resolve().relative_to(top.resolve())), data,
                     how, vcs_ref, source)


def source_of(project: Path, template: str | None, vcs_ref: str | None) -> str:
    """Where to render from: `template`; else the recorded source, the installed newstack's
    bundle standing in for newstack's published repository (no network)."""
    from .render import BUNDLED, template_source

    if template is not None:
        return template
    src_path = str(recorded(project, "_src_path"))
    if src_path == REPOSITORY:
        return BUNDLED
    if Path(src_path).is_dir():  # a local checkout: the same refusal as --template's
        template_source(src_path, vcs_ref, what="the recorded template")
    return src_path


def apply(project: Path, data: dict[str, str], conflict: Conflict,
          vcs_ref: str | None, source: str) -> Outcome:
    from copier.errors import UserMessageError

    from .render import BUNDLED, copier_source, record_source

    before = recorded_version(project)
    try:
        # copier's clones go with private_tempdir, even when an interrupt cuts it short
        with private_tempdir(), copier_source(source) as src:
            if source == BUNDLED:
                check_bundled(before, Path(src))
            run_copier(project, str(src), source != recorded(project, "_src_path"), data=data,
                       defaults=True, overwrite=True, conflict=conflict, vcs_ref=vcs_ref,
                       quiet=True)
    except KeyboardInterrupt as error:
        raise Interrupted(signal.SIGINT, f"the update may be partial; {RESTORE}") from error
    except Interrupted as error:
        error.outcome = f"the update may be partial; {RESTORE}"
        raise
    except NewstackError:
        raise
    except UserMessageError as error:  # downgrade, missing version, ...
        raise UsageError(str(error).replace("\n", " ")) from error
    except Exception as error:  # a template that cannot be fetched, git failing, ...
        raise NewstackError(f"the update failed: {command_failure(error)} ({RESTORE} if "
                            "anything changed)") from error
    if source == BUNDLED:
        record_source(project)
    changed = git(project, "status", "--short", "--untracked-files=all", "--",
                  ".").stdout.splitlines()
    unmerged = git(project, "diff", "--name-only", "--relative", "--diff-filter=U", "--",
                   ".").stdout.split()
    rejected = [line[3:-4] for line in changed if line.endswith(".rej")]
    return Outcome(before, recorded_version(project), source, changed,
                   sorted({*unmerged, *rejected}))


def run_copier(project: Path, source: str, repoint: bool, **options: Any) -> None:
    """copier's update from `source`. copier renders the recorded version from the recorded
    `_src_path` (its Worker's subproject.template): to re-point, the Worker is given the
    recorded version at `source` instead, and `source` for the rest (then records it)."""
    import copier

    if not repoint:
        copier.run_update(project, settings=copier.Settings(), **options)
        return
    from copier._main import Worker
    from copier._settings import SettingsModel
    from copier._subproject import Subproject
    from copier._template import Template

    if not (isinstance(vars(Subproject).get("template"), cached_property)
            and isinstance(vars(Worker).get("subproject"), cached_property)):
        raise NewstackError(f"copier {copier.__version__} no longer lets newstack render a "
                            "project's recorded version from another source; edit _src_path "
                            "in .copier-answers.yml, commit, and update without --template")
    with Worker(dst_path=project, src_path=source, settings=SettingsModel(), **options) as worker:
        old = Template(url=source, ref=recorded(project, "_commit"))
        worker.subproject._cleanup_hooks.append(old._cleanup)
        worker.subproject.__dict__["template"] = old
        worker.run_update()


def check_bundled(version: str, bundle: Path) -> None:
    """The recorded version must be one the installed newstack carries."""
    from .bundle import tags_of

    carried = tags_of(bundle)
    if version not in carried and VERSION_TAG.fullmatch(version):
        raise UsageError(f"the project records template {version}, which this newstack "
                         f"({__version__}) does not carry ({', '.join(carried)}): install "
                         f"newstack {version[1:]} or later, or pass --template SRC")


def recorded(project: Path, key: str) -> Any:
    import yaml

    return yaml.safe_load((project / ".copier-answers.yml").read_text()).get(key)


def recorded_version(project: Path) -> str:
    return str(recorded(project, "_commit"))
