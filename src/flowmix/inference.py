"""Inference of a fitted mixture: joint log densities chunk by chunk, in float32 or float64.

``FlowMixture.predict``, ``predict_proba``, ``score_samples`` and ``score`` all reduce
``log pi_k + log flow_k(x)`` (one restart, all K components), which :class:`Inference` computes in
chunks of points so that memory stays bounded whatever N is.

Two precisions, chosen by the estimator's ``inference_dtype``:

- ``float64``: a float64 copy of the density runs the same modules as training (the reference
  arithmetic; results for a point depend on the other points of its chunk only in the last bits,
  about 1e-14, and agree bit for bit with flowmix 0.1.0).
- ``float32``: the density's own float32 parameters (what training produced, so nothing is
  rounded). Where the flows' transformer has a float32 inference kernel (the MAF's affine
  transformer with one-hidden-layer MADEs, the paper's model: flowmix.flows.maf_inference) it
  runs, with diagonal bases; other flows run their modules in float32 (``Inference.kernel``
  says which).
  float32 kernels round a point differently with the shape of the batch it is computed in, so
  every pass runs on blocks of one fixed width (``Inference.points_per_block``, set by the
  model alone), the last block padded: a point's results are then the same bits whatever the
  other points of its call, their number and their order.
"""

from __future__ import annotations

import copy
import itertools
import logging

import numpy as np
import torch
from torch import Tensor

from flowmix import density as density_module
from flowmix._denormals import flush_denormals
from flowmix._memory import reuse_freed_memory
from flowmix.density import MixtureOfFlows
from flowmix.flows.base_distributions import DiagonalNormal

logger = logging.getLogger(__name__)

INFERENCE_DTYPES = {"float32": torch.float32, "float64": torch.float64}

# float32 inference runs every product and element-wise pass on blocks of exactly
# Inference.points_per_block points, the last block padded: float32 kernels round a column
# differently with the width of the matrix it is in (a product's blocking, a loop's vectorised
# part and its scalar remainder), so a point's result would otherwise depend on how many points
# are predicted with it. The width comes from the model alone: the blocks' activations take
# about _BLOCK_FLOATS numbers (wider blocks cost less per point in calls and lose less of the
# element-wise passes' threading, narrower ones cost less in small calls; measured in
# benchmarks/block_width.py), in whole multiples of _BLOCK_MULTIPLE points so that the vectorised
# loops along a block's rows leave no scalar remainder (at 50 points a block, a point's result
# changed with its place in the block).
_BLOCK_FLOATS = 2**23
_BLOCK_MULTIPLE = 64


def torch_inference_dtype(name: object) -> torch.dtype:
    """The torch dtype named by an ``inference_dtype`` parameter, or a ValueError that lists the choices."""
    if not isinstance(name, str) or name not in INFERENCE_DTYPES:
        raise ValueError(
            f"inference_dtype must be 'float32' (fast) or 'float64' (reference precision), got {name!r}."
        )
    return INFERENCE_DTYPES[name]


def in_dtype(density: MixtureOfFlows, dtype: torch.dtype) -> MixtureOfFlows:
    """``density`` itself if it holds ``dtype`` numbers, else a copy converted to ``dtype``."""
    return density if density.logits.dtype == dtype else copy.deepcopy(density).to(dtype)


class Inference:
    """Joint log densities of a fitted mixture, evaluated in chunks in one precision.

    In float32 a point's results do not depend on the other points of a call: every pass runs on
    blocks of exactly ``points_per_block`` points (the last one padded with copies of its last
    point, whose results are dropped), so each point meets the same kernels on operands of the
    same shapes whatever it is predicted with. In float64 each chunk runs whole, as flowmix
    0.1.0 did (its results move with the chunk by about 1e-14 relative).

    Parameters
    ----------
    density : MixtureOfFlows
        The fitted mixture (any number of restarts; the estimator keeps one). It is not changed;
        a float64 copy is made for float64 inference of a float32 density (and the reverse).
    dtype : torch.dtype
        ``torch.float32`` or ``torch.float64``.
    max_bytes : int or None, default=None
        Bytes the model (in ``dtype``) and one chunk's activations may take together: chunks are
        made smaller to fit (whole blocks in float32), and a budget too small for one block (one
        point in float64) is refused with a ValueError. None: the default chunk sizes.

    Attributes
    ----------
    points_per_chunk : int
        Points per chunk: the activations of one chunk take at most the bytes of
        ``flowmix.density.INFERENCE_CHUNK_FLOATS`` float64 numbers (128 MiB), whatever the dtype.
        In float32 a whole number of blocks (one at least), evaluated one block at a time.
    points_per_block : int or None
        float32: the width of every block, a multiple of 64 set by the model's architecture
        alone (never by the number of points). None in float64.
    kernel : str
        What evaluates the flows: the class name of the flows' float32 inference kernel
        (``"BlockedMAF"``), or ``"generic"`` for their own modules (float64, full-covariance
        bases, and flows without such a kernel).

    Examples
    --------
    >>> from flowmix.flows import make_flow
    >>> density = MixtureOfFlows(make_flow("maf", 3, 2), torch.zeros(1, 3, 2), 0.5)
    >>> fast = Inference(density, torch.float32)
    >>> x = torch.randn(7, 2)
    >>> joint = fast.joint_log_prob(x)
    >>> tuple(joint.shape)
    (1, 3, 7)
    >>> torch.equal(fast.joint_log_prob(x[2:5]), joint[..., 2:5])
    True
    """

    def __init__(self, density: MixtureOfFlows, dtype: torch.dtype, max_bytes: int | None = None):
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}.")
        self.dtype = dtype
        self.density = in_dtype(density, dtype)
        self.blocked = None
        self.points_per_block: int | None = None
        self._base = self.density.base()  # the same for every block
        # The float32 kernels take points shared by every flow; on subspaces each flow has its own.
        if (
            dtype == torch.float32
            and isinstance(self._base, DiagonalNormal)
            and self.density.subspaces is None
        ):
            self.blocked = self.density.flows.float32_inference()
            # The weights in float64 first: their log-softmax then costs no float32 rounding.
            log_weights = torch.log_softmax(self.density.logits.detach().double(), dim=-1)
            self._log_weights = log_weights.to(dtype)[:, :, None]
        self.kernel = "generic" if self.blocked is None else type(self.blocked).__name__
        if dtype == torch.float32 and self.blocked is None:
            logger.debug(
                "float32 inference of %s flows: generic modules (no kernel for them)",
                self.density.flows.family,
            )
        if dtype == torch.float64:
            # The reference path's chunks, unchanged (its results depend on them in the last bits).
            self.points_per_chunk = self.density.points_per_chunk()
        else:
            per_point = self._floats_per_point()
            self.points_per_block = _BLOCK_MULTIPLE * max(1, _BLOCK_FLOATS // (_BLOCK_MULTIPLE * per_point))
            # The float64 path's bytes, in float32 numbers, rounded down to whole blocks.
            blocks = 2 * density_module.INFERENCE_CHUNK_FLOATS // (per_point * self.points_per_block)
            self.points_per_chunk = self.points_per_block * max(1, blocks)
        if max_bytes is not None:
            self._keep_within(max_bytes)

    def _floats_per_point(self) -> int:
        """Activations one point of a chunk holds (what the chunk sizes above count)."""
        density = self.density
        if self.blocked is not None:
            return self.blocked.floats_per_point()
        return density.n_restarts * density.n_components * density.floats_per_point()

    def _bytes_per_point(self) -> int:
        return self._floats_per_point() * self.dtype.itemsize

    def _keep_within(self, max_bytes: int) -> None:
        """Smaller chunks where the model and one chunk's activations would take more than ``max_bytes``.

        float32 chunks stay whole blocks (the block width is the model's, whatever the budget);
        a budget that cannot hold the model and one block (one point in float64) is refused.
        """
        held = itertools.chain(self.density.parameters(), self.density.buffers())
        model = sum(t.numel() * t.element_size() for t in held)
        per_point, smallest = self._bytes_per_point(), self.points_per_block or 1
        if max_bytes - model < smallest * per_point:
            mib = 2.0**20
            raise ValueError(
                f"Evaluating this model needs {model / mib:.1f} MiB for its parameters and "
                f"{smallest * per_point / mib:.1f} MiB for the smallest chunk of points "
                f"({smallest}), but max_memory leaves {max(max_bytes, 0) / mib:.1f} MiB for them (after the "
                "outputs): raise max_memory (set_params works on a fitted model), or predict fewer "
                "points at a time."
            )
        fitting = (max_bytes - model) // per_point
        if fitting < self.points_per_chunk:
            self.points_per_chunk = int(fitting // smallest * smallest)

    def joint_log_prob(self, x: Tensor) -> Tensor:
        """log pi_rk + log flow_rk(x) for one chunk: x (n, D) -> (R, K, n) in ``dtype``.

        In float32 the results of each point are independent of the other rows of x.
        """
        density = self.density
        x = x.to(self.dtype)
        with torch.inference_mode():
            if self.points_per_block is None:
                return density.joint_log_prob(x)
            width, n_points = self.points_per_block, x.shape[0]
            out = torch.empty(
                density.n_restarts, density.n_components, n_points, dtype=x.dtype, device=x.device
            )
            for start in range(0, n_points, width):
                part = x[start : start + width]
                columns = torch.empty(density.dim, width, dtype=x.dtype, device=x.device)
                columns[:, : len(part)] = part.T
                columns[:, len(part) :] = part[-1, :, None]  # padding, dropped below
                out[..., start : start + len(part)] = self._block(columns)[..., : len(part)]
            return out

    def _block(self, columns: Tensor) -> Tensor:
        """float32 joint log densities of one block of points as columns: (D, width) -> (R, K, width)."""
        density = self.density
        if self.blocked is None:
            return density.joint_log_prob_columns(columns)
        component = self.blocked.log_prob_columns(columns, self._base)
        return self._log_weights + component.reshape(density.n_restarts, density.n_components, -1)


@reuse_freed_memory()
@flush_denormals()
def joint_log_prob(density: MixtureOfFlows, X: np.ndarray, dtype: str, max_bytes: int) -> np.ndarray:
    """log pi_k + log flow_k(x) of every row of X (N, D) under a one-restart density: (N, K) float64.

    Computed chunk by chunk in ``dtype`` ("float32" or "float64") so that the model, one chunk
    and the (N, K) outputs stay within ``max_bytes``. Far from the data (``|x|`` beyond about 1e19)
    float32 squares overflow to -inf where float64 stays finite; those rows (rare) are computed
    again in float64.
    """
    device = density.logits.device
    n_components = density.logits.shape[-1]
    budget = max_bytes - 8 * X.shape[0] * n_components  # what the outputs leave for the model and a chunk
    inference = Inference(density, torch_inference_dtype(dtype), max_bytes=budget)
    out = np.empty((X.shape[0], n_components), dtype=np.float64)
    _fill(inference, X, np.arange(X.shape[0]), out, device)
    far = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if far.size and inference.dtype != torch.float64:
        _fill(Inference(density, torch.float64, max_bytes=budget), X, far, out, device)
    return out


def _fill(
    inference: Inference, X: np.ndarray, rows: np.ndarray, out: np.ndarray, device: torch.device
) -> None:
    """out[rows] = the joint log densities of X[rows], one chunk at a time."""
    chunk = inference.points_per_chunk
    contiguous = rows.size == X.shape[0]
    for start in range(0, rows.size, chunk):
        part = rows[start : start + chunk]
        points = X[start : start + chunk] if contiguous else X[part]
        out[part] = inference.joint_log_prob(torch.as_tensor(points, device=device))[0].T.cpu().numpy()
