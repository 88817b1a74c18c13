"""Build hook: the wheel carries the template's released versions as a git bundle
(generator/newstack/bundle.py says what it holds), beside the template it renders from. An
sdist carries the bundle too (at its root), so that a wheel built from it, with no git history
at hand, carries the same versions."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class BundleHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self.staged: str | None = None
        if self.target_name not in ("wheel", "sdist") or version == "editable":  # the checkout's
            return
        sys.path.insert(0, str(Path(self.root, "generator")))
        from newstack import bundle

        where = f"newstack/template/{bundle.NAME}" if self.target_name == "wheel" else bundle.NAME
        carried = Path(self.root, bundle.NAME)
        if carried.is_file() and not Path(self.root, ".git").exists():
            # an unpacked sdist: its bundle was built from the checkout, with the tags
            build_data["force_include"][str(carried)] = where
            return
        self.staged = tempfile.mkdtemp(prefix="newstack-build-")
        out = Path(self.staged, bundle.NAME)
        try:
            tags = bundle.build(Path(self.root), out)
        except bundle.BundleError as error:
            raise SystemExit(f"newstack: cannot build the {self.target_name}: {error}") from None
        self.app.display_info(f"newstack: template versions bundled: {', '.join(tags)}")
        build_data["force_include"][str(out)] = where

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self.staged is not None:
            shutil.rmtree(self.staged, ignore_errors=True)
