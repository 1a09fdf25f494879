"""The paper's data sets: its toy sets, its image sets with their PCA variants, and learned features.

>>> from flowmix.paper.data import load_dataset
>>> load_dataset("moons").X.shape
(1000, 2)

Toy sets come from the library (:func:`flowmix.datasets.load_dataset`). Image sets are read from
the original files, found in ``data_dir``, ``$FLOWMIX_DATA`` or the per-user cache, checked by
SHA-256 and downloaded when missing (see :mod:`flowmix.paper.data.files`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flowmix import datasets as toy_sets
from flowmix.datasets import Dataset, toy_key
from flowmix.paper.data import features as _features
from flowmix.paper.data import files, images
from flowmix.paper.data.files import DatasetError, data_roots, default_cache_dir

__all__ = ["DATASET_NAMES", "Dataset", "DatasetError", "list_datasets", "load_dataset"]


@dataclass(frozen=True)
class _Spec:
    kind: str  # "toy" or "image"
    n_samples: int
    n_features: int
    n_classes: int
    folder: str | None  # data folder of an image set
    class_names: tuple[str, ...] | None


_DIGITS = tuple(str(i) for i in range(10))
_SPECS: dict[str, _Spec] = {
    "circles": _Spec("toy", 1000, 2, 2, None, None),
    "moons": _Spec("toy", 1000, 2, 2, None, None),
    "pinwheel": _Spec("toy", 2560, 2, 5, None, None),
    "smile": _Spec("toy", 400, 2, 4, None, None),
    "two_bananas": _Spec("toy", 4000, 2, 2, None, None),
    "mnist": _Spec("image", 70000, 784, 10, "mnist", _DIGITS),
    "mnist5": _Spec("image", 35735, 784, 5, "mnist", _DIGITS[:5]),
    "fmnist": _Spec("image", 70000, 784, 10, "fashion-mnist", images.FMNIST_CLASSES),
    "cifar10": _Spec("image", 60000, 3072, 10, "cifar-10", images.CIFAR10_CLASSES),
}
_PCA_SUFFIX = "_pca"
_PAPER_PCA = 100
_IMAGE_NAMES = [n for n, s in _SPECS.items() if s.kind == "image"]

#: Every accepted name: the toy sets, the image sets and their ``_pca`` variants (PCA to 100 dims).
DATASET_NAMES: tuple[str, ...] = tuple(_SPECS) + tuple(n + _PCA_SUFFIX for n in _IMAGE_NAMES)


def _parse_name(name: str, pca: int | None) -> tuple[str, int | None]:
    key = toy_key(name)
    base, k = key, pca
    if key.endswith(_PCA_SUFFIX) and key[: -len(_PCA_SUFFIX)] in _IMAGE_NAMES:
        base = key[: -len(_PCA_SUFFIX)]
        if pca is not None and pca != _PAPER_PCA:
            raise ValueError(f"{name!r} means pca={_PAPER_PCA}; pass name={base!r} with pca={pca} instead.")
        k = _PAPER_PCA
    if base not in _SPECS:
        raise ValueError(f"Unknown data set {name!r}; valid names: {', '.join(DATASET_NAMES)}.")
    spec = _SPECS[base]
    if k is not None and spec.kind == "toy":
        raise ValueError(
            f"{base!r} is a 2-D toy set: PCA variants exist only for the image sets "
            f"({', '.join(_IMAGE_NAMES)}); load {base!r} without pca."
        )
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < spec.n_features:
            raise ValueError(
                f"pca must be an integer between 1 and {spec.n_features - 1} for {base!r}, got {k!r}."
            )
        k = int(k)
    return base, k


def _image_files(base: str, spec: Any, roots: Any, where: dict[str, Any]) -> tuple[Any, Any, Any, str]:
    """(read the labels, read the images, the files' sources, a description) of image set ``base``.

    The files are located and verified here; reading them (the slow part) is left to the callers.
    """
    if base == "cifar10":
        npz, sources = images.locate_cifar10(roots, **where)

        def read_labels() -> tuple[np.ndarray, int]:
            return images.read_cifar_npz_labels(npz), spec.n_features

        def read_images() -> tuple[np.ndarray, np.ndarray]:
            return images.read_cifar_npz(npz)

        desc = (
            "CIFAR-10 (cifar-10/cifar10.npz, or converted from cifar-10-python.tar.gz): 50000 train then "
            "10000 test images, each flattened in (row, column, channel) RGB order as Keras' "
            "cifar10.load_data(), pixels / 255 as float32"
        )
    else:
        paths, sources = images.locate_idx_files(spec.folder or base, roots, **where)
        classes = range(5) if base == "mnist5" else None

        def read_labels() -> tuple[np.ndarray, int]:
            return images.read_idx_set_labels(paths, classes=classes)

        def read_images() -> tuple[np.ndarray, np.ndarray]:
            return images.read_idx_set(paths, classes=classes)

        which = "MNIST" if spec.folder == "mnist" else "Fashion-MNIST"
        subset = ", only digits 0-4" if base == "mnist5" else ""
        desc = (
            f"{which} ({spec.folder}/*-idx*-ubyte.gz): 60000 train then 10000 test images{subset}, "
            "28x28 flattened row by row, pixels / 255 as float32"
        )
    return read_labels, read_images, sources, desc


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 1,
    pca: int | None = None,
    download: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    mirrors: Sequence[str] | None = None,
    smile_drop_first_row: bool = False,
    progress: bool | None = None,
    preprocessing: str | None = None,
    features: str | None = None,
    n_features: int | None = None,
) -> Dataset:
    """Load one of the paper's data sets.

    Parameters
    ----------
    name : str
        One of :data:`DATASET_NAMES`: ``circles``, ``moons``, ``pinwheel``, ``smile``,
        ``two_bananas`` (2-D toy sets); ``mnist``, ``mnist5`` (digits 0-4), ``fmnist``, ``cifar10``
        (image sets, train and test concatenated, pixels / 255); ``<image set>_pca`` means
        ``pca=100``. Case and ``-``/``_`` do not matter.
    data_dir : path, optional
        Folder holding ``mnist/``, ``fashion-mnist/`` and ``cifar-10/``; searched before
        ``$FLOWMIX_DATA`` and the cache folder, and the download target when given.
    seed : int, default 1
        Seed of the toy generators (1 is the paper's). Image sets do not depend on it.
    pca : int, optional
        Project an image set on its first ``pca`` principal components (fitted on the whole set;
        the paper used 100). The projection is cached under ``cache_dir``.
    download : bool, default True
        Download missing image files (``FLOWMIX_NO_DOWNLOAD=1`` turns this off too).
    cache_dir : path, optional
        Per-user cache (downloads when no other folder is writable, and PCA projections);
        default ``$XDG_CACHE_HOME/flowmix`` or ``~/.cache/flowmix``.
    mirrors : sequence of str, optional
        Base URLs laid out like ``data_dir`` to download from instead of the official sites
        (also ``$FLOWMIX_MIRROR``, whitespace-separated).
    smile_drop_first_row : bool, default False
        For ``smile`` only: drop the first of the 400 points, as the reference code did by reading
        the header-less CSV with a header (the paper clustered 399 points). Ignored otherwise.
    progress : bool, optional
        Download progress bar (and the autoencoder's); by default shown when stderr is a terminal.
    preprocessing : {"logit", "standard"}, optional
        For image sets: ``"logit"``, dequantised pixels in logit space (uniform noise from
        ``seed``), the usual input of flows on 8-bit images; ``"standard"``, every pixel column
        to zero mean and unit variance (see flowmix.paper.data.features).
    features : {"umap", "autoencoder", "n2d"}, optional
        For image sets: learned ``n_features``-dimensional features instead of pixels: UMAP,
        the code of an autoencoder trained by flowmix, or N2D (UMAP of that code), computed
        from the (preprocessed) pixels with ``seed`` and cached under ``cache_dir``. UMAP needs
        umap-learn (``pip install 'flowmix[features]'``).
    n_features : int, optional
        Dimension of ``features``; default the number of classes (N2D's choice).

    Returns
    -------
    Dataset
        ``X`` float32 (N, D), ``y`` int64 (N,), name, class names and a description.

    Raises
    ------
    ValueError
        Unknown name, bad options, or options that do not combine (any on a toy set).
    DatasetError
        (a ValueError) A data file is missing, damaged, or could not be downloaded.

    Examples
    --------
    >>> load_dataset("Two-Bananas").name  # toy sets come from flowmix.datasets
    'two_bananas'
    >>> load_dataset("mnist", pca=100, download=False)  # doctest: +SKIP
    Dataset(name='mnist_pca', X=float32(70000, 100), y=int64(70000,), n_classes=10)
    """
    base, k = _parse_name(name, pca)
    spec = _SPECS[base]
    dim = _check_learned(base, spec, k, preprocessing, features, n_features)
    if spec.kind == "toy":
        return toy_sets.load_dataset(base, seed=seed, smile_drop_first_row=smile_drop_first_row)

    # Locate and verify the files first; decoding the images is the slow part, which a cached PCA
    # projection skips (its key needs only the files' checksums and the number of labelled rows).
    roots = data_roots(data_dir, cache_dir)
    where = {"download": download, "mirrors": mirrors, "what": base, "progress": progress}
    read_labels, read_images, sources, desc = _image_files(base, spec, roots, where)
    if k is None and features is None:
        X, y = read_images()
        if preprocessing is None:
            return Dataset(X, y, base, spec.class_names, desc)
        X = _features.preprocess_pixels(X, preprocessing, seed=seed)
        return Dataset(X, y, f"{base}_{preprocessing}", spec.class_names, desc + _PREPROCESSED[preprocessing])
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if features is not None:
        learned = {"preprocessing": preprocessing, "seed": seed, "progress": progress}
        return _learned_dataset(
            base, spec, features, dim, cache, sources, read_labels, read_images, desc, **learned
        )
    return _pca_dataset(base, spec, k, cache, sources, read_labels, read_images, desc)


_PREPROCESSED = {
    "logit": "; then dequantised with U(0, 1) noise on the 256 levels and logit-transformed (alpha 1e-6)",
    "standard": "; then every pixel column standardised to zero mean and unit variance",
}


def _learned_dataset(
    base: str,
    spec: Any,
    features: str,
    dim: int,
    cache: Path,
    sources: Any,
    read_labels: Any,
    read_images: Any,
    desc: str,
    *,
    preprocessing: str | None,
    seed: int,
    progress: bool | None,
) -> Dataset:
    """Image set ``base`` as ``dim`` learned features (flowmix.paper.data.features; cached)."""
    y, n_pixels = read_labels()
    where = {"sources": sources, "preprocessing": preprocessing, "seed": seed}
    Z = _features.cached_features(cache, base, features, dim, shape=(len(y), n_pixels), **where)
    if Z is None:
        X, y = read_images()
        X = _features.preprocess_pixels(X, preprocessing, seed=seed)
        Z = _features.learned_features(
            X, features, dim, name=base, cache_dir=cache, verbose=bool(progress), **where
        )
    if preprocessing is not None:
        desc += _PREPROCESSED[preprocessing]
    desc += f"; then {features} features of dimension {dim} (seed {seed}; flowmix.paper.data.features)"
    return Dataset(Z, y, f"{base}_{features}{dim}", spec.class_names, desc)


def _pca_dataset(
    base: str, spec: Any, k: int, cache: Path, sources: Any, read_labels: Any, read_images: Any, desc: str
) -> Dataset:
    """Image set ``base`` projected on its ``k`` leading principal components (cached)."""
    from flowmix.paper.data.pca import PCA_RANDOM_STATE, cached_projection, pca_project

    desc += (
        f"; then sklearn PCA(n_components={k}, random_state={PCA_RANDOM_STATE}) fitted on the whole set, "
        "projections not rescaled"
    )
    out_name = base + _PCA_SUFFIX + ("" if k == _PAPER_PCA else str(k))
    y, n_features = read_labels()
    Z = cached_projection(cache, base, k, sources, len(y), n_features)
    if Z is None:
        X, y = read_images()
        Z = pca_project(X, k, name=base, sources=sources, cache_dir=cache)
    return Dataset(Z, y, out_name, spec.class_names, desc)


def _check_learned(
    base: str,
    spec: _Spec,
    pca: int | None,
    preprocessing: str | None,
    features: str | None,
    n_features: int | None,
) -> int | None:
    """Check the preprocessing and feature options; the features' dimension (None without features)."""
    if preprocessing is None and features is None and n_features is None:
        return None
    if spec.kind == "toy":
        raise ValueError(
            f"preprocessing, features and n_features apply to the image sets ({', '.join(_IMAGE_NAMES)}); "
            f"{base!r} is a 2-D toy set."
        )
    if preprocessing is not None and preprocessing not in _features.PREPROCESSING:
        raise ValueError(
            f"preprocessing must be None or one of {list(_features.PREPROCESSING)}, got {preprocessing!r}."
        )
    if features is not None and features not in _features.FEATURES:
        raise ValueError(f"features must be None or one of {list(_features.FEATURES)}, got {features!r}.")
    if pca is not None:
        raise ValueError(
            "pca cannot be combined with preprocessing or features: load the PCA projection of the "
            "plain pixels, or learned features without pca."
        )
    if features is None:
        if n_features is not None:
            raise ValueError(
                "n_features is the dimension of features; pass features='umap', 'autoencoder' or 'n2d'."
            )
        return None
    if n_features is None:
        return spec.n_classes
    if (
        isinstance(n_features, bool)
        or not isinstance(n_features, (int, np.integer))
        or not 1 <= n_features < spec.n_features
    ):
        raise ValueError(
            f"n_features must be an integer between 1 and {spec.n_features - 1} for {base!r}, got {n_features!r}."
        )
    return int(n_features)


def _image_location(spec: _Spec, roots: Sequence[Path]) -> Path | None:
    """The root holding all files of an image set, or None."""
    if spec.folder == "cifar-10":
        for rel in (images.CIFAR_NPZ, images.CIFAR_TARBALL):
            found = files.find_file(rel, roots)
            if found is not None:
                return found.parent.parent
        return None
    found_roots = [files.find_file(f"{spec.folder}/{f}", roots) for f in images.IDX_FILES]
    if any(p is None for p in found_roots):
        return None
    return found_roots[0].parent.parent  # type: ignore[union-attr]


def list_datasets(
    data_dir: str | os.PathLike[str] | None = None, *, cache_dir: str | os.PathLike[str] | None = None
) -> list[dict[str, Any]]:
    """One row per name of :data:`DATASET_NAMES`, for a table of what can be loaded.

    Each row has ``name``, ``kind`` (``"toy"`` or ``"image"``), ``n_samples``, ``n_features``,
    ``n_classes``, ``available`` (True for toy sets; for image sets, whether the files are present
    locally, without checking their checksums) and ``location`` (the data root holding them, or
    None).
    """
    roots = data_roots(data_dir, cache_dir)
    rows = []
    for name in DATASET_NAMES:
        base, k = _parse_name(name, None)
        spec = _SPECS[base]
        location = None if spec.kind == "toy" else _image_location(spec, roots)
        rows.append(
            {
                "name": name,
                "kind": spec.kind,
                "n_samples": spec.n_samples,
                "n_features": k if k is not None else spec.n_features,
                "n_classes": spec.n_classes,
                "available": spec.kind == "toy" or location is not None,
                "location": None if location is None else str(location),
            }
        )
    return rows
