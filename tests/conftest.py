"""Shared fixtures."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs, make_circles

from flowmix.paper.data import files as dsfiles


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No shared data, a private cache, and no known mirror: a stray download fails offline."""
    monkeypatch.delenv("FLOWMIX_DATA", raising=False)
    monkeypatch.delenv("FLOWMIX_MIRROR", raising=False)
    monkeypatch.delenv("FLOWMIX_NO_DOWNLOAD", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(dsfiles, "MIRRORS", {})


@pytest.fixture
def offline(isolated, monkeypatch):
    """``isolated``, with downloads switched off as well (``FLOWMIX_NO_DOWNLOAD=1``)."""
    monkeypatch.setenv("FLOWMIX_NO_DOWNLOAD", "1")


@pytest.fixture(scope="module")
def circles():
    """Two rings, 400 points, labels."""
    X, y = make_circles(400, noise=0.03, factor=0.5, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def three_blobs():
    """Three well-separated 2-D blobs, 300 points, labels."""
    X, y = make_blobs(300, centers=[[0, 0], [6, 0], [0, 6]], cluster_std=1.0, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def two_tight_blobs():
    """Two tight 2-D blobs at (0, 0) and (1, 1), 200 points, labels."""
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(0, 0.05, (100, 2)), rng.normal(1, 0.05, (100, 2))])
    return X, np.repeat([0, 1], 100)
