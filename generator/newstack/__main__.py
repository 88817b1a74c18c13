"""`newstack` and `python -m newstack`.

cli.main turns SIGINT, SIGTERM, SIGHUP and SIGQUIT into one line and a clean unwind, but only
once the CLI is imported (typer and the table: ~60 ms). A signal arriving before then ends the process here
with the same line and exit code, not a KeyboardInterrupt traceback: nothing is written yet."""

import os
import signal
from types import FrameType


def main() -> None:
    def before_the_cli(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        os.write(2, f"newstack: interrupted by {name}; nothing was written\n".encode())
        os._exit(128 + signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, before_the_cli)
    from newstack.cli import main as run  # replaces both handlers before it does anything

    run()


if __name__ == "__main__":
    main()
