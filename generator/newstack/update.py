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
from pathlib import Path
from typing import Literal

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
           vcs_ref: str | None = None, pretend: bool = False) -> Outcome:
    """Update `project`; with `pretend`, a fresh clone of its repository (the working tree is
    clean, so the clone is the project) and report what would change."""
    how = next((c for c in CONFLICTS if c == conflict), None)
    if how is None:
        raise UsageError(f"--conflict {conflict!r}: choose one of: {', '.join(CONFLICTS)}")
    project = project.absolute()
    data = check_project(project, parse_data(items))
    if not pretend:
        return apply(project, data, how, vcs_ref)
    top = Path(git(project, "rev-parse", "--show-toplevel").stdout.strip())
    with tempfile.TemporaryDirectory(prefix="newstack-pretend-") as tmp:
        subprocess.run(["git", "clone", "-q", str(top), tmp + "/clone"], check=True,
                       capture_output=True)
        return apply(Path(tmp, "clone", project.resolve().relative_to(top.resolve())), data,
                     how, vcs_ref)


def apply(project: Path, data: dict[str, str], conflict: Conflict,
          vcs_ref: str | None) -> Outcome:
    import copier
    from copier.errors import UserMessageError

    before = recorded_version(project)
    try:
        with private_tempdir():  # copier's clones go, even when an interrupt cuts it short
            copier.run_update(project, data=data, defaults=True, overwrite=True,
                              conflict=conflict, vcs_ref=vcs_ref, quiet=True,
                              settings=copier.Settings())
    except KeyboardInterrupt as error:
        raise Interrupted(signal.SIGINT, f"the update may be partial; {RESTORE}") from error
    except Interrupted as error:
        error.outcome = f"the update may be partial; {RESTORE}"
        raise
    except UserMessageError as error:  # downgrade, missing version, ...
        raise UsageError(str(error).replace("\n", " ")) from error
    except Exception as error:  # a template that cannot be fetched, git failing, ...
        raise NewstackError(f"the update failed: {command_failure(error)} ({RESTORE} if "
                            "anything changed)") from error
    changed = git(project, "status", "--short", "--untracked-files=all", "--",
                  ".").stdout.splitlines()
    unmerged = git(project, "diff", "--name-only", "--relative", "--diff-filter=U", "--",
                   ".").stdout.split()
    rejected = [line[3:-4] for line in changed if line.endswith(".rej")]
    return Outcome(before, recorded_version(project), changed, sorted({*unmerged, *rejected}))


def recorded_version(project: Path) -> str:
    import yaml

    return str(yaml.safe_load((project / ".copier-answers.yml").read_text()).get("_commit"))
