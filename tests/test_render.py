"""Every combination renders into a complete project that passes its own checks, and plain
`copier copy` gives the same tree as `newstack create`."""

from __future__ import annotations

import ast
import json
import re
import shlex
import sys

import pytest

from newstack.stacks import COMBINATIONS, find_combination, server_row

from .conftest import COMBINATION_IDS, copier_copy, run, tree

COMMON = {"pyproject.toml", "README.md", ".gitignore", ".copier-answers.yml", "tests/test_app.py",
          "shop/static/style.css", "shop/__init__.py"}
PROD = {"Dockerfile", ".dockerignore", ".env.example", "deploy/nginx.conf",
        *(f"deploy/k8s/{m}.yaml" for m in ("deployment", "service", "hpa", "pdb", "configmap"))}
SERVER_FILES = {"gunicorn": {"gunicorn.conf.py"}, "granian": {"shop/serve.py"}}


@pytest.mark.parametrize("cid", COMBINATION_IDS)
def test_project_is_complete(projects, cid):
    files = set(tree(projects[cid]))
    server = find_combination(cid).server
    expected = COMMON | (PROD | SERVER_FILES[server] if server else set())
    assert expected <= files
    for other, its_files in SERVER_FILES.items():
        if other != server:
            assert not its_files & files, other
    if not server:
        assert not PROD & files
    assert any(f.endswith("index.html") for f in files)


@pytest.mark.parametrize("cid", COMBINATION_IDS)
def test_everything_is_rendered_and_every_python_file_compiles(projects, cid):
    for name, content in tree(projects[cid]).items():
        text = content.decode()
        if not name.endswith(".html"):  # the apps' own templates use {{ }} on purpose
            assert "{{" not in text and "{%" not in text, name
        if name.endswith(".py"):
            ast.parse(text, filename=name)


@pytest.mark.parametrize("cid", COMBINATION_IDS)
def test_pyproject_declares_what_the_project_imports(projects, cid):
    import tomllib

    project = tomllib.loads((projects[cid] / "pyproject.toml").read_text())["project"]
    declared = " ".join(project["dependencies"] + project["optional-dependencies"]["test"])
    imports = set()
    for path in projects[cid].rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imports |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imports.add(node.module.split(".")[0])
    third_party = imports - set(sys.stdlib_module_names) - {"shop"}
    # starlette comes with fastapi
    distribution = {"starlette": "fastapi", "flask": "flask", "uvicorn_worker": "uvicorn-worker"}
    for module in third_party:
        assert distribution.get(module, module) in declared, f"{module} is imported, not declared"
    combination = find_combination(cid)
    if combination.server == "gunicorn":
        assert "gunicorn" in declared and "granian" not in declared
        if combination.protocol == "asgi":
            assert "uvicorn-worker" in declared and "uvicorn[standard]" in declared
    if combination.server == "granian":
        assert "granian" in declared and "gunicorn" not in declared
        assert "uvicorn-worker" not in declared


@pytest.mark.parametrize("cid", COMBINATION_IDS)
def test_generated_test_suite_passes_with_deprecations_as_errors(projects, cid):
    result = run([sys.executable, "-W", "error::DeprecationWarning", "-m", "pytest", "-q",
                  "-p", "no:cacheprovider", "-W", "error::DeprecationWarning"], cwd=projects[cid])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", result.stdout)
    assert "warning" not in result.stdout.lower(), result.stdout[-2000:]


@pytest.mark.parametrize("cid", COMBINATION_IDS)
def test_ruff_passes(projects, cid):
    result = run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=projects[cid])
    assert result.returncode == 0, result.stdout + result.stderr


PROD_IDS = [c.id for c in COMBINATIONS if c.target == "prod"]
SECRETS = {"DJANGO_SECRET_KEY": "x" * 50, "FLASK_SECRET_KEY": "x" * 50}


def readme_prod_argv(project) -> list[str]:
    readme = (project / "README.md").read_text()
    return shlex.split(re.search(r"<!-- newstack:prod-command -->\n```sh\n(.+)\n```", readme).group(1))


@pytest.mark.parametrize("cid", [c.id for c in COMBINATIONS if c.server == "gunicorn"])
def test_gunicorn_config_is_valid_and_names_the_tables_worker_class(projects, cid):
    stack = find_combination(cid).stack
    argv = [arg.replace("{package}", "shop") for arg in server_row("gunicorn").prod_argv(stack)]
    assert readme_prod_argv(projects[cid]) == argv
    secrets = SECRETS
    check = run([sys.executable, "-m", *argv, "--check-config"], cwd=projects[cid], env=secrets)
    assert check.returncode == 0, check.stdout + check.stderr
    # --check-config accepts any worker class string: read back what the file sets.
    code = ("import runpy, json; s = runpy.run_path('gunicorn.conf.py');"
            "print(json.dumps({k: s[k] for k in ('worker_class', 'workers', 'bind')}))")
    settings = run([sys.executable, "-c", code],
                   cwd=projects[cid], env={"WEB_CONCURRENCY": "3", "PORT": "9123", **secrets})
    values = json.loads(settings.stdout)
    worker_class = stack.worker_classes[0].gunicorn_class.replace("{package}", "shop")
    assert values == {"worker_class": worker_class, "workers": 3, "bind": "0.0.0.0:9123"}
    # the class it names is a subclass of the table's
    table = stack.worker_classes[0].name
    code = f"from gunicorn.util import load_class as c; print(issubclass(c({worker_class!r}), c({table!r})))"
    assert run([sys.executable, "-c", code], cwd=projects[cid]).stdout == "True\n"


@pytest.mark.parametrize("cid", [c.id for c in COMBINATIONS if c.server == "granian"])
def test_granian_settings_come_from_the_environment_and_name_the_tables_interface(projects, cid):
    """serve.py's defaults, as the prod command passes them to Granian's own command line,
    which checks them: WEB_CONCURRENCY and PORT mapped, Granian's GRANIAN_* variables win."""
    stack = find_combination(cid).stack
    assert readme_prod_argv(projects[cid]) == ["python", "-m", "shop.serve"]
    code = ("import json, shop.serve as s; print(json.dumps(s.defaults()))")
    env = {"WEB_CONCURRENCY": "3", "PORT": "9123", **SECRETS}
    defaults = json.loads(run([sys.executable, "-c", code], cwd=projects[cid], env=env).stdout)
    assert defaults["GRANIAN_WORKERS"] == "3" and defaults["GRANIAN_PORT"] == "9123"
    assert defaults["GRANIAN_HOST"] == "0.0.0.0"
    assert defaults["GRANIAN_RESPAWN_FAILED_WORKERS"] == "true"
    assert defaults["GRANIAN_WORKERS_KILL_TIMEOUT"] == "20"
    assert ("GRANIAN_BLOCKING_THREADS" in defaults) == (stack.protocol == "wsgi")
    source = (projects[cid] / "shop" / "serve.py").read_text()
    assert f'"--interface", "{server_row("granian").interface(stack)}"' in source
    # Granian's command line rejects a bad value of these before it serves anything
    bad = run([sys.executable, "-m", "shop.serve"], cwd=projects[cid],
              env={**env, "GRANIAN_BACKLOG": "not-a-number"})
    assert bad.returncode == 2 and "Invalid value for '--backlog'" in bad.stderr, bad.stderr[-500:]
    # create_app() is the framework's application behind the limits and proxy headers
    wrapped = run([sys.executable, "-c", ("import shop.serve as s; a = s.create_app(); "
                   "print(a.__wrapped__.__qualname__)")], cwd=projects[cid], env=env)
    assert wrapped.stdout.strip() == "limited.<locals>.wrapped", wrapped.stderr[-500:]


@pytest.mark.parametrize("cid", COMBINATION_IDS)
def test_plain_copier_copy_gives_the_same_tree(projects, template_repo, tmp_path, cid):
    combination = find_combination(cid)
    server = {"server": combination.server} if combination.server else {}
    result = copier_copy(template_repo, tmp_path / "shop", framework=combination.framework,
                         protocol=combination.protocol, target=combination.target, **server)
    assert result.returncode == 0, result.stderr[-3000:]
    ours, theirs = tree(projects[cid]), tree(tmp_path / "shop")
    source = re.compile(rb"^_(src_path|commit): .*\n", re.MULTILINE)
    for files in (ours, theirs):
        files[".copier-answers.yml"] = source.sub(b"", files[".copier-answers.yml"])
    assert ours.keys() == theirs.keys()
    assert [n for n in ours if ours[n] != theirs[n]] == []


def test_alternative_worker_class_is_written(tmp_path):
    from .conftest import newstack

    result = newstack("create", "api", "--framework", "fastapi", "--protocol", "asgi",
                      "--target", "prod", "--worker-class", "asgi", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    config = (tmp_path / "api" / "gunicorn.conf.py").read_text()
    assert 'worker_class = "api.workers.ASGIWorker"' in config
    assert "class ASGIWorker(gasgi.ASGIWorker):" in (tmp_path / "api" / "api" / "workers.py").read_text()
    pyproject = (tmp_path / "api" / "pyproject.toml").read_text()
    assert "uvicorn-worker" not in pyproject


# os.environ["X"], os.environ.get("X"), env_flag("X") / env_list("X"), and serve.py's "GRANIAN_X":
ENV_READ = re.compile(r"""(?:os\.environ(?:\.get)?[(\[]|env_(?:flag|list)\(|^ +(?=["']GRANIAN_))["']([A-Z_]+)["']""",
                      re.MULTILINE)


@pytest.mark.parametrize("cid", PROD_IDS)
def test_prod_readme_explains_running_in_production(projects, cid):
    readme = (projects[cid] / "README.md").read_text()
    assert "## Running in production" in readme
    section = readme.split("## Running in production", 1)[1].split("\n## ", 1)[0]
    read = set()
    for path in projects[cid].rglob("*.py"):
        if "tests" not in path.relative_to(projects[cid]).parts:
            read |= set(ENV_READ.findall(path.read_text()))
    read.discard("DJANGO_SETTINGS_MODULE")  # set by the project itself
    assert len(read) > 10
    assert [name for name in sorted(read) if f"`{name}`" not in section] == []
    prose = " ".join(section.split())
    stop = "GRANIAN_WORKERS_KILL_TIMEOUT" if find_combination(cid).server == "granian" else \
        "graceful_timeout"
    for topic in ("FORWARDED_ALLOW_IPS", "WEB_CONCURRENCY", stop, "load balancer",
                  "replicas", "stop grace period", "gunicorn or Granian"):
        assert topic in prose, topic


# the other worker classes that bring code of their own (PKG/workers.py)
VARIANTS = [(c.id, w.name) for c in COMBINATIONS if c.target == "prod"
            for w in c.stack.worker_classes[1:] if w.subclass]


@pytest.mark.parametrize("cid, worker_class", VARIANTS, ids=[f"{c}-{w}" for c, w in VARIANTS])
def test_other_worker_classes_give_projects_that_pass_ruff_and_their_tests(tmp_path, cid,
                                                                         worker_class):
    from .conftest import newstack

    combination = find_combination(cid)
    made = newstack("create", "shop", "--framework", combination.framework, "--protocol",
                    combination.protocol, "--target", "prod", "--worker-class", worker_class,
                    "--output-dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    project = tmp_path / "shop"
    lint = run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=project)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    tests = run([sys.executable, "-W", "error::DeprecationWarning", "-m", "pytest", "-q",
                 "-p", "no:cacheprovider"], cwd=project)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
