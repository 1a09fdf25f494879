"""Derived arrays of the image sets (PCA projections, learned features) cached as ``.npy`` files.

A file's name holds a digest of everything the array depends on (the source files' SHA-256, the
method and its settings, the library versions), so a change of any of them misses the cache
instead of reading a stale array. Files are written atomically; an unreadable or misshapen file
is ignored (and recomputed), an unwritable cache only costs the recomputation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from flowmix._io import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["cache_digest", "flowmix_version", "read_cached", "write_cached"]


def flowmix_version() -> str:
    """The installed flowmix's version (part of every cache file name)."""
    import flowmix

    return str(getattr(flowmix, "__version__", "0"))


def cache_digest(key: Mapping[str, Any]) -> str:
    """A short digest of ``key`` (JSON-serialisable), for a cache file name."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def read_cached(path: Path, shape: tuple[int, int], what: str) -> np.ndarray | None:
    """The float32 array of ``shape`` cached at ``path``, or None (missing, unreadable or misshapen)."""
    if not path.is_file():
        return None
    try:
        Z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable %s cache %s: %s", what, path, exc)
        return None
    if Z.shape != shape or Z.dtype != np.float32:
        logger.warning("ignoring %s cache %s of shape %s, dtype %s", what, path, Z.shape, Z.dtype)
        return None
    logger.info("%s read from %s", what, path)
    return Z


def write_cached(path: Path, Z: np.ndarray, what: str) -> None:
    """Write ``Z`` to ``path`` atomically; a failure is logged, not raised."""
    try:
        atomic_write(path, lambda tmp: np.save(tmp, Z, allow_pickle=False))
    except OSError as exc:
        logger.warning("cannot cache the %s in %s: %s", what, path, exc)
    else:
        logger.info("%s cached in %s", what, path)
