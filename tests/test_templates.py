"""The templates stay small and flat, and the shared ones decide nothing on a name.

What differs between frameworks, protocols, targets, servers and worker classes is either data
of the table (`stack.*`, looped over or tested for truthiness) or a partial of that framework,
protocol, target, server or worker class: templates/_shared/AXIS/NAME/FILE.jinja, a module of
macros that FILE's template imports by the name the table gives, e.g.
`{% import 'templates/_shared/servers/' ~ stack.server ~ '/nginx.conf.jinja' as by_server with context %}`.
copier renders templates/FRAMEWORK only (`_subdirectory`), so nothing under _shared leaks into a
generated project.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newstack.stacks import FRAMEWORKS, PROTOCOLS, SERVERS, TARGETS, WORKER_CLASSES

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
SHARED = TEMPLATES / "_shared"

MAX_TAGS = 15  # `{%` tags in one template
MAX_DEPTH = 2  # blocks open at once: an `if` inside a `for` (one level of nesting), no deeper

TAG = re.compile(r"\{%[-+]?\s*(\w+)(.*?)[-+]?%\}", re.DOTALL)
BLOCKS = {"if", "for", "macro", "call", "filter", "with", "block", "autoescape", "trans"}

# A decision on the name of a framework, protocol, target, server or worker class.
NAMES = r"(?:framework|protocol|target|stack\.server|worker_class|interface)"
LITERAL = r"""(?:'[^']*'|"[^"]*"|\[[^\]]*\]|\([^)]*\))"""
NAME_TEST = re.compile(rf"\b{NAMES}\s*(?:==|!=|\bnot in\b|\bin\b)\s*{LITERAL}"
                       rf"|{LITERAL}\s*(?:==|!=)\s*{NAMES}\b")

# The partials: one directory per value the table gives.
AXES = {
    "frameworks": set(FRAMEWORKS),
    "protocols": set(PROTOCOLS),
    "servers": set(SERVERS),
    "targets": set(TARGETS),
    "workers": {w.short for w in WORKER_CLASSES},
}
MACRO = re.compile(r"\{%-?\s*macro\s+(\w+)\s*\(")


def templates(within: Path) -> list[Path]:
    """Every file copier renders, and every partial: the `.jinja` files (other files, such as
    the Django page templates, are copied as they are)."""
    return sorted(within.rglob("*.jinja"))


def measure(text: str) -> tuple[int, int]:
    """The number of `{%` tags, and how many blocks are open at once at most."""
    depth = deepest = 0
    for match in TAG.finditer(text):
        name, rest = match.groups()
        if name in BLOCKS or (name == "set" and "=" not in rest):  # `{% set x %}...{% endset %}`
            depth += 1
            deepest = max(deepest, depth)
        elif name.startswith("end"):
            depth -= 1
    return text.count("{%"), deepest


def name(path: Path) -> str:
    return str(path.relative_to(TEMPLATES))


@pytest.mark.parametrize("path", templates(TEMPLATES), ids=name)
def test_template_is_small_and_flat(path):
    tags, depth = measure(path.read_text())
    assert tags <= MAX_TAGS, (f"templates/{name(path)} has {tags} `{{%` tags (at most {MAX_TAGS}):"
                              " split it into partials")
    assert depth <= MAX_DEPTH, (f"templates/{name(path)} nests blocks {depth} deep (at most "
                                f"{MAX_DEPTH}: an `if` in a `for`): move the inner part to a "
                                "partial or to the table")


def test_the_measure_counts_tags_and_nesting():
    assert measure("{% if a %}{% for b in c %}{% if d %}{% endif %}{% endfor %}{% endif %}") == (6, 3)
    assert measure("{%- set x = 1 %}{% include 'y' %}{% if a %}{% else %}{% endif %}") == (5, 1)
    assert measure("{% set x %}{% if a %}{% endif %}{% endset %}") == (4, 2)


@pytest.mark.parametrize("path", templates(SHARED), ids=name)
def test_shared_template_decides_nothing_on_a_name(path):
    found = [m.group(0) for m in NAME_TEST.finditer(path.read_text())]
    assert found == [], (f"templates/{name(path)} tests a name ({', '.join(found)}): use a partial "
                         "chosen by that name, or a field of the table")


def test_a_name_test_is_recognised():
    for text in ("{% if framework == 'django' %}", "{{ 4 if stack.worker_class == \"gthread\" }}",
                 "{% if protocol != 'asgi' %}", "{% if 'granian' == stack.server %}",
                 "{% if target in ['prod'] %}", "{%- set wsgi = stack.interface == 'wsgi' -%}"):
        assert NAME_TEST.search(text), text
    for text in ("{% if stack.secret_env %}", "{% include 'x/' ~ stack.server ~ '/y.jinja' %}",
                 "{% if stack.gunicorn_class != stack.worker_class %}", "from .{{ protocol }} import"):
        assert not NAME_TEST.search(text), text


@pytest.mark.parametrize("axis", sorted(AXES))
def test_every_value_has_the_same_partials_defining_the_same_macros(axis):
    """A partial missing for one framework (or server, ...) would only fail when a project of
    that combination is rendered; a macro missing in it, only where it is called."""
    root = SHARED / axis
    values = {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
    assert values <= AXES[axis], f"templates/_shared/{axis}/ has directories the table does not name"
    if not values:
        return
    assert values == AXES[axis], f"templates/_shared/{axis}/ lacks {sorted(AXES[axis] - values)}"
    macros = {value: {p.name: sorted(MACRO.findall(p.read_text())) for p in (root / value).iterdir()}
              for value in sorted(values)}
    first, *others = macros
    for value in others:
        assert macros[value] == macros[first], (
            f"templates/_shared/{axis}/{value}/ and {axis}/{first}/ differ in their files or "
            f"macros: {macros[value]} against {macros[first]}")


# A project's names written into YAML or TOML: `| tojson` quotes them for both formats (a JSON
# string is a YAML and a TOML string), whatever a name holds.
PROJECT_NAMES = re.compile(r"\b(?:project_name|package_name|app_name)\b")
EXPRESSION = re.compile(r"\{\{(.*?)\}\}")
DATA_FILES = [p for p in templates(TEMPLATES)
              if p.name.endswith((".yaml.jinja", ".yml.jinja", ".toml.jinja"))]


@pytest.mark.parametrize("path", DATA_FILES, ids=name)
def test_names_in_yaml_and_toml_are_quoted_for_the_format(path):
    unquoted = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
                for expr in EXPRESSION.findall(line)
                if PROJECT_NAMES.search(expr) and not expr.strip().endswith("| tojson")]
    assert unquoted == []


def test_tojson_quotes_a_hostile_value_for_yaml_and_toml():
    import tomllib

    import jinja2
    import yaml

    hostile = 'svc\n  evil: injected" = 1\n[x]'
    line = jinja2.Environment().from_string("name: {{ v | tojson }}").render(v=hostile)
    assert yaml.safe_load(line) == {"name": hostile}
    line = jinja2.Environment().from_string("name = {{ v | tojson }}").render(v=hostile)
    assert tomllib.loads(line) == {"name": hostile}
