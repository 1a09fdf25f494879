"""The real MNIST, Fashion-MNIST and CIFAR-10 files (from ``$FLOWMIX_DATA``), checked against facts.

Skipped when ``FLOWMIX_DATA`` is unset or lacks the files; never downloads.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from flowmix.paper.data import list_datasets, load_dataset

pytestmark = pytest.mark.realdata

ROOT = Path(os.environ["FLOWMIX_DATA"]) if os.environ.get("FLOWMIX_DATA") else None

# Class counts of train + test, from the data README (MNIST) and the data sets' documentation.
MNIST_COUNTS = [5923 + 980, 6742 + 1135, 5958 + 1032, 6131 + 1010, 5842 + 982,
                5421 + 892, 5918 + 958, 6265 + 1028, 5851 + 974, 5949 + 1009]  # fmt: skip


def need(*rels: str) -> Path:
    if ROOT is None:
        pytest.skip("FLOWMIX_DATA is not set; point it at the data folder (e.g. ../shared/datasets)")
    missing = [r for r in rels if not (ROOT / r).is_file()]
    if missing:
        pytest.skip(f"real data files missing under FLOWMIX_DATA={ROOT}: {', '.join(missing)}")
    return ROOT


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("FLOWMIX_NO_DOWNLOAD", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
       "t10k-labels-idx1-ubyte.gz")  # fmt: skip


def test_mnist():
    root = need(*(f"mnist/{f}" for f in IDX))
    ds = load_dataset("mnist")
    assert ds.X.shape == (70000, 784) and ds.X.dtype == np.float32 and ds.y.dtype == np.int64
    assert ds.y[:5].tolist() == [5, 0, 4, 1, 9]  # first training labels
    assert ds.y[60000:60005].tolist() == [7, 2, 1, 0, 4]  # first test labels
    assert np.bincount(ds.y).tolist() == MNIST_COUNTS
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    # an independent decode of the first test images
    with gzip.open(root / "mnist/t10k-images-idx3-ubyte.gz") as fh:
        raw = np.frombuffer(fh.read(16 + 784 * 50), dtype=np.uint8, offset=16).reshape(50, 784)
    np.testing.assert_array_equal(ds.X[60000:60050], raw.astype(np.float32) / 255)


def test_mnist5():
    need(*(f"mnist/{f}" for f in IDX))
    ds = load_dataset("mnist5")
    assert ds.X.shape == (35735, 784)
    assert np.bincount(ds.y).tolist() == MNIST_COUNTS[:5]
    assert ds.y[:4].tolist() == [0, 4, 1, 2]  # 5, 0, 4, 1, 9, 2 without the 5 and 9


def test_fmnist():
    need(*(f"fashion-mnist/{f}" for f in IDX))
    ds = load_dataset("fmnist")
    assert ds.X.shape == (70000, 784) and ds.X.dtype == np.float32
    assert np.bincount(ds.y).tolist() == [7000] * 10
    assert ds.y[:5].tolist() == [9, 0, 0, 3, 0]
    assert ds.class_names[9] == "Ankle boot"


def test_cifar10():
    root = need("cifar-10/cifar10.npz")
    ds = load_dataset("cifar10")
    assert ds.X.shape == (60000, 3072) and ds.X.dtype == np.float32 and ds.y.dtype == np.int64
    assert ds.y[:5].tolist() == [6, 9, 9, 4, 1]  # data_batch_1 starts frog, truck, truck, deer, automobile
    assert ds.y[50000:50005].tolist() == [3, 8, 8, 0, 6]  # test_batch starts cat, ship, ship, airplane, frog
    assert np.bincount(ds.y).tolist() == [6000] * 10
    with np.load(root / "cifar-10/cifar10.npz", allow_pickle=False) as f:
        x_test = f["x_test"]
    np.testing.assert_array_equal(ds.X[50000:], x_test.reshape(10000, 3072).astype(np.float32) / 255)
    # widely quoted per-channel training means, pixels in [0, 1] and HWC order: channel = feature % 3
    means = ds.X[:50000].reshape(50000, 1024, 3).mean(axis=(0, 1), dtype=np.float64)
    np.testing.assert_allclose(means, [0.4914, 0.4822, 0.4465], atol=1e-4)


def test_list_datasets_sees_files():
    need("mnist/train-images-idx3-ubyte.gz")
    rows = {r["name"]: r for r in list_datasets()}
    assert rows["mnist"]["available"] and rows["mnist"]["location"] == str(ROOT)


@pytest.mark.slow
def test_mnist_pca_and_cache(tmp_path):
    need(*(f"mnist/{f}" for f in IDX))
    ds = load_dataset("mnist_pca", cache_dir=tmp_path)
    assert ds.X.shape == (70000, 100) and ds.X.dtype == np.float32 and ds.name == "mnist_pca"
    # principal components come in decreasing variance, centred projections
    var = ds.X.var(axis=0)
    assert np.all(np.diff(var) <= 1e-4) and np.abs(ds.X.mean(axis=0)).max() < 1e-3
    again = load_dataset("mnist", pca=100, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.X, ds.X)
    assert len(list((tmp_path / "pca").glob("mnist-pca100-*.npy"))) == 1


@pytest.mark.slow
def test_mnist5_umap_features_separate_the_digits(tmp_path):
    pytest.importorskip("umap", reason="umap-learn is not installed (pip install 'flowmix[features]')")
    from sklearn.cluster import KMeans

    from flowmix.metrics import unsupervised_accuracy

    need(*(f"mnist/{f}" for f in IDX))
    ds = load_dataset("mnist5", features="umap", cache_dir=tmp_path, seed=0)
    assert ds.X.shape == (35735, 5) and ds.name == "mnist5_umap5"
    labels = KMeans(5, n_init=10, random_state=0).fit_predict(ds.X)
    # PCA-100 features give k-means 0.881 (the paper's Table 1); UMAP's neighbourhoods do better.
    assert unsupervised_accuracy(ds.y, labels) > 0.95
    again = load_dataset("mnist5", features="umap", cache_dir=tmp_path, seed=0)
    np.testing.assert_array_equal(again.X, ds.X)
