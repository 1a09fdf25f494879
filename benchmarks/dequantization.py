"""Integer-valued data: the default FlowMixture with and without dequantisation, beside a GMM and k-means.

Sets (each drawn or split by ``--seeds``):

- ``ratings`` (the set the design was tuned on): three groups answering three questions on a
  1-5 scale, plus one continuous feature; 300 points per group.
- ``counts`` (held out): three groups of Poisson counts in four features; 300 points per group.
- ``digits`` (held out): scikit-learn's 8x8 digits (1797 images, pixel values 0-16), 10
  clusters; 70% fitted, 30% held out.

Methods: ``flowmix`` (every default: ``dequantize="auto"``), ``flowmix-as-given``
(``dequantize=None``), ``gmm`` (scikit-learn, full covariances, 10 initialisations) and
``kmeans`` (10 initialisations). Columns: ARI of the fitted points' clusters, the held-out
log-likelihood as dequantisation defines it (the mean log density at held-out points moved
uniformly within their unit cells, 5 draws; a model that piles its density onto lattice points
scores badly there) and the fit's seconds. ``--out rows.jsonl`` appends one row per
(set, seed, method) and skips those already there.

    .venv/bin/python benchmarks/dequantization.py --seeds 0 1 2 --out dequantization.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SETS = ("ratings", "counts", "digits")
METHODS = ("flowmix", "flowmix-as-given", "gmm", "kmeans")
HELD_OUT_SETS = ("counts", "digits")  # kept out of every tuning decision


def ratings(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    shares = [(0.6, 0.3, 0.1, 0.0, 0.0), (0.0, 0.1, 0.3, 0.6, 0.0), (0.1, 0.1, 0.1, 0.2, 0.5)]
    blocks, labels = [], []
    for label, (p, centre) in enumerate(zip(shares, (0.0, 2.0, -2.0), strict=True)):
        blocks.append(np.c_[rng.choice(5, size=(300, 3), p=p) + 1, rng.normal(centre, 1.0, 300)])
        labels.append(np.full(300, label))
    return np.vstack(blocks), np.concatenate(labels)


def counts(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    rates = [(1.0, 1.0, 6.0, 3.0), (5.0, 2.0, 1.0, 1.0), (2.0, 7.0, 3.0, 6.0)]
    blocks = [rng.poisson(rate, size=(300, 4)) for rate in rates]
    return np.vstack(blocks).astype(np.float64), np.repeat(np.arange(3), 300)


def data(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(fitted X, its labels, held-out X, its labels)."""
    if name == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        order = np.random.RandomState(seed).permutation(len(X))
        cut = int(0.7 * len(X))
        return X[order[:cut]], y[order[:cut]], X[order[cut:]], y[order[cut:]]
    make = {"ratings": ratings, "counts": counts}[name]
    X, y = make(seed)
    held_X, held_y = make(seed + 1000)
    return X, y, held_X, held_y


def dequantised_log_likelihood(model, X: np.ndarray, draws: int = 5) -> float:
    """Mean log density at X moved uniformly within the unit cells of its integer features."""
    integer = np.all(np.round(X) == X, axis=0)
    rng = np.random.RandomState(0)
    return float(np.mean([model.score(X + (rng.rand(*X.shape) - 0.5) * integer) for _ in range(draws)]))


def run(name: str, seed: int, method: str) -> dict:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from sklearn.mixture import GaussianMixture

    from flowmix import FlowMixture

    X, y, held_X, _ = data(name, seed)
    k = len(np.unique(y))
    start = time.perf_counter()
    row: dict = {"set": name, "seed": seed, "method": method, "held_out_set": name in HELD_OUT_SETS}
    if method.startswith("flowmix"):
        model = FlowMixture(k, random_state=seed, dequantize="auto" if method == "flowmix" else None).fit(X)
        labels = model.labels_
        row["seconds"] = time.perf_counter() - start
        row["held_out_ll"] = dequantised_log_likelihood(model, held_X)
        row["final_loss"] = float(model.loss_curve_[-1])
        row["kept"] = model.recipe_trace_["decision"]["kept"] if "decision" in model.recipe_trace_ else None
    elif method == "gmm":
        model = GaussianMixture(k, n_init=10, random_state=seed).fit(X)
        labels = model.predict(X)
        row["seconds"] = time.perf_counter() - start
        row["held_out_ll"] = dequantised_log_likelihood(model, held_X)
    else:
        labels = KMeans(k, n_init=10, random_state=seed).fit_predict(X)
        row["seconds"] = time.perf_counter() - start
    row["ari"] = float(adjusted_rand_score(y, labels))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    done = set()
    if args.out is not None and args.out.exists():
        for line in args.out.read_text().splitlines():
            row = json.loads(line)
            done.add((row["set"], row["seed"], row["method"]))
    rows = []
    for name in args.sets.split(","):
        for seed in args.seeds:
            for method in args.methods.split(","):
                if (name, seed, method) in done:
                    continue
                row = run(name, seed, method)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.out is not None:
                    with args.out.open("a") as out:
                        out.write(json.dumps(row) + "\n")
    if args.out is not None:
        rows = [json.loads(line) for line in args.out.read_text().splitlines()]
    print("\n| set | method | ARI | held-out LL | final loss | s | seeds |\n|---|---|---|---|---|---|---|")
    for name in args.sets.split(","):
        for method in args.methods.split(","):
            mine = [r for r in rows if r["set"] == name and r["method"] == method]
            if not mine:
                continue

            def mean(key: str, mine: list = mine) -> str:
                values = [r[key] for r in mine if r.get(key) is not None]
                return f"{np.mean(values):.3f}" if values else "-"

            tag = " (held out)" if name in HELD_OUT_SETS else ""
            print(
                f"| {name}{tag} | {method} | {mean('ari')} | {mean('held_out_ll')} | {mean('final_loss')} | "
                f"{mean('seconds')} | {len(mine)} |"
            )


if __name__ == "__main__":
    main()
