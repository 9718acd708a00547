"""Random-precision inference (Fu et al. 2021) as deployed and as attacked: each input answered by a width
drawn afresh, uniformly, from a seeded stream; the attacker's view is the exact expectation over the draw."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qrobust.defenses.catalogue import create_defense
from qrobust.defenses.system import attacker_view, deploy
from qrobust.pipeline.errors import ConfigError
from tests.test_defenses import _Torch

MEMBERS = ["ort_int8", "ort_w6a6", "ort_w4a4"]


class _Constant:
    """A runtime that answers ``label`` for every input: which member answered is read off the label."""

    def __init__(self, label: int) -> None:
        self.label = label

    def logits(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), 10), dtype=np.float32)
        out[:, self.label] = 1.0
        return out


def system(seed: int = 0):
    defense = create_defense("random_precision", {"members": MEMBERS})
    return deploy(defense, [_Constant(k) for k in range(len(MEMBERS))], seed=seed)


def test_every_input_meets_a_width_drawn_afresh_and_uniformly() -> None:
    """The sabotage this catches: a "random" precision that never changes (one width, or one draw per query
    or per input kept across queries) answers the same input the same way every time."""
    x = np.zeros((3000, 1, 4, 4), dtype=np.float32)
    deployed = system()
    first, second = deployed.predict(x), deployed.predict(x)
    shares = np.bincount(first, minlength=len(MEMBERS)) / len(x)
    assert np.all(np.abs(shares - 1 / len(MEMBERS)) < 0.04), shares  # uniform: 1/3 each, +-4 points
    assert (first != second).mean() > 0.6  # asked again, two inputs in three meet another width
    assert len(set(first[:30])) == len(MEMBERS)  # within one query too


def test_the_draws_come_from_the_seeded_stream() -> None:
    x = np.zeros((200, 1, 4, 4), dtype=np.float32)
    assert np.array_equal(system(3).predict(x), system(3).predict(x))
    assert not np.array_equal(system(3).predict(x), system(4).predict(x))


def test_the_attackers_view_is_the_expected_softmax_over_the_widths() -> None:
    torch.manual_seed(0)
    members = [torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 10)) for _ in MEMBERS]
    defense = create_defense("random_precision", {"members": MEMBERS})
    view = attacker_view(defense, members, seed=0, eot_samples=8)
    x = torch.randn(64, 1, 4, 4)
    expected = torch.stack([m(x).softmax(1) for m in members]).mean(0)
    assert torch.allclose(view(x).exp(), expected, atol=1e-6)
    # Scored many times, the deployed system's answer frequencies approach the members' vote shares.
    deployed = deploy(defense, [_Torch(m) for m in members], seed=0)
    answers = np.stack([deployed.predict(x.numpy()) for _ in range(300)])
    votes = np.stack([m(x).argmax(1).numpy() for m in members])
    for i in range(8):
        share = np.mean(answers[:, i] == votes[0, i])
        assert abs(share - np.mean(votes[:, i] == votes[0, i])) < 0.1


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"members": ["ort_int8"]}, r"random_precision.members: random precision needs at least two widths"),
        ({"members": ["ort_int8", "fp8"]}, r"unknown name 'fp8'"),
        ({"widths": [4, 8]}, r"unknown options \['widths'\]"),
    ],
)
def test_bad_random_precision_settings_name_the_key(options: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        create_defense("random_precision", options)
