"""newstack's shortcuts through copier (fast_copier) give the projects copier gives alone, and
each one steps aside, leaving copier's own way, when what it relies on is gone."""

from __future__ import annotations

import os
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest
from jinja2 import FileSystemLoader
from jinja2.sandbox import SandboxedEnvironment

from newstack import fast_copier, render
from newstack.render import Answers, generate

from .conftest import REPO, run, tree

PROMPTING = ("questionary", "prompt_toolkit", "pygments.lexers.data")


def python(code: str, tmp_path: Path) -> str:
    """Run `code` in a fresh interpreter (nothing imported yet), with its own cache."""
    result = run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                 env={"XDG_CACHE_HOME": str(tmp_path / "cache"),
                      "PYTHONPATH": str(REPO / "generator")})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def files(root: Path) -> dict[str, tuple[bytes, int]]:
    return {name: ((root / name).read_bytes(), stat.S_IMODE((root / name).stat().st_mode))
            for name in tree(root)}


def test_the_installed_copier_is_built_as_the_shortcuts_expect():
    fast_copier.import_copier(interactive=False)
    assert fast_copier.hooks_fit()
    assert fast_copier.renders_in_place()


def test_a_run_that_asks_nothing_imports_no_prompt_library(tmp_path):
    loaded = python(f"""
        import sys
        from pathlib import Path
        from newstack.render import Answers, generate
        generate(Answers("shop", "fastapi", "asgi", "prod"), Path("shop"))
        import copier._user_data
        print(sorted(n for n in sys.modules if n.startswith({PROMPTING!r})),
              copier._user_data.Choice.__module__)
    """, tmp_path)
    assert loaded == "[] newstack.fast_copier"
    assert (tmp_path / "shop" / "pyproject.toml").is_file()


def test_if_copier_needs_more_from_them_it_is_imported_the_usual_way(tmp_path):
    loaded = python("""
        from pathlib import Path
        from newstack import fast_copier
        from newstack.render import Answers, generate
        fast_copier.DEFERRED["questionary.prompts.common"] = ()  # as if copier wanted more
        generate(Answers("shop", "flask", "wsgi", "dev"), Path("shop"))
        import copier._user_data
        print(copier._user_data.Choice.__module__)
    """, tmp_path)
    assert loaded == "questionary.prompts.common"
    assert (tmp_path / "shop" / "pyproject.toml").is_file()


def test_once_a_run_asks_the_choices_are_questionary_s_own(tmp_path):
    made = python("""
        from newstack import fast_copier
        fast_copier.import_copier(interactive=False)
        from copier._user_data import Choice
        before = Choice("Flask", "flask", disabled="")
        fast_copier.import_copier(interactive=True)
        after = Choice("Flask", "flask", disabled="")
        print(type(before).__module__, type(after).__module__, after.value, after.title)
    """, tmp_path)
    assert made == "newstack.fast_copier questionary.prompts.common flask Flask"


def test_without_the_shortcuts_the_project_is_the_same(tmp_path, monkeypatch):
    answers = Answers("shop", "django", "asgi", "prod")
    copies = []
    real_copytree = render.shutil.copytree
    monkeypatch.setattr(render.shutil, "copytree",
                        lambda *a, **k: copies.append(a) or real_copytree(*a, **k))
    fast = generate(answers, tmp_path / "fast")
    assert not copies  # the checkout rendered in place
    copier = fast_copier.import_copier(interactive=False)
    assert copier._main.Worker.__module__ == "copier._main"  # put back after the run
    monkeypatch.setattr(fast_copier, "hooks_fit", lambda: False)
    slow = generate(answers, tmp_path / "slow")
    assert copies  # the template copied, not rendered in place
    assert files(fast) == files(slow)


def environment(calls: list[str], root: Path, **options) -> SandboxedEnvironment:
    """A Jinja environment keeping compiled code under `root`; `calls` gets each source that
    Jinja itself compiles."""
    env = SandboxedEnvironment(keep_trailing_newline=True, **options)
    real = env.compile

    def counting(source, *args, **kwargs):
        calls.append(source)
        return real(source, *args, **kwargs)

    env.compile = counting
    fast_copier.cache_compiled(env, root)
    return env


def test_compiled_code_is_kept_between_runs_for_the_same_environment_only(tmp_path):
    calls: list[str] = []
    assert environment(calls, tmp_path).from_string("{{ x }}!").render(x=1) == "1!"
    assert environment(calls, tmp_path).from_string("{{ x }}!").render(x=2) == "2!"
    assert calls == ["{{ x }}!"]  # compiled once, read back by the second "run"
    env = environment(calls, tmp_path)
    for _ in range(3):
        env.from_string("{{ y }}")
    assert calls == ["{{ x }}!", "{{ y }}"]  # and once per run at most
    assert environment(calls, tmp_path, trim_blocks=True).from_string("{{ x }}!").render(x=3)
    assert calls[-1] == "{{ x }}!"  # another environment: compiled again
    assert len(list(tmp_path.glob("jinja-*"))) == 2


def test_code_read_back_names_the_template_it_was_read_for(tmp_path):
    for place in ("one", "two"):
        (tmp_path / place).mkdir()
        (tmp_path / place / "t.jinja").write_text("{% macro m() %}{{ 1 // 0 }}{% endmacro %}"
                                                  "{{ m() }}")
    calls: list[str] = []
    for place in ("one", "two"):
        env = environment(calls, tmp_path / "cache")
        env.loader = FileSystemLoader(str(tmp_path / place))
        template = env.get_template("t.jinja")
        assert template.filename == str(tmp_path / place / "t.jinja")
        with pytest.raises(ZeroDivisionError) as raised:
            template.render()
        assert raised.traceback[-1].path == tmp_path / place / "t.jinja"
    assert len(calls) == 1


def test_a_damaged_entry_is_compiled_again(tmp_path):
    calls: list[str] = []
    environment(calls, tmp_path).from_string("{{ x }}")
    for entry in tmp_path.glob("jinja-*/*"):
        entry.write_bytes(b"\xe3 not marshal")
    assert environment(calls, tmp_path).from_string("{{ x }}").render(x=5) == "5"
    assert len(calls) == 2


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_cache_directory_others_can_write_to_is_not_read(tmp_path):
    calls: list[str] = []
    env = environment(calls, tmp_path)
    directory = tmp_path / f"jinja-{fast_copier.fingerprint(env)[:32]}"
    directory.mkdir()
    directory.chmod(0o777)
    env.from_string("{{ x }}")
    environment(calls, tmp_path).from_string("{{ x }}")
    assert len(calls) == 2 and not list(directory.iterdir())



def test_entries_not_written_for_a_long_time_are_removed_when_new_ones_are(tmp_path):
    calls: list[str] = []
    kept = environment(calls, tmp_path)
    kept.from_string("{{ old }}")
    environment(calls, tmp_path, trim_blocks=True).from_string("{{ gone }}")
    old = time.time() - fast_copier.STALE - 60
    for path in [*tmp_path.glob("jinja-*/*"), *tmp_path.glob("jinja-*")]:
        os.utime(path, (old, old))
    environment(calls, tmp_path).from_string("{{ new }}")  # a write: prunes
    directory = tmp_path / f"jinja-{fast_copier.fingerprint(kept)[:32]}"
    assert list(tmp_path.glob("jinja-*")) == [directory]
    assert len(list(directory.iterdir())) == 1


def test_without_a_home_directory_compiled_code_is_kept_in_memory(tmp_path):
    made = python("""
        import os, pwd
        from pathlib import Path
        pwd.getpwuid = lambda uid: (_ for _ in ()).throw(KeyError(uid))
        del os.environ["HOME"], os.environ["XDG_CACHE_HOME"]
        from newstack.render import Answers, generate
        generate(Answers("shop", "flask", "wsgi", "dev"), Path("shop"))
        print(sorted(p.name for p in Path().iterdir()))
    """, tmp_path)
    assert made == "['shop']"
