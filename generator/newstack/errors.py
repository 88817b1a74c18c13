"""One family of errors, printed at the CLI edge as one line with the exit code they carry."""

from __future__ import annotations


class NewstackError(Exception):
    """Something in the environment stopped newstack (unwritable directory, full disk, ...)."""

    exit_code = 1


class UsageError(NewstackError):
    """What the user asked for cannot be done: a bad name, option or destination."""

    exit_code = 2


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, like KeyboardInterrupt, so that no
    `except Exception` swallows it and every `finally` on the way out runs (the CLI installs a
    handler raising it for both signals; SIGTERM would otherwise end the process on the spot)."""

    def __init__(self, signum: int, outcome: str = "") -> None:
        super().__init__(signum)
        self.signum = signum
        self.outcome = outcome  # what was left behind, when known: "nothing was written", ...

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
