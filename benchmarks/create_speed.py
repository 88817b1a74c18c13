"""How long `newstack --help` and `newstack create` take, beside `django-admin startproject`.

    python benchmarks/create_speed.py [RUNS]

Prints the median and spread of each over RUNS runs (default 15) of the real commands in fresh
directories. Machines here are shared and noisy: compare the ratios within one run.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(name: str, make_argv, runs: int) -> float:
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs + 1):
            times.append(timed(make_argv(i), Path(tmp)))
    times = times[1:]  # the first run warms the file cache
    median = statistics.median(times)
    print(f"{name:<44} median {median:.3f} s   min {min(times):.3f}   max {max(times):.3f}")
    return median


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    newstack = str(BIN / "newstack")
    print(f"{runs} runs each, Python {sys.version.split()[0]}")
    help_median = measure("newstack --help", lambda i: [newstack, "--help"], runs)
    create = measure(
        "newstack create (FastAPI / ASGI / prod)",
        lambda i: [newstack, "create", f"p{i}", "--framework", "fastapi", "--protocol", "asgi",
                   "--target", "prod"],
        runs,
    )
    if shutil.which("django-admin", path=str(BIN)):
        django = measure("django-admin startproject",
                         lambda i: [str(BIN / "django-admin"), "startproject", f"d{i}"], runs)
        print(f"newstack create / django-admin startproject: {create / django:.2f}x")
    print(f"targets: --help <= 0.15 s ({help_median:.3f}), create <= 0.5 s ({create:.3f})")


if __name__ == "__main__":
    main()
