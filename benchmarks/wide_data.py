"""Wide data: the default FlowMixture on raw image pixels against a GMM on 50 principal components.

A random subset of ``--n`` images (by ``--seed``) of each set, pixels / 255 as
``flowmix.paper.data.load_dataset`` gives them, 10 clusters. Every method runs in a fresh
process of its own, so that its peak resident memory (``ru_maxrss``) and time are its own:

- ``flowmix``: ``FlowMixture(10, random_state=seed, device=--device)`` with every default (on 784 or 3072
  features: one scale for all pixels, candidates on 50 principal components, flows on principal
  subspaces);
- ``gmm-pca50``: scikit-learn's full-covariance GaussianMixture, 10 initialisations, on the 50
  leading principal components of the same pixels (the reference of the wide-data issue);
- ``kmeans``: scikit-learn's KMeans, 10 initialisations, on the pixels;
- ``spectral-<preprocessing>``: flowmix's spectral start (``flowmix.init``, 10-neighbour graph)
  on the 50 leading principal components of the pixels after each of flowmix's preprocessing
  maps: how much each map keeps of what a graph can see (the choice of ``preprocessing="auto"``).

ARI and NMI against the true digits/classes. ``--out rows.jsonl`` appends a row per (set, seed,
method) as it finishes and skips rows already there, so an interrupted run resumes.

    FLOWMIX_DATA=../shared/datasets .venv/bin/python benchmarks/wide_data.py \
        --sets mnist --n 10000 --seeds 0 --out wide.jsonl
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from pathlib import Path

import numpy as np

METHODS = ("flowmix", "gmm-pca50", "kmeans", "spectral-none", "spectral-standardize", "spectral-robust")


def subset(name: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from flowmix.paper.data import load_dataset

    data = load_dataset(name, download=False)
    rows = np.random.RandomState(seed).choice(len(data.X), min(n, len(data.X)), replace=False)
    return np.asarray(data.X[rows], dtype=np.float32), np.asarray(data.y[rows])


def run_method(method: str, X: np.ndarray, seed: int, device: str = "cpu") -> dict:
    """Cluster X with ``method``: labels, seconds, and any details worth a column."""
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    from flowmix import FlowMixture
    from flowmix.init import spectral_partition
    from flowmix.preprocessing import fit_scaling
    from flowmix.recipes import principal_components

    start = time.perf_counter()
    details: dict = {}
    if method == "flowmix":
        model = FlowMixture(10, random_state=seed, device=device).fit(X)
        labels = model.labels_
        details = {
            "subspace_dim": model.subspace_dim_,
            "kept": model.recipe_trace_["decision"]["kept"],
            "epochs": int(model.n_iter_),
        }
    elif method == "gmm-pca50":
        P = principal_components(X, 50)
        labels = GaussianMixture(10, covariance_type="full", n_init=10, random_state=seed).fit(P).predict(P)
    elif method == "kmeans":
        labels = KMeans(10, n_init=10, random_state=seed).fit(X).labels_
    else:
        preprocessing = method.removeprefix("spectral-")
        P = principal_components(
            fit_scaling(preprocessing, X.astype(np.float64)).transform(X.astype(np.float64)), 50
        )
        labels = spectral_partition(P, 1, 10, np.random.RandomState(seed)).responsibilities[0].argmax(1)
    return {"labels": labels, "seconds": time.perf_counter() - start, **details}


def _child(method: str, X: np.ndarray, seed: int, device: str, queue: multiprocessing.Queue) -> None:
    out = run_method(method, X, seed, device)
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    queue.put(out)


def main() -> None:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default="mnist", help="comma-separated: mnist, fmnist, cifar10")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--device", default="cpu", help="torch device of the flowmix fit")
    args = parser.parse_args()
    done = set()
    if args.out is not None and args.out.exists():
        for line in args.out.read_text().splitlines():
            row = json.loads(line)
            done.add((row["set"], row["n"], row["seed"], row["method"]))
    context = multiprocessing.get_context("spawn")
    for name in args.sets.split(","):
        for seed in args.seeds:
            X, y = subset(name, args.n, seed)
            for method in args.methods.split(","):
                if (name, args.n, seed, method) in done:
                    continue
                queue = context.Queue()
                child = context.Process(target=_child, args=(method, X, seed, args.device, queue))
                child.start()
                out = queue.get()
                child.join()
                labels = out.pop("labels")
                row = {
                    "set": name,
                    "n": args.n,
                    "n_features": X.shape[1],
                    "seed": seed,
                    "method": method,
                    "device": args.device if method == "flowmix" else "cpu",
                    "ari": round(float(adjusted_rand_score(y, labels)), 4),
                    "nmi": round(float(normalized_mutual_info_score(y, labels)), 4),
                    **{k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()},
                }
                print(json.dumps(row), flush=True)
                if args.out is not None:
                    with args.out.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
