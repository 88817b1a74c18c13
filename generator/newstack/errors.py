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

    # The first signal the CLI's handler saw, if any. CPython can replace the exception a
    # handler raises by another one (one raised in the middle of an import, for instance):
    # whatever then propagates is taken for the interrupt it hides.
    received: int | None = None

    def __init__(self, signum: int, outcome: str = "") -> None:
        super().__init__(signum)
        self.signum = signum
        self.outcome = outcome  # what was left behind, when known: "nothing was written", ...

    @classmethod
    def behind(cls, error: BaseException | None) -> Interrupted | None:
        """The interrupt that `error` is, or that was being handled when `error` was raised
        (cleanup on the way out can fail in turn, and must not hide the interrupt), or the
        one the CLI's handler saw and that got lost on the way."""
        seen, first = set(), error
        while error is not None and id(error) not in seen:
            if isinstance(error, cls):
                return error
            seen.add(id(error))
            error = error.__cause__ or error.__context__
        if cls.received is not None and isinstance(first, Exception):
            return cls(cls.received)
        return None

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
