"""Flush denormal floats to zero on the CPU while training or predicting.

Saturated units (a sigmoid of a large negative pre-activation) produce float32 values below
1.2e-38, which some x86 CPUs handle in microcode at a hundred times the cost of a normal
operation (the slowdown measured on the paper's PCA image model is in benchmarks/RESULTS.md).
Flushing them to zero changes values by less than 1.2e-38 absolute: the paper presets' pinned
fits (tests/test_reference.py) give the same bits with and without it.

The setting (``torch.set_flush_denormal``) belongs to the calling thread (x86's MXCSR, ARM's
FPCR), and torch has no way to read it, so the context reads it by experiment: a float32 denormal
doubled comes back as zero only where flushing is on. The outermost use in a thread records the
thread's setting on entry and puts it back on exit, so a caller who had flushing on keeps it, and
one who had it off gets it off again. Set ``FLOWMIX_FLUSH_DENORMALS=0`` to leave the setting alone.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

from flowmix import _environment

# Per thread, like the setting itself: how deep the nested uses go, and the setting found on entry.
_state = threading.local()


def flushing() -> bool:
    """Whether this thread flushes float32 denormals to zero now (tested, since torch has no getter).

    The denormal is made from its bits (no float conversion that a flush-to-zero mode could touch
    first), and doubled: with denormals-are-zero the input reads as 0, with flush-to-zero the
    result is written as 0, and with neither it is twice the input. One element: the product is
    computed on this thread, never by torch's worker threads.
    """
    denormal = torch.tensor([1 << 20], dtype=torch.int32).view(torch.float32)  # about 1.5e-39
    return (denormal * 2).item() == 0.0


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Treat denormal floats as zero on the CPU until exit, then restore the thread's own setting.

    Nested uses are counted: only the outermost one in a thread reads and restores the setting.
    """
    if not _environment.flush_denormals():
        yield
        return
    depth = getattr(_state, "depth", 0)
    if depth == 0:
        _state.before = flushing()
        if not _state.before:
            torch.set_flush_denormal(True)
    _state.depth = depth + 1
    try:
        yield
    finally:
        _state.depth -= 1
        if _state.depth == 0 and not _state.before:
            torch.set_flush_denormal(False)
