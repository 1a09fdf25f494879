"""One flow fitted to the outer ring of the paper's circles: can the family model a hole?

Fits a single component (K=1) of the paper's MAF (preset ``paper-toy``), a 4-layer MAF and the
rational-quadratic spline flow to 70% of the outer ring's points, reports the mean log-likelihood
of the held-out 30%, and draws the three densities (docs/images/ring_density.png).

    .venv/bin/python benchmarks/ring_density.py [--epochs 2000] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from flowmix import FlowMixture, load_dataset
from flowmix.paper.figures import density_panels, grid_2d

FIGURE = Path(__file__).resolve().parents[1] / "docs" / "images" / "ring_density.png"


def models(epochs: int, seed: int) -> dict[str, FlowMixture]:
    common = {"n_epochs": epochs, "random_state": seed}  # the default recipe trains one restart
    maf = {"hidden_units": (32, 32), "n_layers": 4}
    return {
        "paper MAF (1 layer, 10 tanh)": FlowMixture.from_preset("paper-toy", 1, n_init=1, **common),
        "MAF, 4 layers x (32, 32)": FlowMixture(1, flow="maf", flow_params=maf, **common),
        "spline, 3 layers x 8 bins": FlowMixture(1, flow="spline", **common),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()

    data = load_dataset("circles")
    ring = data.X[data.y == 0]
    order = np.random.RandomState(0).permutation(len(ring))
    cut = int(0.7 * len(ring))
    train, test = ring[order[:cut]], ring[order[cut:]]
    print(f"outer ring: {len(train)} training points, {len(test)} held out; {args.epochs} full-batch epochs")
    print("| flow | seed | held-out mean log-likelihood | training mean log-likelihood | fit time |")
    print("|---|---|---|---|---|")
    xx, yy, grid = grid_2d(ring, n=150, margin=0.15)
    panels = []
    for seed in args.seeds:
        for name, model in models(args.epochs, seed).items():
            started = time.perf_counter()
            model.fit(train)
            seconds = time.perf_counter() - started
            print(
                f"| {name} | {seed} | {model.score(test):.3f} | {model.score(train):.3f} | {seconds:.1f} s |"
            )
            if seed == args.seeds[0]:
                panels.append(
                    (
                        f"{name}\nheld-out LL {model.score(test):.2f}",
                        xx,
                        yy,
                        model.score_samples(grid).reshape(xx.shape),
                    )
                )
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    density_panels(panels, FIGURE, ncols=3, panel_size=3.2)
    print(f"figure: {FIGURE}")


if __name__ == "__main__":
    main()
