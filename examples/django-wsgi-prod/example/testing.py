"""`python manage.py test` runs the tests as `pytest` does.

The tests are pytest's (tests/, whose conftest.py sets Django up on a database of their own):
Django's own runner would find none of them and report "Ran 0 tests ... OK".
"""

import subprocess  # nosec B404: runs pytest with this interpreter
import sys


class PytestRunner:
    """Django's TEST_RUNNER (settings.py). pytest runs in a process of its own: conftest.py
    chooses the tests' database before Django reads its settings, which manage.py has done."""

    def __init__(self, verbosity: int = 1, failfast: bool = False, **options: object) -> None:
        self.verbosity, self.failfast = verbosity, failfast

    def run_tests(self, test_labels: list[str], **options: object) -> int:
        """Runs pytest on `test_labels` (pytest's: files, directories, file::test), or on every
        test; returns its exit status, which manage.py turns into its own."""
        argv = [sys.executable, "-m", "pytest", *test_labels]
        if self.failfast:
            argv.append("--exitfirst")
        if self.verbosity != 1:
            argv.append("--quiet" if self.verbosity == 0 else "--verbose")
        return subprocess.call(argv)  # noqa: S603  # nosec B603: this interpreter, the caller's arguments
