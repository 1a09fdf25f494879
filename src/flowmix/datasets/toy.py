"""The paper's two-dimensional toy sets: circles, moons, pinwheel, two bananas and smile.

Each generator takes a seed and builds a local ``np.random.RandomState(seed)``. The reference code
instead called ``np.random.seed(1)`` and let the generators draw from numpy's global state. A fresh
``RandomState(seed)`` is in exactly the state that ``np.random.seed(seed)`` puts the global one in,
and scikit-learn's ``make_circles``/``make_moons`` draw from the ``random_state`` they are given just as
they draw from the global state when given none; the pinwheel and banana generators below make the
same calls, in the same order, as the reference. So with seed 1 the points are those of the
reference (tests check this against global-state versions), as long as each set is generated right
after seeding, and nothing here touches numpy's global random state.

Every set is rescaled per column to [0, 1] (min-max, :func:`flowmix.datasets.scaling.minmax_scale`)
after generation, as in the paper, and returned as float32 points with int64 labels.
"""

from __future__ import annotations

import io
from importlib import resources

import numpy as np

from flowmix.datasets.scaling import minmax_scale

__all__ = ["load_smile", "make_circles", "make_moons", "make_pinwheel", "make_two_bananas"]

_RESCALED = "then each column min-max rescaled to [0, 1]"


def make_circles(seed: int = 1) -> tuple[np.ndarray, np.ndarray, str]:
    """``sklearn.datasets.make_circles(1000, noise=0.01)``: two concentric circles, 2 classes."""
    from sklearn.datasets import make_circles as sk_make_circles

    X, y = sk_make_circles(1000, noise=0.01, random_state=np.random.RandomState(seed))
    desc = f"sklearn.datasets.make_circles(n_samples=1000, noise=0.01), numpy seed {seed}, {_RESCALED}"
    return minmax_scale(X), y.astype(np.int64), desc


def make_moons(seed: int = 1) -> tuple[np.ndarray, np.ndarray, str]:
    """``sklearn.datasets.make_moons(1000, noise=0.1)``: two interleaved half circles, 2 classes."""
    from sklearn.datasets import make_moons as sk_make_moons

    X, y = sk_make_moons(1000, noise=0.1, random_state=np.random.RandomState(seed))
    desc = f"sklearn.datasets.make_moons(n_samples=1000, noise=0.1), numpy seed {seed}, {_RESCALED}"
    return minmax_scale(X), y.astype(np.int64), desc


def make_pinwheel(
    seed: int = 1,
    *,
    radial_std: float = 0.3,
    tangential_std: float = 0.05,
    num_classes: int = 5,
    num_per_class: int = 512,
    rate: float = 0.25,
) -> tuple[np.ndarray, np.ndarray, str]:
    """The pinwheel of Johnson et al. (2016, "Composing graphical models with neural networks").

    Each arm starts as Gaussian blobs N((1, 0), diag(radial_std, tangential_std)**2), is rotated
    by ``2*pi*label/num_classes + rate*exp(radial coordinate)`` (which bends it into a spiral arm)
    and scaled by 10; the points are then randomly permuted (labels follow their points).
    Defaults give the paper's 2560 points in 5 classes.
    """
    rng = np.random.RandomState(seed)
    rads = np.linspace(0, 2 * np.pi, num_classes, endpoint=False)
    features = rng.randn(num_classes * num_per_class, 2) * np.array([radial_std, tangential_std])
    features[:, 0] += 1.0
    labels = np.repeat(np.arange(num_classes), num_per_class)
    angles = rads[labels] + rate * np.exp(features[:, 0])
    rotations = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)])
    rotations = np.reshape(rotations.T, (-1, 2, 2))
    points = 10 * np.einsum("ti,tij->tj", features, rotations)
    # permutation(n) draws exactly what permutation(points) draws, and also moves the labels.
    order = rng.permutation(len(points))
    desc = (
        f"pinwheel of Johnson et al. (2016): radial_std={radial_std}, tangential_std={tangential_std}, "
        f"{num_classes} classes x {num_per_class} points, rate={rate}, numpy seed {seed}, {_RESCALED}"
    )
    return minmax_scale(points[order]), labels[order].astype(np.int64), desc


def make_two_bananas(seed: int = 1, *, n: int = 2000) -> tuple[np.ndarray, np.ndarray, str]:
    """Two banana-shaped clusters: ``n`` points and the same points shifted by (+2, +2).

    x2 = 2 N(0, 1), x1 = N(0, 1) + x2**2 / 4, each then normalised as (v - min(v)) / max(v) as in the
    reference code (note: divided by the maximum, not the range); labels 0 and 1.
    """
    rng = np.random.RandomState(seed)
    x2 = 2 * rng.randn(n)
    x1 = rng.randn(n) + x2**2 / 4
    x1 = (x1 - x1.min()) / x1.max()
    x2 = (x2 - x2.min()) / x2.max()
    banana = np.column_stack([x1, x2])
    X = np.concatenate([banana, banana + 2])
    y = np.repeat(np.arange(2, dtype=np.int64), n)
    desc = (
        f"two bananas: {n} points x2 = 2 N(0,1), x1 = N(0,1) + x2^2/4, each (v - min)/max, plus the same "
        f"points shifted by (+2, +2); numpy seed {seed}, {_RESCALED}"
    )
    return minmax_scale(X), y, desc


def load_smile(*, drop_first_row: bool = False) -> tuple[np.ndarray, np.ndarray, str]:
    """The smile set: 400 points (x, y, label) in 4 classes of 100/200/50/50, from ``smile.csv``.

    Parameters
    ----------
    drop_first_row : bool, default False
        The reference code read the header-less CSV with pandas' defaults, which took the first
        point as a header, so the paper clustered 399 points. False keeps all 400 points; True
        reproduces the reference's 399.
    """
    text = resources.files("flowmix.datasets").joinpath("data/smile.csv").read_text(encoding="utf-8")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2)
    if drop_first_row:
        table = table[1:]
    X, y = table[:, :2], table[:, 2].astype(np.int64)
    rows = (
        "the first row dropped as the reference code did, 399 points" if drop_first_row else "all 400 points"
    )
    desc = f"smile.csv (x, y, label; from the nf-mixture repository), {rows}, {_RESCALED}"
    return minmax_scale(X), y, desc
