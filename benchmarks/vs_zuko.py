"""flowmix against a mixture of zuko flows written the straightforward way.

The reference is what a user would write on top of a flow library, and what the paper's scripts
do: a Python list of K flows (zuko's MAF: one MADE layer, tanh hidden units, affine transform; or
zuko's NSF with the same layers, bins and tanh hidden units as flowmix's spline family),
the mixture log-density as a logsumexp over their log-densities, one Adam, and one such mixture
per restart. Both sides do one Adam step per restart on the same batch; the figure is restart
steps per second (a step of all 10 restarts counts 10). Measured back to back in one process; the
spline cases also with flowmix's compiled spline kernel turned off (the torch step).
Needs zuko (`pip install zuko`); prints a message and exits 0 without it.

Run:  .venv/bin/python benchmarks/vs_zuko.py
"""

from __future__ import annotations

import time

import torch
from cases import CASES, SPLINE_CASES, flowmix_step

from flowmix._memory import enable_for_process, reuse_freed_memory
from flowmix.flows import spline_native


def _zuko_steps(case: dict, x: torch.Tensor):
    import zuko

    mixtures = []
    for _ in range(case["restarts"]):
        flows = torch.nn.ModuleList(_zuko_flow(zuko, case) for _ in range(case["k"]))
        logits = torch.nn.Parameter(torch.zeros(case["k"]))
        optimizer = torch.optim.Adam([*flows.parameters(), logits], lr=1e-3, eps=1e-7)
        mixtures.append((flows, logits, optimizer))

    def step() -> None:
        for flows, logits, optimizer in mixtures:
            per_component = torch.stack([flow().log_prob(x) for flow in flows])  # (K, N)
            joint = torch.log_softmax(logits, 0)[:, None] + per_component
            loss = -torch.logsumexp(joint, 0).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return step


def _zuko_flow(zuko, case: dict) -> torch.nn.Module:
    if case.get("flow") == "spline":
        return zuko.flows.NSF(
            case["dim"],
            transforms=case["layers"],
            bins=case["bins"],
            hidden_features=(case["hidden"],),
            activation=torch.nn.Tanh,
        )
    return zuko.flows.MAF(
        case["dim"], transforms=1, hidden_features=(case["hidden"],), activation=torch.nn.Tanh
    )


def _rate(step, seconds: float) -> float:
    step()
    step()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 3:
        step()
        count += 1
    return count / (time.perf_counter() - start)


def compare(seconds: float = 5.0) -> list[dict] | None:
    try:
        import zuko  # noqa: F401
    except ImportError:
        return None
    rows = []
    with reuse_freed_memory():
        for name, case in {**CASES, **SPLINE_CASES}.items():
            x = torch.rand(case["batch"], case["dim"], generator=torch.Generator().manual_seed(1))
            ours = _rate(flowmix_step(case, x.T.contiguous()), seconds) * case["restarts"]
            theirs = _rate(_zuko_steps(case, x), seconds) * case["restarts"]
            row = {"case": name, "flowmix": ours, "zuko": theirs, "speedup": ours / theirs}
            if case.get("flow") == "spline":  # the same step with the compiled kernel turned off
                spline_native.ENABLED, enabled = False, spline_native.ENABLED
                try:
                    row["flowmix torch step"] = (
                        _rate(flowmix_step(case, x.T.contiguous()), seconds) * case["restarts"]
                    )
                finally:
                    spline_native.ENABLED = enabled
            rows.append(row)
    return rows


def main() -> None:
    rows = compare()
    if rows is None:
        print("zuko is not installed (pip install zuko); nothing measured")
        return
    for row in rows:
        torch_step = row.get("flowmix torch step")
        alone = (
            ""
            if torch_step is None
            else f" (torch step alone {torch_step:.1f}, {torch_step / row['zuko']:.1f}x)"
        )
        print(
            f"{row['case']}: flowmix {row['flowmix']:.1f}, zuko list-of-flows {row['zuko']:.1f} "
            f"restart-steps/s, {row['speedup']:.1f}x{alone}"
        )


if __name__ == "__main__":
    enable_for_process()  # a benchmark owns its process: measure with freed memory kept, as the CLI runs
    main()
