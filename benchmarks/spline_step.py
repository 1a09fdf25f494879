"""One spline layer's training step, compiled (flowmix.flows.spline_native) against torch's, by size.

Forward and backward of one layer of 8 bins on x (S, D, N) with random parameters, in float32,
best of 5 repeats of a timed loop, back to back in one process. The crossover sets
``spline_native.MAX_ELEMENTS``, the size above which a fit keeps the torch step.

Run:  .venv/bin/python benchmarks/spline_step.py
"""

from __future__ import annotations

import time

import torch

from flowmix.flows import spline_native
from flowmix.flows.spline import _FusedSpline, _NativeSpline

# (flows, dimensions, points): a 2-component 2-D fit's batch up to PCA-image sizes.
SIZES = [
    (2, 2, 512),
    (4, 2, 1024),
    (8, 2, 1024),
    (16, 2, 1024),
    (32, 2, 1024),
    (40, 2, 1000),
    (10, 8, 2048),
    (10, 24, 2048),
    (10, 100, 1000),
]


def seconds_per_step(step, x: torch.Tensor, params: torch.Tensor, repeats: int = 5) -> float:
    x, params = x.clone().requires_grad_(), params.clone().requires_grad_()

    def once() -> None:
        y, log_det = step.apply(x, params, 8)
        (y.sum() + log_det.sum()).backward()

    once()
    loops = max(3, int(2e6 // x.numel()))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            once()
        best = min(best, (time.perf_counter() - start) / loops)
    return best


def main() -> None:
    if spline_native.library() is None:
        print("no compiled spline kernel here; nothing to compare")
        return
    print("| S x D x N | elements | torch step ms | compiled step ms | speed-up |")
    print("|---|---|---|---|---|")
    gen = torch.Generator().manual_seed(0)
    for s, d, n in SIZES:
        x = torch.rand((s, d, n), generator=gen) * 2.2 - 1.1
        params = torch.randn((s, 23, d, n), generator=gen)
        torch_ms = 1e3 * seconds_per_step(_FusedSpline, x, params)
        compiled_ms = 1e3 * seconds_per_step(_NativeSpline, x, params)
        print(
            f"| {s} x {d} x {n} | {s * d * n} | {torch_ms:.3f} | {compiled_ms:.3f} | {torch_ms / compiled_ms:.2f}x |"
        )


if __name__ == "__main__":
    main()
