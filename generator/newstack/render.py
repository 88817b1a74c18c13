"""Render a project with copier, into a temporary directory beside the destination that is
moved into place only when complete: either the whole project exists afterwards or nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import REPOSITORY, __version__, naming
from .errors import NewstackError, UsageError
from .copier_yml import stack_context
from .stacks import (
    COMBINATIONS,
    FRAMEWORKS,
    PROTOCOLS,
    TARGETS,
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

    @classmethod
    def complete(cls, name: str, framework: str | None, protocol: str | None,
                 target: str | None, worker_class: str | None, fill_defaults: bool) -> Answers:
        if fill_defaults:
            framework = framework or FRAMEWORKS[0]
            protocol = protocol or (default_protocol(framework) if framework in FRAMEWORKS else None)
            target = target or TARGETS[0]
        return cls(name, framework, protocol, target, worker_class)

    def validate(self) -> None:
        """Raise a UsageError naming what is wrong with the answers given."""
        naming.check(self.project_name)
        if self.framework is not None:
            check_choice("framework", self.framework, FRAMEWORKS)
        if self.protocol is not None:
            check_choice("protocol", self.protocol, PROTOCOLS)
        if self.target is not None:
            check_choice("target", self.target, TARGETS)
        if self.target == "dev" and self.worker_class:
            raise StackError("--worker-class applies to the prod target only (dev runs the "
                             "framework's dev server)")
        if self.framework and self.protocol:
            stack = find_stack(self.framework, self.protocol)
            if self.worker_class:
                find_worker_class(stack, self.worker_class)

    def data(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v is not None}

    def context(self) -> dict:
        """The table's values for these (complete) answers, as the templates see them."""
        stack = find_stack(self.framework, self.protocol)
        worker = find_worker_class(stack, self.worker_class) if self.target == "prod" else None
        context = stack_context(stack, self.target, worker)
        package = naming.package_name(self.project_name)
        return json.loads(json.dumps(context).replace("{package}", package))


def read_answers(project: Path) -> Answers:
    import yaml

    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return Answers(**{k: recorded.get(k) for k in Answers.__dataclass_fields__})


def check_destination(dest: Path) -> None:
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise DestinationError(f"{dest} exists and is not a directory; choose a new path")
    if dest.is_dir() and any(dest.iterdir()):
        raise DestinationError(f"{dest} exists and is not empty; choose a new path (nothing was changed)")


@contextmanager
def copier_source() -> Iterator[Path]:
    """The template as a plain directory. In a git checkout copier would clone the repo and
    warn about uncommitted changes, so a copy of just the template files is used instead."""
    if not (TEMPLATE_ROOT / ".git").exists():
        yield TEMPLATE_ROOT
        return
    with tempfile.TemporaryDirectory(prefix="newstack-template-") as tmp:
        shutil.copy2(TEMPLATE_ROOT / "copier.yml", tmp)
        shutil.copytree(TEMPLATE_ROOT / "templates", Path(tmp) / "templates")
        yield Path(tmp)


def generate(answers: Answers, dest: Path, interactive: bool = False) -> Path:
    """Render `answers` into `dest`, all or nothing. Returns the destination."""
    answers.validate()
    dest = dest.absolute()
    check_destination(dest)
    import copier  # slow to import (about 0.4 s): only when rendering

    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name[:32]}.newstack-", dir=dest.parent))
    try:
        with copier_source() as src:
            copier.run_copy(
                str(src),
                staging / "project",
                data=answers.data(),
                defaults=not interactive,
                quiet=True,
                settings=copier.Settings(),
            )
        record_source(staging / "project")
        check_destination(dest)  # still free: do not replace what appeared meanwhile
        os.replace(staging / "project", dest)  # atomic; an empty directory is replaced
    except OSError as error:
        raise NewstackError(f"could not write {dest}: {error.strerror or error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
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


def example_answers(combination: Combination) -> Answers:
    return Answers.complete("example", combination.framework, combination.protocol,
                            combination.target, None, fill_defaults=True)


def write_examples(root: Path = EXAMPLES) -> None:
    for combination in COMBINATIONS:
        dest = root / combination.id
        shutil.rmtree(dest, ignore_errors=True)
        generate(example_answers(combination), dest)
