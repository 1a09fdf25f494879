"""Efficiency of one training step of the paper's image models against the machine's GEMM rate.

The step's floating-point work is counted from the dense matrix products it executes (masked
weights are multiplied as dense matrices): forward 2*N*(H*D + 2D*H) per flow, backward twice the
second layer plus once the first (no gradient is needed with respect to the data). The reference
rate is a square float32 matmul measured in the same process.

Run:  .venv/bin/python benchmarks/image_step.py [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch

from flowmix._memory import enable_for_process, reuse_freed_memory
from flowmix.density import MixtureOfFlows
from flowmix.flows import make_flow
from flowmix.training import make_optimizer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    """Measured float32 GEMM rate in GFLOP/s (best of ``repeats``)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def step_flops(dim: int, hidden: int, k: int, batch: int) -> float:
    first = 2 * batch * hidden * dim
    second = 2 * batch * 2 * dim * hidden
    return k * (3 * second + 2 * first)


def image_step(dim: int, hidden: int, k: int, batch: int, device: torch.device, repeats: int = 5) -> dict:
    """Best-of-``repeats`` wall time of one Adam step of a K-component, one-layer MAF mixture."""
    gen = torch.Generator().manual_seed(0)
    means = torch.rand(1, k, dim, generator=gen)
    flows = make_flow("maf", k, dim, hidden_units=(hidden,), n_layers=1, activation="tanh", generator=gen)
    model = MixtureOfFlows(flows, means, 0.1).to(device)
    opt = make_optimizer(model, 1e-3)
    x = torch.rand(dim, batch, device=device)

    def step() -> None:
        loss = (-model.log_prob_columns(x).mean(-1)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    best = float("inf")
    # As in flowmix.training: freed step memory is kept for the next step.
    with reuse_freed_memory():
        step()
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            best = min(best, time.perf_counter() - start)
    return {
        "dim": dim,
        "hidden": hidden,
        "components": k,
        "batch": batch,
        "seconds": best,
        "gflops": step_flops(dim, hidden, k, batch) / best / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    peak = matmul_gflops(device)
    print(f"float32 matmul: {peak:.1f} GFLOP/s")
    for dim, batch in [(784, 4000), (100, 1000)]:
        row = image_step(dim, 1024, 10, batch, device)
        print(
            f"D={dim} K=10 H=1024 batch={batch}: {row['seconds']:.3f} s/step, "
            f"{row['gflops']:.1f} GFLOP/s = {row['gflops'] / peak:.0%} of matmul"
        )


if __name__ == "__main__":
    enable_for_process()  # a benchmark owns its process: measure with freed memory kept, as the CLI runs
    main()
