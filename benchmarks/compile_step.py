"""torch.compile against the eager training step: compile time and steady-state speed.

flowmix trains eagerly. This script measures whether compiling the step would pay: the first
compiled step (compile time included), then steady-state steps/s, for the paper's toy model
(K=5, 10 restarts, N=1000, D=2) and the PCA image model (K=10, 1024 hidden, D=100, batch 1000).
A fit runs 2000 epochs per toy set, so compiling pays only if the compile time is won back.

Run:  .venv/bin/python benchmarks/compile_step.py
"""

from __future__ import annotations

import time

import torch
import torch._dynamo
import torch._inductor.config
from cases import CASES, flowmix_step

from flowmix._memory import enable_for_process, reuse_freed_memory


def _make_step(case: dict, compiled: bool):
    x = torch.rand(case["dim"], case["batch"], generator=torch.Generator().manual_seed(1))
    if compiled:
        # Cold compile, as a user's first fit would see it: no graphs or kernels from earlier runs.
        torch._dynamo.reset()
        torch._inductor.config.force_disable_caches = True
    return flowmix_step(case, x, compile_loss=compiled)


def measure(case: dict, compiled: bool, seconds: float = 5.0) -> tuple[float, float]:
    """(first step's seconds, steady steps/s)."""
    step = _make_step(case, compiled)
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(3):
        step()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        count += 1
    return first, count / (time.perf_counter() - start)


def compare() -> list[dict]:
    rows = []
    with reuse_freed_memory():
        for name, case in CASES.items():
            eager_first, eager_rate = measure(case, compiled=False)
            compiled_first, compiled_rate = measure(case, compiled=True)
            rows.append(
                {
                    "case": name,
                    "eager_steps_per_s": eager_rate,
                    "compiled_steps_per_s": compiled_rate,
                    "compile_seconds": compiled_first - eager_first,
                    # Steps after which compiling has paid back its compile time.
                    "break_even_steps": (compiled_first - eager_first)
                    / max(1 / eager_rate - 1 / compiled_rate, 1e-12)
                    if compiled_rate > eager_rate
                    else float("inf"),
                }
            )
    return rows


def main() -> None:
    for row in compare():
        print(
            f"{row['case']}: eager {row['eager_steps_per_s']:.1f} steps/s, compiled "
            f"{row['compiled_steps_per_s']:.1f} steps/s, compile {row['compile_seconds']:.1f} s, "
            f"break-even after {row['break_even_steps']:.0f} steps"
        )


if __name__ == "__main__":
    enable_for_process()  # a benchmark owns its process: measure with freed memory kept, as the CLI runs
    main()
