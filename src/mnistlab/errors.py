"""Errors that end a run with one readable line instead of a traceback."""


class MnistlabError(Exception):
    """Base class: the message alone tells the user what is wrong and how to fix it."""


class ConfigError(MnistlabError, ValueError):
    """A configuration value is invalid; raised before any data is loaded or trained."""


class DataError(MnistlabError, RuntimeError):
    """The data set files are missing, unreadable or corrupt."""


class DivergedError(MnistlabError, RuntimeError):
    """Training produced a non-finite loss."""
