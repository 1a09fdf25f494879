"""Flush denormal floats to zero on the CPU while training or predicting.

Saturated units (a sigmoid of a large negative pre-activation) produce float32 values below
1.2e-38, which some x86 CPUs handle in microcode at a hundred times the cost of a normal
operation (the slowdown measured on the paper's PCA image model is in benchmarks/RESULTS.md).
Flushing them to zero changes values by less than 1.2e-38 absolute: the paper presets' pinned
fits (tests/test_reference.py) give the same bits with and without it.

torch has no way to read the current setting, so the context sets flush-to-zero on entry and
switches it off (torch's default) when the last nested or concurrent use exits. Set
``FLOWMIX_FLUSH_DENORMALS=0`` to leave the setting alone.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import torch

_lock = threading.Lock()
_depth = 0


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Treat denormal floats as zero on the CPU until exit (process-wide; nested uses are counted)."""
    global _depth
    if os.environ.get("FLOWMIX_FLUSH_DENORMALS", "1") == "0":
        yield
        return
    with _lock:
        if _depth == 0:
            torch.set_flush_denormal(True)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                torch.set_flush_denormal(False)
