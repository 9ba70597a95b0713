"""Exceptions with messages that name the file, row, column or option at fault."""


class SertestError(Exception):
    """Base class of every error sertest raises on purpose."""


class UsageError(SertestError):
    """Bad command-line option, suite key or argument (exit code 2)."""


class DataError(SertestError):
    """A manifest, database or folder that cannot be used (exit code 2)."""


class OutputError(SertestError):
    """The output folder cannot be written: disk full, read-only, not a folder (exit code 2)."""


class AudioError(SertestError):
    """One audio file could not be decoded or is unusable (recorded per item)."""


class ModelError(SertestError):
    """A model could not be loaded or produced unusable output."""


#: exit codes of the command line (README, "Exit codes")
EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
#: environment variable naming the folder of error logs (default: TMPDIR/sertest-logs)
LOG_DIR_VARIABLE = "SERTEST_LOG_DIR"


def error_log_dir() -> str:
    """Where tracebacks of internal errors go: ``$SERTEST_LOG_DIR``, else
    ``<temporary folder>/sertest-logs``."""
    import os
    import tempfile

    return os.environ.get(LOG_DIR_VARIABLE) or os.path.join(tempfile.gettempdir(), "sertest-logs")


def write_error_log(text: str) -> str | None:
    """Write ``text`` (a traceback) to a new ``error-YYYYmmdd-HHMMSS-PID.log`` in
    :func:`error_log_dir`; returns its path, or ``None`` if it cannot be written."""
    import os
    import time

    try:
        folder = error_log_dir()
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, time.strftime("error-%Y%m%d-%H%M%S") + f"-{os.getpid()}.log")
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
        return path
    except OSError:
        return None


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` (at most ``limit`` characters)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    if len(first) > limit:
        first = first[:limit - 1] + "…"
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
