"""One family of errors, printed at the CLI edge as one line with the exit code they carry."""


class NewstackError(Exception):
    """Something in the environment stopped newstack (unwritable directory, full disk, ...)."""

    exit_code = 1


class UsageError(NewstackError):
    """What the user asked for cannot be done: a bad name, option or destination."""

    exit_code = 2
