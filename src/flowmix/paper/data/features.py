"""Pixel preprocessing for flows and learned low-dimensional features of the image sets.

Preprocessing (``load_dataset(..., preprocessing=...)``), applied to pixels / 255:

- ``"logit"``: dequantisation and the logit transform, the standard way to fit flows to 8-bit
  images (Dinh et al., 2017; Papamakarios et al., 2017): each pixel's level v in 0..255 becomes
  x = (v + u) / 256 with u ~ U(0, 1) drawn once from the seed, then logit(a + (1 - 2a) x) with
  a = 1e-6 (MAF's value for MNIST), so that a flow sees an unbounded, continuous density.
- ``"standard"``: every pixel column to zero mean and unit variance (a constant column to 0).

Features (``load_dataset(..., features=...)``), computed from the (preprocessed) pixels and cached:

- ``"umap"``: UMAP (McInnes et al., 2018; umap-learn) to ``n_features`` dimensions with 20
  neighbours and ``min_dist=0``, the settings N2D found best for clustering.
- ``"autoencoder"``: the code layer of N2D's autoencoder, trained by flowmix
  (flowmix.paper.data.autoencoder).
- ``"n2d"``: N2D (McConville et al., 2020): UMAP of the autoencoder's codes.

The default dimension is the number of classes (N2D's choice: one direction per cluster).
UMAP is run single-threaded with a fixed seed so that it is deterministic; on MNIST it takes
about 4 minutes on this project's CPU, once: the features are cached like the PCA projections,
under ``<cache_dir>/features/``, keyed by the data set's files, the preprocessing, the method, its
settings and the versions of flowmix, umap-learn and torch.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from flowmix.paper.data.autoencoder import AUTOENCODER_HIDDEN, train_autoencoder
from flowmix.paper.data.cache import cache_digest, flowmix_version, read_cached, write_cached

logger = logging.getLogger(__name__)

__all__ = [
    "FEATURES",
    "PREPROCESSING",
    "cached_features",
    "dequantize_logit",
    "feature_settings",
    "features_cache_path",
    "learned_features",
    "preprocess_pixels",
    "standardize",
]

#: Accepted ``features`` names.
FEATURES: tuple[str, ...] = ("umap", "autoencoder", "n2d")
#: Accepted ``preprocessing`` names.
PREPROCESSING: tuple[str, ...] = ("logit", "standard")

_LOGIT_ALPHA = 1e-6
_UMAP_NEIGHBOURS = 20
_AUTOENCODER_EPOCHS = 30
_AUTOENCODER_CODE = 10  # N2D's code size, whatever the final dimension


def dequantize_logit(X: np.ndarray, *, seed: int, alpha: float = _LOGIT_ALPHA) -> np.ndarray:
    """Dequantised pixels in logit space: ``logit(alpha + (1 - 2 alpha) (v + u) / 256)``.

    Parameters
    ----------
    X : ndarray of shape (N, D)
        Pixels / 255 (levels v = 255 X, rounded).
    seed : int
        Seed of the uniform noise u.
    alpha : float, default 1e-6

    Returns
    -------
    ndarray of float32, shape (N, D)

    Examples
    --------
    >>> Z = dequantize_logit(np.array([[0.0, 1.0]], dtype=np.float32), seed=0)
    >>> bool(Z[0, 0] < -5 < 5 < Z[0, 1])
    True
    """
    levels = np.rint(np.asarray(X, dtype=np.float64) * 255.0)
    noise = np.random.default_rng(seed).random(levels.shape)
    x = alpha + (1.0 - 2.0 * alpha) * (levels + noise) / 256.0
    return np.log(x / (1.0 - x)).astype(np.float32)


def standardize(X: np.ndarray) -> np.ndarray:
    """Every column to zero mean and unit variance; a constant column becomes 0.

    Examples
    --------
    >>> standardize(np.array([[0.0, 5.0], [2.0, 5.0]]))
    array([[-1.,  0.],
           [ 1.,  0.]], dtype=float32)
    """
    X = np.asarray(X, dtype=np.float64)
    std = X.std(axis=0)
    return ((X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


def preprocess_pixels(X: np.ndarray, preprocessing: str | None, *, seed: int) -> np.ndarray:
    """``X`` (pixels / 255) after ``preprocessing`` (one of ``PREPROCESSING``, or None)."""
    if preprocessing is None:
        return X
    if preprocessing == "logit":
        return dequantize_logit(X, seed=seed)
    if preprocessing == "standard":
        return standardize(X)
    raise ValueError(f"preprocessing must be None or one of {list(PREPROCESSING)}, got {preprocessing!r}.")


def feature_settings(method: str, n_features: int, seed: int) -> dict[str, Any]:
    """Every setting the features of ``method`` depend on (also their cache key)."""
    umap = {"n_neighbors": _UMAP_NEIGHBOURS, "min_dist": 0.0, "metric": "euclidean"}
    autoencoder = {"hidden": list(AUTOENCODER_HIDDEN), "n_epochs": _AUTOENCODER_EPOCHS, "batch_size": 256}
    if method == "umap":
        return {"method": method, "n_features": n_features, "seed": seed, "umap": umap}
    if method == "autoencoder":
        return {"method": method, "n_features": n_features, "seed": seed, "autoencoder": autoencoder}
    if method == "n2d":
        autoencoder = {**autoencoder, "code": _AUTOENCODER_CODE}
        return {
            "method": method,
            "n_features": n_features,
            "seed": seed,
            "umap": umap,
            "autoencoder": autoencoder,
        }
    raise ValueError(f"features must be None or one of {list(FEATURES)}, got {method!r}.")


def _versions(method: str) -> dict[str, str]:
    import torch

    versions = {"flowmix": flowmix_version(), "torch": torch.__version__}
    if method in ("umap", "n2d"):
        # Read from the installed metadata: a cache lookup needs no numba compilation, and
        # without umap-learn only a miss (which then says how to install it) needs it.
        try:
            versions["umap-learn"] = importlib.metadata.version("umap-learn")
        except importlib.metadata.PackageNotFoundError:
            versions["umap-learn"] = "not installed"
    return versions


def _umap_module() -> Any:
    try:
        import umap
    except ImportError as err:
        raise ImportError(
            "features='umap' and 'n2d' need umap-learn: pip install 'flowmix[features]' "
            "(or pip install umap-learn)."
        ) from err
    return umap


def _umap(X: np.ndarray, n_features: int, seed: int) -> np.ndarray:
    umap = _umap_module()
    reducer = umap.UMAP(
        n_components=n_features,
        n_neighbors=_UMAP_NEIGHBOURS,
        min_dist=0.0,
        metric="euclidean",
        random_state=seed,  # single-threaded, hence reproducible
        n_jobs=1,
    )
    return np.ascontiguousarray(reducer.fit_transform(X), dtype=np.float32)


def _compute(X: np.ndarray, method: str, n_features: int, seed: int, verbose: bool) -> np.ndarray:
    """UMAP of X, or an autoencoder's codes of it (N2D's UMAP step is in :func:`learned_features`)."""
    if method == "umap":
        return _umap(X, n_features, seed)
    return train_autoencoder(X, n_features, n_epochs=_AUTOENCODER_EPOCHS, seed=seed, verbose=verbose)


def features_cache_path(
    cache_dir: Path,
    name: str,
    settings: Mapping[str, Any],
    sources: Mapping[str, str],
    shape: tuple[int, int],
    preprocessing: str | None,
) -> Path:
    """Where the features of data set ``name`` with ``settings`` (:func:`feature_settings`) are cached."""
    key = {
        "sources": dict(sorted(sources.items())),
        "shape": list(shape),
        "preprocessing": preprocessing,
        "settings": dict(settings),
        "versions": _versions(str(settings["method"])),
    }
    stem = f"{name}-{settings['method']}{settings['n_features']}-v{flowmix_version()}-{cache_digest(key)}"
    return Path(cache_dir) / "features" / f"{stem}.npy"


def cached_features(
    cache_dir: Path,
    name: str,
    method: str,
    n_features: int,
    *,
    sources: Mapping[str, str],
    shape: tuple[int, int],
    preprocessing: str | None,
    seed: int,
) -> np.ndarray | None:
    """The cached features of data set ``name`` (pixels of ``shape``), or None; needs no pixels."""
    settings = feature_settings(method, n_features, seed)
    path = features_cache_path(cache_dir, name, settings, sources, shape, preprocessing)
    return read_cached(path, (shape[0], n_features), f"{method} features of {name}")


def learned_features(
    X: np.ndarray,
    method: str,
    n_features: int,
    *,
    name: str,
    sources: Mapping[str, str],
    cache_dir: Path | None,
    preprocessing: str | None = None,
    seed: int = 0,
    verbose: bool = False,
) -> np.ndarray:
    """The ``method`` features (one of ``FEATURES``) of ``X`` (N, D), using the cache.

    Parameters
    ----------
    X : ndarray of shape (N, D)
        The (preprocessed) pixels.
    method : {"umap", "autoencoder", "n2d"}
    n_features : int
        Output dimension.
    name, sources : str, mapping
        Data-set name and its files' SHA-256 (part of the cache key).
    cache_dir : Path or None
        Root of the cache; None disables caching.
    preprocessing : str or None
        What was applied to the pixels (part of the cache key).
    seed : int, default 0
        Seed of UMAP and of the autoencoder.
    verbose : bool, default False
        Progress bar of the autoencoder's training.

    Returns
    -------
    ndarray of float32, shape (N, n_features)
    """
    where = {"sources": sources, "shape": X.shape, "preprocessing": preprocessing, "seed": seed}
    if cache_dir is not None:
        cached = cached_features(cache_dir, name, method, n_features, **where)
        if cached is not None:
            return cached
    settings = feature_settings(method, n_features, seed)
    logger.info("computing the %s features of %s", method, name)
    if method == "n2d":
        # The autoencoder's codes are the "autoencoder" features of N2D's code size, cached as such.
        codes = learned_features(
            X,
            "autoencoder",
            _AUTOENCODER_CODE,
            name=name,
            sources=sources,
            cache_dir=cache_dir,
            preprocessing=preprocessing,
            seed=seed,
            verbose=verbose,
        )
        Z = _umap(codes, n_features, seed)
    else:
        Z = _compute(X, method, n_features, seed, verbose)
    if cache_dir is not None:
        path = features_cache_path(cache_dir, name, settings, sources, X.shape, preprocessing)
        write_cached(path, Z, f"{method} features of {name}")
    return Z
