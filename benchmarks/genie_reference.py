"""flowmix.genie against the reference package (genieclust) on every set of the clustering battery.

For Gini thresholds 0.3 and 0.5, prints the ARI between the two partitions of each set (1.0: the
same partition) and flowmix.genie's time. Needs the bench extra (``pip install -e ".[bench]"``).

    .venv/bin/python benchmarks/genie_reference.py
"""

from __future__ import annotations

import time

import genieclust
from sklearn.metrics import adjusted_rand_score

from flowmix.genie import genie

try:
    from benchsuite import load, names
except ImportError:  # run as a module from the repository root
    from benchmarks.benchsuite import load, names


def main() -> None:
    print("| set | N | threshold | ARI(flowmix, genieclust) | flowmix.genie s |")
    print("|---|---|---|---|---|")
    agreements = []
    for name in names():
        data = load(name)
        for threshold in (0.3, 0.5):
            started = time.perf_counter()
            ours = genie(data.X, data.n_clusters, threshold)
            seconds = time.perf_counter() - started
            reference = genieclust.Genie(n_clusters=data.n_clusters, gini_threshold=threshold).fit_predict(
                data.X
            )
            agreements.append(adjusted_rand_score(reference, ours))
            print(
                f"| {name} | {len(data.X)} | {threshold} | {agreements[-1]:.6f} | {seconds:.2f} |", flush=True
            )
    print(f"\nlowest agreement {min(agreements):.6f} over {len(agreements)} partitions")


if __name__ == "__main__":
    main()
