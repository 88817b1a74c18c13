"""Regenerate what is derived from the table and committed: copier.yml and examples/.

Run `python -m newstack.sync` after changing the table, naming rules or templates.
"""

from __future__ import annotations

from . import copier_yml, render


def main() -> None:
    (render.TEMPLATE_ROOT / "copier.yml").write_text(copier_yml.render())
    render.write_examples()


if __name__ == "__main__":
    main()
