"""What is derived from the table and committed must match what the table gives today."""

from __future__ import annotations

import tomllib

import pytest

from newstack import REPOSITORY, copier_yml, render
from newstack.stacks import COMBINATIONS

from .conftest import REPO, tree


def test_copier_yml_is_generated_from_the_table():
    assert (REPO / "copier.yml").read_text() == copier_yml.render(), (
        "copier.yml is stale: run `python -m newstack.sync`"
    )


@pytest.mark.parametrize("cid", [c.id for c in COMBINATIONS])
def test_example_matches_what_generation_gives_today(tmp_path, cid):
    combination = next(c for c in COMBINATIONS if c.id == cid)
    render.generate(render.example_answers(combination), tmp_path / cid)
    assert tree(REPO / "examples" / cid) == tree(tmp_path / cid), (
        f"examples/{cid} is stale: run `python -m newstack.sync`"
    )


def test_repository_url_matches_pyproject():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["urls"]["Repository"] == REPOSITORY
