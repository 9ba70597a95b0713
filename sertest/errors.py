"""Exceptions with messages that name the file, row, column or option at fault."""


class SertestError(Exception):
    """Base class of every error sertest raises on purpose."""


class UsageError(SertestError):
    """Bad command-line option, suite key or argument (exit code 2)."""


class DataError(SertestError):
    """A manifest, database or folder that cannot be used (exit code 2)."""


class AudioError(SertestError):
    """One audio file could not be decoded or is unusable (recorded per item)."""


class ModelError(SertestError):
    """A model could not be loaded or produced unusable output."""
