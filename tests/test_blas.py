"""qrobust.core.blas: a stage's and a worker's matrix products give the same bits at one thread as at two."""

from __future__ import annotations

import pytest

from tests.conftest import run_probe

# A dense layer's product (LeNet's 800 -> 128 on 100 rows, whose bits differed between one thread and
# two on an Intel Xeon without the setting), at one thread and at two, after ``how`` set the process up.
_PROBE = """
import hashlib, os
import torch

torch.manual_seed(0)
weight, bias, x = torch.randn(128, 800), torch.randn(128), torch.randn(100, 800)
digests = {}
for threads in (1, 2):
    torch.set_num_threads(threads)
    digests[threads] = hashlib.sha256(torch.addmm(bias, x, weight.t()).numpy().tobytes()).hexdigest()
print(json.dumps({"one": digests[1], "two": digests[2], "mode": os.environ.get("MKL_CBWR")}))
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
