"""Image data sets read from their original files: MNIST, Fashion-MNIST and CIFAR-10.

No image library is needed: the IDX format of (Fashion-)MNIST and the ``.npy`` members of the
CIFAR-10 ``.npz`` are parsed here. The official CIFAR-10 python tarball (pickled batches) is
converted once to the ``.npz`` layout with an unpickler that can build nothing but plain containers
and uint8 numpy arrays.

As in the paper, train and test splits are concatenated (train first) and pixels are flattened and
divided by 255 into float32. Images are decompressed in chunks straight into the float32 output,
so loading MNIST needs little more memory than the 219 MB result. The division is done in float32;
it gives the same numbers as ``x.astype("float32") / 255`` and as rounding ``x / 255.0`` computed in
float64 (a float32 quotient of two small integers is not changed by double rounding).
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import logging
import os
import pickle
import tarfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np

from flowmix._io import atomic_write, atomic_write_text
from flowmix.paper.data.files import (
    SHA256,
    DatasetError,
    download_allowed,
    find_file,
    locate,
    sha256_of,
    verify_file,
    writable_root,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CIFAR10_CLASSES",
    "FMNIST_CLASSES",
    "convert_cifar_tarball",
    "locate_cifar10",
    "locate_idx_files",
    "read_cifar_npz",
    "read_cifar_npz_labels",
    "read_idx_labels",
    "read_idx_set",
    "read_idx_set_labels",
]

FMNIST_CLASSES = (
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
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
CIFAR_NPZ = "cifar-10/cifar10.npz"
CIFAR_TARBALL = "cifar-10/cifar-10-python.tar.gz"
_CIFAR_SIDECAR_SUFFIX = ".source.json"
_CIFAR_BATCHES = (
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
    "test_batch",
)

_CHUNK_BYTES = 8 << 20
_PIXEL_MAX = np.float32(255)


# ----------------------------------------------------------------------------------------------
# pixel scaling


def _scale_into(pixels: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = pixels / 255`` in float32 without a float64 temporary."""
    np.divide(pixels, _PIXEL_MAX, out=out, dtype=np.float32)


def _read_exact(fh: IO[bytes], view: memoryview, path: Path) -> None:
    """Fill ``view`` from ``fh``; a short read means the file ended early."""
    filled = 0
    while filled < len(view):
        n = fh.readinto(view[filled:])
        if not n:
            raise DatasetError(
                f"{path} ended early: expected {len(view) - filled} more bytes. The file is truncated; "
                "delete it and load again (or replace it with the original)."
            )
        filled += n


# What the gzip module raises for a damaged file: BadGzipFile (an OSError), EOFError when the
# stream stops early, zlib.error for corrupt deflate data.
_GZIP_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error)


# ----------------------------------------------------------------------------------------------
# IDX


def _read_idx_header(fh: IO[bytes], path: Path, ndim: int) -> tuple[int, ...]:
    """Read and check an IDX header of unsigned bytes with ``ndim`` dimensions; return the shape."""
    head = fh.read(4)
    expected_magic = 0x0800 | ndim
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08 or head[3] != ndim:
        got = int.from_bytes(head, "big") if len(head) == 4 else None
        raise DatasetError(
            f"{path} is not an IDX file of unsigned bytes with {ndim} dimension(s): magic number "
            f"{got}, expected {expected_magic}. The file is malformed; replace it with the original."
        )
    dims_raw = fh.read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise DatasetError(f"{path} ended inside its IDX header; the file is truncated.")
    return tuple(int.from_bytes(dims_raw[4 * i : 4 * i + 4], "big") for i in range(ndim))


def _expect_end(fh: IO[bytes], path: Path) -> None:
    # Reading to the end also makes gzip check its CRC and length trailer.
    if fh.read(1):
        raise DatasetError(
            f"{path} has bytes after the data its IDX header announces; the file is malformed."
        )


def read_idx_labels(path: Path) -> np.ndarray:
    """Labels of a gzip-compressed IDX1 file (magic 2049), as uint8 of shape (N,)."""
    try:
        with gzip.open(path, "rb") as fh:
            (n,) = _read_idx_header(fh, path, 1)
            labels = np.empty(n, dtype=np.uint8)
            _read_exact(fh, memoryview(labels), path)
            _expect_end(fh, path)
    except _GZIP_ERRORS as exc:
        raise DatasetError(f"{path} is not a valid gzip file ({exc}); delete it and load again.") from exc
    return labels


def _idx_image_shape(path: Path) -> tuple[int, ...]:
    try:
        with gzip.open(path, "rb") as fh:
            return _read_idx_header(fh, path, 3)
    except _GZIP_ERRORS as exc:
        raise DatasetError(f"{path} is not a valid gzip file ({exc}); delete it and load again.") from exc


def _idx_images_into(path: Path, out: np.ndarray, keep: np.ndarray | None) -> int:
    """Decompress the images of an IDX3 file into ``out`` (float32, (M, rows*cols)) chunk by chunk.

    Only the images where ``keep`` is True are written (all when ``keep`` is None). Returns the
    number of rows written.
    """
    try:
        with gzip.open(path, "rb") as fh:
            n, rows, cols = _read_idx_header(fh, path, 3)
            d = rows * cols
            if d != out.shape[1]:
                raise DatasetError(f"{path} holds {rows}x{cols} images; expected {out.shape[1]} pixels each.")
            per_chunk = max(1, _CHUNK_BYTES // d)
            buf = np.empty((per_chunk, d), dtype=np.uint8)
            flat = memoryview(buf).cast("B")
            written = 0
            for start in range(0, n, per_chunk):
                m = min(per_chunk, n - start)
                _read_exact(fh, flat[: m * d], path)
                chunk = buf[:m] if keep is None else buf[:m][keep[start : start + m]]
                _scale_into(chunk, out[written : written + len(chunk)])
                written += len(chunk)
            _expect_end(fh, path)
    except _GZIP_ERRORS as exc:
        raise DatasetError(f"{path} is not a valid gzip file ({exc}); delete it and load again.") from exc
    return written


def locate_idx_files(
    folder: str,
    roots: Sequence[Path],
    *,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    what: str = "",
    progress: bool | None = None,
) -> tuple[dict[str, Path], dict[str, str]]:
    """Find (downloading if allowed) and verify the four IDX files of ``<root>/<folder>/``.

    Returns
    -------
    paths : dict
        File name (one of :data:`IDX_FILES`) -> verified path.
    sources : dict
        Relative path -> SHA-256 of the files (keys a cache of derived data).
    """
    rel = {name: f"{folder}/{name}" for name in IDX_FILES}
    paths = {
        name: locate(r, roots, download=download, mirrors=mirrors, what=what, progress=progress)
        for name, r in rel.items()
    }
    return paths, {r: SHA256[r] for r in rel.values()}


def _idx_splits(
    paths: Mapping[str, Path], classes: Sequence[int] | None
) -> tuple[list[tuple[Path, np.ndarray, np.ndarray | None]], int]:
    """Per split (train, then test): image file, labels, mask of the kept images; and pixels per image.

    Reads the label files and the image headers only.
    """
    parts = []
    widths = []
    for split in ("train", "t10k"):
        img_path = paths[f"{split}-images-idx3-ubyte.gz"]
        lab_path = paths[f"{split}-labels-idx1-ubyte.gz"]
        labels = read_idx_labels(lab_path)
        n, rows, cols = _idx_image_shape(img_path)
        if n != len(labels):
            raise DatasetError(
                f"{img_path} holds {n} images but {lab_path} holds {len(labels)} labels; "
                "the files do not belong together."
            )
        keep = None if classes is None else np.isin(labels, np.asarray(classes))
        parts.append((img_path, labels, keep))
        widths.append(rows * cols)
    if widths[0] != widths[1]:
        raise DatasetError(f"The train and test images of {parts[0][0].parent} differ in size.")
    return parts, widths[0]


def read_idx_set_labels(
    paths: Mapping[str, Path], *, classes: Sequence[int] | None = None
) -> tuple[np.ndarray, int]:
    """Labels of an MNIST-style set, train then test, without decoding any image.

    Parameters
    ----------
    paths : mapping
        As returned by :func:`locate_idx_files`.
    classes : sequence of int, optional
        Keep only the images with these labels; all when None.

    Returns
    -------
    y : ndarray of int64, shape (N,)
        The labels of the rows :func:`read_idx_set` returns.
    n_features : int
        Pixels per image.
    """
    parts, d = _idx_splits(paths, classes)
    y = np.concatenate([labels if keep is None else labels[keep] for _, labels, keep in parts])
    return y.astype(np.int64), d


def read_idx_set(
    paths: Mapping[str, Path], *, classes: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the images of an MNIST-style set located by :func:`locate_idx_files`, train then test.

    Returns ``X`` (float32 pixels / 255, shape (N, rows*cols)) and ``y`` (int64, shape (N,)).
    """
    parts, d = _idx_splits(paths, classes)
    n_out = sum(len(labels) if keep is None else int(keep.sum()) for _, labels, keep in parts)
    X = np.empty((n_out, d), dtype=np.float32)
    y = np.empty(n_out, dtype=np.int64)
    pos = 0
    for img_path, labels, keep in parts:
        written = _idx_images_into(img_path, X[pos:], keep)
        y[pos : pos + written] = labels if keep is None else labels[keep]
        pos += written
    return X, y


# ----------------------------------------------------------------------------------------------
# CIFAR-10: npz cache


def _npy_member_into(zf: zipfile.ZipFile, member: str, path: Path, out: np.ndarray) -> int:
    """Stream the uint8 ``.npy`` member of an npz into ``out`` (float32, (M, D)); return the row count.

    Falls back to ``np.load(allow_pickle=False)`` for header versions or layouts it does not stream.
    """
    with zf.open(member) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            shape, fortran, dtype = (), True, None
        if dtype is not None and dtype != np.uint8:
            raise DatasetError(f"{path}: array {member} has dtype {dtype}; expected uint8.")
        if not fortran and dtype is not None:
            # Only (N, 32, 32, 3) is accepted: an (N, 3072) array could be in either pixel order.
            if len(shape) != 4 or tuple(shape[1:]) != (32, 32, 3) or shape[0] != out.shape[0]:
                raise DatasetError(f"{path}: array {member} has shape {shape}; expected (N, 32, 32, 3).")
            n, d = shape[0], out.shape[1]
            per_chunk = max(1, _CHUNK_BYTES // d)
            buf = np.empty((per_chunk, d), dtype=np.uint8)
            flat = memoryview(buf).cast("B")
            for start in range(0, n, per_chunk):
                m = min(per_chunk, n - start)
                _read_exact(fh, flat[: m * d], path)
                _scale_into(buf[:m], out[start : start + m])
            return n
    arr = np.load(io.BytesIO(zf.read(member)), allow_pickle=False)
    if arr.dtype != np.uint8 or arr.shape[1:] != (32, 32, 3) or len(arr) != len(out):
        raise DatasetError(
            f"{path}: array {member} has shape {arr.shape} and dtype {arr.dtype}; expected uint8 (N, 32, 32, 3)."
        )
    _scale_into(arr.reshape(len(arr), -1), out[: len(arr)])
    return len(arr)


def _npy_member_shape(zf: zipfile.ZipFile, member: str) -> tuple[int, ...]:
    with zf.open(member) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(fh)[0]
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(fh)[0]
    return np.load(io.BytesIO(zf.read(member)), allow_pickle=False).shape


_CIFAR_MEMBERS = ("x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy")


@contextmanager
def _readable_npz(path: Path) -> Iterator[None]:
    """Turn the errors of reading a damaged npz into :class:`DatasetError`."""
    try:
        yield
    except DatasetError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError) as exc:
        # ValueError: a member that is not a valid .npy (numpy's header parser raises it).
        raise DatasetError(f"{path} is not a readable .npz file ({exc}); delete it and load again.") from exc


def _cifar_labels(zf: zipfile.ZipFile, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``y_train`` and ``y_test`` of an open cifar10.npz, after checking it has all four arrays."""
    missing = [m for m in _CIFAR_MEMBERS if m not in zf.namelist()]
    if missing:
        raise DatasetError(f"{path} lacks the arrays {missing}; expected x_train, y_train, x_test, y_test.")
    with np.load(path, allow_pickle=False) as npz:
        return np.asarray(npz["y_train"]).reshape(-1), np.asarray(npz["y_test"]).reshape(-1)


def _checked_cifar_labels(path: Path, y_train: np.ndarray, y_test: np.ndarray) -> np.ndarray:
    y = np.concatenate([y_train, y_test]).astype(np.int64)
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DatasetError(f"{path}: labels outside 0..9.")
    return y


def read_cifar_npz_labels(path: Path) -> np.ndarray:
    """The labels (int64, train then test) of a ``cifar10.npz``, without decoding any image."""
    with _readable_npz(path), zipfile.ZipFile(path) as zf:
        y_train, y_test = _cifar_labels(zf, path)
    return _checked_cifar_labels(path, y_train, y_test)


def read_cifar_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``cifar10.npz`` (x_train, y_train, x_test, y_test as uint8) into float32 pixels.

    Rows are flattened in (row, column, channel) order, as Keras' ``cifar10.load_data()`` gives
    them and as the paper's code used them.

    Returns
    -------
    X : ndarray of float32, shape (N, 3072)
    y : ndarray of int64, shape (N,)
    """
    with _readable_npz(path), zipfile.ZipFile(path) as zf:
        y_train, y_test = _cifar_labels(zf, path)
        n_train = _npy_member_shape(zf, "x_train.npy")[0]
        n_test = _npy_member_shape(zf, "x_test.npy")[0]
        if (n_train, n_test) != (len(y_train), len(y_test)):
            raise DatasetError(f"{path}: {n_train}+{n_test} images but {len(y_train)}+{len(y_test)} labels.")
        X = np.empty((n_train + n_test, 32 * 32 * 3), dtype=np.float32)
        _npy_member_into(zf, "x_train.npy", path, X[:n_train])
        _npy_member_into(zf, "x_test.npy", path, X[n_train:])
    return X, _checked_cifar_labels(path, y_train, y_test)


# ----------------------------------------------------------------------------------------------
# CIFAR-10: official python tarball


def _reconstruct() -> Any:
    try:
        from numpy._core.multiarray import _reconstruct as fn  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct as fn
    return fn


class _CifarUnpickler(pickle.Unpickler):
    """Builds only dicts, lists, strings, bytes, numbers and numpy arrays.

    The CIFAR batches are Python 2 pickles of ``{"batch_label", "labels", "data", "filenames"}``
    with ``data`` a uint8 ndarray; anything else asked for is refused, so a tampered archive cannot
    run code.
    """

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # how Python 3 protocol-2 pickles spell bytes
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if name == "_reconstruct":
            return _reconstruct()
        if module == "_codecs":
            return codecs.encode
        return getattr(np, name)


def _load_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR batch pickle -> images (n, 32, 32, 3) uint8 in (row, col, channel) order, labels."""
    try:
        obj = _CifarUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as exc:  # any unpickling failure means a malformed or hostile file
        raise DatasetError(f"{where} is not a CIFAR-10 batch ({exc}).") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{where} is not a CIFAR-10 batch (a {type(obj).__name__}, not a dict).")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{where}: 'data' is not a uint8 array of shape (n, 3072).")
    labels_arr = np.asarray(labels)
    if labels_arr.shape != (data.shape[0],) or labels_arr.dtype.kind not in "iu":
        raise DatasetError(f"{where}: 'labels' is not a list of {data.shape[0]} integers.")
    if labels_arr.size and (labels_arr.min() < 0 or labels_arr.max() > 9):
        raise DatasetError(f"{where}: labels outside 0..9.")
    # The python version stores each image as its R plane, G plane and B plane, each row-major.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels_arr.astype(np.uint8)


def convert_cifar_tarball(tar_path: Path, npz_path: Path) -> str:
    """Convert the official ``cifar-10-python.tar.gz`` to the ``cifar10.npz`` layout.

    The npz holds uint8 ``x_train`` (50000, 32, 32, 3), ``y_train``, ``x_test``, ``y_test``, images
    in (row, column, channel) RGB order, and is written atomically. A sidecar
    ``cifar10.npz.source.json`` records its SHA-256 and the tarball's, so later loads can verify the
    converted file (its bytes differ from the shared rebuild only through zip metadata).

    Returns
    -------
    str
        SHA-256 of the written npz.
    """
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(tar_path, "r:gz") as tar:
            for member in tar:
                folder, _, base = member.name.rpartition("/")
                if base in _CIFAR_BATCHES and folder.endswith("cifar-10-batches-py") and member.isfile():
                    fh = tar.extractfile(member)
                    if fh is None:  # pragma: no cover - isfile() members always have data
                        continue
                    found[base] = _load_batch(fh.read(), f"{tar_path}:{member.name}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DatasetError(
            f"{tar_path} is not a readable tar.gz archive ({exc}); delete it and load again."
        ) from exc
    missing = [b for b in _CIFAR_BATCHES if b not in found]
    if missing:
        raise DatasetError(f"{tar_path} lacks the batches {missing} under cifar-10-batches-py/.")
    arrays = {
        "x_train": np.concatenate([found[b][0] for b in _CIFAR_BATCHES[:5]]),
        "y_train": np.concatenate([found[b][1] for b in _CIFAR_BATCHES[:5]]),
        "x_test": found["test_batch"][0],
        "y_test": found["test_batch"][1],
    }
    del found
    digests: list[str] = []

    def write(tmp: Path) -> None:
        np.savez_compressed(tmp, **arrays)
        digests.append(sha256_of(tmp))
        # The sidecar goes first, so a published npz always has the record that vouches for it.
        sidecar = {
            "sha256": digests[0],
            "source": tar_path.name,
            "source_sha256": sha256_of(tar_path),
            "layout": "uint8 x_train (N,32,32,3) RGB, y_train, x_test, y_test",
        }
        atomic_write_text(
            npz_path.with_name(npz_path.name + _CIFAR_SIDECAR_SUFFIX), json.dumps(sidecar, indent=1)
        )

    atomic_write(npz_path, write)
    logger.info("converted %s to %s", tar_path, npz_path)
    return digests[0]


def _accepted_npz_checksums(npz_path: Path, checksums: Mapping[str, str]) -> list[str]:
    """The shared rebuild's SHA-256, plus that of a file this module converted from a verified tarball."""
    accepted = [checksums[CIFAR_NPZ]]
    sidecar = npz_path.with_name(npz_path.name + _CIFAR_SIDECAR_SUFFIX)
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        if meta.get("source_sha256") == checksums[CIFAR_TARBALL] and isinstance(meta.get("sha256"), str):
            accepted.append(meta["sha256"])
    return accepted


def locate_cifar10(
    roots: Sequence[Path],
    *,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    what: str = "cifar10",
    progress: bool | None = None,
) -> tuple[Path, dict[str, str]]:
    """Find and verify ``cifar-10/cifar10.npz``, making it from the official tarball if needed.

    Looks for the npz first; without it, finds or downloads the official
    ``cifar-10/cifar-10-python.tar.gz`` and converts it to the npz next to it (or in the first
    writable root), so later loads read the npz.

    Returns
    -------
    npz : Path
        The verified npz.
    sources : dict
        Relative path -> SHA-256 of the npz.
    """
    npz = find_file(CIFAR_NPZ, roots)
    if npz is None:
        if find_file(CIFAR_TARBALL, roots) is None and not download_allowed(download):
            where = ", ".join(str(r / "cifar-10") for r in roots)
            raise DatasetError(
                f"{what}: neither {CIFAR_NPZ} nor {CIFAR_TARBALL} was found. Looked in: {where}. "
                "Copy one of them there (or set FLOWMIX_DATA to a folder that holds it), or allow "
                "downloading (download=True with FLOWMIX_NO_DOWNLOAD unset)."
            )
        tar = locate(CIFAR_TARBALL, roots, download=download, mirrors=mirrors, what=what, progress=progress)
        target_dir = tar.parent if os.access(tar.parent, os.W_OK) else writable_root(roots) / "cifar-10"
        npz = target_dir / "cifar10.npz"
        convert_cifar_tarball(tar, npz)
    digest = verify_file(npz, _accepted_npz_checksums(npz, SHA256), what)
    return npz, {CIFAR_NPZ: digest}
