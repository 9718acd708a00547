"""qrobust.pipeline.blas: a stage's and a worker's matrix products give the same bits at one thread as at two."""

from __future__ import annotations

import pytest

from tests.conftest import run_probe

# The study's dense layers (inputs K -> outputs N) at the row counts its stages use (M: training's batch
# of 128, a deployed INC runtime's batch of 64, an attack's batch of 250, and the 100 rows whose LeNet
# 800 -> 128 product differed between one thread and two on an Intel Xeon without the setting): the
# forward product and both gradients, at one thread and at two, after ``how`` set the process up.
# (A batch's last 2 to 12 rows into the 10-logit layer still differ on an AMD EPYC: ``pipeline.blas``.)
SHAPES = [(100, 128, 800), (128, 128, 800), (128, 10, 128), (64, 10, 128), (250, 10, 64), (250, 10, 128)]
_PROBE = f"""
import hashlib, os
import torch

digests = {{}}
for threads in (1, 2):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    digest = hashlib.sha256()
    for m, n, k in {SHAPES}:
        x, weight, bias, grad = torch.randn(m, k), torch.randn(n, k), torch.randn(n), torch.randn(m, n)
        for product in (torch.addmm(bias, x, weight.t()), grad @ weight, grad.t() @ x):
            digest.update(product.numpy().tobytes())
    digests[threads] = digest.hexdigest()
print(json.dumps({{"one": digests[1], "two": digests[2], "mode": os.environ.get("MKL_CBWR")}}))
"""


def _probe(how: str, **env: str) -> dict:
    return run_probe(_PROBE, how, unset=("MKL_CBWR", "MKL_NUM_THREADS", "OMP_NUM_THREADS"), **env)


@pytest.mark.parametrize("how", ["run_stage", "worker"])
def test_products_have_the_same_bits_at_one_thread_as_at_two(how: str) -> None:
    probe = _probe(how)
    assert probe["mode"] == "AUTO,STRICT"
    assert probe["one"] == probe["two"]


def test_a_mode_the_user_set_is_kept() -> None:
    probe = _probe("run_stage", MKL_CBWR="AVX2,STRICT")
    assert probe["mode"] == "AVX2,STRICT"
    assert probe["one"] == probe["two"]
