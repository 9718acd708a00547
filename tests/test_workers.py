"""qrobust.pipeline.workers: a stage's jobs over several processes give what one process gives, job for job."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from qrobust.pipeline.workers import run_jobs


def _pid_of(job: int) -> tuple[int, int]:
    import time

    time.sleep(0.05)  # long enough that both workers take jobs
    return job, os.getpid()


def _fails_on_three(job: int) -> int:
    if job == 3:
        raise ValueError(f"job {job} failed")
    return job


def _pgd_on_a_seeded_model(job: int) -> np.ndarray:
    """Linf PGD over a grid through the runner, on a small CNN made from the job's seed."""
    from qrobust.attacks.runner import craft
    from qrobust.attacks.victims import module_victim

    torch.manual_seed(job)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 14 * 14, 10),
    ).eval()
    x = torch.rand(120, 1, 28, 28, generator=torch.Generator().manual_seed(job)).numpy()
    y = model(torch.from_numpy(x)).argmax(1).numpy()
    victim = module_victim(model, torch.device("cpu"))
    options = {"steps": 5, "rel_stepsize": 0.25, "random_start": True}
    return craft(victim, "linf_pgd", options, [0.02, 0.1], x, y, batch_size=240, seed=0).x_adv


def test_results_come_back_in_job_order_each_job_once() -> None:
    results = run_jobs(_pid_of, list(range(8)), workers=2)
    assert [job for job, _ in results] == list(range(8))
    pids = {pid for _, pid in results}
    assert os.getpid() in pids and len(pids) == 2  # this process is one of the workers


def test_one_worker_runs_every_job_here() -> None:
    assert {pid for _, pid in run_jobs(_pid_of, [0, 1, 2], workers=1)} == {os.getpid()}


def test_a_failing_job_raises_in_the_caller() -> None:
    with pytest.raises(ValueError, match="job 3 failed"):
        run_jobs(_fails_on_three, list(range(6)), workers=2)


@pytest.mark.slow
def test_workers_give_the_bits_of_one_process() -> None:
    """One thread per worker (here and in the spawned process) against the default thread count in one
    process: the same adversarial examples, bit for bit."""
    jobs = [0, 1, 2]
    threads = torch.get_num_threads()
    alone = [_pgd_on_a_seeded_model(job) for job in jobs]
    spread = run_jobs(_pgd_on_a_seeded_model, jobs, workers=2)
    assert torch.get_num_threads() == threads  # the caller's thread count is restored
    for a, b in zip(alone, spread, strict=True):
        assert not np.array_equal(a[0], a[1])  # the attack moved the inputs, by epsilon
        assert a.shape == b.shape and np.array_equal(a, b)
