import dataclasses
import gzip
import pickle

import numpy as np
import pytest

from qrobust.data.datasets import CIFAR10_FOLDER, DATASETS, FASHION_MNIST_SHA256
from qrobust.data.readers import load_dataset, read_idx, verify_files
from qrobust.data.splits import RawDataset, Split, split_dataset
from qrobust.pipeline.errors import DataError
from qrobust.settings.study import load_study
from tests.conftest import ROOT
from tests.formats import learnable_images, write_idx, write_release

FASHION_ROOT = load_study(str(ROOT / "params.yaml")).prepare.root


def test_read_idx_roundtrip(tmp_path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "x.gz", images)
    assert np.array_equal(read_idx(tmp_path / "x.gz"), images)


def test_real_fashion_mnist_files_match_pinned_digests(tmp_path) -> None:
    import hashlib
    import shutil

    digests = verify_files(FASHION_ROOT, FASHION_MNIST_SHA256, "hint")
    # Each digest recomputed here, independently of the code under test.
    for name, digest in digests.items():
        assert digest == hashlib.sha256((FASHION_ROOT / name).read_bytes()).hexdigest() == FASHION_MNIST_SHA256[name]
    # A copy with one byte changed is refused.
    for name in FASHION_MNIST_SHA256:
        shutil.copy(FASHION_ROOT / name, tmp_path / name)
    victim = tmp_path / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        verify_files(tmp_path, FASHION_MNIST_SHA256, "hint")
    labels = read_idx(FASHION_ROOT / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,) and np.bincount(labels).tolist() == [1000] * 10


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"\x00\x00\x0d\x03", r"not an unsigned-byte IDX file \(header 00000d03\)"),  # float32 payload
        (b"\x08\x03\x00\x00", r"not an unsigned-byte IDX file \(header 08030000\)"),  # not IDX at all
    ],
)
def test_read_idx_refuses_a_bad_header(tmp_path, header: bytes, message: str) -> None:
    with gzip.open(tmp_path / "x.gz", "wb") as handle:
        handle.write(header + (2).to_bytes(4, "big") * 3 + bytes(8))
    with pytest.raises(DataError, match=message):
        read_idx(tmp_path / "x.gz")


def test_read_idx_refuses_a_truncated_payload(tmp_path) -> None:
    write_idx(tmp_path / "x.gz", np.zeros((5, 28, 28), dtype=np.uint8))
    with gzip.open(tmp_path / "x.gz", "rb") as handle:
        data = handle.read()
    with gzip.open(tmp_path / "x.gz", "wb") as handle:
        handle.write(data[:-28])
    with pytest.raises(DataError, match=r"header says \(5, 28, 28\), payload has 3892 bytes"):
        read_idx(tmp_path / "x.gz")


def test_images_and_labels_must_pair_up() -> None:
    with pytest.raises(DataError, match=r"images \(5, 1, 4, 4\) and labels \(4,\): expected .* one per image"):
        Split(np.zeros((5, 1, 4, 4), dtype=np.uint8), np.zeros(4, dtype=np.int64))


def test_missing_dataset_says_how_to_install(tmp_path) -> None:
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        verify_files(
            tmp_path / "nowhere", FASHION_MNIST_SHA256, "install it with `apt-get install dataset-fashion-mnist`"
        )


def test_split_is_seeded_and_calibration_and_validation_come_from_training_data() -> None:
    rng = np.random.default_rng(0)
    # Give every training image a unique id in its first pixels so the split can be traced.
    train_x = np.zeros((200, 1, 4, 4), dtype=np.uint8)
    train_x[:, 0, 0, 0], train_x[:, 0, 0, 1] = np.arange(200) % 256, np.arange(200) // 256
    raw = RawDataset(
        Split(train_x, rng.integers(0, 10, 200)), Split(np.zeros((50, 1, 4, 4), np.uint8), rng.integers(0, 10, 50)), {}
    )
    a = split_dataset(raw, calib_size=30, val_size=40, train_size=0, test_size=0, eval_size=20, seed=1)
    b = split_dataset(raw, calib_size=30, val_size=40, train_size=0, test_size=0, eval_size=20, seed=1)
    ids = lambda s: set((s.x[:, 0, 0, 0].astype(int) + 256 * s.x[:, 0, 0, 1].astype(int)).tolist())  # noqa: E731
    assert ids(a.calib).isdisjoint(ids(a.train)) and ids(a.val).isdisjoint(ids(a.train) | ids(a.calib))
    assert len(ids(a.calib) | ids(a.val) | ids(a.train)) == 200 and (len(a.calib.y), len(a.val.y)) == (30, 40)
    assert np.array_equal(a.calib.x, b.calib.x) and np.array_equal(a.eval_index, b.eval_index)
    assert np.array_equal(a.eval.y, a.test.y[a.eval_index])
    c = split_dataset(raw, calib_size=30, val_size=40, train_size=0, test_size=0, eval_size=20, seed=2)
    assert not np.array_equal(a.calib.x, c.calib.x)


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_format_reads_back_the_images_written_in_it(tmp_path, name: str) -> None:
    pins = write_release(name, tmp_path, train=50, test=20)
    spec = DATASETS.get(name)
    raw = load_dataset(spec, tmp_path, sha256=pins)
    x_train, y_train = learnable_images(50, spec.channels, spec.size, 0)
    x_test, y_test = learnable_images(20, spec.channels, spec.size, 1)
    assert np.array_equal(raw.train.x, x_train) and np.array_equal(raw.train.y, y_train)
    assert np.array_equal(raw.test.x, x_test) and np.array_equal(raw.test.y, y_test)
    assert raw.sources == pins


@pytest.mark.parametrize("name", DATASETS.names())
def test_files_that_are_not_the_release_are_refused_before_parsing(tmp_path, name: str) -> None:
    """Without one's own pins, the release's digests apply: the tests' small files do not match them."""
    write_release(name, tmp_path, train=10, test=10)
    with pytest.raises(DataError, match="checksum mismatch for .* nothing was written"):
        load_dataset(DATASETS.get(name), tmp_path)


def test_a_cifar_batch_is_never_unpickled_before_its_digest_matches(tmp_path) -> None:
    """A pickle runs code as it loads: a tampered batch must be refused by its digest, not by the parser."""
    pins = write_release("cifar10", tmp_path, train=10, test=10)
    witness = tmp_path / "code-ran"
    (tmp_path / CIFAR10_FOLDER / "test_batch").write_bytes(pickle.dumps(Touch(str(witness)), protocol=2))
    with pytest.raises(DataError, match="checksum mismatch for .*test_batch"):
        load_dataset(DATASETS.get("cifar10"), tmp_path, sha256=pins)
    assert not witness.exists()


class Touch:
    """Unpickling this creates a file: the harmless stand-in for a malicious payload."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_images_of_the_wrong_shape_are_refused(tmp_path) -> None:
    pins = write_release("mnist", tmp_path, train=10, test=10)
    with pytest.raises(DataError, match=r"train images are \(1, 28, 28\), expected \(3, 32, 32\)"):
        load_dataset(
            dataclasses.replace(
                DATASETS.get("cifar10"), release=DATASETS.get("mnist").release, reader=DATASETS.get("mnist").reader
            ),
            tmp_path,
            sha256=pins,
        )


def test_offline_only_dataset_refuses_download() -> None:
    with pytest.raises(DataError, match="data.download: this dataset is read offline only"):
        load_dataset(DATASETS.get("fashion_mnist"), FASHION_ROOT, download=True)
