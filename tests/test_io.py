import time

import numpy as np
import pytest

from qrobust.pipeline.io import atomic_dir, atomic_path, load_npz, save_npz


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


def test_a_figure_with_no_samples_is_written_as_null(tmp_path) -> None:
    from qrobust.pipeline.io import load_json, save_json

    save_json(tmp_path / "m.json", {"rate": float("nan"), "gap": [1.0, float("inf")], "n": 0})
    assert load_json(tmp_path / "m.json") == {"rate": None, "gap": [1.0, None], "n": 0}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2]), "not a readable .npz"),
        (lambda path: path.write_bytes(b"PK\x03\x04 not really a zip"), "not a readable .npz"),
        (lambda path: path.write_text("x,y\n1,2\n"), "not a readable .npz"),
        (lambda path: np.savez(path, images=np.zeros(3)), "lacks the arrays ['x', 'y']"),
        (lambda path: path.unlink(), "missing"),
    ],
    ids=["truncated", "corrupt", "foreign", "other-arrays", "missing"],
)
def test_a_damaged_prepared_split_is_a_clear_error_naming_file_and_fix(tmp_path, damage, message) -> None:
    from qrobust.data.splits import load_split
    from qrobust.pipeline.errors import DataError
    from qrobust.pipeline.io import save_npz

    path = tmp_path / "train.npz"
    save_npz(path, {"x": np.random.default_rng(0).integers(0, 255, (50, 1, 8, 8), dtype=np.uint8), "y": np.arange(50)})
    assert load_split(path)[0].shape == (50, 1, 8, 8)
    damage(path)
    with pytest.raises(DataError, match="dvc checkout") as raised:
        load_split(path)
    assert message in str(raised.value) and str(path) in str(raised.value)


def test_a_killed_writes_leftover_is_hidden_from_dvc_and_removed_by_the_next_write(tmp_path) -> None:
    from qrobust.pipeline.io import PARTIAL, atomic_dir, save_json
    from tests.conftest import ROOT

    leftovers = [tmp_path / f".out{PARTIAL}abc123", tmp_path / f".m.json{PARTIAL}def456"]
    leftovers[0].mkdir()
    leftovers[1].write_text("half")
    with atomic_dir(tmp_path / "out") as out:
        save_json(out / "a.json", {"a": 1})
    save_json(tmp_path / "m.json", {"b": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "out"]
    assert f".*{PARTIAL}*" in (ROOT / ".dvcignore").read_text().splitlines()
