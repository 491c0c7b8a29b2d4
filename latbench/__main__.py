"""`python -m latbench` and the `latbench` command run the CLI."""

import sys

from latbench import faults


def main() -> None:
    faults.exit_quietly_on_interrupt()  # before the imports below: a Ctrl-C there is exit 130, not a traceback
    try:
        from latbench.cli import app
    except ModuleNotFoundError as exc:  # an interpreter without latbench's dependencies: one line, not a traceback
        if exc.name is None or exc.name.split(".")[0] == "latbench":
            raise
        sys.stderr.write(f"error: latbench needs {exc.name!r}, which this Python ({sys.executable}) lacks; install "
                         "latbench with its dependencies (README: Quick start), or use the interpreter it is installed "
                         "in\n")
        raise SystemExit(2) from None
    try:
        app()
    finally:  # everything is written: a signal during shutdown kills at once (128 + N), never a finalizer traceback
        faults.default_stop_signals()


if __name__ == "__main__":
    main()
