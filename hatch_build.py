"""Wheel build hook: the wheel carries the template's released versions as a git bundle
(generator/newstack/bundle.py says what it holds), beside the template it renders from."""

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
        if self.target_name != "wheel" or version == "editable":  # editable: the checkout's
            return
        sys.path.insert(0, str(Path(self.root, "generator")))
        from newstack import bundle

        self.staged = tempfile.mkdtemp(prefix="newstack-wheel-")
        out = Path(self.staged, bundle.NAME)
        try:
            tags = bundle.build(Path(self.root), out)
        except bundle.BundleError as error:
            raise SystemExit(f"newstack: cannot build the wheel: {error}") from None
        self.app.display_info(f"newstack: template versions bundled: {', '.join(tags)}")
        build_data["force_include"][str(out)] = f"newstack/template/{bundle.NAME}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self.staged is not None:
            shutil.rmtree(self.staged, ignore_errors=True)
