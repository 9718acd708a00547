import time

import numpy as np
import pytest

from qrobust.io import atomic_dir, atomic_path, load_npz, save_npz


def test_npz_bytes_do_not_depend_on_time(tmp_path) -> None:
    arrays = {"x": np.arange(12, dtype=np.float32).reshape(3, 4), "y": np.array([1, 2, 3])}
    save_npz(tmp_path / "a.npz", arrays)
    time.sleep(2.1)  # zip timestamps have two-second resolution
    save_npz(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = load_npz(tmp_path / "a.npz")
    assert np.array_equal(loaded["x"], arrays["x"]) and np.array_equal(loaded["y"], arrays["y"])


def test_failed_write_leaves_nothing(tmp_path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_failed_directory_keeps_previous_output(tmp_path) -> None:
    target = tmp_path / "models"
    with atomic_dir(target) as out:
        (out / "model.pt").write_text("good")
    with pytest.raises(RuntimeError), atomic_dir(target) as out:
        (out / "model.pt").write_text("half")
        raise RuntimeError("interrupted")
    assert (target / "model.pt").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]
