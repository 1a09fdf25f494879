"""Worker processes that share an experiment's independent fits between CPU cores.

A toy-sized fit keeps one core busy whatever torch's thread count (its matrices are too small to
split), so on a machine of several cores independent fits run faster side by side, each process
with its share of the threads, than one after another with all of them. Workers are started with
``spawn`` (a fresh interpreter: no forked torch or OpenMP state). Each fit's arithmetic is a
single process's, but with fewer threads: on this project's CPU every record of ``flowmix demo``
was bit-identical with one thread per process and with two in one process (scikit-learn's
k-means, which sums its objective in one part per thread, differed in the 7th digit in a test).
A change of thread count can move the last bit of some vectorised kernels, and a long fit can
grow such a bit into a near tie resolved differently. Image-sized fits split their matrix
products over all threads; leave them to one process.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context

__all__ = ["auto_jobs", "check_jobs", "check_sendable", "threads_per_job", "torch_threads", "worker_pool"]


def check_jobs(jobs: int) -> int:
    """``jobs`` if it is a whole number >= 1, else a ValueError saying what to pass."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a whole number >= 1 (1: no worker processes), got {jobs!r}.")
    return jobs


def check_sendable(value: object, name: str) -> None:
    """A ValueError saying what to pass if ``value`` cannot be sent to a spawned worker.

    Examples
    --------
    >>> check_sendable(len, "loader")
    >>> check_sendable(lambda name: name, "loader")
    Traceback (most recent call last):
    ...
    ValueError: loader cannot be sent to the worker processes (...); with jobs > 1 pass a ...
    """
    try:
        pickle.dumps(value)
    except (pickle.PicklingError, AttributeError, TypeError) as err:
        raise ValueError(
            f"{name} cannot be sent to the worker processes ({err}); with jobs > 1 pass a module-level "
            "function, or jobs=1."
        ) from None


def auto_jobs(device: str, n_tasks: int) -> int:
    """One process per core, at most one per task; a single process on a GPU, which its fits share.

    Examples
    --------
    >>> auto_jobs("cuda", 5)
    1
    >>> 1 <= auto_jobs("cpu", 5) <= 5
    True
    """
    if not device.startswith("cpu"):
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, n_tasks))


def threads_per_job(jobs: int) -> int:
    """torch threads each of ``jobs`` processes gets, so that together they use this process's count."""
    import torch

    return max(1, torch.get_num_threads() // jobs)


def _set_threads(threads: int) -> None:
    """A worker's start: its torch threads, and freed tensor memory kept (the process is flowmix's)."""
    import torch

    from flowmix._memory import enable_for_process

    torch.set_num_threads(threads)
    enable_for_process()


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """This process runs with ``threads`` torch threads inside the block, its own count again after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def worker_pool(workers: int, threads: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes with ``threads`` torch threads each.

    What the pool runs must be importable by name (a module-level function) and its arguments
    picklable: a spawned process starts from a fresh interpreter.
    """
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=_set_threads, initargs=(threads,)
    )
