"""A stage's independent jobs spread over the machine's cores: one process per core, one thread each.

Torch's intra-op threads leave a core idle through every tensor below its parallel grain (32,768
elements: an attack's per-sample losses, norms and projections, a chunk of LeNet's dense layers, every
step of a late APGD batch). Measured on 2 cores, Linf PGD over the grid on 250 samples of each
float model: one thread runs a job 1.6 to 1.7x slower than two, so two one-thread processes finish
the same jobs about 1.2x sooner than one two-thread process (in the default study, 2026-12-02: Linf PGD
1.44x, AutoAttack 1.34x). The thread count leaves the float models' gradients and every deployed runtime's
logits bit for bit as they were (oneDNN and ONNX Runtime split convolutions and products over their
outputs, and ``pipeline.blas`` holds MKL's products, which torch's dense layers run, to one reduction order);
through a straight-through twin an element-wise kernel may round a last bit differently, which
DeepFool's shrinking batches pick up (1 to 4 of 200 samples by at most 6e-9).

The calling process is one of the workers, so a stage with a single job, or a machine with a single
core or a GPU, runs as it did without this module; the other workers are fresh (spawned) interpreters,
since a forked child of a process whose OpenMP pool has started can deadlock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TypeVar

import torch

from qrobust.pipeline.allocator import keep_freed_memory
from qrobust.pipeline.blas import thread_invariant_products

J = TypeVar("J")
R = TypeVar("R")


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0))


def worker_count(device: torch.device) -> int:
    """One worker per usable core on CPU; one on a GPU, which more processes would only share."""
    return usable_cpus() if device.type == "cpu" else 1


def _one_thread() -> None:
    """A child worker's set-up: one thread, and the stage's allocator and product settings
    (``pipeline.allocator``, ``pipeline.blas``; the variable is inherited from the stage, set again for a caller
    that is not one)."""
    keep_freed_memory()
    thread_invariant_products()
    torch.set_num_threads(1)


def run_jobs(fn: Callable[[J], R], jobs: Sequence[J], *, workers: int) -> list[R]:
    """``[fn(job) for job in jobs]``, computed by ``workers`` processes (this one among them), each job
    once, in whichever order the workers free up; results come back in the order of ``jobs``.

    ``fn`` must be importable by name (a module-level function) and its jobs and results picklable.
    A job that raises stops the others from being started and re-raises here.
    """
    if workers <= 1 or len(jobs) <= 1:
        return [fn(job) for job in jobs]
    import multiprocessing

    results: dict[int, R] = {}
    pending = iter(enumerate(jobs))
    lock = threading.Lock()
    failure: list[BaseException] = []

    def claim() -> tuple[int, J] | None:
        with lock:
            return None if failure else next(pending, None)

    def feed(pool: ProcessPoolExecutor) -> None:
        """Keep one job in flight per child process until none is left."""
        inflight: dict[Future[R], int] = {}

        def submit() -> None:
            item = claim()
            if item is not None:
                inflight[pool.submit(fn, item[1])] = item[0]

        for _ in range(workers - 1):
            submit()
        while inflight:
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            for future in done:
                index = inflight.pop(future)
                try:
                    results[index] = future.result()
                except BaseException as error:  # noqa: BLE001 - handed to the main thread, which re-raises it
                    with lock:
                        failure.append(error)
                submit()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers - 1, mp_context=context, initializer=_one_thread) as pool:
            feeder = threading.Thread(target=feed, args=(pool,), daemon=True)
            feeder.start()
            try:
                while (item := claim()) is not None:
                    results[item[0]] = fn(item[1])
            except BaseException as error:
                with lock:
                    failure.append(error)
            feeder.join()
    finally:
        torch.set_num_threads(threads)
    if failure:
        raise failure[0]
    return [results[i] for i in range(len(jobs))]
