"""Atomic, byte-reproducible writers.

Every output is written to a temporary file beside its target and renamed into place, so an
interrupted stage leaves nothing DVC could record. ``np.savez`` stamps each zip member with the
current time; ``save_npz`` writes a fixed timestamp instead, so the same arrays give the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from qrobust.pipeline.errors import DataError

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


# Every temporary file or folder is named ``.<target>.partial-<random>``: `.dvcignore` hides the pattern
# from DVC, so what a killed stage leaves behind never enters a hash (evaluate reads all of
# data/adversarial), and the next write of the same target removes it.
PARTIAL = ".partial-"


def _partial(target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}{PARTIAL}*"):
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    return f".{target.name}{PARTIAL}"


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` only on success."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=_partial(target), dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp makes files private; artefacts are meant to be shared
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` whole, only on success."""
    target = Path(target)
    tmp = Path(tempfile.mkdtemp(prefix=_partial(target), dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def save_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            # np.ascontiguousarray would turn a 0-d array (a scalar or string) into shape (1,).
            array = np.asarray(arrays[name])
            np.lib.format.write_array(buffer, np.require(array, requirements="C"), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())


def load_npz(path: str | Path, required: Collection[str] = ()) -> dict[str, np.ndarray]:
    """Every array of an .npz this project wrote. A truncated, corrupt or foreign file (or one that lacks
    ``required`` arrays) is a DataError naming the file and the fix, not a zipfile traceback."""
    fix = f"restore it with `dvc checkout {path}`, or re-run the stage that writes it (`dvc repro --force <stage>`)"
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise DataError(f"{path}: missing; {fix}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"{path}: not a readable .npz archive ({type(error).__name__}: {error}); {fix}") from None
    lacking = sorted(set(required) - set(arrays))
    if lacking:
        raise DataError(f"{path}: lacks the arrays {lacking} (it holds {sorted(arrays)}); {fix}")
    return arrays


def _finite(obj: Any) -> Any:
    """JSON has no NaN: a figure that could not be measured (no samples to measure it on) is written null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(value) for value in obj]
    return obj


def dumps_json(obj: Any) -> str:
    return json.dumps(_finite(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def save_json(path: str | Path, obj: Any) -> None:
    write_text(path, dumps_json(obj))


def load_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def sha256_file(path: str | Path) -> str:
    return file_digest(path, "sha256")
