"""Data that ships with flowmix: the paper's 2-D toy sets, and reading users' own tables.

>>> from flowmix.datasets import load_dataset
>>> ds = load_dataset("moons")
>>> ds.X.shape, ds.X.dtype, ds.n_classes
((1000, 2), dtype('float32'), 2)

Toy sets are generated (seed 1 by default, as in the paper) and rescaled per column to [0, 1].
The paper's image sets (MNIST, Fashion-MNIST, CIFAR-10), their PCA variants and learned features
belong to its reproduction harness: :func:`flowmix.paper.data.load_dataset` loads them (and these).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from flowmix.datasets import toy
from flowmix.datasets.tables import read_table

__all__ = ["TOY_NAMES", "Dataset", "load_dataset", "read_table"]


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A loaded data set.

    Attributes
    ----------
    X : ndarray of float32, shape (N, D)
        The points.
    y : ndarray of int64, shape (N,)
        True class labels, 0 .. n_classes - 1.
    name : str
        Registry name (``"mnist_pca"`` for ``load_dataset("mnist", pca=100)``).
    class_names : tuple of str or None
        Names of the classes by label, where the set has them.
    description : str
        How the data were made: generator and parameters, or files and preprocessing.
    """

    X: np.ndarray
    y: np.ndarray
    name: str
    class_names: tuple[str, ...] | None
    description: str

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_classes(self) -> int:
        if self.class_names is not None:
            return len(self.class_names)
        return int(np.unique(self.y).size)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, X={self.X.dtype}{self.X.shape}, y={self.y.dtype}{self.y.shape}, "
            f"n_classes={self.n_classes})"
        )


_TOY: dict[str, Callable[[int], tuple[np.ndarray, np.ndarray, str]]] = {
    "circles": toy.make_circles,
    "moons": toy.make_moons,
    "pinwheel": toy.make_pinwheel,
    "two_bananas": toy.make_two_bananas,
}

#: The toy sets :func:`load_dataset` makes: the paper's five 2-D sets.
TOY_NAMES: tuple[str, ...] = ("circles", "moons", "pinwheel", "smile", "two_bananas")


def toy_key(name: str) -> str:
    """``name`` as a registry key: lower case, ``-`` read as ``_`` (``"Two-Bananas"`` -> ``"two_bananas"``)."""
    return str(name).strip().lower().replace("-", "_")


def load_dataset(name: str, *, seed: int = 1, smile_drop_first_row: bool = False) -> Dataset:
    """Load one of the paper's 2-D toy sets.

    Parameters
    ----------
    name : str
        One of :data:`flowmix.datasets.TOY_NAMES`: ``circles``, ``moons``, ``pinwheel``, ``smile``, ``two_bananas``.
        Case and ``-``/``_`` do not matter.
    seed : int, default 1
        Seed of the generators (1 is the paper's); ``smile`` is a fixed file.
    smile_drop_first_row : bool, default False
        For ``smile`` only: drop the first of the 400 points, as the reference code did by reading
        the header-less CSV with a header (the paper clustered 399 points). Ignored otherwise.

    Returns
    -------
    Dataset
        ``X`` float32 (N, 2) in [0, 1], ``y`` int64 (N,), name and a description.

    Raises
    ------
    ValueError
        An unknown name; the message says where the image sets and users' tables load from.

    Examples
    --------
    >>> load_dataset("pinwheel").X.shape
    (2560, 2)
    >>> load_dataset("smile", smile_drop_first_row=True).X.shape
    (399, 2)
    """
    key = toy_key(name)
    if key not in TOY_NAMES:
        raise ValueError(
            f"Unknown data set {name!r}: flowmix ships the toy sets {', '.join(TOY_NAMES)}. The paper's "
            "image sets (mnist, mnist5, fmnist, cifar10 and their PCA variants) load with "
            "flowmix.paper.data.load_dataset; your own tables with flowmix.datasets.read_table."
        )
    if key == "smile":
        X, y, desc = toy.load_smile(drop_first_row=smile_drop_first_row)
    else:
        X, y, desc = _TOY[key](seed)
    return Dataset(X, y, key, None, desc)
