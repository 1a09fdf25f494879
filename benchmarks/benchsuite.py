"""The shared clustering battery: sets of Gagolewski's Benchmark Suite, prepared as the suite prepares them.

The battery lives outside the repository (``../shared/benchsuite`` beside the checkout, or the
folder named by ``FLOWMIX_BENCHSUITE``): ``BATTERY/NAME.data.gz`` (one point per line) and
``BATTERY/NAME.labels0.gz`` (one integer per point, 0 for noise). Its licence keeps its files out
of this repository.

"Original" space, the suite's own preprocessing: columns of zero variance dropped, white noise
of 1e-6 times the overall standard deviation added (from a fixed seed, so the data do not change
with a method's seed), each column centred, and all columns divided by ONE number, the standard
deviation of all entries (features keep their relative scales). Scoring: ARI on the non-noise
points against ``labels0``, with k the number of distinct non-zero labels.

A third of the sets, chosen by a hash of their names (:func:`held_out`), is kept out of every
tuning decision and reported separately.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "benchsuite"


@dataclass(frozen=True)
class BenchmarkSet:
    name: str  # "battery/set", e.g. "sipu/jain"
    X: np.ndarray  # (N, D) in the suite's original space
    labels: np.ndarray  # (N,) reference labels; 0 marks noise

    @property
    def n_clusters(self) -> int:
        return len(np.setdiff1d(np.unique(self.labels), [0]))

    @property
    def scored(self) -> np.ndarray:
        """Mask of the points the suite scores (its noise points are left out)."""
        return self.labels != 0


def root() -> Path:
    """The battery's folder; a clear error where it is missing."""
    folder = Path(os.environ.get("FLOWMIX_BENCHSUITE", DEFAULT_ROOT))
    if not folder.is_dir():
        raise FileNotFoundError(
            f"No clustering battery at {folder}: put ../shared/benchsuite beside the checkout "
            "or set FLOWMIX_BENCHSUITE to its folder."
        )
    return folder


def names() -> list[str]:
    """Every set of the battery, as "battery/set", sorted."""
    folder = root()
    return sorted(str(p.relative_to(folder))[: -len(".data.gz")] for p in folder.glob("*/*.data.gz"))


def held_out(name: str) -> bool:
    """Whether a set belongs to the third kept out of tuning (a fixed hash of its name, not a choice)."""
    return hashlib.blake2b(name.encode(), digest_size=4).digest()[0] % 3 == 0


def original_space(X: np.ndarray) -> np.ndarray:
    """The suite's preprocessing: constant columns dropped, 1e-6 noise, centred, one overall scale."""
    X = np.asarray(X, dtype=np.float64)
    X = X[:, X.std(axis=0) > 0]
    X = X + np.random.RandomState(0).normal(0.0, 1e-6 * X.std(), X.shape)
    X = X - X.mean(axis=0)
    return X / X.std()


def load(name: str) -> BenchmarkSet:
    folder = root()
    with gzip.open(folder / f"{name}.data.gz", "rt") as f:
        X = np.loadtxt(f, ndmin=2)
    with gzip.open(folder / f"{name}.labels0.gz", "rt") as f:
        labels = np.loadtxt(f, dtype=np.int64, ndmin=1)
    if len(labels) != len(X):
        raise ValueError(f"{name}: {len(X)} points but {len(labels)} labels.")
    return BenchmarkSet(name, original_space(X), labels)
