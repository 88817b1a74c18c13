"""A generated project's locked dependencies install and work in a fresh environment, with real
pip from PyPI, as its Dockerfile and its CI install them: `pip install --require-hashes -r
requirements.txt` (the image), then the app and its server's settings load from the project's
directory (not installed, as in the image); then `requirements-test.txt` on top (CI) changes no
pin and the project's own tests pass.

Slow (a minute or more per project: some sixty packages downloaded and installed), so three
projects: Django ASGI prod (the largest lock: an extra, Channels, the uvicorn worker, Django
forking by Python version), Django WSGI prod on Granian (Django's other stack and server, on
that fork too) and FastAPI ASGI prod on Granian (another framework and ORM).
The other locks are made by the same commands and checked offline by tests/test_locks.py.
The interpreter is the image's Python (stacks.PYTHON_VERSION): the locks are universal, but
which side of a fork is tested depends on it (Django 6.1 on 3.12, 5.2 on newstack's own 3.11,
which every other test runs). On it, the project's tests also pass on a real PostgreSQL, and its
prod server starts and answers `newstack smoke`'s probes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from newstack import render, smoke
from newstack.stacks import LOCK, PYTHON_VERSION, TEST_LOCK, fill_package, find_combination

from ..conftest import REPO, image_python, run

LOCKED = ("django-asgi-prod", "django-wsgi-prod-granian", "fastapi-asgi-prod-granian")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment less what points into newstack's own venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def freeze(python: Path) -> set[str]:
    result = run([str(python), "-m", "pip", "freeze"], env=clean_env(), check=True)
    return set(result.stdout.splitlines())


@pytest.mark.parametrize("cid", LOCKED)
def test_the_locks_install_in_a_fresh_environment_and_the_tests_pass(tmp_path, postgres,
                                                                       cid):
    project = tmp_path / cid
    shutil.copytree(REPO / "examples" / cid, project)
    resolved = render.read_answers(project).resolve()
    assert resolved.server is not None
    package = resolved.package
    run([image_python(), "-m", "venv", str(tmp_path / "venv")], check=True)
    python = tmp_path / "venv" / "bin" / "python"

    def pip(*args: str) -> None:
        result = run([str(python), "-m", "pip", *args], cwd=project, env=clean_env(), timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    pip("install", "--require-hashes", "-r", LOCK)  # the Dockerfile's step
    pip("check")
    image = freeze(python)
    # As in the image: the project from its directory, its settings from the environment.
    env = clean_env(PYTHONPATH=str(project), **({resolved.stack.secret_env: "x" * 50}
                                                if resolved.stack.secret_env else {}))
    module = fill_package(resolved.stack.app, package).split(":")[0]
    loaded = run([str(python), "-c", f"import {module}"], cwd=project, env=env)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    settings = run([str(python), "-c", fill_package(resolved.server.settings_code, package)],
                   cwd=project, env=env)
    assert settings.returncode == 0 and '"workers"' in settings.stdout, settings.stderr[-3000:]

    pip("install", "--require-hashes", "-r", TEST_LOCK)  # CI's step
    pip("check")
    assert image <= freeze(python), "the test lock changed pins the image installs"
    version = run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
    assert version.stdout.strip() == PYTHON_VERSION, version
    tests = run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project,
                env=clean_env(), timeout=900)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    url = postgres.create_database(f"locks_{cid.replace('-', '_')}")
    tests = run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project,
                env=clean_env(TEST_DATABASE_URL=url), timeout=900)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]

    served = smoke.smoke_server(project, find_combination(cid), "prod", python.parent, tmp_path)
    assert served.passed, served.probes
