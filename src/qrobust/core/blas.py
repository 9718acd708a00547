"""Intel MKL's matrix products made to give the same bits at every thread count.

Torch on x86 computes a dense layer's product (``addmm``, ``mm``) with Intel MKL, which by default
splits a product's reduction over its threads, so that one thread and two sum in different orders.
Measured on an Intel Xeon (AVX-512, AMX) on 2026-12-02: LeNet's 800 -> 128 layer on 100 rows differs in
the last bits between one thread and two, and with it the input gradient and every Linf PGD set crafted
on the float LeNet (the convolutions, which oneDNN splits over their outputs, did not differ; on an AMD
EPYC the products did not either). A stage runs its jobs at one thread each over the cores, and a single
job on every thread (``qrobust.workers``), and training runs on every thread, so without this the study's
bytes would depend on how many cores the machine has.

MKL's strict conditional numerical reproducibility (``MKL_CBWR=AUTO,STRICT``: the code path MKL picks for
this CPU, with a reduction order that does not depend on the thread count) removes that, for about 5% of
the product's speed at two threads (LeNet's dense layer, 100 rows: 105 -> 110 us). MKL reads the variable
at its first call, so a stage sets it before it computes anything (``errors.run_stage``), and spawned
workers inherit it. A value already set is kept: ``MKL_CBWR=AVX2,STRICT``, for one, takes the same code
path on every AVX2 CPU as well.
"""

from __future__ import annotations

import os

VARIABLE = "MKL_CBWR"
THREAD_INVARIANT = "AUTO,STRICT"


def thread_invariant_products() -> str:
    """Ask MKL for products whose bits do not depend on the thread count, unless ``MKL_CBWR`` is set
    already; returns the mode in force. Idempotent; must run before the process's first product."""
    return os.environ.setdefault(VARIABLE, THREAD_INVARIANT)
