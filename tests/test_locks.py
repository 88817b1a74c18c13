"""The generated projects' locked dependencies (newstack/locks.py): current against the table,
hashed, what the Dockerfile and the CI install. Offline: tests/generated/test_locks.py
installs from them."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from newstack import locks, render
from newstack.stacks import COMBINATIONS, LOCK, TEST_LOCK, UV_VERSION, applies

from .conftest import NEWSTACK, REPO, run

EXAMPLES = REPO / "examples"


def test_every_lock_is_current_against_the_table():
    assert locks.stale() == [], "run `python -m newstack.locks`, then `python -m newstack.sync`"


def test_a_changed_requirement_makes_its_lock_stale(tmp_path):
    name, (_, context) = next(iter(locks.projects().items()))
    shutil.copytree(locks.LOCKS / name, tmp_path / name)
    assert locks.problems(name, context, tmp_path) == []
    newer = replace(context, dependencies=[*context.dependencies[1:], "fastapi>=99"])
    found = locks.problems(name, newer, tmp_path)
    assert f"{name}: made from other requirements than the table now gives" in found
    assert any(p.startswith(f"{name}/{LOCK}: no pin of fastapi>=99") for p in found), found
    added = replace(context, test_dependencies=[*context.test_dependencies, "hypothesis>=6"])
    assert any("no pin of hypothesis>=6" in p for p in locks.problems(name, added, tmp_path))


def test_a_pin_without_its_hash_or_another_version_in_the_test_lock_is_found(tmp_path):
    name, (_, context) = next(iter(locks.projects().items()))
    shutil.copytree(locks.LOCKS / name, tmp_path / name)
    lock = tmp_path / name / LOCK
    text = lock.read_text()
    first = next(line for line in text.splitlines() if "==" in line)
    unhashed = text.replace(first, first.removesuffix(" \\") + "\nx==1 \\", 1)
    lock.write_text(unhashed)
    assert any("pins without a hash" in p for p in locks.problems(name, context, tmp_path))
    package, version = first.split(" ")[0].split("==")
    lock.write_text(text.replace(f"{package}=={version}", f"{package}==0.0.1", 1))
    found = locks.problems(name, context, tmp_path)
    assert any(f"pins other versions of {package}" in p for p in found), found
    (tmp_path / name / locks.INPUTS).unlink()
    assert locks.problems(name, context, tmp_path) == [f"{name}: no lock"]


def test_a_lock_no_combination_uses_is_stale(tmp_path, monkeypatch):
    shutil.copytree(locks.LOCKS, tmp_path / "locks")
    (tmp_path / "locks" / "cobol-cgi-prod").mkdir()
    monkeypatch.setattr(locks, "LOCKS", tmp_path / "locks")
    assert locks.stale() == ["cobol-cgi-prod: no combination uses it"]


def test_every_combination_and_worker_class_has_a_lock():
    named = {context.lock for _, context in locks.projects().values()}
    assert named == {p.name for p in locks.LOCKS.iterdir()}
    variants = sum(len(c.stack.worker_classes) if applies("worker_class", c.target, c.server)
                   else 1 for c in COMBINATIONS)
    assert len(named) < variants  # gthread and sync add no package: they share gunicorn's


@pytest.mark.parametrize("cid", [c.id for c in COMBINATIONS])
def test_the_project_carries_its_lock_and_the_image_installs_only_it(cid):
    project = EXAMPLES / cid
    context = render.read_answers(project).resolve().context()
    name = context.lock
    for file in (LOCK, TEST_LOCK):
        assert (project / file).read_text() == (locks.LOCKS / name / file).read_text(), file
    dockerfile = project / "Dockerfile"
    if dockerfile.exists():
        installs = [line for line in dockerfile.read_text().splitlines() if "pip install" in line]
        assert installs == [f"RUN pip install --require-hashes -r {LOCK}"]
    workflow = (project / ".github" / "workflows" / "ci.yml").read_text()
    assert f"pip install --require-hashes -r {TEST_LOCK}" in workflow
    for command in context.lock_commands:
        assert f"- run: {command}\n" in workflow


def test_locks_refuse_another_uv(tmp_path):
    fake = tmp_path / "uv"
    fake.write_text("#!/bin/sh\necho 'uv 0.0.1 (fake)'\n")
    fake.chmod(0o755)
    result = run([*NEWSTACK[:1], "-m", "newstack.locks"],
                 env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert result.returncode == 2
    expected = (f"the locks are made with uv {UV_VERSION} (stacks.UV_VERSION, which the "
                f"projects' CI runs), found uv 0.0.1 (fake): pip install uv=={UV_VERSION}, or "
                "change UV_VERSION")
    assert result.stderr.strip().splitlines() == [expected]
