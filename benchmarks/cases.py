"""The step-level problems several benchmarks share, and flowmix's training step on them.

CASES are the paper's MAF problems; SPLINE_CASES the same sizes with the spline family
(3 layers, 8 bins, 64 tanh hidden units: flowmix's spline defaults), toy size with K=4.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from flowmix._denormals import flush_denormals
from flowmix.density import MixtureOfFlows
from flowmix.flows import make_flow
from flowmix.training import make_optimizer

CASES = {
    "toy: K=5, 10 restarts, D=2, N=1000, 10 hidden": {
        "restarts": 10,
        "k": 5,
        "dim": 2,
        "hidden": 10,
        "batch": 1000,
    },
    "PCA image: K=10, 1 restart, D=100, batch 1000, 1024 hidden": {
        "restarts": 1,
        "k": 10,
        "dim": 100,
        "hidden": 1024,
        "batch": 1000,
    },
}

SPLINE_CASES = {
    "spline toy: K=4, 10 restarts, D=2, N=1000": {
        "flow": "spline",
        "restarts": 10,
        "k": 4,
        "dim": 2,
        "hidden": 64,
        "layers": 3,
        "bins": 8,
        "batch": 1000,
    },
    "spline PCA image: K=10, 1 restart, D=100, batch 1000": {
        "flow": "spline",
        "restarts": 1,
        "k": 10,
        "dim": 100,
        "hidden": 64,
        "layers": 3,
        "bins": 8,
        "batch": 1000,
    },
}


def flowmix_step(case: dict, columns: torch.Tensor, compile_loss: bool = False) -> Callable[[], None]:
    """One Adam step of the batched mixture on ``columns`` (D, N), as flowmix.training takes it."""
    gen = torch.Generator().manual_seed(0)
    means = torch.rand(case["restarts"], case["k"], case["dim"], generator=gen)
    flow_params = {"n_bins": case["bins"]} if case.get("flow") == "spline" else None
    flows = make_flow(
        case.get("flow", "maf"),
        case["restarts"] * case["k"],
        case["dim"],
        hidden_units=(case["hidden"],),
        n_layers=case.get("layers", 1),
        generator=gen,
        flow_params=flow_params,
    )
    flows.prepare(columns.T)
    model = MixtureOfFlows(flows, means, 0.1)
    optimizer = make_optimizer(model, 1e-3)

    def loss() -> torch.Tensor:
        return (-model.log_prob_columns(columns).mean(-1)).sum()

    loss_fn = torch.compile(loss) if compile_loss else loss

    def step() -> None:
        with flush_denormals():  # as flowmix.training.minimise runs every fit
            optimizer.zero_grad(set_to_none=True)
            loss_fn().backward()
            optimizer.step()

    return step
