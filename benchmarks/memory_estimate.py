"""How close flowmix.memory_budget's estimate of a fit's peak is to the peak it reaches.

Each case fits in a fresh process (a few epochs: the peak is reached in the first steps) and
reports the growth of the process's resident-set high-water mark during ``fit`` beside
``model.memory_plan_.peak``. The estimate is meant to be an upper bound of that growth, not far
above it. Prints a markdown table.

    .venv/bin/python benchmarks/memory_estimate.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASES = {
    "default, 2-D, K=5, N=20000": {"dim": 2, "n": 20000, "k": 5, "params": {}},
    "spline, D=50, 256 units, K=10, N=5000": {
        "dim": 50,
        "n": 5000,
        "k": 10,
        "params": {"flow_params": {"hidden_units": [256]}},
    },
    "MAF, D=100, 1024 units, K=10, N=5000": {
        "dim": 100,
        "n": 5000,
        "k": 10,
        "params": {"flow": "maf", "flow_params": {"hidden_units": [1024], "n_layers": 1}},
    },
    "spline, D=300, 32 units, K=5, 1 restart, N=1000": {
        "dim": 300,
        "n": 1000,
        "k": 5,
        "params": {"flow_params": {"hidden_units": [32]}},  # the default recipe trains one restart
    },
}

CHILD = """
import json, resource, sys
import numpy as np
from flowmix import FlowMixture
from flowmix.recipes import Candidates
case = json.loads(sys.argv[1])
X = np.random.default_rng(0).random((case["n"], case["dim"]), dtype=np.float32)
recipe = Candidates().with_settings(pretrain_epochs=2)
model = FlowMixture(case["k"], recipe=recipe, n_epochs=2, random_state=0, **case["params"])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
model.fit(X)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
plan = model.memory_plan_
print(json.dumps({"growth": after - before, "estimate": plan.peak, "batch": plan.batch_size}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), help="Case names (default: all).")
    args = parser.parse_args()
    print("| case | batch | peak growth (MiB) | estimate (MiB) | estimate / growth |")
    print("|---|---|---|---|---|")
    for name in args.cases:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(CASES[name])], capture_output=True, text=True, check=True
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        growth, estimate = row["growth"] / 2**20, row["estimate"] / 2**20
        print(f"| {name} | {row['batch']} | {growth:.0f} | {estimate:.0f} | {estimate / growth:.2f} |")


if __name__ == "__main__":
    main()
