"""Every ``FLOWMIX_*`` switch of the environment, read in one place.

============================  =============================================================
variable                      effect
============================  =============================================================
``FLOWMIX_NATIVE=0``          train with the torch spline step, not the compiled one
``FLOWMIX_CACHE_DIR``         where compiled kernels are kept (else the user's cache folder)
``FLOWMIX_FLUSH_DENORMALS=0`` leave the CPU's flush-to-zero setting alone
``FLOWMIX_REUSE_MEMORY``      ``1``: keep freed tensor memory in any process; ``0``: never
``FLOWMIX_DATA``              a folder searched for the paper's image files
``FLOWMIX_NO_DOWNLOAD=1``     never download data files
``FLOWMIX_MIRROR``            base URLs (whitespace-separated) to download data files from
============================  =============================================================

Each is read when it is needed (not at import), so a test or a program may set it first.
"""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}


def native_kernels() -> bool:
    """Whether training may use compiled kernels (``FLOWMIX_NATIVE`` is not ``0``)."""
    return os.environ.get("FLOWMIX_NATIVE", "1") != "0"


def kernel_cache_dir() -> Path | None:
    """``FLOWMIX_CACHE_DIR``, or None where it is not set."""
    value = os.environ.get("FLOWMIX_CACHE_DIR")
    return Path(value) if value else None


def user_cache_dir() -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/flowmix``, else ``~/.cache/flowmix``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "flowmix"


def flush_denormals() -> bool:
    """Whether flowmix may set flush-to-zero while it computes (``FLOWMIX_FLUSH_DENORMALS`` is not ``0``)."""
    return os.environ.get("FLOWMIX_FLUSH_DENORMALS", "1") != "0"


def reuse_memory() -> bool | None:
    """``FLOWMIX_REUSE_MEMORY``: True (``1``), False (``0``), or None (unset: flowmix's own processes only)."""
    return {"1": True, "0": False}.get(os.environ.get("FLOWMIX_REUSE_MEMORY", ""))


def data_dir() -> Path | None:
    """``FLOWMIX_DATA``, or None where it is not set."""
    value = os.environ.get("FLOWMIX_DATA")
    return Path(value).expanduser() if value else None


def downloads_refused() -> bool:
    """Whether ``FLOWMIX_NO_DOWNLOAD`` is set to a true value."""
    return os.environ.get("FLOWMIX_NO_DOWNLOAD", "").strip().lower() in _TRUE


def mirrors() -> list[str] | None:
    """The base URLs of ``FLOWMIX_MIRROR``, or None where it is not set."""
    return os.environ.get("FLOWMIX_MIRROR", "").split() or None
