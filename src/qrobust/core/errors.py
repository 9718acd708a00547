"""Errors a user can act on: each names the key, the value and what is allowed."""

from qrobust.core.allocator import keep_freed_memory
from qrobust.core.blas import thread_invariant_products


class QrobustError(Exception):
    """Base of the errors a stage reports as one line and a non-zero exit, without a traceback."""


class ConfigError(QrobustError, ValueError):
    """A parameter is missing, unknown or out of range."""


class DataError(QrobustError, RuntimeError):
    """Input data is missing or does not match its pinned checksum."""


class VerificationError(QrobustError, RuntimeError):
    """A produced artefact disagrees with the model it was made from."""


def run_stage(stage: str, main: object, *args: object) -> None:
    """Run a stage's ``main`` in a process that keeps the memory it frees (``allocator``) and whose matrix
    products give the same bits at any thread count (``blas``); a user-facing error becomes
    ``<stage>: <message>`` and exit status 1."""
    import sys

    keep_freed_memory()
    thread_invariant_products()
    try:
        main(*args)  # type: ignore[operator]
    except QrobustError as error:
        sys.exit(f"{stage}: {error}")
