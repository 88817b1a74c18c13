"""Project names: the rules of Django's startproject, the same in the CLI and in copier.yml."""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from newstack import naming, render
from newstack.stacks import SERVER_ROWS, STACKS, WORKER_CLASSES

from .bad_input import create, one_line, run_main, settle, snapshot
from .conftest import REPO, image_python, run

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
    "pip": "distribution",
    "setuptools": "distribution",
    "wheel": "distribution",
    "python-dotenv": "distribution",
    "Python_Dotenv": "distribution",
    "PyYAML": "distribution",
    "psycopg-pool": "reserved",  # a module too
    "zope-interface": "distribution",
    "conftest": "special",
    "sitecustomize": "special",
    "usercustomize": "special",
    "deploy": "special",
    "migrations": "special",
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


# --------------------------------------------------------------------------------------------
# Bad input (issue 4, see bad_input.py): names

REFUSED_NAMES = [
    "", ".", "..", "../escape", "a/b", "a\\b", "./shop", "~", "~root",
    "my app", " shop", "shop ", "\tshop", "it's", 'say"hi"', "`id`", "$(touch pwned)",
    "${HOME}", "a;touch pwned", "a|b", "a&b", "a>b", "*", "?", "-x", "--help", "--debug", "x-",
    "_x",
    "a\nb", "shop\n", "\nshop", "shop\r", "{{ 7*7 }}", "{{7*7}}", "{% raw %}", "{%raw%}x",
    "{# c #}", "café", "naïve", "Ωmega", "名前", "ＡＢＣ", "x\u200bx", "x" * 65, "x" * 300,
    "class", "def", "import", "Import", "async", "lambda", "False-",
    "flask", "django", "fastapi", "gunicorn", "uvicorn", "test", "json", "email", "Flask",
    "JSON", "uvicorn-worker", "tests", "os", "click", "itsdangerous", "anyio", "pydantic-core",
    "1app", "123", "9-lives",
]
ACCEPTED_NAMES = {"Shop": "shop", "my-app": "my_app", "A1": "a1", "match": "match",
                  "x" * 64: "x" * 64, "a__b--c": "a__b__c", "None": "none", "True": "true",
                  "yes": "yes", "null": "null"}


# One of each kind, as a user types them (a subprocess each); all of them in-process below.
TYPED_NAMES = ["", ".", "..", "../escape", "a/b", "my app", "it's", "$(touch pwned)",
               "a;touch pwned", "a\nb", "shop\n", "{{ 7*7 }}", "{% raw %}", "café", "x" * 300,
               "class", "flask", "test", "json", "click", "1app", "-x", "--help"]


@pytest.mark.parametrize("name", TYPED_NAMES, ids=ascii)
def test_bad_names_are_refused_with_the_rule_and_nothing_is_written(arena, name):
    rule = naming.broken_rule(name)
    assert rule, name
    result, outcome = create(arena.parent, arena, name, "--defaults", kind="name")
    assert outcome == "refused" and result.returncode == 2
    assert result.stderr == f"newstack: error: {naming.message(rule, name)}\n"


@pytest.mark.parametrize("name", REFUSED_NAMES, ids=ascii)
def test_bad_names_are_refused_in_process_too(arena, name):
    rule = naming.broken_rule(name)
    assert rule, name
    before = snapshot(arena.parent)
    code, _, err = run_main("create", "--defaults", "--output-dir", str(arena), "--", name)
    assert settle(arena.parent, before, code, err, "name") == "refused"
    assert code == 2 and err == f"newstack: error: {naming.message(rule, name)}\n"


def test_an_absolute_path_as_the_name_is_refused(arena):
    name = str(arena.parent / "outside" / "abs")
    result, outcome = create(arena.parent, arena, name, "--defaults", kind="name")
    assert outcome == "refused" and result.returncode == 2
    assert naming.message(naming.broken_rule(name), name) in result.stderr


@pytest.mark.parametrize("name", ["a\0b", "\0", "shop\0", "a\0" + "x" * 300])
def test_a_nul_in_the_name_is_refused(arena, name):
    """argv cannot carry NUL (exec refuses it), so the CLI is driven in-process."""
    before = snapshot(arena.parent)
    code, _, err = run_main("create", "--defaults", "--output-dir", str(arena), "--", name)
    assert settle(arena.parent, before, code, err, "name") == "refused"
    assert code == 2 and one_line(err) and naming.message(naming.broken_rule(name), name) in err


@pytest.mark.parametrize("name, package", ACCEPTED_NAMES.items(), ids=lambda v: v[:12])
def test_good_names_give_a_complete_project_with_a_well_defined_package(arena, name, package):
    result, outcome = create(arena.parent, arena, name, "--framework", "flask", "--protocol",
                             "wsgi", "--target", "prod", kind="accepted", cid="flask-wsgi-prod")
    assert outcome == "created", result.stderr
    assert (arena / name / package / "__init__.py").is_file()
    assert f"gunicorn '{package}:create_app()'" in result.stdout


def test_names_are_refused_with_one_line_whatever_the_options(arena):
    """The name is checked before anything else is done with it."""
    result, outcome = create(arena.parent, arena, "{{ 7*7 }}", "--framework", "flask",
                             "--protocol", "asgi", kind="name")
    assert outcome == "refused" and result.returncode == 2


def installed_modules() -> tuple[set[str], set[str], set[str]]:
    """Top-level modules of what the stacks install, following dependencies (as installed
    here), the distributions that are not installed, and every distribution's name."""
    from packaging.requirements import Requirement

    wanted = {r for s in STACKS for r in (*s.packages, *s.prod_packages, *s.test_packages,
                                          *(r for _, extra in s.extras for r in extra))}
    wanted |= {r for w in WORKER_CLASSES for r in w.packages}
    wanted |= {r for server in SERVER_ROWS for r in server.packages}
    todo, seen, missing, modules = [Requirement(r) for r in wanted], set(), set(), set()
    distributions = set()
    while todo:
        req = todo.pop()
        key = (req.name.lower().replace("_", "-"), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        distributions.add(naming.distribution_name(req.name).replace(".", "-"))
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            missing.add(req.name)
            continue
        for spec in dist.requires or []:
            dep = Requirement(spec)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e})
                                         for e in (req.extras or {""})):
                todo.append(dep)
        top_level = dist.read_text("top_level.txt")
        if top_level:
            modules |= set(top_level.split())
        else:
            for file in dist.files or []:
                first = file.parts[0]
                if first.endswith((".dist-info", ".data")) or first == "..":
                    continue
                modules.add(first.split(".")[0] if len(file.parts) == 1 else first)
    return ({m for m in modules if m.isidentifier() and not m.startswith("_")}, missing,
            distributions)


def test_every_module_the_stacks_install_is_reserved():
    """A Flask project named `click` makes `flask run` import it instead of click: every
    top-level module the stacks bring, dependencies included, must be refused as a name."""
    modules, missing, _ = installed_modules()
    if len(missing) > 5:
        pytest.skip(f"the stacks are not installed here: {sorted(missing)}")
    assert sorted(m for m in modules if m.lower() not in naming.RESERVED) == []
    assert all(name == name.lower() for name in naming.RESERVED)


def test_every_distribution_the_stacks_install_is_reserved():
    """`newstack create python-dotenv` then `pip install -e ".[test]"`: ResolutionImpossible;
    `newstack create pip` then `pip install -e .`: pip is gone from the venv."""
    _, missing, distributions = installed_modules()
    if len(missing) > 5:
        pytest.skip(f"the stacks are not installed here: {sorted(missing)}")
    assert sorted(distributions - naming.DISTRIBUTIONS) == []
    assert {"pip", "setuptools", "wheel"} <= naming.DISTRIBUTIONS


def test_the_reserved_names_are_the_same_on_the_image_s_python():
    """copier.yml's validator is written from them (`python -m newstack.sync`): whichever Python
    runs newstack, the same names are refused (3.12 and 3.13 removed modules 3.11 has)."""
    python = image_python()
    code = "import json; from newstack import naming; print(json.dumps(sorted(naming.RESERVED)))"
    there = run([python, "-c", code], env={"PYTHONPATH": str(REPO / "generator")}, check=True)
    assert json.loads(there.stdout) == sorted(naming.RESERVED)
