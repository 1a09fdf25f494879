"""The spline layer's training step compiled from C (``spline_kernel.c``), loaded with ctypes.

At the sizes of an everyday fit (a few flows of a few dimensions, a few hundred points per step)
the torch version of the step (:class:`flowmix.flows.spline._FusedSpline`) is about a hundred
small tensor operations per layer, each costing more in dispatch than in arithmetic; the C
version is one call per layer and direction. Above ``MAX_ELEMENTS`` elements per layer torch's
vectorised, multi-threaded kernels are faster, so large steps keep the torch version.

The library is compiled on first use with the system's C compiler (``$CC``, else ``cc``) into
flowmix's cache folder (``$FLOWMIX_CACHE_DIR``, else ``$XDG_CACHE_HOME/flowmix`` or
``~/.cache/flowmix``), named by a hash of the source, and reused after; ``make venv`` builds it
(:func:`build_or_explain`). The source is package data, so a flowmix installed from a wheel
compiles it the same way, never writing to its own install folder (``make wheel-check``).
Where it cannot be built, training falls back to the torch version (the same mathematics,
slower on small data) with one warning that says why. ``FLOWMIX_NATIVE=0`` in the environment, or
``ENABLED = False`` here, selects the torch version.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

from flowmix import _environment

SOURCE = Path(__file__).with_name("spline_kernel.c")
# Elements (stacked flows x dimensions x points) of one layer's step above which torch's own
# vectorised kernels win (benchmarks/spline_step.py measures both).
MAX_ELEMENTS = 1 << 15
_FLAGS = ("-O2", "-shared", "-fPIC")
# Whether training uses the compiled step where it applies (the torch version otherwise).
ENABLED = _environment.native_kernels()
_SUFFIXES = {torch.float32: "f32", torch.float64: "f64"}


def cache_dir() -> Path:
    """Where compiled kernels are kept: the user's cache folder, or the temporary one where that is read-only."""
    if _environment.kernel_cache_dir() is not None:
        return _environment.kernel_cache_dir()
    preferred = _environment.user_cache_dir()
    fallback = Path(tempfile.gettempdir()) / f"flowmix-{os.getuid()}"
    try:
        preferred.mkdir(parents=True, exist_ok=True)
    except OSError:
        return fallback
    return preferred if os.access(preferred, os.W_OK) else fallback


def library_path() -> Path:
    """The compiled library for this source and these flags (built or not)."""
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(_FLAGS).encode()).hexdigest()[:16]
    return cache_dir() / f"spline_kernel-{digest}.so"


def build() -> Path:
    """Compile the kernel into the cache (atomically: a concurrent build never sees half a file).

    Raises
    ------
    RuntimeError
        Without a C compiler, or where compiling fails; the message says which and why.
    """
    target = library_path()
    if target.exists():
        return target
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C compiler ({compiler!r} is not on PATH; install gcc or set CC)")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(handle)
    try:
        done = subprocess.run(
            [compiler, *_FLAGS, "-o", partial, str(SOURCE), "-lm"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {done.stderr.strip()[-2000:]}")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return target


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The loaded kernel, built if needed; None (after one warning) where it cannot be."""
    try:
        lib = ctypes.CDLL(str(build()))
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        warnings.warn(
            f"flowmix could not build its compiled spline kernel ({err}); spline flows train with "
            "the pure-torch step instead: the same results, about twice as slow on small data.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    pointer, size, real = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
    for suffix in ("f32", "f64"):
        getattr(lib, f"rq_forward_{suffix}").argtypes = [pointer] * 5 + [size] * 3 + [real] * 2
        getattr(lib, f"rq_backward_{suffix}").argtypes = [pointer] * 8 + [size] * 3 + [real] * 3
    return lib


def usable(x: Tensor, params: Tensor) -> bool:
    """Whether the compiled step applies to this layer's input (S, D, N) and parameters."""
    return (
        ENABLED
        and x.device.type == "cpu"
        and params.device.type == "cpu"
        and x.dtype in _SUFFIXES
        and params.dtype == x.dtype
        and x.numel() <= MAX_ELEMENTS
        and library() is not None
    )


def forward(
    x: Tensor, shares: Tensor, slopes: Tensor, n_bins: int, minima: tuple[float, float]
) -> tuple[Tensor, Tensor]:
    """The spline at x (S, D, N): (y, log|dy/dx|), both (S, D, N).

    ``shares`` (S, 2B, D, N) are the softmax shares of the bin widths then heights, ``slopes``
    (S, B - 1, D, N) the inner knots' derivatives, both contiguous in x's dtype; ``minima`` the
    smallest bin width and height.
    """
    x = x.contiguous()
    y, log_det = torch.empty_like(x), torch.empty_like(x)
    getattr(library(), f"rq_forward_{_SUFFIXES[x.dtype]}")(
        x.data_ptr(), shares.data_ptr(), slopes.data_ptr(), y.data_ptr(), log_det.data_ptr(),
        x.shape[0], n_bins, x[0].numel(), *minima,
    )  # fmt: skip
    return y, log_det


def backward(
    x: Tensor,
    shares: Tensor,
    slopes: Tensor,
    params: Tensor,
    grad_y: Tensor,
    grad_log_det: Tensor,
    n_bins: int,
    minima: tuple[float, float],
    identity_offset: float,
) -> tuple[Tensor, Tensor]:
    """Gradients of :func:`forward`'s (y, log_det) with respect to x and the MADE's output params (S, 3B - 1, D, N).

    ``identity_offset`` is added to the raw knot derivatives before their softplus.
    """

    x, params = x.contiguous(), params.contiguous()
    grad_y, grad_log_det = grad_y.contiguous(), grad_log_det.contiguous()
    grad_x, grad_params = torch.empty_like(x), torch.empty_like(params)
    getattr(library(), f"rq_backward_{_SUFFIXES[x.dtype]}")(
        x.data_ptr(), shares.data_ptr(), slopes.data_ptr(), params.data_ptr(), grad_y.data_ptr(),
        grad_log_det.data_ptr(), grad_x.data_ptr(), grad_params.data_ptr(),
        x.shape[0], n_bins, x[0].numel(), *minima, identity_offset,
    )  # fmt: skip
    return grad_x, grad_params


def build_or_explain() -> str:
    """Build the kernel now (``make venv`` does); a line that says where it is, or why training will use torch."""
    try:
        return f"compiled spline kernel: {build()}"
    except RuntimeError as err:  # not an error: training falls back to the torch step
        return f"no compiled spline kernel ({err}); spline flows will train with the torch step"
