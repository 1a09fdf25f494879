"""Keep freed tensor memory inside the process while training or predicting.

Each training step allocates and frees the same large tensors (activations, gradients: hundreds of
MB for the image models). glibc serves blocks above its mmap threshold (at most 32 MB) with fresh
``mmap`` pages and hands them back on ``free``, so every step page-faults and zero-fills them
again: on the 2-core reference machine that cost a quarter of the image-model step
(benchmarks/RESULTS.md). Inside :func:`reuse_freed_memory` large blocks come from the heap and
freed ones stay there to be reused by the next step; on exit the defaults come back and the
free memory is returned to the system (``malloc_trim``).

Only glibc has these knobs; elsewhere (macOS, musl, Windows) this is a no-op. Set
``FLOWMIX_REUSE_MEMORY=0`` to turn it off.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from collections.abc import Iterator

# mallopt parameter numbers and glibc's defaults (malloc.h, malloc/malloc.c).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_DEFAULT_MMAP_MAX = 65536
_KEEP_TRIM_THRESHOLD = 2**31 - 1

_lock = threading.Lock()
_depth = 0


def _load_glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 -- raises AttributeError on non-glibc C libraries
        return libc
    except (OSError, AttributeError):
        return None


_glibc = _load_glibc()


def enabled() -> bool:
    """Whether :func:`reuse_freed_memory` changes anything in this process."""
    return _glibc is not None and os.environ.get("FLOWMIX_REUSE_MEMORY", "1") != "0"


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Serve large allocations from the heap and keep freed ones for reuse, until exit.

    Nested and concurrent uses are counted: the allocator returns to its defaults when the last
    one exits.
    """
    global _depth
    if not enabled():
        yield
        return
    with _lock:
        if _depth == 0:
            _glibc.mallopt(_M_MMAP_MAX, 0)
            _glibc.mallopt(_M_TRIM_THRESHOLD, _KEEP_TRIM_THRESHOLD)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _glibc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                _glibc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                _glibc.malloc_trim(0)
