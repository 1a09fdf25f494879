"""The torch baselines (flowmix.paper.device_baselines) against scikit-learn's on a Table 1 row.

k-means (n_init=10) and EM/GMM (full covariances, n_init=10) on MNIST5-PCA (35735 x 100, k=5),
one seed each, timed in the same process: wall time and the objective each reaches (inertia;
negative mean log-likelihood per sample). Needs the MNIST files (FLOWMIX_DATA); on a GPU
machine pass --device cuda to time the torch versions there.

Run:  FLOWMIX_DATA=../shared/datasets .venv/bin/python benchmarks/baselines_device.py [--device cpu]
"""

from __future__ import annotations

import argparse

from flowmix.paper.baselines import gmm, kmeans
from flowmix.paper.data import load_dataset


def compare(device: str = "cpu", dataset: str = "mnist5_pca", k: int = 5, seed: int = 0) -> list[dict]:
    X = load_dataset(dataset, download=False).X
    rows = []
    for name, method in (("k-means", kmeans), ("EM/GMM", gmm)):
        theirs = method(X, k, seed)
        ours = method(X, k, seed, device=device)
        rows.append(
            {
                "method": name,
                "sklearn_seconds": theirs.seconds,
                "torch_seconds": ours.seconds,
                "sklearn_objective": theirs.objective,
                "torch_objective": ours.objective,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    for row in compare(args.device):
        print(
            f"{row['method']}: scikit-learn {row['sklearn_seconds']:.1f} s (objective "
            f"{row['sklearn_objective']:.4f}), torch on {args.device} {row['torch_seconds']:.1f} s "
            f"(objective {row['torch_objective']:.4f})"
        )


if __name__ == "__main__":
    main()
