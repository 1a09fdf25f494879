"""Keep freed tensor memory inside the process while training or predicting.

Each training step allocates and frees the same large tensors (activations, gradients: hundreds of
MB for the image models). glibc serves blocks above its mmap threshold (at most 32 MB) with fresh
``mmap`` pages and hands them back on ``free``, so every step page-faults and zero-fills them
again: on the 2-core reference machine that cost a quarter of the image-model step
(benchmarks/RESULTS.md). Inside :func:`reuse_freed_memory` large blocks come from the heap and
freed ones stay there to be reused by the next step; on exit the free memory is returned to the
system (``malloc_trim``).

The settings are the whole process's, and they cannot be put back: glibc has no getter for them,
and no way back to its adaptive thresholds once they are set, so on exit they are fixed at the
values that adaptation reaches at most (blocks from 32 MiB up are mapped, and the heap is trimmed
beyond 64 MiB of free memory at its top). A library must not change its caller's allocator for
good, so this is off unless flowmix owns the process or the user asks for it:

* ``flowmix``'s own command line and the worker processes it spawns turn it on
  (:func:`enable_for_process`), as a script that owns its process may;
* ``FLOWMIX_REUSE_MEMORY=1`` turns it on anywhere, ``FLOWMIX_REUSE_MEMORY=0`` off everywhere
  (the command line included).

Only glibc has these knobs; elsewhere (macOS, musl, Windows) this is a no-op, and so it is when
the user tunes malloc through the environment (``MALLOC_*_`` or ``GLIBC_TUNABLES``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from collections.abc import Iterator

from flowmix import _environment

# mallopt parameter numbers (malloc.h) and the values restored on exit: glibc's default mmap
# count, and the largest thresholds its adaptation reaches (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit,
# and twice that for trimming).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_DEFAULT_MMAP_MAX = 65536
_ADAPTED_MMAP_THRESHOLD = 32 * 2**20
_ADAPTED_TRIM_THRESHOLD = 2 * _ADAPTED_MMAP_THRESHOLD
_KEEP_TRIM_THRESHOLD = 2**31 - 1
_USER_TUNING = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_TOP_PAD_")

_lock = threading.Lock()
_depth = 0
# Whether this process is flowmix's own (its command line, its workers): see enable_for_process.
_owned = False


def _load_glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 -- raises AttributeError on non-glibc C libraries
        return libc
    except (OSError, AttributeError):
        return None


_glibc = _load_glibc()


def enable_for_process() -> None:
    """Let :func:`reuse_freed_memory` tune malloc in this process: for programs that own their process.

    flowmix's command line calls it first thing; so may a script or benchmark of one's own.
    ``FLOWMIX_REUSE_MEMORY=0`` still turns it off.
    """
    global _owned
    _owned = True


def enabled() -> bool:
    """Whether :func:`reuse_freed_memory` changes anything in this process.

    Only on glibc, and only where the process is flowmix's (:func:`enable_for_process`) or
    ``FLOWMIX_REUSE_MEMORY=1``; never with ``FLOWMIX_REUSE_MEMORY=0`` or malloc tuned by the user.
    """
    choice = _environment.reuse_memory()
    if _glibc is None or choice is False or not (_owned or choice):
        return False
    user_tuned = any(name in os.environ for name in _USER_TUNING)
    return not user_tuned and "glibc.malloc" not in os.environ.get("GLIBC_TUNABLES", "")


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Serve large allocations from the heap and keep freed ones for reuse, until exit.

    Nothing happens unless :func:`enabled`. Nested and concurrent uses are counted: when the last
    one exits, the free memory goes back to the system and the thresholds are fixed at the largest
    values glibc's adaptation reaches (the defaults themselves cannot be restored).
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
                _glibc.mallopt(_M_MMAP_THRESHOLD, _ADAPTED_MMAP_THRESHOLD)
                _glibc.mallopt(_M_TRIM_THRESHOLD, _ADAPTED_TRIM_THRESHOLD)
                _glibc.malloc_trim(0)
