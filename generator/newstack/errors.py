"""One family of errors, printed at the CLI edge as one line with the exit code they carry."""

from __future__ import annotations


class NewstackError(Exception):
    """Something in the environment stopped newstack (unwritable directory, full disk, ...)."""

    exit_code = 1


class UsageError(NewstackError):
    """What the user asked for cannot be done: a bad name, option or destination."""

    exit_code = 2


class Interrupted(BaseException):
    """SIGINT, SIGTERM, SIGHUP or SIGQUIT arrived. A BaseException, like KeyboardInterrupt, so that no
    `except Exception` swallows it and every `finally` on the way out runs (the CLI installs a
    handler raising it for both signals; SIGTERM would otherwise end the process on the spot)."""

    def __init__(self, signum: int, outcome: str = "") -> None:
        super().__init__(signum)
        self.signum = signum
        self.outcome = outcome  # what was left behind, when known: "nothing was written", ...

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def command_failure(error: BaseException) -> str:
    """The one line that says why a command (git, through copier) failed: its `fatal:` line,
    else its last line, not the command line and its whole stderr."""
    text = getattr(error, "stderr", "") or str(error)
    lines = [line.strip(" |") for line in str(text).splitlines() if line.strip(" |")]
    return next((line for line in lines if line.startswith("fatal:")),
                lines[-1] if lines else repr(error))
