"""Memory a fit will need, known before it allocates: a budget, an estimate, a batch that fits.

A fit holds, at its peak, every restart x component flow's parameters with their gradients and
Adam's two moments, the training points as float32 columns, the activations one mini-batch
step keeps for its backward pass (every stacked flow sees the batch in the worst case: maximum
likelihood, soft EM; each flow family states its own, ``training_floats_per_point``), the
(R, K, N) joint log densities of an E-step and one inference chunk. The estimate is meant as an
upper bound of the resident memory a fit adds (benchmarks/memory_estimate.py measures both).
:func:`fit_plan` adds these up from the architecture alone (the flows are built on torch's
``meta`` device, which allocates nothing), and either returns the mini-batch size to use or
refuses with a ValueError that names the settings to change, before anything is allocated. So a
fit too large for the machine stops at once with an explanation instead of being killed by the
operating system half-way.

The budget (``FlowMixture(max_memory=...)``) is a number of bytes, or ``"auto"``: half of the
memory the operating system reports available (``MemAvailable`` on Linux; free device memory on
a GPU), which leaves room for the process's own libraries and for the data the caller holds.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from flowmix.density import INFERENCE_CHUNK_FLOATS
from flowmix.flows import make_flow
from flowmix.subspace import floats_per_point as subspace_floats_per_point
from flowmix.subspace import largest_dim, split_flow_params

#: Share of the available memory that ``max_memory="auto"`` allows a fit.
AUTO_SHARE = 0.5
#: Bytes per float32 number.
FLOAT_BYTES = 4
# What one inference chunk's activations may take (flowmix.density: counted in float64 numbers).
INFERENCE_CHUNK_BYTES = 8 * INFERENCE_CHUNK_FLOATS
# The starts' own work (k-means, a GMM, a kNN graph's spectral embedding) and the allocator's
# slack: without it the estimate fell 7% short of a 20 000-point 2-D fit's peak
# (benchmarks/memory_estimate.py).
OVERHEAD_BYTES = 64 * 2**20
# Parameter copies a fit holds: the parameters, their gradients and Adam's two moments.
PARAMETER_COPIES = 4
# The smallest mini-batch a shrunk batch_size="auto" may take: below it a step costs more in
# overhead than in arithmetic, and the settings are better changed.
MIN_AUTO_BATCH = 32


# batch_size="auto": half of the training points within [AUTO_BATCH_MIN, AUTO_BATCH_MAX], so that
# a data set of up to AUTO_BATCH_STEPS * AUTO_BATCH_MAX points takes at most AUTO_BATCH_STEPS
# steps an epoch (a fit's time on small data is the count of its steps; docs/user_guide/recipe.rst).
AUTO_BATCH_MIN, AUTO_BATCH_MAX = 512, 2048
AUTO_BATCH_STEPS = 2
#: The rule "auto" stands for, in checkpoint fingerprints: a checkpoint written under another rule
#: (the earlier one: a quarter of the points within [512, 1024]) trained other batches.
AUTO_BATCH_RULE = f"auto: 1/{AUTO_BATCH_STEPS} of the points within [{AUTO_BATCH_MIN}, {AUTO_BATCH_MAX}]"


def resolve_batch_size(batch_size: int | str, n_samples: int) -> int:
    """The mini-batch size ``batch_size`` stands for on ``n_samples`` training points."""
    if batch_size == "auto":
        return min(AUTO_BATCH_MAX, max(AUTO_BATCH_MIN, -(-n_samples // AUTO_BATCH_STEPS)))
    return int(batch_size)


@dataclasses.dataclass(frozen=True)
class FitPlan:
    """What a fit will hold at its peak, in bytes, and the mini-batch size that keeps it in budget.

    Attributes
    ----------
    batch_size : int
        Points per mini-batch.
    budget : int
        The budget the plan was made for.
    parameters : int
        Parameters, gradients and Adam's moments of every stacked flow.
    data : int
        The training points as float32 columns, one E-step's joint log densities, one
        inference chunk's activations and a fixed allowance for the starts.
    per_batch_point : int
        Activations a training step keeps per point of its mini-batch.
    shrunk : bool
        Whether ``batch_size="auto"`` was made smaller to fit the budget.
    """

    batch_size: int
    budget: int
    parameters: int
    data: int
    per_batch_point: int
    shrunk: bool = False

    @property
    def peak(self) -> int:
        """The estimated peak of the fit, in bytes."""
        return self.parameters + self.data + self.batch_size * self.per_batch_point


def available_memory(device: torch.device) -> int:
    """Bytes the operating system (or the GPU) can give this process now.

    Linux's ``MemAvailable``; elsewhere the free physical pages; on CUDA the device's free memory.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def resolve_budget(max_memory: int | str, device: torch.device) -> int:
    """The budget in bytes that ``max_memory`` (bytes or ``"auto"``) stands for on ``device``."""
    if max_memory == "auto":
        return int(AUTO_SHARE * available_memory(device))
    return int(max_memory)


def flow_footprint(
    flow: str,
    dim: int,
    *,
    hidden_units: Sequence[int] | None = None,
    n_layers: int | None = None,
    activation: str | None = None,
    flow_params: Mapping[str, Any] | None = None,
) -> tuple[int, int]:
    """(parameters, training activations per point) of one flow of family ``flow``, allocating nothing."""
    with torch.device("meta"):
        one = make_flow(
            flow,
            1,
            dim,
            hidden_units=hidden_units,
            n_layers=n_layers,
            activation=activation,
            flow_params=flow_params,
        )
    return sum(p.numel() for p in one.parameters()), one.training_floats_per_point()


def fit_plan(
    *,
    n_samples: int,
    dim: int,
    n_stack: int,
    flow_parameters: int,
    floats_per_point: int,
    batch_size: int,
    auto_batch: bool,
    budget: int,
    data_copies: int = 1,
) -> FitPlan:
    """The mini-batch size and peak memory of a fit, or a ValueError naming what to change.

    Parameters
    ----------
    n_samples, dim : int
        Training points and their dimension.
    n_stack : int
        Flows trained together (restarts x components).
    flow_parameters, floats_per_point : int
        One flow's parameters and training activations per point (:func:`flow_footprint`).
    batch_size : int
        The mini-batch size the settings ask for.
    auto_batch : bool
        Whether that size came from ``batch_size="auto"`` and may be made smaller to fit.
    budget : int
        Bytes the fit may use.
    data_copies : int, default=1
        Copies of the training points the fit holds (3 with dequantisation: the points jittered
        once for the starts and each epoch's noisy copy).

    Examples
    --------
    >>> plan = fit_plan(n_samples=1000, dim=2, n_stack=6, flow_parameters=5000, floats_per_point=300,
    ...                 batch_size=512, auto_batch=True, budget=2**30)
    >>> plan.batch_size, plan.peak < 2**30
    (512, True)
    """
    parameters = PARAMETER_COPIES * FLOAT_BYTES * n_stack * flow_parameters
    # The points, an E-step's (R, K, N) joint log densities and one inference chunk's activations.
    data = FLOAT_BYTES * n_samples * (data_copies * dim + n_stack) + INFERENCE_CHUNK_BYTES + OVERHEAD_BYTES
    per_point = FLOAT_BYTES * n_stack * floats_per_point
    plan = FitPlan(batch_size, budget, parameters, data, per_point)
    if plan.peak <= budget:
        return plan
    room = budget - parameters - data
    fitting = room // per_point if room > 0 else 0
    if auto_batch and fitting >= min(MIN_AUTO_BATCH, batch_size):
        return dataclasses.replace(plan, batch_size=int(fitting), shrunk=True)
    gib = 2.0**30
    needs = (
        f"the parameters with their gradients and Adam's moments need {parameters / gib:.2f} GiB, the "
        f"points {data / gib:.2f} GiB, and a step {per_point / gib * 1024:.2f} MiB per point of its "
        f"mini-batch ({batch_size} points: {batch_size * per_point / gib:.2f} GiB)"
    )
    knobs = "smaller hidden_units, n_layers, n_components or n_init"
    if auto_batch:
        knobs += f" (a mini-batch of even {MIN_AUTO_BATCH} points does not fit)"
    else:
        knobs = "a smaller batch_size (or batch_size='auto', which shrinks to fit), or " + knobs
    raise ValueError(
        f"This fit needs about {plan.peak / gib:.2f} GiB but max_memory allows {budget / gib:.2f} GiB: "
        f"{needs}. Use {knobs}, reduce the data's dimension (e.g. PCA), or raise max_memory if the "
        "machine has the memory."
    )


def plan_fit(
    params: Mapping[str, Any],
    n_samples: int,
    dim: int,
    n_init: int,
    device: torch.device,
    dequantised: bool = False,
) -> FitPlan:
    """The memory plan of a FlowMixture fit with parameters ``params`` (or a ValueError naming what to change).

    Dequantisation holds two more copies of the points (jittered once for the starts, and each
    epoch's noisy copy). On principal subspaces the flows are sized for the largest dimension
    the subspace setting may take (the start's clusters, which settle it, are not known yet).
    """
    flow_options, subspace_dim = split_flow_params(params["flow_params"])
    flow_dim = largest_dim(subspace_dim, dim)
    flow_parameters, floats_per_point = flow_footprint(params["flow"], flow_dim, flow_params=flow_options)
    if flow_dim < dim:  # the projection's centred copy and residual, and the basis, per stacked flow
        floats_per_point += subspace_floats_per_point(dim, flow_dim)
        flow_parameters += dim * flow_dim
    return fit_plan(
        n_samples=n_samples,
        dim=dim,
        n_stack=n_init * params["n_components"],
        flow_parameters=flow_parameters,
        floats_per_point=floats_per_point,
        batch_size=resolve_batch_size(params["batch_size"], n_samples),
        auto_batch=params["batch_size"] == "auto",
        budget=resolve_budget(params["max_memory"], device),
        data_copies=3 if dequantised else 1,
    )
