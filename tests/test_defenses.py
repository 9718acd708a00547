import numpy as np
import pytest

from qrobust.defenses import DEFENSES, create_defense
from qrobust.errors import ConfigError


@pytest.mark.parametrize("name", DEFENSES.names())
def test_defense_keeps_bounds_and_is_deterministic(name: str) -> None:
    x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    defense = create_defense(name, {})
    out = defense(x)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.array_equal(out, create_defense(name, {})(x))


def test_bit_depth_reduction_quantizes_levels() -> None:
    x = np.linspace(0, 1, 101, dtype=np.float32)
    out = create_defense("bit_depth", {"bits": 2})(x)
    assert np.allclose(np.unique(out), [0.0, 1 / 3, 2 / 3, 1.0])


def test_bad_defense_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="valid defense names: " + ", ".join(DEFENSES.names())):
        create_defense("jpeg2", {})
    with pytest.raises(ConfigError, match=r"bit_depth.bits: expected 1..8, got 12"):
        create_defense("bit_depth", {"bits": 12})
    with pytest.raises(ConfigError, match="allowed options"):
        create_defense("none", {"bits": 3})
