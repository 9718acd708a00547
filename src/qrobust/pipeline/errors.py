"""Errors a user can act on: each names the key, the value and what is allowed."""


class QrobustError(Exception):
    """Base of the errors a stage reports as one line and a non-zero exit, without a traceback."""


class ConfigError(QrobustError, ValueError):
    """A parameter is missing, unknown or out of range."""


class DataError(QrobustError, RuntimeError):
    """Input data is missing or does not match its pinned checksum."""


class VerificationError(QrobustError, RuntimeError):
    """A produced artefact disagrees with the model it was made from."""
