"""Project name rules, after Django's startproject: a valid distribution name whose package
name is an identifier, not a keyword, and does not shadow an importable module.

The same rules, with the same messages, are compiled into copier.yml's validator, so plain
`copier copy` refuses exactly what `newstack create` refuses.
"""

from __future__ import annotations

import keyword
import re
import sys

from .errors import UsageError

MAX_LENGTH = 64
# A PEP 508 distribution name that also turns into an ASCII identifier once '-' becomes '_'.
# \Z, not $: `$` also matches before a final newline, and "shop\n" is not a name.
PATTERN = r"^[A-Za-z]([A-Za-z0-9_-]*[A-Za-z0-9])?\Z"

# Names a generated package must not take: the standard library, the top-level modules of
# everything the stacks install (with what those pull in: a Flask project named `click` breaks
# `flask run`), and the project's own tests folder. Lower case, as package names are, so that
# a case-insensitive file system cannot shadow `cProfile` or `OpenSSL` either.
# tests/test_naming.py fails when an installed stack brings a module missing from here.
INSTALLED = {
    "aiosqlite", "alembic", "annotated_doc", "annotated_types", "anyio", "asgiref", "ast_serialize",
    "attr", "librt", "mypy", "mypy_extensions", "mypyc", "pathspec", "ruff",
    "attrs", "autobahn", "automat", "blinker", "cbor2", "cffi", "channels", "channels_redis",
    "click", "constantly", "cryptography", "daphne", "django", "dotenv", "fastapi", "flask",
    "granian", "greenlet", "gunicorn", "h11", "httpcore", "httpcore2", "httptools", "httpx",
    "httpx2", "hyperlink", "idna", "incremental", "iniconfig", "itsdangerous", "jinja2", "mako",
    "markupsafe", "msgpack", "openssl", "opentelemetry", "packaging", "pluggy", "psycopg",
    "psycopg_binary", "psycopg_pool", "py", "pycparser", "pydantic", "pydantic_core", "pygments",
    "pytest", "redis", "servestatic", "service_identity", "sniffio", "sqlalchemy", "sqlparse",
    "starlette", "truststore", "twisted", "txaio", "typing_extensions", "typing_inspection",
    "ujson", "uvicorn", "uvicorn_worker", "uvloop", "watchfiles", "websockets", "werkzeug",
    "whitenoise", "yaml", "zope",
}
# Distribution names a project must not take, normalized (PEP 503; a name has no '.'): as its
# own distribution, `pip install -e .` would replace the installed one (`newstack create pip`
# uninstalls pip) or refuse both (ResolutionImpossible). The packaging tools of every
# environment, and what the stacks install, dependencies included; tests/test_naming.py fails
# when an installed stack brings a distribution missing from here.
DISTRIBUTIONS = frozenset({
    "pip", "setuptools", "wheel",
    "ast-serialize", "librt", "mypy", "mypy-extensions", "pathspec", "ruff",
    "aiosqlite", "alembic", "annotated-doc", "annotated-types", "anyio", "asgiref", "attrs",
    "autobahn", "automat", "blinker", "cbor2", "cffi", "channels", "channels-redis", "click",
    "constantly", "cryptography", "daphne", "django", "fastapi", "flask", "granian", "greenlet",
    "gunicorn", "h11", "httpcore", "httpcore2", "httptools", "httpx", "httpx2", "hyperlink",
    "idna", "incremental", "iniconfig", "itsdangerous", "jinja2", "mako", "markupsafe", "msgpack",
    "opentelemetry-api", "packaging", "pluggy", "psycopg", "psycopg-binary", "psycopg-pool",
    "pycparser", "pydantic", "pydantic-core", "pygments", "pyopenssl", "pytest", "python-dotenv",
    "pyyaml", "redis", "servestatic", "service-identity", "sqlalchemy", "sqlparse", "starlette",
    "truststore", "twisted", "txaio", "typing-extensions", "typing-inspection", "ujson", "uvicorn",
    "uvicorn-worker", "uvloop", "watchfiles", "websockets", "werkzeug", "whitenoise",
    "zope-interface", "copier", "newstack",
})
# Module names that are not shadowing but special: Python imports sitecustomize and
# usercustomize at every start, pytest loads every conftest as a plugin, and the project has
# directories of these names beside its package (alembic's migrations, deploy files).
SPECIAL = ("conftest", "sitecustomize", "usercustomize", "deploy", "migrations")
# The standard library of every Python a project may run on, not only the one running newstack
# (the image's is stacks.PYTHON_VERSION): what 3.12 and 3.13 removed and 3.14 added. So the same
# names are refused, and copier.yml is written the same, on each of them.
OTHER_PYTHONS_STDLIB = {
    "aifc", "annotationlib", "asynchat", "asyncore", "audioop", "cgi", "cgitb", "chunk",
    "compression", "crypt", "distutils", "imghdr", "imp", "lib2to3", "mailcap", "msilib", "nis",
    "nntplib", "ossaudiodev", "pipes", "smtpd", "sndhdr", "spwd", "sunau", "telnetlib", "uu",
    "xdrlib",
}
RESERVED = frozenset(
    {name.lower() for name in sys.stdlib_module_names if not name.startswith("_")}
    | OTHER_PYTHONS_STDLIB
    | INSTALLED
    | {"copier", "newstack", "test", "tests"}
)

# rule: message, where `{name}` is the project name and `{package}` its package name.
MESSAGES = {
    "empty": "the project name is empty",
    "length": f"the project name is longer than {MAX_LENGTH} characters",
    "pattern": "the project name must start with an ASCII letter, end with a letter or digit, "
    "and contain only ASCII letters, digits, '-' and '_'",
    "keyword": "project name '{name}' gives package '{package}', a Python keyword",
    "reserved": "project name '{name}' gives package '{package}', which would shadow the "
    "importable module '{package}'; choose another name",
    "distribution": "project name '{name}' is the name of a distribution the project installs "
    "(pip would replace one with the other); choose another name",
    "special": "project name '{name}' gives package '{package}', a name Python, pytest or the "
    f"project's own directories use specially ({', '.join(SPECIAL)}); choose another name",
}


def distribution_name(name: str) -> str:
    """The name pip compares (PEP 503): `Python_Dotenv` is `python-dotenv`."""
    return name.lower().replace("_", "-")


class ProjectNameError(UsageError):
    """A project name that cannot be used."""


def package_name(name: str) -> str:
    """`My-App` becomes the package `my_app`."""
    return name.lower().replace("-", "_")


def broken_rule(name: str) -> str | None:
    """The first rule `name` breaks, or None when it can be used."""
    package = package_name(name)
    if not name:
        return "empty"
    if len(name) > MAX_LENGTH:
        return "length"
    if not re.match(PATTERN, name):
        return "pattern"
    if keyword.iskeyword(package):
        return "keyword"
    if package in RESERVED:
        return "reserved"
    if distribution_name(name) in DISTRIBUTIONS:
        return "distribution"
    if package in SPECIAL:
        return "special"
    return None


def message(rule: str, name: str) -> str:
    return MESSAGES[rule].replace("{name}", name).replace("{package}", package_name(name))


def check(name: str) -> str:
    """Return the package name for `name`, or raise ProjectNameError naming the broken rule."""
    rule = broken_rule(name)
    if rule:
        raise ProjectNameError(message(rule, name))
    return package_name(name)
