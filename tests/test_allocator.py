"""qrobust.pipeline.allocator: a stage's process reuses the memory it frees instead of mapping fresh pages,
and computes the same bits."""

from __future__ import annotations

import platform

import pytest

from tests.conftest import run_probe

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's thresholds are glibc's")

# Minor page faults per forward plus input-gradient pass of a small CNN on 100 images (5 MB of
# activations), after warm-up, and the gradient's bytes. ``how`` says what the process runs first.
_PROBE = """
import hashlib, resource
import torch
from torch.nn import functional as F

if how == "kept":
    from qrobust.pipeline.allocator import keep_freed_memory
    assert keep_freed_memory() and keep_freed_memory()
torch.set_num_threads(1)
torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Conv2d(1, 16, 5, padding=2), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(16 * 28 * 28, 10)
).requires_grad_(False)
x = torch.rand(100, 1, 28, 28, requires_grad=True)
y = torch.arange(100) % 10

def grad():
    return torch.autograd.grad(F.cross_entropy(model(x), y), x)[0]

for _ in range(5):
    grad()
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    g = grad()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / 20
print(json.dumps({"faults": faults, "digest": hashlib.sha256(g.numpy().tobytes()).hexdigest()}))
"""


def _probe(how: str) -> dict:
    return run_probe(_PROBE, how, unset=("MALLOC_",))  # glibc's own defaults


@pytest.fixture(scope="module")
def default() -> dict:
    return _probe("default")


@pytest.mark.parametrize("how", ["kept", "run_stage", "worker"])
def test_a_stage_process_reuses_freed_memory_with_the_same_bits(default: dict, how: str) -> None:
    kept = _probe(how)
    assert default["faults"] > 500, f"glibc's defaults map fresh pages every pass here: {default}"
    assert kept["faults"] < default["faults"] / 10, (how, kept, default)
    assert kept["digest"] == default["digest"]
