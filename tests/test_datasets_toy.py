"""The paper's toy sets: shapes, scaling, seeding and equality with the reference's global-seed code."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.datasets import make_circles, make_moons

from flowmix.datasets import TOY_NAMES, Dataset, load_dataset

TOY = {
    "circles": (1000, 2),
    "moons": (1000, 2),
    "pinwheel": (2560, 5),
    "two_bananas": (4000, 2),
    "smile": (400, 4),
}


@pytest.fixture
def global_seed():
    """Seed numpy's global state as the reference did, restoring it afterwards."""
    state = np.random.get_state()

    def seed(value: int) -> None:
        np.random.seed(value)

    yield seed
    np.random.set_state(state)


def _minmax(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return ((X - X.min(0)) / (X.max(0) - X.min(0))).astype(np.float32)


@pytest.mark.parametrize("name", sorted(TOY))
def test_toy_shapes_types_and_unit_square(name):
    n, k = TOY[name]
    ds = load_dataset(name)
    assert isinstance(ds, Dataset)
    assert ds.name == name and ds.class_names is None
    assert ds.X.shape == (n, 2) and ds.X.dtype == np.float32
    assert ds.y.shape == (n,) and ds.y.dtype == np.int64
    assert ds.n_classes == k and set(np.unique(ds.y)) == set(range(k))
    # min-max per column: every column spans exactly [0, 1]
    np.testing.assert_array_equal(ds.X.min(axis=0), [0.0, 0.0])
    np.testing.assert_array_equal(ds.X.max(axis=0), [1.0, 1.0])
    assert "rescaled to [0, 1]" in ds.description
    assert name in TOY_NAMES


@pytest.mark.parametrize("name", ["circles", "moons", "pinwheel", "two_bananas"])
def test_toy_seeding_is_local_and_reproducible(name):
    state = np.random.get_state()
    a = load_dataset(name)
    after = np.random.get_state()
    assert all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(state, after, strict=False))
    b = load_dataset(name, seed=1)
    c = load_dataset(name, seed=2)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)
    assert "seed 1" in a.description and "seed 2" in c.description


def test_circles_and_moons_match_global_seed_reference(global_seed):
    global_seed(1)
    Xc, yc = make_circles(1000, noise=0.01)
    global_seed(1)
    Xm, ym = make_moons(1000, noise=0.1)
    circles, moons = load_dataset("circles"), load_dataset("moons")
    np.testing.assert_array_equal(circles.X, _minmax(Xc))
    np.testing.assert_array_equal(circles.y, yc)
    np.testing.assert_array_equal(moons.X, _minmax(Xm))
    np.testing.assert_array_equal(moons.y, ym)


def _reference_pinwheel(radial_std, tangential_std, num_classes, num_per_class, rate):
    # Johnson et al.'s generator as published: global numpy state, returns the permuted points only.
    rads = np.linspace(0, 2 * np.pi, num_classes, endpoint=False)
    features = np.random.randn(num_classes * num_per_class, 2) * np.array([radial_std, tangential_std])
    features[:, 0] += 1.0
    labels = np.repeat(np.arange(num_classes), num_per_class)
    angles = rads[labels] + rate * np.exp(features[:, 0])
    rotations = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)])
    rotations = np.reshape(rotations.T, (-1, 2, 2))
    return 10 * np.random.permutation(np.einsum("ti,tij->tj", features, rotations))


def test_pinwheel_matches_global_seed_reference(global_seed):
    global_seed(1)
    ref = _reference_pinwheel(0.3, 0.05, 5, 512, 0.25)
    ds = load_dataset("pinwheel")
    np.testing.assert_array_equal(ds.X, _minmax(ref))
    # every arm holds 512 points, and points of one arm share an angle range
    assert np.bincount(ds.y).tolist() == [512] * 5


def test_pinwheel_labels_follow_points():
    ds = load_dataset("pinwheel")
    centred = ds.X - ds.X.mean(axis=0)
    angle = np.arctan2(centred[:, 1], centred[:, 0])
    # The mean direction of each arm differs from every other arm's by roughly 2*pi/5.
    means = np.array([np.angle(np.exp(1j * angle[ds.y == c]).mean()) for c in range(5)])
    gaps = np.sort(np.mod(np.diff(np.sort(means), append=np.sort(means)[0] + 2 * np.pi), 2 * np.pi))
    assert gaps.min() > 0.6


def test_two_bananas_match_reference_recipe(global_seed):
    global_seed(1)
    x2 = 2 * np.random.randn(2000)
    x1 = np.random.randn(2000) + x2**2 / 4
    x1 = (x1 - x1.min()) / x1.max()
    x2 = (x2 - x2.min()) / x2.max()
    pts = np.column_stack([x1, x2])
    ds = load_dataset("two_bananas")
    np.testing.assert_array_equal(ds.X, _minmax(np.concatenate([pts, pts + 2])))
    np.testing.assert_array_equal(ds.y, [0] * 2000 + [1] * 2000)


def test_smile_full_and_reference_quirk():
    full = load_dataset("smile")
    quirk = load_dataset("smile", smile_drop_first_row=True)
    assert full.X.shape == (400, 2) and quirk.X.shape == (399, 2)
    assert np.bincount(full.y).tolist() == [100, 200, 50, 50]
    assert np.bincount(quirk.y).tolist() == [99, 200, 50, 50]  # the first point has label 0
    np.testing.assert_array_equal(full.y[1:], quirk.y)
    assert "399" in quirk.description and "400" in full.description
    # the flag only concerns smile
    np.testing.assert_array_equal(load_dataset("moons", smile_drop_first_row=True).X, load_dataset("moons").X)


def test_dataset_is_frozen_and_has_short_repr():
    ds = load_dataset("moons")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.X = ds.X[:10]  # type: ignore[misc]
    assert repr(ds) == "Dataset(name='moons', X=float32(1000, 2), y=int64(1000,), n_classes=2)"
    assert (ds.n_samples, ds.n_features, ds.n_classes) == (1000, 2, 2)


def test_names_are_case_and_dash_insensitive():
    np.testing.assert_array_equal(load_dataset("Two-Bananas").X, load_dataset("two_bananas").X)


def test_an_unknown_name_says_where_image_sets_and_tables_load_from():
    message = (
        "Unknown data set 'mnist': flowmix ships the toy sets circles, moons, pinwheel, smile, two_bananas. "
        "The paper's image sets .* load with flowmix.paper.data.load_dataset; your own tables with "
        "flowmix.datasets.read_table"
    )
    with pytest.raises(ValueError, match=message):
        load_dataset("mnist")
