"""Process set-up of every stage and worker: memory kept, thread-invariant products, errors as one line."""

from qrobust.pipeline.allocator import keep_freed_memory
from qrobust.pipeline.blas import thread_invariant_products
from qrobust.pipeline.errors import QrobustError


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
