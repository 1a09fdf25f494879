"""Batched mixture training against a naive per-component Python loop of the same model.

The naive version is how a mixture of flows is usually written on top of a flow library (and how
the paper's reference code builds it): a Python list of K flows, each evaluated on its own, and
restarts trained one after another. Both versions compute the same function with the same
optimiser; only the batching differs. Both run in this one process, so the ratio is meaningful
on a noisy machine.

Run:  .venv/bin/python benchmarks/batched_vs_loop.py [--components 5] [--restarts 10] [--steps 200]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from flowmix.density import MixtureOfFlows
from flowmix.flows import make_flow
from flowmix.flows.maf import StackedMAF
from flowmix.training import make_optimizer


class LoopMixture(nn.Module):
    """One restart of the mixture as a Python list of K separate single-flow stacks."""

    def __init__(self, n_components: int, dim: int, hidden: tuple[int, ...], seed: int):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.flows = nn.ModuleList(StackedMAF(1, dim, hidden, 1, "tanh", gen) for _ in range(n_components))
        self.logits = nn.Parameter(torch.zeros(n_components))
        self.register_buffer("means", torch.rand(n_components, dim, generator=gen))
        self.std = 0.1

    def log_prob_columns(self, x: torch.Tensor) -> torch.Tensor:
        """x (D, N) -> (N,)"""
        log_w = torch.log_softmax(self.logits, 0)
        parts = []
        for k, flow in enumerate(self.flows):
            z, log_det = flow.to_latent_columns(x)
            standard = (z[0] - self.means[k][:, None]) / self.std
            const = x.shape[0] * (math.log(self.std) + 0.5 * math.log(2 * math.pi))
            parts.append(log_w[k] - 0.5 * standard.square().sum(0) - const + log_det[0])
        return torch.logsumexp(torch.stack(parts), 0)


def time_batched(x: torch.Tensor, k: int, restarts: int, steps: int, hidden: tuple[int, ...]) -> float:
    gen = torch.Generator().manual_seed(0)
    flows = make_flow("maf", restarts * k, x.shape[0], hidden_units=hidden, generator=gen)
    model = MixtureOfFlows(flows, torch.rand(restarts, k, x.shape[0]), 0.1)
    opt = make_optimizer(model, 1e-3)

    def step() -> None:
        loss = (-model.log_prob_columns(x).mean(-1)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: first-call allocations
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def time_loop(x: torch.Tensor, k: int, restarts: int, steps: int, hidden: tuple[int, ...]) -> float:
    total = 0.0
    for r in range(restarts):
        model = LoopMixture(k, x.shape[0], hidden, seed=r)
        opt = make_optimizer(model, 1e-3)

        def step(model=model, opt=opt) -> None:
            loss = -model.log_prob_columns(x).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        total += time.perf_counter() - start
    return total


def compare(k: int, restarts: int, steps: int, n_points: int = 1000, hidden: tuple[int, ...] = (10,)) -> dict:
    """Steps/s of the whole R-restart job, batched and looped, measured back to back."""
    x = torch.rand(2, n_points)
    loop = time_loop(x, k, restarts, steps, hidden)
    batched = time_batched(x, k, restarts, steps, hidden)
    return {
        "components": k,
        "restarts": restarts,
        "steps": steps,
        "points": n_points,
        "batched_steps_per_s": steps / batched,
        "loop_steps_per_s": steps / loop,
        "speedup": loop / batched,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=5)
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--points", type=int, default=1000)
    args = parser.parse_args()
    row = compare(args.components, args.restarts, args.steps, args.points)
    print(
        f"K={row['components']} restarts={row['restarts']} N={row['points']} steps={row['steps']}: "
        f"batched {row['batched_steps_per_s']:.1f} steps/s, loop {row['loop_steps_per_s']:.1f} steps/s, "
        f"speed-up {row['speedup']:.1f}x"
    )


if __name__ == "__main__":
    main()
