"""Intel MKL's matrix products made to give the same bits at every thread count.

Torch on x86 computes a dense layer's product (``addmm``, ``mm``) with Intel MKL, which by default
splits a product's reduction over its threads, so that one thread and two sum in different orders.
Measured on an Intel Xeon (AVX-512, AMX) on 2026-12-02: LeNet's 800 -> 128 layer on 100 rows differs in
the last bits between one thread and two, and with it the input gradient and every Linf PGD set crafted
on the float LeNet (the convolutions, which oneDNN splits over their outputs, did not differ; on an AMD
EPYC the products did not either). A stage runs its jobs at one thread each over the cores, and a single
job on every thread (``qrobust.pipeline.workers``), and training runs on every thread, so without this the study's
bytes would depend on how many cores the machine has.

MKL's strict conditional numerical reproducibility (``MKL_CBWR=AUTO,STRICT``: the code path MKL picks for
this CPU, with a reduction order that does not depend on the thread count) removes that, for about 5% of
the product's speed at two threads (LeNet's dense layer, 100 rows: 105 -> 110 us). MKL reads the variable
at its first call, so a stage sets it before it computes anything (``process.run_stage``), and spawned
workers inherit it. A value already set is kept: ``MKL_CBWR=AVX2,STRICT``, for one, takes the same code
path on every AVX2 CPU as well.

What it does not cover, measured on an AMD EPYC (AVX2, torch 2.14.1's MKL) on 2026-12-03 by
``benchmarks/blas_shapes.py`` (728 shapes: rows M 1..250, outputs N 4..128, inputs K 8..800): the forward
product of 2 to 12 rows into at most 16 outputs still differs between one thread and two in this mode
(42 shapes, every K from 64 up), and so do gradients through layers of 16 inputs (26 shapes). Of the
study's dense layers (K 800, 128 or 64 into N 128 or 10) that leaves one case: the 10-logit layer on a
batch of 2 to 12 rows (a batch's remainder, or an attack's last few unfinished samples), which a job
running on every thread computes in a core-count-dependent order on such a CPU. The other modes do no
better there: ``AVX2,STRICT`` gives the same 42 + 26, ``COMPATIBLE,STRICT`` 179 at half the speed, and
with the variable unset the weight gradient of every 10-output layer differs at every batch size (77
shapes), which would reach every trained model. Intel documents strict reproducibility of products for
its own AVX2 and AVX-512 code paths; torch's thread setting overrides MKL's per-domain thread count, so
nothing short of one thread for the whole process holds those few products to one order. Between
machines, share outputs through the DVC remote rather than re-making them (README, "Sharing between
machines").
"""

from __future__ import annotations

import os

VARIABLE = "MKL_CBWR"
THREAD_INVARIANT = "AUTO,STRICT"


def thread_invariant_products() -> str:
    """Ask MKL for products whose bits do not depend on the thread count, unless ``MKL_CBWR`` is set
    already; returns the mode in force. Idempotent; must run before the process's first product."""
    return os.environ.setdefault(VARIABLE, THREAD_INVARIANT)
