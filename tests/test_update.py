"""Generated projects stay current: `newstack update` (and plain `copier update`) bring a
template change into a project the user has edited, keeping every edit, reporting conflicts,
and switching dev to prod the same way."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
import yaml

from newstack import REPOSITORY, __version__

from .conftest import GIT, REPO, git_template, newstack, run

MAIN = "templates/fastapi/{{ package_name }}/main.py.jinja"
TESTS = "templates/fastapi/tests/test_app.py.jinja"
README = "templates/fastapi/README.md.jinja"
HEALTHZ = 'return {"status": "ok"}'
HEALTHZ_2 = 'return {"status": "ok", "template": "0.2.0"}'


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="session")
def versioned_template(tmp_path_factory) -> Path:
    """The template as a git repository at two tagged versions: v0.1.0 is the working tree,
    v0.2.0 changes a route (and the test that checks it) and adds a line to the README."""
    repo = git_template(tmp_path_factory.mktemp("versioned") / "newstack")
    run([*GIT, "tag", "v0.1.0"], cwd=repo, check=True)
    edit(repo / MAIN, HEALTHZ, HEALTHZ_2)
    edit(repo / TESTS, '== {"status": "ok"}', '== {"status": "ok", "template": "0.2.0"}')
    with (repo / README).open("a") as readme:
        readme.write("\nHealth checks report the template version.\n")
    run([*GIT, "commit", "-qam", "healthz reports the template version"], cwd=repo, check=True)
    run([*GIT, "tag", "v0.2.0"], cwd=repo, check=True)
    return repo


def create(tmp_path: Path, template: Path, *args: str, target: str = "dev") -> Path:
    """A FastAPI project from `template`, committed to its own git repository."""
    made = newstack("create", "shop", "--framework", "fastapi", "--protocol", "asgi",
                    "--target", target, "--template", str(template), "--output-dir",
                    str(tmp_path), *args)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "shop"
    commit(project, "generated")
    return project


def commit(project: Path, message: str) -> None:
    run([*GIT, "init", "-q"], cwd=project, check=True)
    run([*GIT, "add", "-A"], cwd=project, check=True)
    run([*GIT, "commit", "-qm", message], cwd=project, check=True)


def user_edits(project: Path) -> None:
    """What a user does to a project: changes a route (and its test), adds a module with its
    test, changes a setting; then commits."""
    edit(project / "shop/main.py", 'f"Hello from {PROJECT}"', 'f"Bonjour from {PROJECT}"')
    edit(project / "tests/test_app.py", '"Hello from shop"', '"Bonjour from shop"')
    (project / "shop/prices.py").write_text("def total(prices):\n    return sum(prices)\n")
    (project / "tests/test_prices.py").write_text(
        "from shop.prices import total\n\n\ndef test_total():\n    assert total([1, 2]) == 3\n")
    edit(project / "pyproject.toml", "line-length = 100", "line-length = 120")
    commit(project, "the user's edits")


def assert_user_edits_survive(project: Path) -> None:
    assert 'f"Bonjour from {PROJECT}"' in (project / "shop/main.py").read_text()
    assert '"Bonjour from shop"' in (project / "tests/test_app.py").read_text()
    assert "return sum(prices)" in (project / "shop/prices.py").read_text()
    assert (project / "tests/test_prices.py").is_file()
    assert "line-length = 120" in (project / "pyproject.toml").read_text()


def answers(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def own_tests(project: Path):
    return run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider"], cwd=project)


def test_update_brings_the_template_change_and_keeps_every_user_edit(versioned_template,
                                                                      tmp_path):
    project = create(tmp_path, versioned_template, "--vcs-ref", "v0.1.0")
    assert answers(project)["_commit"] == "v0.1.0"
    assert answers(project)["_src_path"] == str(versioned_template)
    user_edits(project)

    result = newstack("update", str(project))

    assert result.returncode == 0, result.stderr
    assert "template v0.1.0 -> v0.2.0" in result.stdout
    assert "M shop/main.py" in result.stdout  # what changed is shown
    assert answers(project)["_commit"] == "v0.2.0"
    assert HEALTHZ_2 in (project / "shop/main.py").read_text()
    assert "report the template version" in (project / "README.md").read_text()
    assert_user_edits_survive(project)
    tests = own_tests(project)
    assert tests.returncode == 0, tests.stdout[-3000:]
    # the template's changed test and the user's own ran
    assert "test_app.py::test_healthz PASSED" in tests.stdout
    assert "test_prices.py::test_total PASSED" in tests.stdout


@pytest.mark.parametrize("conflict", ["inline", "rej"])
def test_a_real_conflict_is_reported_and_the_user_edit_kept(versioned_template, tmp_path,
                                                            conflict):
    project = create(tmp_path, versioned_template, "--vcs-ref", "v0.1.0")
    edit(project / "shop/main.py", HEALTHZ, 'return {"status": "fine"}')  # the line v0.2.0 changes
    commit(project, "the user's healthz")

    result = newstack("update", str(project), "--conflict", conflict)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "newstack: conflicts in shop/main.py: resolve the "
        + ("<<<<<<< markers" if conflict == "inline" else ".rej files") + ", then commit"]
    main = (project / "shop/main.py").read_text()
    if conflict == "inline":
        assert ('<<<<<<< before updating\n    return {"status": "fine"}\n=======\n    '
                f'{HEALTHZ_2}\n>>>>>>> after updating') in main
        unmerged = run(["git", "diff", "--name-only", "--diff-filter=U"], cwd=project).stdout
        assert unmerged.split() == ["shop/main.py"]  # git knows too: no commit by mistake
    else:
        assert HEALTHZ_2 in main
        assert '+    return {"status": "fine"}' in (project / "shop/main.py.rej").read_text()


def test_dev_to_prod_keeps_every_user_edit(versioned_template, tmp_path):
    project = create(tmp_path, versioned_template)  # the latest tag, v0.2.0
    assert answers(project)["_commit"] == "v0.2.0"
    assert not (project / "gunicorn.conf.py").exists()
    user_edits(project)

    result = newstack("update", str(project), "--data", "target=prod")

    assert result.returncode == 0, result.stderr
    assert "template v0.2.0, answers changed" in result.stdout
    assert answers(project)["target"] == "prod"
    assert answers(project)["worker_class"] == "uvicorn_worker.UvicornWorker"
    for name in ("gunicorn.conf.py", "Dockerfile", ".dockerignore", "deploy/nginx.conf",
                 "deploy/k8s/deployment.yaml"):
        assert (project / name).is_file(), name
        assert f"?? {name}" in result.stdout
    assert '"gunicorn>=25.1"' in (project / "pyproject.toml").read_text()
    assert 'os.environ.get("ENABLE_DOCS", "0")' in (project / "shop/main.py").read_text()
    assert_user_edits_survive(project)
    tests = own_tests(project)
    assert tests.returncode == 0, tests.stdout[-3000:]
    check = run([sys.executable, "-m", "gunicorn", "--check-config", "shop.main:app", "-c",
                 "gunicorn.conf.py"], cwd=project)
    assert check.returncode == 0, check.stdout + check.stderr


def test_gunicorn_to_granian_and_back_keeps_every_user_edit(versioned_template, tmp_path):
    project = create(tmp_path, versioned_template, target="prod")
    user_edits(project)

    to_granian = newstack("update", str(project), "--data", "server=granian")

    assert to_granian.returncode == 0, to_granian.stderr
    recorded = answers(project)
    assert recorded["server"] == "granian" and "worker_class" not in recorded
    assert (project / "shop/serve.py").is_file() and "?? shop/serve.py" in to_granian.stdout
    for gone in ("gunicorn.conf.py", "shop/workers.py"):
        assert not (project / gone).exists(), gone
    pyproject = (project / "pyproject.toml").read_text()
    assert '"granian>=2.8"' in pyproject and "gunicorn" not in pyproject
    assert '"python", "-m", "shop.serve"' in (project / "Dockerfile").read_text()
    assert_user_edits_survive(project)
    tests = own_tests(project)
    assert tests.returncode == 0, tests.stdout[-3000:]
    commit(project, "on granian")

    back = newstack("update", str(project), "--data", "server=gunicorn")

    assert back.returncode == 0, back.stderr
    assert answers(project)["worker_class"] == "uvicorn_worker.UvicornWorker"
    assert (project / "gunicorn.conf.py").is_file() and not (project / "shop/serve.py").exists()
    assert_user_edits_survive(project)
    commit(project, "on gunicorn")

    # the recorded server and worker class do not stand in the way of going back to dev
    to_dev = newstack("update", str(project), "--data", "target=dev")

    assert to_dev.returncode == 0, to_dev.stderr
    assert {"server", "worker_class"}.isdisjoint(answers(project))
    assert not (project / "gunicorn.conf.py").exists() and not (project / "Dockerfile").exists()
    assert_user_edits_survive(project)


def test_plain_copier_update_works_on_a_project_newstack_created(versioned_template, tmp_path):
    project = create(tmp_path, versioned_template, "--vcs-ref", "v0.1.0")
    user_edits(project)

    result = run([sys.executable, "-m", "copier", "update", "--defaults", "--quiet"],
                 cwd=project)

    assert result.returncode == 0, result.stderr
    assert answers(project)["_commit"] == "v0.2.0"
    assert HEALTHZ_2 in (project / "shop/main.py").read_text()
    assert_user_edits_survive(project)


# Refused with one line and nothing changed, before copier runs.

@pytest.fixture(scope="module")
def committed(versioned_template, tmp_path_factory) -> Path:
    return create(tmp_path_factory.mktemp("committed"), versioned_template, "--vcs-ref", "v0.1.0")


def status(project: Path) -> str:
    return run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=project).stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--data", "framework=flask"], "an update can change only target, server, worker_class"),
    (["--data", "server=granian"], "a server applies to the prod target only"),
    (["--data", "server=uvicorn"], "unknown server 'uvicorn'; choose one of: gunicorn, granian"),
    (["--data", "target=prod", "--data", "server=granian", "--data", "worker_class=sync"],
     "a worker class applies to gunicorn only"),
    (["--data", "target"], "expected KEY=VALUE"),
    (["--data", "target=staging"], "unknown target 'staging'"),
    (["--data", "worker_class=sync"], "applies to the prod target only"),
    (["--data", "target=prod", "--data", "worker_class=gthread"], "cannot serve ASGI"),
    (["--conflict", "theirs"], "--conflict 'theirs': choose one of: inline, rej"),
])
def test_update_refuses_bad_options(committed, args, message):
    before = status(committed)
    result = newstack("update", str(committed), *args)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
    assert status(committed) == before and answers(committed)["_commit"] == "v0.1.0"


def test_pretend_shows_what_would_change_and_changes_nothing(committed):
    result = newstack("update", str(committed), "--pretend", "--data", "target=prod")
    assert result.returncode == 0, result.stderr
    assert "template v0.1.0 -> v0.2.0" in result.stdout
    assert "(--pretend: nothing was changed)" in result.stdout
    for line in (" M shop/main.py", " M .copier-answers.yml", "?? gunicorn.conf.py"):
        assert f"\n  {line}\n" in result.stdout
    assert status(committed) == "" and answers(committed)["_commit"] == "v0.1.0"


def test_an_update_with_nothing_to_change_says_so(versioned_template, tmp_path):
    project = create(tmp_path, versioned_template)  # already at the latest tag
    result = newstack("update", str(project))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (f"{project}: template v0.2.0, no newer version (from "
                             f"{versioned_template}); nothing changed\n")
    assert status(project) == ""


CORRUPT_ANSWERS = [
    ("framework: [x", "not valid YAML at line"),
    ("- framework\n- fastapi\n", "expected KEY: VALUE answers (project_name, framework, ...)"),
    ("- framework\n", "found a YAML list"),
    ("", "found nothing"),
    ("framework: [x]", "framework is ['x'], expected a name such as"),
    ("target: 3", "target is 3, expected a name such as"),
    ("protocol: null", "protocol is missing"),
]


@pytest.mark.parametrize(("line", "message"), CORRUPT_ANSWERS,
                         ids=[m.split(":")[0][:24] for _, m in CORRUPT_ANSWERS])
def test_a_corrupt_answers_file_is_exit_2_naming_the_file_and_the_key(
        versioned_template, tmp_path, line, message):
    """It was `unexpected error: ParserError(... <yaml.error.Mark object at 0x...>)`, exit 1."""
    project = create(tmp_path, versioned_template)
    answers_file = project / ".copier-answers.yml"
    key = line.split(":")[0]
    if line.startswith(("framework", "target", "protocol")):
        text = re.sub(rf"^{key}: .*$", line, answers_file.read_text(), flags=re.MULTILINE)
    else:
        text = line
    answers_file.write_text(text)
    commit(project, "a broken answers file")
    result = newstack("update", str(project))
    assert result.returncode == 2
    assert result.stderr.startswith(f"newstack: error: {answers_file}: ")
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
    if key in ("framework", "target", "protocol"):
        assert key in result.stderr
    assert status(project) == ""


def test_update_refuses_a_dirty_working_tree(committed):
    (committed / "notes.txt").write_text("draft")
    try:
        result = newstack("update", str(committed))
        assert result.returncode == 2
        assert result.stderr == (f"newstack: error: {committed} has uncommitted changes; commit "
                                 "or stash them first (copier updates a clean working tree "
                                 "only; nothing was changed)\n")
        assert status(committed) == "?? notes.txt\n"
    finally:
        (committed / "notes.txt").unlink()


def test_update_refuses_what_is_not_a_committed_generated_project(versioned_template, tmp_path):
    made = newstack("create", "shop", "--defaults", "--template", str(versioned_template),
                    "--output-dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    result = newstack("update", str(tmp_path / "shop"))
    assert result.returncode == 2
    assert "is not in a git repository; commit it first" in result.stderr
    result = newstack("update", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == (f"newstack: error: {tmp_path} is not a generated project "
                             "(no .copier-answers.yml)\n")


def test_create_records_a_local_template_as_an_absolute_path(versioned_template, tmp_path):
    relative = Path("..") / versioned_template.parent.name / versioned_template.name
    cwd = versioned_template.parent.parent / "elsewhere"
    cwd.mkdir(exist_ok=True)
    made = newstack("create", "shop", "--defaults", "--template", str(relative),
                    "--output-dir", str(tmp_path), cwd=cwd)
    assert made.returncode == 0, made.stderr
    recorded = answers(tmp_path / "shop")
    assert recorded["_src_path"] == str(versioned_template)  # absolute, as update needs
    assert recorded["_commit"] == "v0.2.0"


@pytest.mark.parametrize(("args", "message"), [
    (["--template", "{tmp}"], "is not the root of a git repository"),
    (["--template", "{tmp}/missing"], "no such directory, and not a git URL"),
    (["--vcs-ref", "v0.1.0"], "--vcs-ref applies to a --template only"),
])
def test_create_refuses_a_template_update_could_not_use(tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = newstack("create", "shop", "--defaults", "--output-dir", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_a_template_that_cannot_be_fetched_is_one_line(versioned_template, tmp_path):
    project = create(tmp_path, versioned_template, "--vcs-ref", "v0.1.0")
    edit(project / ".copier-answers.yml", str(versioned_template), f"file://{tmp_path}/gone.git")
    commit(project, "moved template")
    result = newstack("update", str(project))
    assert result.returncode == 1
    assert result.stderr.startswith("newstack: error: the update failed: ")
    assert len(result.stderr.splitlines()) == 1 and "gone.git" in result.stderr, result.stderr
    assert status(project) == ""


def test_a_git_repository_that_is_not_a_template_is_one_line_and_leaves_nothing(tmp_path):
    """It was exit 1, `unexpected error: FileNotFoundError(...)`, and svc/ left behind."""
    repo = tmp_path / "notes"
    repo.mkdir()
    (repo / "README").write_text("not a template\n")
    commit(repo, "notes")
    run([*GIT, "tag", "v1.0.0"], cwd=repo, check=True)
    result = newstack("create", "svc", "--defaults", "--template", str(repo), "--output-dir",
                      str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr == (f"newstack: error: --template {repo} is not a newstack template: "
                             "it rendered no .copier-answers.yml (its root needs copier.yml)\n")
    assert not (tmp_path / "out").exists()


def test_create_from_a_template_that_cannot_be_fetched_is_one_line(tmp_path):
    gone = f"file://{tmp_path}/gone.git"
    result = newstack("create", "svc", "--defaults", "--template", gone, "--output-dir",
                      str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.startswith(f"newstack: error: could not fetch the template {gone}: "
                                    "fatal: ")
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_update_leaves_no_clone_in_tmpdir(versioned_template, tmp_path,
                                                         monkeypatch, signum):
    """copier clones the template (old and new versions) into TMPDIR; a signal while it removes
    a clone left `copier._vcs.clone.*` behind."""
    import copier._template

    from .bad_input import run_main

    project = create(tmp_path, versioned_template, "--vcs-ref", "v0.1.0")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    real, sent = copier._template.rmtree, []

    def interrupted(*args, **kwargs):  # once: a third signal would end the process at once
        if not sent:
            sent.append(os.kill(os.getpid(), signum))
        return real(*args, **kwargs)

    monkeypatch.setattr(copier._template, "rmtree", interrupted)
    code, _, err = run_main("update", str(project))
    assert code == 128 + signum, err
    assert err.startswith(f"newstack: interrupted by {signal.Signals(signum).name}; ")
    assert list(tmp.iterdir()) == []


# newstack before the FastAPI data layer (issue 14): its copier.yml and templates at that commit.
BEFORE_DATA_LAYER = "f8fb3e3"


@pytest.fixture(scope="session")
def data_layer_template(tmp_path_factory) -> Path:
    """The template as a git repository: v0.1.0 is newstack before the data layer, v0.2.0 the
    working tree."""
    repo = tmp_path_factory.mktemp("data-layer") / "newstack"
    repo.mkdir()
    old = subprocess.run(["git", "archive", "--format=tar", BEFORE_DATA_LAYER, "copier.yml",
                          "templates"], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(old)) as archive:
        archive.extractall(repo, filter="data")
    commit(repo, "before the data layer")
    run([*GIT, "tag", "v0.1.0"], cwd=repo, check=True)
    shutil.rmtree(repo / "templates")
    now = git_template(tmp_path_factory.mktemp("now") / "newstack")
    shutil.copy2(now / "copier.yml", repo / "copier.yml")
    shutil.copytree(now / "templates", repo / "templates")
    run([*GIT, "add", "-A"], cwd=repo, check=True)
    run([*GIT, "commit", "-qm", "the data layer"], cwd=repo, check=True)
    run([*GIT, "tag", "v0.2.0"], cwd=repo, check=True)
    return repo


def test_a_project_made_before_the_data_layer_gains_it_and_keeps_every_edit(
        data_layer_template, tmp_path):
    project = create(tmp_path, data_layer_template, "--vcs-ref", "v0.1.0", target="prod")
    assert not (project / "shop/db.py").exists()
    user_edits(project)

    result = newstack("update", str(project))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "template v0.1.0 -> v0.2.0" in result.stdout
    for added in ("shop/db.py", "shop/items.py", "alembic.ini", "migrations/env.py",
                  "migrations/versions/0001_items.py", "tests/test_items.py"):
        assert (project / added).is_file(), added
    assert "app.include_router(items.router)" in (project / "shop/main.py").read_text()
    assert "check_settings()" in (project / "gunicorn.conf.py").read_text()
    assert_user_edits_survive(project)
    tests = own_tests(project)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "test_items.py::test_create_get_list_delete PASSED" in tests.stdout
    assert "test_prices.py::test_total PASSED" in tests.stdout


# Where versions come from: the installed newstack's bundle for newstack's own template, or
# another source the project is re-pointed to. No network in any of these.
OFFLINE = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "ALL_PROXY": "http://127.0.0.1:9", "GIT_ALLOW_PROTOCOL": "file"}


def test_a_default_project_updates_from_the_installed_versions_offline(tmp_path):
    made = newstack("create", "shop", "--defaults", "--output-dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    project = tmp_path / "shop"
    assert answers(project)["_src_path"] == REPOSITORY  # unreachable: the bundle stands in
    commit(project, "generated")
    user_edits(project)

    result = newstack("update", str(project), "--data", "target=prod", env=OFFLINE)

    assert result.returncode == 0, result.stderr
    assert (f"template v{__version__}, answers changed (from the versions newstack "
            f"{__version__} carries)") in result.stdout
    assert answers(project)["_src_path"] == REPOSITORY
    assert answers(project)["_commit"] == f"v{__version__}"
    assert (project / "gunicorn.conf.py").is_file()
    assert_user_edits_survive(project)


def test_a_version_the_installed_newstack_does_not_carry_is_one_line(tmp_path):
    made = newstack("create", "shop", "--defaults", "--output-dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    project = tmp_path / "shop"
    edit(project / ".copier-answers.yml", f"_commit: v{__version__}", "_commit: v99.0.0")
    commit(project, "generated by a later newstack")
    result = newstack("update", str(project), env=OFFLINE)
    assert result.returncode == 2
    assert result.stderr == (
        f"newstack: error: the project records template v99.0.0, which this newstack "
        f"({__version__}) does not carry (v{__version__}): install newstack 99.0.0 or later, "
        "or pass --template SRC\n")
    assert status(project) == ""


def test_update_template_repoints_a_project_whose_source_is_gone(versioned_template, tmp_path):
    moved = tmp_path / "template"
    shutil.copytree(versioned_template, moved)
    project = create(tmp_path, moved, "--vcs-ref", "v0.1.0")
    user_edits(project)
    shutil.rmtree(moved)  # the old source is gone: both versions come from the new one
    mirror = tmp_path / "mirror.bundle"  # a mirror as one file (a fork's clone would do too)
    run(["git", "bundle", "create", str(mirror), "--all"], cwd=versioned_template, check=True)

    result = newstack("update", str(project), "--template", str(mirror), env=OFFLINE)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"template v0.1.0 -> v0.2.0 (from {mirror})" in result.stdout
    assert answers(project)["_src_path"] == str(mirror)
    assert HEALTHZ_2 in (project / "shop/main.py").read_text()
    assert_user_edits_survive(project)


def test_update_template_bundled_repoints_a_project_to_the_installed_versions(tmp_path):
    """A project made from a clone of newstack at this version's tag, pointed back at the
    versions the installed newstack carries (the same files: nothing else changes)."""
    clone = git_template(tmp_path / "newstack")
    run([*GIT, "tag", f"v{__version__}"], cwd=clone, check=True)
    project = create(tmp_path, clone)
    assert answers(project)["_src_path"] == str(clone)

    result = newstack("update", str(project), "--template", "bundled", env=OFFLINE)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"template v{__version__}, no newer version (from the versions" in result.stdout
    assert answers(project)["_src_path"] == REPOSITORY
    assert status(project) == " M .copier-answers.yml\n"


def dirty_template(tmp_path: Path) -> Path:
    """newstack's template, committed but untagged, with an uncommitted change."""
    repo = git_template(tmp_path / "newstack")
    edit(repo / MAIN, HEALTHZ, 'return {"status": "draft"}')
    return repo


def test_create_refuses_a_dirty_template_whose_head_it_would_render(tmp_path):
    repo = dirty_template(tmp_path)
    result = newstack("create", "shop", "--defaults", "--template", str(repo),
                      "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr == (
        f"newstack: error: --template {repo} has uncommitted changes and no vX.Y.Z tag to "
        "render instead: commit them first (copier would record a commit that exists "
        "nowhere), or pass --vcs-ref TAG\n")
    assert not (tmp_path / "out").exists()
    # a tag to render instead: the changes do not matter, and the tag is recorded
    run([*GIT, "tag", "v0.1.0", "HEAD"], cwd=repo, check=True)
    made = newstack("create", "shop", "--defaults", "--template", str(repo),
                    "--output-dir", str(tmp_path / "out"))
    assert made.returncode == 0, made.stderr
    assert answers(tmp_path / "out" / "shop")["_commit"] == "v0.1.0"
    assert HEALTHZ in (tmp_path / "out" / "shop" / "shop" / "main.py").read_text()


def test_update_refuses_a_dirty_template_whose_head_it_would_render(versioned_template,
                                                                    tmp_path):
    project = create(tmp_path, versioned_template, "--vcs-ref", "v0.1.0")
    repo = dirty_template(tmp_path)
    for args in (["--template", str(repo)], ["--template", str(versioned_template),
                                               "--vcs-ref", "HEAD"]):
        (versioned_template / "draft.txt").write_text("uncommitted")
        try:
            result = newstack("update", str(project), *args)
        finally:
            (versioned_template / "draft.txt").unlink()
        assert result.returncode == 2, result.stdout
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert "has uncommitted changes and no vX.Y.Z tag to render instead" in result.stderr
        assert status(project) == "" and answers(project)["_commit"] == "v0.1.0"


def test_update_refuses_a_recorded_template_gone_dirty(tmp_path):
    repo = git_template(tmp_path / "newstack")  # untagged: copier renders and records HEAD
    project = create(tmp_path, repo)
    recorded_commit = answers(project)["_commit"]
    edit(repo / MAIN, HEALTHZ, 'return {"status": "draft"}')
    result = newstack("update", str(project))
    assert result.returncode == 2
    assert result.stderr.startswith(f"newstack: error: the recorded template {repo} has "
                                    "uncommitted changes and no vX.Y.Z tag"), result.stderr
    assert status(project) == "" and answers(project)["_commit"] == recorded_commit
