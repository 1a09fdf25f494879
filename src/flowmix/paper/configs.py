"""The paper's experiment grid as data, and its published numbers.

Ciobanu, "Mixtures of Normalizing Flows": five 2-D toy sets (Figures 1-2) and eight image-set rows
(Table 1: MNIST, MNIST5, F-MNIST, CIFAR-10 and their 100-dimensional PCA variants), each clustered
with ``k`` = the number of true classes by a mixture of MAFs ("flows") and three baselines. Every
method is run 10 times and the run with the lowest training objective is reported.

The published values are transcribed below as text laid out like the paper, so that they can be
checked against it by eye; they are parsed into :data:`PAPER_TABLE1`, :data:`PAPER_TABLE3` and
:data:`PAPER_TABLE4` at import.

>>> PAPER_TABLE1[("mnist5", "flows")]["purity"]
0.5663
>>> get_dataset_config("mnist5_pca").preset
'paper-pca'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CONTINGENCY_DATASETS",
    "DATASETS",
    "FEATURE_DATASETS",
    "METHODS",
    "METHOD_LABELS",
    "METRICS",
    "METRIC_LABELS",
    "PAPER_CONTINGENCY",
    "PAPER_METHODS",
    "PAPER_TABLE1",
    "PAPER_TABLE1_PRINTED",
    "PAPER_TABLE1_TEXT",
    "PAPER_TABLE3",
    "PAPER_TABLE4",
    "QUICK",
    "TABLE1_DATASETS",
    "TABLE1_METHOD_ORDER",
    "TOY_DATASETS",
    "DatasetConfig",
    "QuickSettings",
    "get_dataset_config",
]


@dataclass(frozen=True)
class DatasetConfig:
    """One data set of the paper's experiments.

    Attributes
    ----------
    name : str
        Name for :func:`flowmix.paper.data.load_dataset`.
    label : str
        Name as printed in the paper (``"MNIST5_PCA"``).
    k : int
        Number of clusters (= number of true classes).
    preset : str
        :mod:`flowmix.presets` preset of the mixture of flows.
    kind : str
        ``"toy"`` or ``"image"``.
    features : str, optional
        Learned features of the image set ``source`` (:func:`flowmix.paper.data.load_dataset`'s
        ``features``, with ``n_features=k``) instead of its pixels.
    source : str, optional
        The image set whose features these are.
    """

    name: str
    label: str
    k: int
    preset: str
    kind: str
    features: str | None = None
    source: str | None = None

    @property
    def is_toy(self) -> bool:
        return self.kind == "toy"


#: The toy sets of Figure 1, in the paper's row order.
TOY_DATASETS: tuple[DatasetConfig, ...] = (
    DatasetConfig("circles", "circles", 2, "paper-toy", "toy"),
    DatasetConfig("moons", "moons", 2, "paper-toy", "toy"),
    DatasetConfig("pinwheel", "pinwheel", 5, "paper-toy", "toy"),
    DatasetConfig("smile", "smile", 4, "paper-toy", "toy"),
    DatasetConfig("two_bananas", "two bananas", 2, "paper-toy", "toy"),
)

#: The rows of Table 1, in the paper's order.
TABLE1_DATASETS: tuple[DatasetConfig, ...] = (
    DatasetConfig("mnist", "MNIST", 10, "paper-mnist", "image"),
    DatasetConfig("mnist5", "MNIST5", 5, "paper-mnist", "image"),
    DatasetConfig("fmnist", "F-MNIST", 10, "paper-fmnist", "image"),
    DatasetConfig("cifar10", "CIFAR10", 10, "paper-cifar10", "image"),
    DatasetConfig("mnist_pca", "MNIST_PCA", 10, "paper-pca", "image"),
    DatasetConfig("mnist5_pca", "MNIST5_PCA", 5, "paper-pca", "image"),
    DatasetConfig("fmnist_pca", "F-MNIST_PCA", 10, "paper-pca", "image"),
    DatasetConfig("cifar10_pca", "CIFAR10_PCA", 10, "paper-pca", "image"),
)

#: Image sets on learned features (flowmix.paper.data.features, k dimensions), run beside Table 1 when
#: named with ``--datasets``; the paper has no values for them.
FEATURE_DATASETS: tuple[DatasetConfig, ...] = (
    DatasetConfig("mnist_umap10", "MNIST_UMAP10", 10, "paper-pca", "image", "umap", "mnist"),
    DatasetConfig("mnist5_umap5", "MNIST5_UMAP5", 5, "paper-pca", "image", "umap", "mnist5"),
    DatasetConfig("fmnist_umap10", "F-MNIST_UMAP10", 10, "paper-pca", "image", "umap", "fmnist"),
    DatasetConfig("cifar10_umap10", "CIFAR10_UMAP10", 10, "paper-pca", "image", "umap", "cifar10"),
    DatasetConfig("mnist_n2d10", "MNIST_N2D10", 10, "paper-pca", "image", "n2d", "mnist"),
    DatasetConfig("mnist5_n2d5", "MNIST5_N2D5", 5, "paper-pca", "image", "n2d", "mnist5"),
    DatasetConfig("fmnist_n2d10", "F-MNIST_N2D10", 10, "paper-pca", "image", "n2d", "fmnist"),
)

#: Every experiment data set by name.
DATASETS: dict[str, DatasetConfig] = {d.name: d for d in TOY_DATASETS + TABLE1_DATASETS + FEATURE_DATASETS}

#: The data sets of Tables 3-4 (contingency tables of the best mixture-of-flows runs).
CONTINGENCY_DATASETS: tuple[str, ...] = ("mnist5", "mnist5_pca")

#: Clustering methods: the paper's four, and flowmix's default recipe ("recipe": run i is
#: ``FlowMixture(k, random_state=i)``, kept by its own selection score).
METHODS: tuple[str, ...] = ("flows", "random", "kmeans", "gmm", "recipe")
#: The methods of the paper's Table 1 (what a grid runs unless told otherwise).
PAPER_METHODS: tuple[str, ...] = ("flows", "random", "kmeans", "gmm")
METHOD_LABELS: dict[str, str] = {
    "random": "Random",
    "kmeans": "k-means",
    "gmm": "EM/GMM",
    "flows": "Mixture of NFs",
    "recipe": "flowmix default",
}
#: Table 1's column order.
TABLE1_METHOD_ORDER: tuple[str, ...] = ("random", "kmeans", "gmm", "flows", "recipe")
#: The paper's Table 1 columns, as printed.
PAPER_TABLE1_COLUMNS: tuple[str, ...] = ("random", "kmeans", "gmm", "flows")

METRICS: tuple[str, ...] = ("purity", "ari", "nmi", "acc")
METRIC_LABELS: dict[str, str] = {"purity": "purity", "ari": "ARI", "nmi": "NMI", "acc": "ACC"}


def get_dataset_config(name: str) -> DatasetConfig:
    """The :class:`DatasetConfig` called ``name`` (case and ``-``/``_`` do not matter)."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"Unknown experiment data set {name!r}; choose from {', '.join(DATASETS)}.")
    return DATASETS[key]


@dataclass(frozen=True)
class QuickSettings:
    """Tiny settings for a smoke run (``--quick``); never the paper's protocol.

    Records made with them carry ``"quick": true`` and the report says so on top.

    Attributes
    ----------
    runs : int
        Runs per method (the paper: 10).
    toy_epochs : int
        Epochs of the mixture of flows on the toy sets (the paper: 2000).
    image_epochs : int
        Epochs on the image sets (the paper: 10).
    max_samples : int
        Image sets are subsampled (fixed seed, without replacement) to at most this many points.
    image_hidden_units : tuple of int
        MADE hidden units on the image sets (the paper: 1024), so that a CPU smoke run takes minutes.
    baseline_n_init : int
        Initialisations inside each k-means / EM run (the paper: 10).
    snapshot_every : int
        Epochs between the density snapshots of the toy animations.
    """

    runs: int = 2
    toy_epochs: int = 200
    image_epochs: int = 2
    max_samples: int = 2000
    image_hidden_units: tuple[int, ...] = (128,)
    baseline_n_init: int = 1
    snapshot_every: int = 10


QUICK = QuickSettings()

# ------------------------------------------------------------------------------------------------
# Published values, transcribed from the paper's text.

#: Table 1 as printed: metric, data set, then Random, k-means, EM/GMM, Mixture of NFs.
PAPER_TABLE1_TEXT = """
purity  MNIST        0.1133  0.58035  0.4102  0.2828
purity  MNIST5       0.2204  0.8810   0.5678  0.5663
purity  F-MNIST      0.1065  0.5546   0.5587  0.4626
purity  CIFAR10      0.1063  0.2212   0.2065  0.1
purity  MNIST_PCA    0.1132  0.5807   0.5799  0.3440
purity  MNIST5_PCA   0.2204  0.8810   0.8650  0.6779
purity  F-MNIST_PCA  0.1054  0.5757   0.5529  0.3358
purity  CIFAR10_PCA  0.1057  0.2212   0.298   0.1830
ARI     MNIST        0       0.3646   0.1948  0.1518
ARI     MNIST5       0       0.7325   0.2639  0.3965
ARI     F-MNIST      0       0.3481   0.3728  0.3174
ARI     CIFAR10      0       0.0417   0.0226  0
ARI     MNIST_PCA    0       0.3618   0.3449  0.1870
ARI     MNIST5_PCA   0       0.7325   0.6773  0.4643
ARI     F-MNIST_PCA  0       0.3741   0.3711  0.1757
ARI     CIFAR10_PCA  0       0.0417   0.0940  0.0333
NMI     MNIST        0.0002  0.4845   0.3285  0.2901
NMI     MNIST5       0       0.7099   0.3513  0.5624
NMI     F-MNIST      0.0002  0.5119   0.5365  0.4924
NMI     CIFAR10      0.0003  0.0793   0.0569  0
NMI     MNIST_PCA    0.0002  0.4831   0.5322  0.3095
NMI     MNIST5_PCA   0.0001  0.7099   0.7357  0.5161
NMI     F-MNIST_PCA  0.0002  0.5124   0.5726  0.3515
NMI     CIFAR10_PCA  0.0003  0.0792   0.1619  0.0567
ACC     MNIST        0.1059  0.542    0.3766  0.2828
ACC     MNIST5       0.2028  0.8810   0.5678  0.5663
ACC     F-MNIST      0.1061  0.4740   0.5396  0.462
ACC     CIFAR10      0.1055  0.2062   0.1915  0.1
ACC     MNIST_PCA    0.1048  0.5432   0.5371  0.3412
ACC     MNIST5_PCA   0.2048  0.8810   0.8650  0.6779
ACC     F-MNIST_PCA  0.1045  0.5399   0.5027  0.3266
ACC     CIFAR10_PCA  0.1055  0.2060   0.2873  0.1822
"""

#: Table 3 (best MNIST5 run, no PCA): rows digits 0-4, columns clusters 0-4; "-" marks the two
#: empty clusters (NaN here).
PAPER_TABLE3_TEXT = """
0.9818  0       0.0181  -  -
0.0712  0.8852  0.0435  -  -
0.9457  0.0002  0.0539  -  -
0.9413  0.0042  0.0544  -  -
0.0489  0.0002  0.9507  -  -
"""

#: Table 4 (best MNIST5_PCA run).
PAPER_TABLE4_TEXT = """
0.0111  0       0.9210  0.0078  0.0599
0.9841  0.0044  0.0002  0.0096  0.0015
0.2184  0.0364  0.0908  0.4035  0.2506
0.4178  0.0102  0.0194  0.0222  0.5301
0.0932  0.0043  0.0118  0.8900  0.0004
"""


def _parse_table1(text: str) -> tuple[dict[tuple[str, str], dict[str, float]], dict]:
    by_label = {d.label: d.name for d in TABLE1_DATASETS}
    by_metric = {v: k for k, v in METRIC_LABELS.items()}
    values: dict[tuple[str, str], dict[str, float]] = {}
    printed: dict[tuple[str, str, str], str] = {}
    for line in text.strip().splitlines():
        metric, label, *cells = line.split()
        dataset = by_label[label]
        for method, cell in zip(PAPER_TABLE1_COLUMNS, cells, strict=True):
            values.setdefault((dataset, method), {})[by_metric[metric]] = float(cell)
            printed[(dataset, method, by_metric[metric])] = cell
    return values, printed


def _parse_matrix(text: str) -> np.ndarray:
    rows = [[np.nan if c == "-" else float(c) for c in line.split()] for line in text.strip().splitlines()]
    return np.array(rows, dtype=np.float64)


PAPER_TABLE1, PAPER_TABLE1_PRINTED = _parse_table1(PAPER_TABLE1_TEXT)
"""``PAPER_TABLE1[(dataset, method)][metric]``: Table 1's values as floats; ``PAPER_TABLE1_PRINTED``
has the same cells as printed (``"0.8810"``), keyed ``(dataset, method, metric)``."""

PAPER_TABLE3 = _parse_matrix(PAPER_TABLE3_TEXT)
PAPER_TABLE4 = _parse_matrix(PAPER_TABLE4_TEXT)

#: The paper's contingency table for each data set of Tables 3-4: (table name, values with NaN for
#: "-", cells as printed).
PAPER_CONTINGENCY: dict[str, tuple[str, np.ndarray, list[list[str]]]] = {
    "mnist5": ("Table 3", PAPER_TABLE3, [line.split() for line in PAPER_TABLE3_TEXT.strip().splitlines()]),
    "mnist5_pca": (
        "Table 4",
        PAPER_TABLE4,
        [line.split() for line in PAPER_TABLE4_TEXT.strip().splitlines()],
    ),
}
