"""The wheel carries the template, so an installed newstack renders offline, the same files."""

from __future__ import annotations

import sys
import zipfile

from newstack.stacks import find_combination

from .conftest import REPO, answers_for, run, tree


def test_wheel_carries_the_template_and_renders_the_same_project(tmp_path, projects):
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                 str(REPO)], timeout=300)
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("newstack-*.whl")
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    packaged = unpacked / "newstack" / "template"
    assert (packaged / "copier.yml").read_bytes() == (REPO / "copier.yml").read_bytes()
    assert tree(packaged / "templates") == tree(REPO / "templates")

    answers = answers_for(find_combination("django-asgi-prod"))
    code = (
        "import sys; from pathlib import Path; from newstack import render;"
        f"assert render.TEMPLATE_ROOT == Path({str(packaged)!r}), render.TEMPLATE_ROOT;"
        f"render.generate(render.{answers!r}, Path(sys.argv[1]))"
    )
    made = run([sys.executable, "-c", code, str(tmp_path / "shop")],
               env={"PYTHONPATH": str(unpacked)})
    assert made.returncode == 0, made.stderr
    assert tree(tmp_path / "shop") == tree(projects["django-asgi-prod"])
