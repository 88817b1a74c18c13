"""The wheel carries the template, so an installed newstack renders offline, the same files; and
its released versions (a git bundle), so `newstack update` works offline too.

One wheel for the module: a copy of this checkout released twice with the release script
(`python -m newstack.release`), v0.0.9 (whose FastAPI healthz differs) and then this version
(the working tree as it is), then installed into a brand-new venv.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from newstack import REPOSITORY, __version__, bundle
from newstack.stacks import find_combination

from .conftest import GIT, REPO, answers_for, git_template, run, tree
from .test_update import (
    HEALTHZ,
    MAIN,
    TESTS,
    assert_user_edits_survive,
    commit,
    edit,
    user_edits,
)

pytestmark = pytest.mark.xdist_group("wheel")  # one worker builds the wheel for both tests
OLD = "0.0.9"
OLD_HEALTHZ = 'return {"status": "ok", "template": "0.0.9"}'
# No network: any proxy is refused, git may use local paths only, and copier's cache of
# remote templates (COPIER_CACHE_DIR) must stay empty.
OFFLINE = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "ALL_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9", "GIT_ALLOW_PROTOCOL": "file",
           "PIP_NO_INDEX": "1", "UV_OFFLINE": "1"}


def release(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run([sys.executable, "-m", "newstack.release", *args], cwd=clone, timeout=300,
                 env={"PYTHONPATH": str(clone / "generator"), "GIT_AUTHOR_NAME": "t",
                      "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
                      "GIT_COMMITTER_EMAIL": "t@example.com"})
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> tuple[Path, Path]:
    """(the clone, its wheel of this version)."""
    clone = git_template(tmp_path_factory.mktemp("release") / "newstack")
    edit(clone / MAIN, HEALTHZ, OLD_HEALTHZ)
    edit(clone / TESTS, '== {"status": "ok"}', f'== {{"status": "ok", "template": "{OLD}"}}')
    run([*GIT, "commit", "-qam", "the old healthz"], cwd=clone, check=True)
    assert f"v{OLD}" in release(clone, OLD).stdout
    run([*GIT, "checkout", "HEAD~2", "--", MAIN, TESTS], cwd=clone, check=True)
    opened = release(clone, "--open", __version__)
    assert f"newstack {__version__} opened" in opened.stdout
    edit(clone / "CHANGELOG.md", f"## {__version__} (unreleased)\n",
         f"## {__version__} (unreleased)\n\n- healthz as it is now.\n")
    run([*GIT, "add", "-A"], cwd=clone, check=True)
    run([*GIT, "commit", "-qm", "healthz as it is now"], cwd=clone, check=True)
    done = release(clone, __version__)
    assert f"template versions: v{OLD}, v{__version__}" in done.stdout
    assert f"git push origin HEAD v{__version__}" in done.stdout
    assert run(["git", "status", "--porcelain"], cwd=clone).stdout == ""
    tags = run(["git", "tag", "--points-at", "HEAD"], cwd=clone).stdout.split()
    assert tags == [f"v{__version__}"]
    return clone, clone / "dist" / f"newstack-{__version__}-py3-none-any.whl"


@pytest.fixture(scope="module")
def venv(released, tmp_path_factory) -> Path:
    """A brand-new venv with the wheel, installed offline. Its dependencies are this test
    environment's, through a .pth file (the network that would install them is not there)."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    uv = Path(sysconfig.get_path("scripts"), "uv")
    installed = run([str(uv), "pip", "install", "--python", str(python), "--no-deps",
                     "--offline", str(released[1])], env=OFFLINE)
    assert installed.returncode == 0, installed.stderr
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                  check=True).stdout.strip()
    Path(purelib, "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return root


def offline(venv: Path, *args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    """The venv's `newstack ARGS`, with no network and no PYTHONPATH (this checkout's newstack
    must not stand in for the wheel's)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(venv / "bin" / "newstack"), *args], cwd=cwd, text=True,
                          capture_output=True, timeout=300, check=False,
                          env={**env, **OFFLINE, "COPIER_CACHE_DIR": str(cache)})


def answers(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def test_wheel_carries_the_template_and_renders_the_same_project(released, tmp_path,
                                                                 projects):
    unpacked = tmp_path / "site"
    zipfile.ZipFile(released[1]).extractall(unpacked)
    packaged = unpacked / "newstack" / "template"
    assert (packaged / "copier.yml").read_bytes() == (REPO / "copier.yml").read_bytes()
    assert tree(packaged / "templates") == tree(REPO / "templates")

    answers = answers_for(find_combination("django-asgi-prod"))
    code = (
        "import sys; from pathlib import Path; from newstack import render;"
        f"assert render.TEMPLATE_ROOT == Path({str(packaged)!r}), render.TEMPLATE_ROOT;"
        f"render.generate(render.{answers!r}, Path(sys.argv[1]))"
    )
    made = run([sys.executable, "-c", code, str(tmp_path / "shop")],
               env={"PYTHONPATH": str(unpacked)})
    assert made.returncode == 0, made.stderr
    assert tree(tmp_path / "shop") == tree(projects["django-asgi-prod"])


def test_installed_wheel_updates_a_project_from_the_previous_version_offline(venv, tmp_path):
    cache = tmp_path / "copier-cache"
    where = offline(venv, "--version", cwd=tmp_path, cache=cache)
    assert where.stdout.strip() == f"newstack {__version__}"
    module = run([str(venv / "bin" / "python"), "-c", "import newstack; print(newstack.__file__)"],
                 env={"PYTHONPATH": ""}).stdout
    assert module.startswith(str(venv)), module  # the wheel's newstack, not this checkout's

    made = offline(venv, "create", "shop", "--framework", "fastapi", "--protocol", "asgi",
                   "--target", "dev", "--template", "bundled", "--vcs-ref", f"v{OLD}",
                   "--output-dir", str(tmp_path), cwd=tmp_path, cache=cache)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "shop"
    assert answers(project)["_commit"] == f"v{OLD}"
    assert answers(project)["_src_path"] == REPOSITORY  # portable; the bundle is found again
    assert OLD_HEALTHZ in (project / "shop/main.py").read_text()
    commit(project, "generated")
    user_edits(project)

    updated = offline(venv, "update", cwd=project, cache=cache)

    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert (f"template v{OLD} -> v{__version__} (from the versions newstack {__version__} "
            "carries)") in updated.stdout
    assert answers(project)["_commit"] == f"v{__version__}"
    assert answers(project)["_src_path"] == REPOSITORY
    assert HEALTHZ in (project / "shop/main.py").read_text()
    assert_user_edits_survive(project)
    assert not cache.exists()  # copier never cloned a remote template

    again = offline(venv, "update", cwd=project, cache=cache)
    assert again.returncode == 2  # uncommitted: the update is for the user to review
    commit(project, "updated")
    again = offline(venv, "update", cwd=project, cache=cache)
    assert again.returncode == 0, again.stderr
    assert f"template v{__version__}, no newer version" in again.stdout

    # what `newstack create` renders without --template is this version, recorded as such
    fresh = offline(venv, "create", "svc", "--defaults", "--output-dir", str(tmp_path),
                    cwd=tmp_path, cache=cache)
    assert fresh.returncode == 0, fresh.stderr
    assert answers(tmp_path / "svc")["_commit"] == f"v{__version__}"


def test_a_wheel_built_from_the_sdist_carries_the_same_versions(released, tmp_path):
    """pip builds a wheel from the sdist where no wheel fits: there is no git history then,
    so the sdist carries the bundle it was built with."""
    uv = Path(sysconfig.get_path("scripts"), "uv")
    sdist = run([str(uv), "build", "--sdist", "-o", str(tmp_path), str(released[0])],
                timeout=300)
    assert sdist.returncode == 0, sdist.stderr
    [archive] = tmp_path.glob("newstack-*.tar.gz")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                 str(tmp_path / "wheel"), str(archive)], timeout=300)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "wheel").glob("newstack-*.whl")
    carried = zipfile.ZipFile(wheel).extract(f"newstack/template/{bundle.NAME}", tmp_path)
    assert bundle.tags_of(Path(carried)) == [f"v{OLD}", f"v{__version__}"]
    assert zipfile.ZipFile(wheel).read(f"newstack/template/{bundle.NAME}") == \
        zipfile.ZipFile(released[1]).read(f"newstack/template/{bundle.NAME}")
