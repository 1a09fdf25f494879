"""Pixel preprocessing and learned features: values, seeds, the cache, and load_dataset's options."""

from __future__ import annotations

import numpy as np
import pytest
from test_paper_data_images import make_idx_set

from flowmix.paper.data import features, images, load_dataset
from flowmix.paper.data.autoencoder import encode, fit_autoencoder, train_autoencoder

pytestmark = pytest.mark.usefixtures("isolated")


def test_dequantize_logit_stays_inside_each_pixel_level():
    levels = np.random.default_rng(0).integers(0, 256, size=(50, 30))
    X = (levels / 255).astype(np.float32)
    Z = features.dequantize_logit(X, seed=3)
    assert Z.dtype == np.float32 and np.isfinite(Z).all()
    alpha = 1e-6
    x = (1 / (1 + np.exp(-Z.astype(np.float64))) - alpha) / (1 - 2 * alpha)
    np.testing.assert_array_equal(np.floor(x * 256), levels)  # v <= 256 x < v + 1
    np.testing.assert_array_equal(features.dequantize_logit(X, seed=3), Z)
    assert not np.array_equal(features.dequantize_logit(X, seed=4), Z)


def test_standardize_gives_zero_mean_unit_variance_and_zero_for_constant_columns():
    X = np.column_stack([np.arange(10.0), np.full(10, 7.0), np.arange(10.0) ** 2])
    Z = features.standardize(X)
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(Z.std(0), [1, 0, 1], atol=1e-6)
    assert (Z[:, 1] == 0).all()


def test_bad_preprocessing_and_feature_names_are_refused():
    with pytest.raises(
        ValueError, match=r"preprocessing must be None or one of \['logit', 'standard'\], got 'log'"
    ):
        features.preprocess_pixels(np.zeros((2, 2)), "log", seed=0)
    with pytest.raises(ValueError, match=r"features must be None or one of \['umap', 'autoencoder', 'n2d'\]"):
        features.feature_settings("tsne", 2, 0)


def _low_rank(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 3)) @ rng.normal(size=(3, 20))).astype(np.float32)


def test_autoencoder_learns_and_is_seeded():
    X = _low_rank()
    settings = {"hidden": (32,), "n_epochs": 40, "batch_size": 64}
    model, losses = fit_autoencoder(X, 3, seed=1, **settings)
    assert losses.shape == (40,) and losses[-1] < 0.2 * losses[0]
    codes = encode(model, X)
    assert codes.shape == (300, 3) and codes.dtype == np.float32
    np.testing.assert_array_equal(train_autoencoder(X, 3, seed=1, **settings), codes)
    assert not np.array_equal(train_autoencoder(X, 3, seed=2, **settings), codes)


def test_learned_features_are_cached_under_a_key_of_every_setting(tmp_path, monkeypatch, caplog):
    calls = []

    def fake_compute(X, method, n_features, seed, verbose):
        calls.append((method, n_features, seed))
        return np.full((X.shape[0], n_features), seed, dtype=np.float32)

    monkeypatch.setattr(features, "_compute", fake_compute)
    X = np.zeros((12, 5), dtype=np.float32)
    where = {"name": "mnist", "sources": {"a": "1"}, "cache_dir": tmp_path}
    first = features.learned_features(X, "autoencoder", 2, seed=0, **where)
    again = features.learned_features(X, "autoencoder", 2, seed=0, **where)
    np.testing.assert_array_equal(again, first)
    assert calls == [("autoencoder", 2, 0)]
    features.learned_features(X, "autoencoder", 2, seed=1, **where)
    features.learned_features(X, "autoencoder", 3, seed=0, **where)
    features.learned_features(X, "autoencoder", 2, seed=0, preprocessing="logit", **where)
    features.learned_features(X, "autoencoder", 2, seed=0, **{**where, "sources": {"a": "2"}})
    assert len(calls) == 5
    settings = features.feature_settings("autoencoder", 2, 0)
    path = features.features_cache_path(tmp_path, "mnist", settings, {"a": "1"}, X.shape, None)
    assert path.is_file() and path.name.startswith("mnist-autoencoder2-v")
    path.write_bytes(b"not an array")
    with caplog.at_level("WARNING"):
        features.learned_features(X, "autoencoder", 2, seed=0, **where)
    assert len(calls) == 6 and "ignoring unreadable autoencoder features of mnist cache" in caplog.text
    assert not [p for p in (tmp_path / "features").iterdir() if p.name.startswith(".")]


def _no_decoding(*args, **kwargs):
    raise AssertionError("cached features must not decode the images")


def test_load_dataset_autoencoder_features_are_cached_and_decode_nothing_on_a_hit(tmp_path, monkeypatch):
    _, y = make_idx_set(tmp_path / "data", "mnist", monkeypatch, n_train=40, n_test=12)
    where = {"data_dir": tmp_path / "data", "download": False, "cache_dir": tmp_path / "cache"}
    ds = load_dataset("mnist", features="autoencoder", n_features=3, **where)
    assert ds.name == "mnist_autoencoder3" and ds.X.shape == (52, 3) and ds.X.dtype == np.float32
    assert "autoencoder features of dimension 3 (seed 1" in ds.description
    np.testing.assert_array_equal(ds.y, y)
    monkeypatch.setattr(images, "_idx_images_into", _no_decoding)
    again = load_dataset("mnist", features="autoencoder", n_features=3, **where)
    np.testing.assert_array_equal(again.X, ds.X)
    assert again.description == ds.description
    with pytest.raises(AssertionError, match="must not decode"):  # another seed is a miss
        load_dataset("mnist", features="autoencoder", n_features=3, seed=2, **where)


def test_load_dataset_preprocessed_pixels(tmp_path, monkeypatch):
    x, _ = make_idx_set(tmp_path / "data", "mnist", monkeypatch, n_train=20, n_test=5)
    where = {"data_dir": tmp_path / "data", "download": False}
    logit = load_dataset("mnist", preprocessing="logit", **where)
    assert (
        logit.name == "mnist_logit"
        and logit.X.shape == (25, 784)
        and "logit-transformed" in logit.description
    )
    np.testing.assert_array_equal(logit.X, features.dequantize_logit(x.reshape(25, 784) / 255, seed=1))
    standard = load_dataset("mnist", preprocessing="standard", **where)
    np.testing.assert_allclose(standard.X.mean(0), 0, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "moons", "features": "umap"}, "apply to the image sets .*'moons' is a 2-D toy set"),
        (
            {"name": "mnist", "features": "tsne"},
            r"features must be None or one of \['umap', 'autoencoder', 'n2d'\]",
        ),
        (
            {"name": "mnist", "preprocessing": "log"},
            r"preprocessing must be None or one of \['logit', 'standard'\]",
        ),
        ({"name": "mnist_pca", "features": "umap"}, "pca cannot be combined with preprocessing or features"),
        ({"name": "mnist", "n_features": 3}, "n_features is the dimension of features; pass features="),
        (
            {"name": "mnist", "features": "umap", "n_features": 784},
            "n_features must be an integer between 1 and 783",
        ),
        (
            {"name": "mnist", "features": "umap", "n_features": True},
            "n_features must be an integer between 1 and 783",
        ),
    ],
)
def test_load_dataset_refuses_bad_feature_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(**kwargs, download=False)


def test_umap_features_separate_blobs_and_are_seeded():
    pytest.importorskip("umap", reason="umap-learn is not installed (pip install 'flowmix[features]')")
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 60)
    X = (rng.normal(size=(180, 10)) + 6 * np.eye(10)[y]).astype(np.float32)
    Z = features._umap(X, 2, seed=0)
    assert Z.shape == (180, 2) and Z.dtype == np.float32
    np.testing.assert_array_equal(features._umap(X, 2, seed=0), Z)
    from sklearn.cluster import KMeans

    assert adjusted_rand_score(y, KMeans(3, n_init=3, random_state=0).fit_predict(Z)) == 1.0


def test_n2d_is_umap_of_the_cached_autoencoder_codes(tmp_path, monkeypatch):
    calls = []

    def fake_compute(X, method, n_features, seed, verbose):
        calls.append((method, n_features))
        return np.arange(X.shape[0] * n_features, dtype=np.float32).reshape(X.shape[0], n_features)

    def fake_umap(X, n_features, seed):
        calls.append(("umap of", X.shape[1]))
        return X[:, :n_features].copy()

    monkeypatch.setattr(features, "_compute", fake_compute)
    monkeypatch.setattr(features, "_umap", fake_umap)
    X = np.zeros((8, 5), dtype=np.float32)
    where = {"name": "mnist", "sources": {"a": "1"}, "cache_dir": tmp_path, "seed": 0}
    Z = features.learned_features(X, "n2d", 2, **where)
    assert calls == [("autoencoder", 10), ("umap of", 10)]
    codes = features.learned_features(X, "autoencoder", 10, **where)  # read from the cache
    assert len(calls) == 2
    np.testing.assert_array_equal(Z, codes[:, :2])
