"""Project names: the rules of Django's startproject, the same in the CLI and in copier.yml."""

from __future__ import annotations

import pytest

from newstack import naming, render

GOOD = {"shop": "shop", "my-app": "my_app", "My_App2": "my_app2", "a": "a", "match": "match"}
BAD = {
    "": "empty",
    "x" * 65: "length",
    "1app": "pattern",
    "my app": "pattern",
    "-x": "pattern",
    "x-": "pattern",
    "../escape": "pattern",
    "a/b": "pattern",
    "$(id)": "pattern",
    "{{ 7*7 }}": "pattern",
    "café": "pattern",
    "class": "keyword",
    "Import": "keyword",
    "flask": "reserved",
    "django": "reserved",
    "test": "reserved",
    "json": "reserved",
    "email": "reserved",
    "uvicorn-worker": "reserved",
}


@pytest.mark.parametrize("name, package", GOOD.items())
def test_good_names_give_an_identifier_package(name, package):
    assert naming.check(name) == package
    assert package.isidentifier()


@pytest.mark.parametrize("name, rule", BAD.items())
def test_bad_names_name_the_rule_they_break(name, rule):
    assert naming.broken_rule(name) == rule
    with pytest.raises(naming.ProjectNameError) as refused:
        naming.check(name)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("name", ["shop", "my-app", "1app", "class", "flask", "x" * 65, "json"])
def test_copier_validator_gives_the_same_verdict_and_message(tmp_path, name):
    import copier

    expected = naming.broken_rule(name) and naming.message(naming.broken_rule(name), name)
    with render.copier_source() as src:
        try:
            copier.run_copy(str(src), tmp_path / "p", data={"project_name": name}, defaults=True,
                            quiet=True, pretend=True)
            got = None
        except ValueError as error:
            got = str(error).split(": ", 1)[1]
    assert got == expected
