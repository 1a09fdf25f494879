"""Clustering quality: flowmix against k-means, a GMM, spectral clustering and HDBSCAN.

Every method sees the same input: the paper's five toy sets (min-max scaled), scikit-learn's
bundled real tables (standardised; digits also reduced to 16 principal components) and generated
shapes (three rings, two spirals, unbalanced and anisotropic blobs, standardised); ``--sets
sklearn`` runs instead the five sets of scikit-learn's clustering comparison example (noisy
circles and moons, blobs of varied spread, anisotropic blobs, blobs; standardised). Each set is
split 80/20 (stratified, by the seed); every method clusters the 80%, and ARI/NMI are measured
there against the true labels, which no method sees. Methods with a ``predict`` (flowmix, k-means,
GMM) also label the held-out 20%; flowmix and the GMM report the held-out mean log-likelihood.

    .venv/bin/python benchmarks/clustering_quality.py [--seeds 0 1] [--sets circles,iris | sklearn] [--paper]

``--paper`` adds the paper's preset (10 restarts x 2000 epochs) on the 2-D sets.
``--variant gaussian`` makes the flowmix column one full-covariance fit
(``recipe=SingleFit(covariance_type="full")``),
``--variant shapes`` one diagonal fit kept by spectral clustering's objective
(``recipe=SingleFit(covariance_type="diag", selection="spectral")``). The "bases" column says which bases the
kept model has and which start the recipe kept. Prints a markdown table per seed.

``--sets battery`` (or ``battery-dev``, ``battery-held-out``) runs the shared battery of the public
clustering benchmark suite instead (``benchmarks/benchsuite.py``: 35 sets in the suite's
"original" space, features not standardised) under the suite's protocol: every method clusters
all points, ARI is measured on the non-noise points, and Genie (genieclust, gini threshold 0.3)
joins the columns. ``--out rows.jsonl`` appends each (set, seed, method) row as it finishes and
skips rows already there, so an interrupted run resumes; ``--methods`` picks columns.

    .venv/bin/python benchmarks/clustering_quality.py --sets battery --seeds 0 1 --out battery.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from sklearn.cluster import HDBSCAN, KMeans, SpectralClustering
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from flowmix import FlowMixture, load_dataset
from flowmix.recipes import Candidates, SingleFit

try:
    from benchsuite import held_out as battery_held_out
    from benchsuite import load as load_battery_set
    from benchsuite import names as battery_names
except ImportError:  # run as a module from the repository root
    from benchmarks.benchsuite import held_out as battery_held_out
    from benchmarks.benchsuite import load as load_battery_set
    from benchmarks.benchsuite import names as battery_names

TOY = ["circles", "moons", "smile", "pinwheel", "two_bananas"]
REAL = ["iris", "wine", "breast_cancer", "digits"]
SHAPES = ["rings", "spirals", "unbalanced_blobs", "anisotropic_blobs"]
# scikit-learn's "comparing clustering algorithms" example sets (1500 points, its random_state 170).
SKLEARN_EXAMPLE = ["noisy_circles", "noisy_moons", "varied_blobs", "aniso_blobs", "blobs"]


def generated(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Shapes made here with a fixed seed (the split seed varies, the data do not)."""
    rng = np.random.RandomState(42)
    if name == "rings":
        radii = np.repeat([1.0, 2.0, 3.0], [300, 450, 600])
        angle = rng.uniform(0, 2 * np.pi, len(radii))
        X = np.c_[np.cos(angle), np.sin(angle)] * radii[:, None] + rng.normal(0, 0.08, (len(radii), 2))
        return X, np.repeat([0, 1, 2], [300, 450, 600])
    if name == "spirals":
        t = np.sqrt(rng.uniform(0.05, 1, 800)) * 3 * np.pi
        arm = np.repeat([0, 1], 400)
        sign = np.where(arm == 0, 1.0, -1.0)[:, None]
        X = sign * np.c_[t * np.cos(t), t * np.sin(t)] + rng.normal(0, 0.3, (800, 2))
        return X, arm
    if name == "unbalanced_blobs":
        sizes, centres = [600, 120, 40], np.array([[0, 0], [4, 0], [2, 3.5]])
        X = np.concatenate([rng.normal(c, 0.8, (n, 2)) for c, n in zip(centres, sizes, strict=True)])
        return X, np.repeat([0, 1, 2], sizes)
    if name == "anisotropic_blobs":
        centres = np.array([[-3, 0], [0, 0], [3, 0.5]])
        X = np.concatenate([rng.normal(c, [1.0, 0.25], (300, 2)) for c in centres]) @ np.array(
            [[0.6, -0.64], [-0.4, 0.85]]
        )
        return X, np.repeat([0, 1, 2], 300)
    if name in SKLEARN_EXAMPLE:
        return sklearn_example(name)
    raise ValueError(name)


def sklearn_example(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The data sets of scikit-learn's clustering comparison example, made as it makes them."""
    from sklearn import datasets

    n, seed = 1500, 170
    if name == "noisy_circles":
        return datasets.make_circles(n_samples=n, factor=0.5, noise=0.05, random_state=seed)
    if name == "noisy_moons":
        return datasets.make_moons(n_samples=n, noise=0.05, random_state=seed)
    if name == "varied_blobs":
        return datasets.make_blobs(n_samples=n, cluster_std=[1.0, 2.5, 0.5], random_state=seed)
    X, y = datasets.make_blobs(n_samples=n, random_state=seed)
    if name == "aniso_blobs":
        X = X @ np.array([[0.6, -0.6], [-0.4, 0.8]])
    return X, y


def dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name in TOY:
        data = load_dataset(name)
        return data.X.astype(np.float64), data.y
    if name in REAL:
        from sklearn import datasets

        X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        X = StandardScaler().fit_transform(X)
        if name == "digits":
            X = PCA(16, random_state=0).fit_transform(X)
        return X, y
    X, y = generated(name)
    return StandardScaler().fit_transform(X), y


# The single fits of the variants (fields of flowmix.recipes.Training); None: the default recipe.
VARIANTS = {
    "default": None,
    "gaussian": {"covariance_type": "full"},
    "shapes": {"covariance_type": "diag", "selection": "spectral"},
}


def recipe(variant: str, **training):
    """The recipe of ``variant`` with ``training`` (fields of flowmix.recipes.Training) in its trainings."""
    if VARIANTS[variant] is None:
        return Candidates().with_settings(**training)
    return SingleFit(**VARIANTS[variant], **training)


def methods(k: int, seed: int, dim: int, paper: bool, variant: str = "default") -> dict:
    out = {
        "flowmix": lambda: FlowMixture(k, recipe=recipe(variant), random_state=seed),
        # Every epoch trained: the cost of stopping hard EM once its partition holds (stable_e_steps).
        "flowmix-all-epochs": lambda: FlowMixture(
            k, recipe=recipe(variant, stable_e_steps=None), random_state=seed
        ),
        "k-means": lambda: KMeans(k, n_init=10, random_state=seed),
        "GMM": lambda: GaussianMixture(k, covariance_type="full", n_init=10, random_state=seed),
        "spectral": lambda: SpectralClustering(
            k, affinity="nearest_neighbors", n_neighbors=10, assign_labels="kmeans", random_state=seed
        ),
        "HDBSCAN": lambda: HDBSCAN(min_cluster_size=10),
        "Genie": lambda: genie(k),
    }
    if paper and dim == 2:
        out["paper preset"] = lambda: FlowMixture.from_preset("paper-toy", k, random_state=seed)
    return out


def genie(k: int):
    import genieclust  # the bench extra: pip install -e ".[bench]"

    return genieclust.Genie(n_clusters=k, gini_threshold=0.3)


def run_battery(name: str, seed: int, wanted: list[str], done: set, out: str | None) -> list[dict]:
    """The suite's protocol on one battery set: every method clusters all points; ARI on the non-noise ones."""
    data = load_battery_set(name)
    k, scored = data.n_clusters, data.scored
    rows = []
    for method, make in methods(k, seed, data.X.shape[1], paper=False).items():
        if method not in wanted or (name, seed, method) in done:
            continue
        model = make()
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            labels = np.asarray(model.fit_predict(data.X))
        row = {
            "set": name,
            "seed": seed,
            "method": method,
            "held out": battery_held_out(name),
            "ARI": adjusted_rand_score(data.labels[scored], labels[scored]),
            "seconds": time.perf_counter() - started,
            "empty": int(k - len(np.unique(labels[labels >= 0]))),
        }
        if out:
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
        rows.append(row)
    return rows


def battery_table(rows: list[dict], columns: list[str]) -> str:
    """One line per set: each method's ARI and fit time; means over all sets, the tuning part and the held-out part."""
    names = list(dict.fromkeys(r["set"] for r in rows))
    by = {(r["set"], r["method"]): r for r in rows}
    lines = [
        "| set | " + " | ".join(columns) + " | " + " | ".join(f"{m} s" for m in columns) + " |",
        "|---|" + "---|" * (2 * len(columns)),
    ]
    for name in names:
        cells = [f"{by[name, m]['ARI']:.3f}" if (name, m) in by else "-" for m in columns]
        times = [f"{by[name, m]['seconds']:.2f}" if (name, m) in by else "-" for m in columns]
        mark = " (held out)" if battery_held_out(name) else ""
        lines.append(f"| {name}{mark} | " + " | ".join(cells) + " | " + " | ".join(times) + " |")
    for label, keep in (("mean, all", None), ("mean, tuning part", False), ("mean, held-out part", True)):
        part = [n for n in names if keep is None or battery_held_out(n) == keep]
        means, totals = [], []
        for m in columns:
            got = [by[n, m] for n in part if (n, m) in by]
            complete = len(got) == len(part) and part
            means.append(f"{np.mean([r['ARI'] for r in got]):.3f}" if complete else "-")
            totals.append(f"{sum(r['seconds'] for r in got):.1f} total" if complete else "-")
        lines.append(
            f"| **{label}** ({len(part)} sets) | " + " | ".join(means) + " | " + " | ".join(totals) + " |"
        )
    return "\n".join(lines)


def run(
    name: str, seed: int, paper: bool, variant: str = "default", optional: tuple[str, ...] = ()
) -> list[dict]:
    X, y = dataset(name)
    k = len(np.unique(y))
    train, test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)
    rows = []
    for method, make in methods(k, seed, X.shape[1], paper, variant).items():
        if method in OPTIONAL_METHODS and method not in optional:
            continue
        model = make()
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            labels = model.fit_predict(train)
        row = {
            "set": name,
            "seed": seed,
            "method": method,
            "ARI": adjusted_rand_score(y_train, labels),
            "NMI": normalized_mutual_info_score(y_train, labels),
            "seconds": time.perf_counter() - started,
            "held-out ARI": None,
            "held-out LL": None,
            "bases": None,
        }
        if method == "flowmix":
            trace = model.recipe_trace_
            kept = f" ({trace['decision']['kept']})" if "decision" in trace else ""
            row["bases"] = model.covariance_type_ + kept
        if hasattr(model, "predict") and method != "HDBSCAN":
            row["held-out ARI"] = adjusted_rand_score(y_test, model.predict(test))
        if hasattr(model, "score"):
            row["held-out LL"] = model.score(test)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    def cell(v):
        return "-" if v is None else f"{v:.3f}"

    lines = [
        "| set | method | ARI | NMI | held-out ARI | held-out LL | fit s | bases |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        best = max(
            o["ARI"] for o in rows if o["set"] == r["set"] and o["method"] in ("k-means", "GMM", "spectral")
        )
        mark = " **" if r["method"] == "flowmix" and r["ARI"] >= best - 0.02 else ""
        lines.append(
            f"| {r['set']} | {r['method']} | {cell(r['ARI'])}{mark} | {cell(r['NMI'])} | "
            f"{cell(r['held-out ARI'])} | {cell(r['held-out LL'])} | {r['seconds']:.1f} | {r['bases'] or ''} |"
        )
    return "\n".join(lines)


def wide_table(rows: list[dict]) -> str:
    """One line per set: every method's ARI, flowmix's held-out figures, fit time and bases."""

    def cell(v):
        return "-" if v is None else f"{v:.3f}"

    lines = [
        "| set | flowmix | k-means | GMM | spectral | HDBSCAN | flowmix held-out ARI | "
        "held-out LL flowmix / GMM | flowmix fit s | bases (start) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    wins = 0
    names = list(dict.fromkeys(r["set"] for r in rows))
    for name in names:
        by = {r["method"]: r for r in rows if r["set"] == name}
        flow = by["flowmix"]
        best = max(by[m]["ARI"] for m in ("k-means", "GMM", "spectral"))
        win = flow["ARI"] >= best - 0.02
        wins += win
        ari = f"**{flow['ARI']:.3f}**" if win else f"{flow['ARI']:.3f}"
        lines.append(
            f"| {name} | {ari} | {by['k-means']['ARI']:.3f} | {by['GMM']['ARI']:.3f} | "
            f"{by['spectral']['ARI']:.3f} | {by['HDBSCAN']['ARI']:.3f} | {cell(flow['held-out ARI'])} | "
            f"{cell(flow['held-out LL'])} / {cell(by['GMM']['held-out LL'])} | {flow['seconds']:.1f} | "
            f"{flow['bases']} |"
        )
    lines.append(f"\n(flowmix within 0.02 of the best baseline: {wins} of {len(names)})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--sets", default=",".join(TOY + REAL + SHAPES))
    parser.add_argument("--paper", action="store_true")
    parser.add_argument("--variant", choices=list(VARIANTS), default="default")
    parser.add_argument("--out", help="battery only: append rows to this JSON-lines file; skip rows in it")
    parser.add_argument(
        "--methods",
        default=",".join(BATTERY_METHODS),
        help=f"the battery's columns; elsewhere, which of {OPTIONAL_METHODS} to add",
    )
    args = parser.parse_args()
    if args.sets.startswith("battery"):
        return battery_main(args)
    names = SKLEARN_EXAMPLE if args.sets == "sklearn" else args.sets.split(",")
    for seed in args.seeds:
        rows = []
        for name in names:
            optional = tuple(m for m in args.methods.split(",") if m in OPTIONAL_METHODS)
            rows.extend(run(name, seed, args.paper, args.variant, optional))
            print(table([r for r in rows if r["set"] == name]).split("\n", 2)[2], flush=True)
        print(f"\n## seed {seed} (** : flowmix ARI >= best of k-means, GMM, spectral - 0.02)\n")
        print(table(rows))
        print(f"\n**Seed {seed}**\n")
        print(wide_table(rows))


BATTERY_METHODS = ["flowmix", "k-means", "GMM", "spectral", "Genie", "HDBSCAN"]
# Columns a run shows only when --methods names them.
OPTIONAL_METHODS = ["flowmix-all-epochs"]


def battery_main(args: argparse.Namespace) -> None:
    part = {"battery": None, "battery-dev": False, "battery-held-out": True}[args.sets]
    names = [n for n in battery_names() if part is None or battery_held_out(n) == part]
    wanted = args.methods.split(",")
    rows: list[dict] = []
    if args.out:
        try:
            with open(args.out) as f:
                rows = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            pass
    for seed in args.seeds:
        done = {(r["set"], r["seed"], r["method"]) for r in rows}
        for name in names:
            new = run_battery(name, seed, wanted, done, args.out)
            rows.extend(new)
            for r in new:
                print(
                    f"seed {seed} {name:24s} {r['method']:9s} ARI {r['ARI']:.3f}  {r['seconds']:.2f} s",
                    flush=True,
                )
        seed_rows = [r for r in rows if r["seed"] == seed and r["set"] in names]
        print(f"\n**Seed {seed}** (ARI, then fit seconds)\n")
        columns = [m for m in BATTERY_METHODS + OPTIONAL_METHODS if m in wanted]
        print(battery_table(seed_rows, columns))


if __name__ == "__main__":
    main()
