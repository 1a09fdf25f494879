"""Which per-feature map lets the candidates recipe choose the best partition (the tuning part of the battery).

For each map (the battery as given, median/IQR, mean/standard deviation, full PCA whitening) and
each tuning set of ``benchmarks/benchsuite.py``, the candidate partitions (Genie, spectral
clustering, a GMM of one EM run, k-means; seed 0) are scored by their normalised cut
(:func:`flowmix.selection.normalised_cuts`, 5/10/20 neighbours) and the lowest-cut one is
"chosen". Prints each set's ARI of the chosen partition per map, and the means with the mean of
the best candidate (what a perfect choice would reach). Held-out sets are not read.

    .venv/bin/python benchmarks/preprocessing_choice.py
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score

import flowmix.init as init
from flowmix.preprocessing import fit_scaling
from flowmix.selection import normalised_cuts

try:
    from benchsuite import held_out, load, names
except ImportError:  # run as a module from the repository root
    from benchmarks.benchsuite import held_out, load, names

CANDIDATES = ["genie", "spectral", "gmm", "kmeans-partition"]
MAPS = {
    "as given": lambda X: X,
    "median/IQR": lambda X: fit_scaling("robust", X).transform(X),
    "mean/std": lambda X: fit_scaling("standardize", X).transform(X),
    "whitened": lambda X: PCA(whiten=True).fit_transform(X),
}


def chosen_and_best(X: np.ndarray, labels: np.ndarray, scored: np.ndarray, k: int) -> tuple[float, float]:
    rng = np.random.RandomState(0)
    partitions = np.stack(
        [init.INITIALISATIONS[c](X, 1, k, rng).responsibilities[0].argmax(1) for c in CANDIDATES]
    )
    cuts = normalised_cuts(X, partitions, k, init.SPECTRAL_NEIGHBOUR_CYCLE)
    scores = [adjusted_rand_score(labels[scored], p[scored]) for p in partitions]
    return scores[int(np.argmin(cuts))], max(scores)


def main() -> None:
    print("| set | " + " | ".join(MAPS) + " |")
    print("|---|" + "---|" * len(MAPS))
    chosen, best = {m: [] for m in MAPS}, {m: [] for m in MAPS}
    for name in names():
        if held_out(name):
            continue
        data = load(name)
        cells = []
        for m, transform in MAPS.items():
            c, b = chosen_and_best(transform(data.X), data.labels, data.scored, data.n_clusters)
            chosen[m].append(c)
            best[m].append(b)
            cells.append(f"{c:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print("| **mean, chosen** | " + " | ".join(f"{np.mean(chosen[m]):.3f}" for m in MAPS) + " |")
    print("| mean, best candidate | " + " | ".join(f"{np.mean(best[m]):.3f}" for m in MAPS) + " |")


if __name__ == "__main__":
    main()
