"""Every combination renders into a complete project that passes its own checks, and plain
`copier copy` gives the same tree as `newstack create`."""

from __future__ import annotations

import ast
import errno
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest

from newstack import fast_copier, naming, render
from newstack.stacks import COMBINATIONS, find_combination, server_row

from .bad_input import FIGURES, create, one_line, run_main, settle, snapshot, unrendered
from .conftest import COMBINATION_IDS, NEWSTACK, copier_copy, newstack, run, tree

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
        assert not unrendered(name, text), name
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
    # starlette and pydantic come with fastapi, asgiref with django, psycopg_pool with psycopg's
    # pool extra
    distribution = {"starlette": "fastapi", "pydantic": "fastapi", "flask": "flask",
                    "uvicorn_worker": "uvicorn-worker", "asgiref": "django",
                    "psycopg_pool": "psycopg[binary,pool]"}
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


DATABASE_IDS = [c.id for c in COMBINATIONS if c.stack.database]
MANAGE_PY_IDS = [c.id for c in COMBINATIONS if "manage.py" in c.stack.migrations]


@pytest.mark.parametrize("cid", MANAGE_PY_IDS)
def test_manage_py_test_runs_the_test_suite(projects, cid):
    """Django's usual command runs the project's tests (pytest's), not "Ran 0 tests ... OK"."""
    result = run([sys.executable, "manage.py", "test"], cwd=projects[cid])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", result.stdout) and "Ran 0 tests" not in result.stderr


def test_manage_py_test_fails_when_a_test_fails(projects, tmp_path):
    project = tmp_path / "shop"
    shutil.copytree(projects[MANAGE_PY_IDS[0]], project,
                    ignore=shutil.ignore_patterns("*.sqlite3", "staticfiles"))
    (project / "tests" / "test_broken.py").write_text("def test_broken():\n    assert False\n")
    result = run([sys.executable, "manage.py", "test", "tests/test_broken.py"], cwd=project)
    assert result.returncode != 0 and "1 failed" in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize("cid", DATABASE_IDS)
def test_generated_test_suite_passes_against_postgresql(projects, postgres, cid):
    """The same suite, its database a real PostgreSQL (TEST_DATABASE_URL), its schema from the
    project's migrations."""
    url = postgres.create_database(cid.replace("-", "_"))
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                 cwd=projects[cid], env={**os.environ, "TEST_DATABASE_URL": url})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", result.stdout)
    tables = postgres.psql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM "
                           "pg_tables WHERE schemaname = 'public'", database=url.rsplit("/", 1)[1])
    assert "items" in tables.split(",")


@pytest.mark.parametrize("cid", COMBINATION_IDS)
def test_mypy_passes_and_the_checks_are_in_the_test_extra(projects, tmp_path, cid):
    """`mypy` as the project configures it (pyproject.toml), with ruff and mypy installed by its
    test extra."""
    import tomllib

    pyproject = tomllib.loads((projects[cid] / "pyproject.toml").read_text())
    extra = {re.split(r"[<>=\[]", dependency)[0]
             for dependency in pyproject["project"]["optional-dependencies"]["test"]}
    assert {"ruff", "mypy"} <= extra
    result = run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
                 cwd=projects[cid])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Success: no issues found" in result.stdout


@pytest.mark.parametrize("cid", COMBINATION_IDS)
def test_ruff_passes(projects, cid):
    result = run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=projects[cid])
    assert result.returncode == 0, result.stdout + result.stderr


def unformatted(project: Path) -> list[str]:
    """The files `ruff format` would change in project, as its pyproject.toml configures ruff."""
    result = run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache",
                  "--output-format", "concise", "."], cwd=project)
    files = re.findall(r"^(.+?):\d+:\d+: unformatted", result.stdout, re.MULTILINE)
    assert result.returncode == (1 if files else 0), result.stdout + result.stderr
    return files


@pytest.mark.parametrize("cid", COMBINATION_IDS)
def test_ruff_format_would_change_no_file(projects, cid):
    """The templates render formatted code (nothing formats it at generation)."""
    assert unformatted(projects[cid]) == []


# The hooks of pre-commit-hooks the generated config runs, and the commands that package
# (newstack's test extra, the config's rev) installs for them.
PRE_COMMIT_HOOKS = {"trailing-whitespace": ["trailing-whitespace-fixer"],
                    "end-of-file-fixer": ["end-of-file-fixer"],
                    "check-yaml": ["check-yaml", "--allow-multiple-documents"],
                    "check-toml": ["check-toml"],
                    "check-added-large-files": ["check-added-large-files", "--enforce-all"]}


@pytest.mark.parametrize("cid", COMBINATION_IDS)
def test_pre_commit_config_is_valid_and_its_offline_hooks_pass_as_generated(projects, tmp_path,
                                                                         cid):
    """pre-commit validates the config; its ruff is the test extra's; the hooks that need no
    clone (the GitHub ones are the same code as pre-commit-hooks, installed here at the config's
    rev) change nothing in a copy of the project. The ruff and mypy hooks run as the tests above."""
    import tomllib
    from importlib.metadata import version

    import yaml
    from identify.identify import tags_from_path
    from packaging.requirements import Requirement

    project = projects[cid]
    valid = run([sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"],
                cwd=project)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    repos = {repo["repo"]: repo for repo in
             yaml.safe_load((project / ".pre-commit-config.yaml").read_text())["repos"]}
    test_extra = tomllib.loads((project / "pyproject.toml").read_text())[
        "project"]["optional-dependencies"]["test"]
    ruff = next(r for r in map(Requirement, test_extra) if r.name == "ruff")
    ruff_rev = repos["https://github.com/astral-sh/ruff-pre-commit"]["rev"]
    assert ruff.specifier.contains(ruff_rev.removeprefix("v")), (ruff_rev, str(ruff))
    assert [hook["id"] for hook in repos["local"]["hooks"]] == ["mypy"]
    hooks = repos["https://github.com/pre-commit/pre-commit-hooks"]
    assert hooks["rev"] == f"v{version('pre-commit-hooks')}"
    assert {hook["id"] for hook in hooks["hooks"]} == set(PRE_COMMIT_HOOKS)

    files = tree(project)
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    run(["git", "init", "-q"], cwd=tmp_path, check=True)  # check-added-large-files asks git
    kinds = {"check-yaml": "yaml", "check-toml": "toml", "check-added-large-files": "file"}
    for hook, command in PRE_COMMIT_HOOKS.items():
        chosen = [name for name in files if kinds.get(hook, "text") in tags_from_path(
            str(tmp_path / name))]
        assert chosen, hook
        result = run([str(Path(sys.executable).parent / command[0]), *command[1:], *chosen],
                     cwd=tmp_path)
        assert result.returncode == 0, (hook, result.stdout + result.stderr)
    assert {n: c for n, c in tree(tmp_path).items() if not n.startswith(".git/")} == files

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


# the longest name newstack takes (naming.MAX_LENGTH), with every worker class
LONGEST_NAME = "inventory-and-order-management-service-for-the-north-west-region"
SHAPES = [(cid, None) for cid in COMBINATION_IDS] + [
    (c, w) for c, w in VARIANTS if find_combination(c).server == "gunicorn"]


@pytest.mark.parametrize("cid, worker_class", SHAPES, ids=[f"{c}-{w}" for c, w in SHAPES])
def test_the_longest_name_and_every_worker_class_render_formatted_code(tmp_path, cid,
                                                                      worker_class):
    """A long package name lengthens the lines that hold it: none may then need rewrapping."""
    assert len(LONGEST_NAME) == naming.MAX_LENGTH
    answers = render.Answers.of(LONGEST_NAME, find_combination(cid), worker_class)
    assert unformatted(render.generate(answers, tmp_path / "project")) == []


# --------------------------------------------------------------------------------------------
# Bad input (issue 4, see bad_input.py): destinations, failing disks and writes

def test_an_existing_non_empty_destination_is_refused_and_untouched(arena):
    (arena / "svc" / ".git").mkdir(parents=True)
    (arena / "svc" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (arena / "svc" / "pyproject.toml").write_text("[project]\nname = 'mine'\n")
    os.utime(arena / "svc" / "pyproject.toml", ns=(1, 1))
    result, outcome = create(arena.parent, arena, "svc", "--defaults", kind="destination")
    assert outcome == "refused" and result.returncode == 2 and "not empty" in result.stderr


@pytest.mark.parametrize("kind", ["file", "fifo", "link-to-dir", "link-to-empty-dir",
                                  "link-to-file", "dangling-link", "link-loop"])
def test_a_destination_that_is_not_a_plain_directory_is_refused(arena, kind):
    dest = arena / "svc"
    if kind == "file":
        dest.write_text("mine\n")
    elif kind == "fifo":
        os.mkfifo(dest)
    elif kind == "link-to-dir":
        dest.symlink_to("sub")
    elif kind == "link-to-empty-dir":
        (arena / "empty").mkdir()
        dest.symlink_to("empty")
    elif kind == "link-to-file":
        dest.symlink_to("notes.txt")
    elif kind == "dangling-link":
        dest.symlink_to(arena.parent / "nowhere")
    else:
        dest.symlink_to("svc")
    result, outcome = create(arena.parent, arena, "svc", "--defaults", kind="destination")
    assert outcome == "refused" and result.returncode == 2 and one_line(result.stderr)
    assert ("symbolic link" if "link" in kind else "not a directory") in result.stderr


@pytest.mark.parametrize("where", ["notes.txt", "notes.txt/sub", "link/sub", "dangling",
                                   "dangling/deeper"])
def test_an_output_dir_through_a_file_or_broken_link_is_refused(arena, where):
    (arena / "dangling").symlink_to("gone")
    before = snapshot(arena.parent)
    result = newstack("create", "--defaults", "--output-dir", str(arena / where), "svc")
    assert settle(arena.parent, before, result.returncode, result.stderr, "destination") \
        == "refused"
    assert result.returncode == 2 and one_line(result.stderr), result.stderr


def test_an_output_dir_that_is_a_symlink_to_a_directory_is_followed(arena):
    (arena / "elsewhere").mkdir()
    (arena / "here").symlink_to("elsewhere")
    before = snapshot(arena.parent)
    result = newstack("create", "--defaults", "--output-dir", str(arena / "here"), "svc")
    assert result.returncode == 0, result.stderr
    settle(arena.parent, before, result.returncode, result.stderr, "accepted",
           arena / "elsewhere" / "svc", cid="fastapi-asgi-dev")
    assert os.readlink(arena / "here") == "elsewhere"


def test_missing_output_dirs_are_made_and_removed_again_on_failure(arena, monkeypatch):
    """--output-dir a/b/c: made when the project is; gone again when it could not be."""
    before = snapshot(arena.parent)
    calls = []

    def fail(*args, **kwargs):
        calls.append(args)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkdtemp", fail)
    code, _, err = run_main("create", "--defaults", "--output-dir", str(arena / "a" / "b" / "c"),
                              "svc")
    assert calls and settle(arena.parent, before, code, err, "failure") == "refused"
    assert code == 1 and err.endswith("No space left on device (nothing was written)\n")


@contextmanager
def mounted(where: Path, options: str):
    """A tmpfs at `where` (root with CAP_SYS_ADMIN only), unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    made = shutil.which("mount") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True, text=True, check=False)
    if not made or made.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.mark.parametrize("below", ["", "new/deeper"])
def test_a_read_only_parent_fails_with_one_line_and_exit_1(arena, below):
    """Root ignores permission bits, so a read-only tmpfs is mounted when this runs as root;
    otherwise the directory is made read-only with chmod."""
    ro = arena / "ro"
    with mounted(ro, "ro,size=64k") as is_mount:
        if not is_mount:
            if os.geteuid() == 0:
                pytest.skip("root, and no tmpfs can be mounted: nothing here is read-only")
            ro.chmod(0o555)
        try:
            before = snapshot(arena.parent)
            result = newstack("create", "--defaults", "--output-dir", str(ro / below), "svc")
            assert settle(arena.parent, before, result.returncode, result.stderr,
                          "destination") == "refused"
            assert result.returncode == 1 and one_line(result.stderr), result.stderr
            assert "Read-only file system" in result.stderr or "Permission denied" in result.stderr
        finally:
            if not is_mount:
                ro.chmod(0o755)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="no /proc")
@pytest.mark.parametrize("where", ["/proc/newstack-test", "/proc/self/newstack-test"])
def test_an_unwritable_system_directory_fails_with_one_line_and_exit_1(where):
    result = newstack("create", "--defaults", "--output-dir", where, "svc")
    FIGURES["tried:destination"] += 1
    assert result.returncode == 1 and one_line(result.stderr), result.stderr
    assert not Path(where).exists()


@pytest.mark.parametrize("size", ["8k", "24k", "48k", "64k", "1m"])
def test_a_disk_that_fills_up_leaves_nothing_or_the_whole_project(arena, size):
    """A real full disk: a tmpfs of `size` (root only). The django-asgi-prod project takes
    about 80k of tmpfs pages: the small ones fill up part-way, 1m fits."""
    with mounted(arena / "disk", f"size={size}") as is_mount:
        if not is_mount:
            pytest.skip("cannot mount a tmpfs here (needs root); see the simulated failures")
        (arena / "disk" / "mine.txt").write_text("mine\n")
        result, outcome = create(arena.parent, arena / "disk", "svc", "--framework", "django",
                                 "--protocol", "asgi", "--target", "prod", kind="failure",
                                 cid="django-asgi-prod")
        if size == "1m":
            assert outcome == "created"
        else:
            assert outcome == "refused" and result.returncode == 1 and one_line(result.stderr)
            assert "No space left on device (nothing was written)" in result.stderr


@pytest.mark.parametrize("inodes", [3, 8, 14])
def test_running_out_of_inodes_leaves_nothing(arena, inodes):
    """fastapi-asgi-dev needs 16 inodes: the staging directory, the project, 14 entries."""
    with mounted(arena / "disk", f"nr_inodes={inodes}") as is_mount:
        if not is_mount:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        result, outcome = create(arena.parent, arena / "disk", "svc", "--defaults",
                                 kind="failure")
        assert outcome == "refused" and result.returncode == 1 and one_line(result.stderr)


# Writes failing part-way, simulated in-process: copier writes each file with
# Path.write_bytes; the Nth write writes half its bytes and then fails with ENOSPC.
def count_writes(args: list[str], tmp: Path) -> int:
    calls = []
    real = pathlib.Path.write_bytes

    def counting(self, data):
        calls.append(self)
        return real(self, data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pathlib.Path, "write_bytes", counting)
        code, _, err = run_main("create", "--output-dir", str(tmp), *args, "svc")
    assert code == 0, err
    return len(calls)


PROD_ARGS = ["--framework", "fastapi", "--protocol", "asgi", "--target", "prod"]


def test_a_write_failing_part_way_leaves_nothing_at_every_point(arena, tmp_path, monkeypatch):
    total = count_writes(PROD_ARGS, tmp_path / "count")
    assert total > 10
    real = pathlib.Path.write_bytes
    for fail_at in range(total):
        calls = []

        def failing(self, data, fail_at=fail_at, calls=calls):
            calls.append(self)
            if len(calls) - 1 == fail_at:
                real(self, data[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device", str(self))
            return real(self, data)

        monkeypatch.setattr(pathlib.Path, "write_bytes", failing)
        before = snapshot(arena.parent)
        code, _, err = run_main("create", "--output-dir", str(arena), *PROD_ARGS, "svc")
        assert settle(arena.parent, before, code, err, "failure") == "refused"
        assert code == 1 and one_line(err), err
        assert err == (f"newstack: error: could not write {arena / 'svc'}: No space left on "
                       "device (nothing was written)\n")


@pytest.mark.parametrize("where", ["mkdtemp", "record_source", "replace", "makedirs"])
def test_failures_around_the_rendering_leave_nothing(arena, monkeypatch, where):
    """The steps newstack takes itself: making the staging directory, recording the source,
    the final move, making a missing --output-dir."""
    def fail(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    if where == "mkdtemp":
        monkeypatch.setattr(tempfile, "mkdtemp", fail)
    elif where == "record_source":
        monkeypatch.setattr(pathlib.Path, "write_text", fail)
    elif where == "replace":
        monkeypatch.setattr(os, "replace", fail)
    else:
        real = pathlib.Path.mkdir

        def mkdir(self, *args, **kwargs):
            return fail() if self.name == "c" else real(self, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    output = arena / "a" / "b" / "c" if where == "makedirs" else arena
    before = snapshot(arena.parent)
    code, _, err = run_main("create", "--output-dir", str(output), "--defaults", "svc")
    assert settle(arena.parent, before, code, err, "failure") == "refused"
    assert code == 1 and err.endswith(": Input/output error (nothing was written)\n"), err


def test_a_destination_that_appears_while_rendering_is_not_replaced(arena, monkeypatch):
    real = render.record_source

    def meanwhile(project):
        real(project)
        (arena / "svc").mkdir()
        (arena / "svc" / "theirs.txt").write_text("theirs\n")

    monkeypatch.setattr(render, "record_source", meanwhile)
    code, _, err = run_main("create", "--output-dir", str(arena), "--defaults", "svc")
    assert code == 2 and one_line(err) and "not empty" in err
    assert sorted(p.name for p in arena.iterdir()) == sorted(
        ["sub", "notes.txt", "link", "other-project", "svc"])
    assert (arena / "svc" / "theirs.txt").read_text() == "theirs\n"
    FIGURES["tried:destination"] += 1


# --------------------------------------------------------------------------------------------
# Bad input: signals while creating

def signal_during(monkeypatch, target, attr, signum, before=True):
    """Make `target.attr` send `signum` to this process as it runs (before or after the real
    call), as a signal arriving at that very moment would."""
    real = getattr(target, attr)

    def sending(*args, **kwargs):
        if before:
            os.kill(os.getpid(), signum)
        result = real(*args, **kwargs)
        if not before:
            os.kill(os.getpid(), signum)
        return result

    monkeypatch.setattr(target, attr, sending)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT])
@pytest.mark.parametrize("moment", ["rendering", "mkdtemp", "record_source", "cleanup"])
def test_a_signal_before_the_move_leaves_nothing(arena, monkeypatch, signum, moment):
    """Deterministic moments: while copier writes a file, while the staging directory is
    made, while the source is recorded, and half-way through removing the staging directory
    after a failure (deferred until it is gone)."""
    if moment == "rendering":
        signal_during(monkeypatch, pathlib.Path, "write_bytes", signum)
    elif moment == "mkdtemp":
        signal_during(monkeypatch, tempfile, "mkdtemp", signum, before=False)
    elif moment == "record_source":
        signal_during(monkeypatch, render, "record_source", signum)
    else:
        monkeypatch.setattr(render, "record_source", lambda project: (_ for _ in ()).throw(
            OSError(errno.EIO, "Input/output error")))
        real_rmtree = shutil.rmtree

        def rmtree(path, *args, **kwargs):  # a signal after the first file is removed
            first = next(Path(path).rglob("*.py"), None) if ".svc.newstack-" in str(path) else None
            if first:
                first.unlink()
                os.kill(os.getpid(), signum)
            return real_rmtree(path, *args, **kwargs)

        monkeypatch.setattr(shutil, "rmtree", rmtree)
    before = snapshot(arena.parent)
    code, _, err = run_main("create", "--output-dir", str(arena), "--defaults", "svc")
    assert settle(arena.parent, before, code, err, "signal") == "refused"
    name = signal.Signals(signum).name
    assert code == 128 + signum
    assert err == f"newstack: interrupted by {name}; nothing was written\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("before", [True, False])
def test_a_signal_during_the_move_keeps_the_complete_project(arena, monkeypatch, signum,
                                                              before):
    signal_during(monkeypatch, os, "replace", signum, before=before)
    snap = snapshot(arena.parent)
    code, _, err = run_main("create", "--output-dir", str(arena), "--defaults", "svc")
    assert code == 128 + signum
    name = signal.Signals(signum).name
    assert err == f"newstack: interrupted by {name}; {arena / 'svc'} is complete\n"
    assert settle(arena.parent, snap, 0, err, "signal", arena / "svc", "svc") == "created"


def losing_the_interrupt(signum):
    """What CPython's import machinery can do when a signal handler raises mid-import: the
    handler's exception is replaced by another one, with no trace of it (seen: TypeError
    'expected a message argument', from PyErr_SetImportError)."""
    def lossy(*args, **kwargs):
        lost = False
        try:
            os.kill(os.getpid(), signum)
            time.sleep(0.01)
        except BaseException:  # noqa: BLE001 - the Interrupted the handler raised
            lost = True
        if lost:
            raise TypeError("expected a message argument")
    return lossy


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("when", ["rendering", "after"])
def test_an_interrupt_replaced_by_another_error_is_still_an_interrupt(arena, monkeypatch,
                                                                      signum, when):
    if when == "rendering":
        real = pathlib.Path.write_bytes
        lossy = losing_the_interrupt(signum)
        calls = []

        def write_bytes(self, data):
            calls.append(self)
            if len(calls) == 3:
                lossy()
            return real(self, data)

        monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
    else:  # while the next steps are printed, once the project is in place
        monkeypatch.setattr(render, "read_answers", losing_the_interrupt(signum))
    before = snapshot(arena.parent)
    code, _, err = run_main("create", "--output-dir", str(arena), "--defaults", "svc")
    name = signal.Signals(signum).name
    assert code == 128 + signum
    if when == "rendering":
        assert err == f"newstack: interrupted by {name}; nothing was written\n"
        assert settle(arena.parent, before, code, err, "signal") == "refused"
    else:
        assert err == f"newstack: interrupted by {name}\n"
        assert settle(arena.parent, before, 0, err, "signal", arena / "svc") == "created"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_template_copy_is_removed_leaves_no_copy(arena, monkeypatch, signum):
    """Where copier cannot be told that newstack's git checkout is a plain directory (see
    fast_copier), newstack renders from a copy of its template in the temporary directory: an
    interrupt while that copy is removed must not leave half of it there either."""
    monkeypatch.setattr(fast_copier, "renders_in_place", lambda: False)
    tmp = arena.parent / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        if Path(path).name.startswith("newstack-template-"):
            next(Path(path).rglob("*.jinja")).unlink()
            os.kill(os.getpid(), signum)
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    before = snapshot(arena.parent)
    code, _, err = run_main("create", "--output-dir", str(arena), "--defaults", "svc")
    assert code == 128 + signum
    assert [p.name for p in tmp.iterdir() if p.name.startswith("newstack-")] == []
    assert settle(arena.parent, before, code, err, "signal") == "refused"


DELAYS = [0.0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_at_any_moment_leaves_the_whole_project_or_nothing(arena, signum):
    """`newstack create` as a subprocess (its own process group, as on a terminal), the
    signal sent to the group at several delays after the staging directory appears: before
    the rendering, during it, during the move and after. Every time: the complete project or
    nothing, and no staging directory left."""
    outcomes = Counter()
    for delay in DELAYS:
        shutil.rmtree(arena / "svc", ignore_errors=True)
        before = snapshot(arena.parent)
        process = subprocess.Popen(
            [*NEWSTACK, "create", "--output-dir", str(arena), "--framework", "django",
             "--protocol", "asgi", "--target", "prod", "svc"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        began = time.monotonic()
        while not any(arena.glob(".svc.newstack-*")) and process.poll() is None:
            assert time.monotonic() - began < 60
            time.sleep(0.002)
        time.sleep(delay)
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
        _, err = process.communicate(timeout=60)
        created = (arena / "svc").exists()  # then settle() checks that it is complete
        outcome = settle(arena.parent, before, 0 if created else process.returncode, err,
                         "signal", arena / "svc", "svc", "django-asgi-prod")
        outcomes[outcome] += 1
        if outcome == "refused":
            assert process.returncode == 128 + signum and one_line(err), (delay, err)
            assert "nothing was written" in err
        else:  # the signal came after the move: the project is whole, whatever the exit says
            assert process.returncode in (0, 128 + signum, -signum), (delay, err)
    assert outcomes["refused"] >= 1  # the sweep did interrupt generation mid-way


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("moment", ["clone", "cleanup"])
def test_a_signal_during_create_from_a_template_leaves_no_clone(template_repo, arena,
                                                                 monkeypatch, signum, moment):
    """copier clones a --template into TMPDIR: a signal right after the clone, or while copier
    removes it, left `copier._vcs.clone.*` behind (0.7-4.6 MB each) though stderr said
    "nothing was written"."""
    import copier._template

    tmp = arena.parent / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    name = "clone" if moment == "clone" else "rmtree"
    real, sent = getattr(copier._template, name), []

    def interrupted(*args, **kwargs):  # once: a third signal would end the process at once
        result = real(*args, **kwargs) if moment == "clone" else None
        if not sent:
            sent.append(os.kill(os.getpid(), signum))
        return result if moment == "clone" else real(*args, **kwargs)

    monkeypatch.setattr(copier._template, name, interrupted)
    before = snapshot(arena.parent)
    code, _, err = run_main("create", "--output-dir", str(arena), "--defaults", "--template",
                            str(template_repo), "--vcs-ref", "HEAD", "svc")
    assert code == 128 + signum, err
    assert err == f"newstack: interrupted by {signal.Signals(signum).name}; nothing was written\n"
    assert list(tmp.iterdir()) == []
    assert settle(arena.parent, before, code, err, "signal") == "refused"


def test_a_full_tmpdir_is_not_blamed_on_the_destination(arena, monkeypatch):
    tmp = arena.parent / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    real = pathlib.Path.write_bytes

    def full(self, data):  # copier writes into the temporary directory: no room there
        if self.is_relative_to(tmp):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data)

    monkeypatch.setattr(render, "private_tempdir", _private_tempdir_with_a_file(tmp))
    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    before = snapshot(arena.parent)
    code, _, err = run_main("create", "--output-dir", str(arena), "--defaults", "svc")
    assert code == 1
    assert err == (f"newstack: error: could not write a temporary file in {tmp}: No space left "
                   "on device (set TMPDIR to a directory with room; nothing was written)\n")
    assert settle(arena.parent, before, code, err, "tmpdir") == "refused"


def _private_tempdir_with_a_file(tmp):
    """render's private_tempdir, whose first write (as copier's would) lands in TMPDIR."""
    from newstack.interrupts import private_tempdir

    @contextmanager
    def writing():
        with private_tempdir() as root:
            (root / "copier-file").write_bytes(b"x")
            yield root

    return writing


def test_an_empty_destination_keeps_its_owner_and_mode(arena):
    dest = arena / "svc"
    dest.mkdir(mode=0o750)
    dest.chmod(0o750)  # whatever the umask
    if os.geteuid() == 0:
        os.chown(dest, 65534, 65534)  # nobody's, as another user's directory would be
    was = dest.stat()
    code, _, err = run_main("create", "--output-dir", str(arena), "--defaults", "svc")
    assert code == 0, err
    now = dest.stat()
    assert (now.st_mode, now.st_uid, now.st_gid) == (was.st_mode, was.st_uid, was.st_gid)
    assert (dest / "pyproject.toml").is_file()
