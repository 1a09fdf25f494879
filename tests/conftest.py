"""Shared fixtures."""

from __future__ import annotations

import pytest

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
