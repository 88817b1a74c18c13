"""How long `newstack create` takes beside `django-admin startproject` (and `newstack --help`).

    python benchmarks/create_speed.py [RUNS]

Runs the real commands in fresh directories RUNS times each (default 9), alternating them
(create, startproject, --help, create, ...) so that both see the same load on a shared,
noisy machine, and prints the median of each and the ratio create / startproject. Compare
ratios within one run, and repeat the run: the absolute figures move with the machine's load.
A measuring command, not a test: it never fails on a figure.

newstack's own modules are byte-compiled first, as pip does when it installs the wheel (and
django's are): with PYTHONDONTWRITEBYTECODE set, an editable checkout would compile them from
source on every run (about 15 ms here).
"""

from __future__ import annotations

import compileall
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def byte_compile_newstack() -> Path:
    """The package `newstack` runs from here (PYTHONPATH applies), byte-compiled."""
    where = subprocess.run([sys.executable, "-c", "import newstack; print(newstack.__file__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    package = Path(where).parent
    compileall.compile_dir(package, quiet=1)
    return package


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    package = byte_compile_newstack()
    newstack = str(BIN / "newstack")
    django_admin = shutil.which("django-admin", path=str(BIN)) or shutil.which("django-admin")
    commands: dict[str, Callable[[int], list[str]]] = {
        "newstack create fastapi --protocol asgi --target prod": lambda i: [
            newstack, "create", f"p{i}", "--framework", "fastapi", "--protocol", "asgi",
            "--target", "prod"],
    }
    if django_admin:
        commands["django-admin startproject"] = lambda i: [django_admin, "startproject", f"d{i}"]
    commands["newstack --help"] = lambda i: [newstack, "--help"]

    times: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs + 1):  # interleaved; round 0 warms the file cache and is dropped
            for name, argv in commands.items():
                took = timed(argv(i), Path(tmp))
                if i:
                    times[name].append(took)

    print(f"{runs} runs each, interleaved, Python {sys.version.split()[0]}, newstack from {package}")
    medians = {}
    for name, values in times.items():
        medians[name] = statistics.median(values)
        print(f"{name:<56} median {medians[name]:.3f} s   "
              f"min {min(values):.3f}   max {max(values):.3f}")
    create = medians["newstack create fastapi --protocol asgi --target prod"]
    if django_admin:
        print(f"create / startproject: {create / medians['django-admin startproject']:.2f}x")
    else:
        print("django-admin not found: no ratio")


if __name__ == "__main__":
    main()
