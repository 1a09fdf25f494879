"""PCA projections of the image sets, as the paper's ``*_pca`` variants, cached on disk.

The paper fitted ``sklearn.decomposition.PCA(n_components=100)`` on the whole set (pixels / 255)
and used the projection as is (not rescaled). flowmix does the same with scikit-learn's default
solver (``svd_solver="auto"``) and a fixed ``random_state=0`` so the result is deterministic. In
scikit-learn >= 1.5, "auto" picks the exact ``covariance_eigh`` solver for MNIST-sized inputs
(<= 1000 features, >= 10x as many samples) and the randomized solver for CIFAR-10 (3072 features);
the reference ran an older scikit-learn, where "auto" meant the randomized solver with an unseeded
state for both, so its projections were not reproducible to the last digit anyway.

The projection is computed in float32 (the input's precision, as in the reference, which passed
float32 arrays) and cached as ``<cache_dir>/pca/<name>-pca<k>-v<flowmix version>-<key>.npy``, where
``key`` hashes the source files' SHA-256, the scikit-learn version and the PCA settings. Files are
written atomically; an unwritable cache only costs the recomputation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from flowmix.paper.data.cache import cache_digest, flowmix_version, read_cached, write_cached

__all__ = ["PCA_RANDOM_STATE", "cached_projection", "pca_cache_path", "pca_project"]

PCA_RANDOM_STATE = 0


def pca_cache_path(
    cache_dir: Path, name: str, n_components: int, sources: Mapping[str, str], n_rows: int, n_features: int
) -> Path:
    """Where the projection of data set ``name`` is cached."""
    import sklearn

    key = {
        "sources": dict(sorted(sources.items())),
        "shape": [n_rows, n_features],
        "n_components": n_components,
        "random_state": PCA_RANDOM_STATE,
        "sklearn": sklearn.__version__,
    }
    return Path(cache_dir) / "pca" / f"{name}-pca{n_components}-v{flowmix_version()}-{cache_digest(key)}.npy"


def cached_projection(
    cache_dir: Path, name: str, n_components: int, sources: Mapping[str, str], n_rows: int, n_features: int
) -> np.ndarray | None:
    """The cached projection of data set ``name`` (N = ``n_rows``), or None; needs no pixels.

    The arguments are those of :func:`pca_cache_path`, so the data set's images need not be decoded
    to look it up: ``sources`` come from the verified files, ``n_rows`` from the labels.
    """
    path = pca_cache_path(cache_dir, name, n_components, sources, n_rows, n_features)
    return read_cached(path, (n_rows, n_components), f"PCA projection of {name}")


def pca_project(
    X: np.ndarray,
    n_components: int,
    *,
    name: str,
    sources: Mapping[str, str],
    cache_dir: Path | None,
) -> np.ndarray:
    """Project ``X`` (N, D) on its first ``n_components`` principal components, using the cache.

    Parameters
    ----------
    X : ndarray of float32, shape (N, D)
    n_components : int
    name : str
        Data-set name (part of the cache file name).
    sources : mapping
        Relative path -> SHA-256 of the files ``X`` was read from (part of the cache key).
    cache_dir : Path or None
        Root of the cache; None disables caching.

    Returns
    -------
    ndarray of float32, shape (N, n_components)
    """
    if cache_dir is not None:
        cached = cached_projection(cache_dir, name, n_components, sources, X.shape[0], X.shape[1])
        if cached is not None:
            return cached
    from sklearn.decomposition import PCA

    Z = PCA(n_components=n_components, random_state=PCA_RANDOM_STATE).fit_transform(X)
    Z = np.ascontiguousarray(Z, dtype=np.float32)
    if cache_dir is not None:
        path = pca_cache_path(cache_dir, name, n_components, sources, X.shape[0], X.shape[1])
        write_cached(path, Z, f"PCA projection of {name}")
    return Z
