"""Clustering the image sets on learned features: k-means, a GMM and flowmix on the same features.

For each image set and feature method (flowmix.paper.data.features: UMAP, N2D's autoencoder, N2D),
the features are loaded (computed once, then read from the cache; the first load's time is
printed), and every method clusters all N points with k = the number of classes:

- k-means: 10 k-means++ initialisations, the lowest inertia kept (the paper's protocol);
- GMM: full covariances, 10 initialisations, the highest likelihood kept;
- flowmix: ``FlowMixture(k, random_state=seed)`` with ``--epochs`` (``n_epochs``) and
  ``--pretrain-epochs`` (the recipe's, ``recipe=Candidates().with_settings(pretrain_epochs=...)``;
  default 10 each: the recipe's 200/100 epochs over 70000 points take hours on two CPU cores).

Labels are only used to score (ACC, ARI, NMI). Prints one markdown table.

    .venv/bin/python benchmarks/learned_features.py [--sets mnist,mnist5,fmnist]
        [--features umap,autoencoder,n2d] [--seed 0] [--epochs 10] [--pretrain-epochs 10] [--no-flowmix]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

from flowmix import FlowMixture
from flowmix.metrics import clustering_scores
from flowmix.paper.data import load_dataset
from flowmix.recipes import Candidates


def _row(name: str, feature: str, method: str, y: np.ndarray, labels: np.ndarray, seconds: float) -> str:
    s = clustering_scores(y, labels)
    return f"| {name} | {feature} | {method} | {s['acc']:.3f} | {s['ari']:.3f} | {s['nmi']:.3f} | {seconds:.1f} |"


def _cluster(method: str, X: np.ndarray, k: int, args: argparse.Namespace) -> np.ndarray:
    if method == "k-means":
        return KMeans(k, n_init=10, random_state=args.seed).fit_predict(X)
    if method == "GMM":
        return GaussianMixture(k, n_init=10, random_state=args.seed).fit(X).predict(X)
    recipe = Candidates().with_settings(pretrain_epochs=args.pretrain_epochs)
    flowmix = FlowMixture(k, recipe=recipe, n_epochs=args.epochs, random_state=args.seed)
    return flowmix.fit_predict(X)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default="mnist,mnist5,fmnist")
    parser.add_argument("--features", default="umap,autoencoder,n2d")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--no-flowmix", action="store_true")
    args = parser.parse_args()
    print("| set | features | method | ACC | ARI | NMI | s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.sets.split(","):
        for feature in args.features.split(","):
            start = time.perf_counter()
            ds = load_dataset(name, features=feature, download=False, seed=args.seed)
            loaded = time.perf_counter() - start
            X, y, k = ds.X, ds.y, ds.n_classes
            print(f"| {name} | {feature} | (features: {X.shape[1]} dims, loaded in {loaded:.0f} s) | | | | |")
            methods = ["k-means", "GMM"] + ([] if args.no_flowmix else ["flowmix"])
            for method in methods:
                start = time.perf_counter()
                labels = _cluster(method, X, k, args)
                print(_row(name, feature, method, y, labels, time.perf_counter() - start), flush=True)


if __name__ == "__main__":
    main()
