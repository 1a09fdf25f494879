"""The paper presets' speed in two source trees, measured back to back in one run.

Times, in a fresh process per measurement (alternating the trees, ``--repeats`` times each):
the paper-toy preset fit (10 restarts x 2000 epochs, full batch) on the paper's moons, and 20
training steps of the PCA-100 image model (``paper-pca``: K=10, 1024 hidden units, batch 1000).
Prints the median of each and the ratio new / old.

    git worktree add /tmp/flowmix-old <commit>
    .venv/bin/python benchmarks/preset_speed.py --old /tmp/flowmix-old/src --new src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

PROBE = r"""
import json, sys, time
import numpy as np, torch
from flowmix import FlowMixture, load_dataset
out = {}
data = load_dataset("moons")
started = time.perf_counter()
FlowMixture.from_preset("paper-toy", 2, random_state=0).fit(data.X)
out["toy preset fit (s)"] = time.perf_counter() - started
X = np.random.RandomState(0).rand(1000, 100).astype(np.float32)
model = FlowMixture.from_preset("paper-pca", 10, n_init=1, n_epochs=2, batch_size=1000, random_state=0)
model.fit(X)  # warm-up: allocations, kernels
model.set_params(n_epochs=20)
started = time.perf_counter()
model.fit(X)
out["PCA-100 image step (s)"] = (time.perf_counter() - started) / 20
print(json.dumps(out))
"""


def measure(src: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="src/ folder of the reference tree")
    parser.add_argument("--new", default="src", help="src/ folder of the tree under test")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for _ in range(args.repeats):
        for name in ("old", "new"):
            runs[name].append(measure(getattr(args, name)))
    print("| measurement | old (median) | new (median) | new / old |")
    print("|---|---|---|---|")
    for key in runs["old"][0]:
        old = statistics.median(r[key] for r in runs["old"])
        new = statistics.median(r[key] for r in runs["new"])
        print(f"| {key} | {old:.3f} | {new:.3f} | {new / old:.3f} |")


if __name__ == "__main__":
    main()
