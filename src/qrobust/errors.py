"""Errors a user can act on: each names the key, the value and what is allowed."""


class ConfigError(ValueError):
    """A parameter is missing, unknown or out of range."""


class DataError(RuntimeError):
    """Input data is missing or does not match its pinned checksum."""


class VerificationError(RuntimeError):
    """A produced artefact disagrees with the model it was made from."""
