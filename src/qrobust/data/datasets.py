"""The datasets params may name, as data: shapes, classes, statistics, pinned files and how to read them
(``data.readers`` reads them; this module imports neither numpy's readers nor torchvision).

Fashion-MNIST (Xiao, Rasul, Vollgraf 2017) is read from the Debian package ``dataset-fashion-mnist``;
MNIST, CIFAR-10 and SVHN from a local folder in torchvision's layout (downloaded by torchvision only when
params ask for it). Every file is checked against its pinned digest before a byte is parsed: the
release's, or the user's own (``data.sha256``) for a copy of their own. Images are stored as uint8 NCHW;
``as_float`` maps them to [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from qrobust.pipeline.registry import Registry


@dataclass(frozen=True)
class DatasetSpec:
    """What a model needs to know about the data (shape, classes, per-channel statistics), and where its files
    are, pinned: ``release`` maps each file (relative to ``data.root``) to its published digest."""

    channels: int
    size: int
    test_samples: int  # the published test split's size, so params are checked before any file is read
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    release: dict[str, str]
    algorithm: str  # of the release digests: sha256 where we pinned them, md5 where torchvision publishes them
    reader: tuple[str, str]  # (format, folder under data.root) of ``data.readers``, called only on verified files
    install_hint: str
    fetch: tuple[str, tuple[Mapping[str, object], ...]] | None = None  # torchvision class and splits (data.download)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


# Digests of the files shipped by Debian's dataset-fashion-mnist (0.0~git20200523.55506a9-1).
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
FASHION_MNIST_HINT = (
    "(re)install it with `sudo apt-get install --reinstall dataset-fashion-mnist`, "
    "or point data.root in params.yaml at a folder holding the four IDX .gz files"
)
# The other releases' MD5s as torchvision publishes them (torchvision.datasets.MNIST.resources,
# CIFAR10.train_list/test_list, SVHN.split_list), laid out as its classes download them.
MNIST_FOLDER = "MNIST/raw"
MNIST_MD5 = {
    f"{MNIST_FOLDER}/train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    f"{MNIST_FOLDER}/train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    f"{MNIST_FOLDER}/t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    f"{MNIST_FOLDER}/t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_MD5 = {
    f"{CIFAR10_FOLDER}/data_batch_1": "c99cafc152244af753f735de768cd75f",
    f"{CIFAR10_FOLDER}/data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    f"{CIFAR10_FOLDER}/data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    f"{CIFAR10_FOLDER}/data_batch_4": "634d18415352ddfa80567beed471001a",
    f"{CIFAR10_FOLDER}/data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    f"{CIFAR10_FOLDER}/test_batch": "40351d587109b95175f43aff81a1287e",
}
SVHN_MD5 = {
    "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
    "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
}


def torchvision_hint(name: str) -> str:
    return (
        f"put the {name} release under data.root as torchvision lays it out, set data.download: true to fetch it, "
        "or pin your own copy with data.sha256"
    )


FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DIGITS = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

DATASETS.register("fashion_mnist")(
    DatasetSpec(
        1,
        28,
        10_000,
        FASHION_CLASSES,
        (0.2860,),
        (0.3530,),
        FASHION_MNIST_SHA256,
        "sha256",
        ("idx", "."),
        FASHION_MNIST_HINT,
    )
)
DATASETS.register("mnist")(
    DatasetSpec(
        1,
        28,
        10_000,
        DIGITS,
        (0.1307,),
        (0.3081,),
        MNIST_MD5,
        "md5",
        ("idx", MNIST_FOLDER),
        torchvision_hint("MNIST"),
        ("MNIST", ({"train": True},)),
    )
)
DATASETS.register("cifar10")(
    DatasetSpec(
        3,
        32,
        10_000,
        CIFAR10_CLASSES,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        CIFAR10_MD5,
        "md5",
        ("cifar10", CIFAR10_FOLDER),
        torchvision_hint("CIFAR-10"),
        ("CIFAR10", ({"train": True},)),
    )
)
DATASETS.register("svhn")(
    DatasetSpec(
        3,
        32,
        26_032,
        DIGITS,
        (0.4377, 0.4438, 0.4728),
        (0.1980, 0.2010, 0.1970),
        SVHN_MD5,
        "md5",
        ("svhn", "."),
        torchvision_hint("SVHN"),
        ("SVHN", ({"split": "train"}, {"split": "test"})),
    )
)
