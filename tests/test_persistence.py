"""Save/load with safetensors + JSON, and pickling."""

import json
import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
from test_density import _correlated

from flowmix import EarlyStopping, FlowMixture, persistence
from flowmix.recipes import Candidates, SingleFit

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def data():
    return np.random.RandomState(0).rand(200, 3)


@pytest.fixture(scope="module")
def fitted(data):
    architecture = {"hidden_units": (8, 8), "n_layers": 2}
    return FlowMixture(3, flow_params=architecture, n_epochs=20, random_state=1).fit(data)


def test_round_trip_gives_identical_predictions(fitted, data, tmp_path):
    fitted.save(tmp_path / "model")
    loaded = FlowMixture.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(data), fitted.predict(data))
    np.testing.assert_array_equal(loaded.score_samples(data), fitted.score_samples(data))
    np.testing.assert_array_equal(loaded.predict_proba(data), fitted.predict_proba(data))
    np.testing.assert_array_equal(loaded.weights_, fitted.weights_)
    np.testing.assert_array_equal(loaded.losses_, fitted.losses_)
    assert loaded.get_params() == fitted.get_params()
    assert loaded.best_restart_ == fitted.best_restart_ and loaded.n_iter_ == fitted.n_iter_
    assert loaded.selection_scores_ is None  # files do not keep the restarts' scores


def test_saved_files_are_safetensors_and_json(fitted, tmp_path):
    path = fitted.save(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((path / "config.json").read_text())
    assert config["params"]["flow_params"]["hidden_units"] == [8, 8] and config["n_features_in"] == 3
    # safetensors: an 8-byte little-endian header length, then a JSON header.
    raw = (path / "model.safetensors").read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert "logits" in header and "losses" in header


def test_load_never_unpickles(fitted, tmp_path, monkeypatch):
    fitted.save(tmp_path / "model")

    def refuse(*args, **kwargs):
        raise AssertionError("load must not unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr("torch.load", refuse)
    FlowMixture.load(tmp_path / "model")


def test_failed_save_leaves_nothing_half_written(fitted, tmp_path, monkeypatch):
    def broken(tensors, filename):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        fitted.save(tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_previous_model(fitted, data, tmp_path, monkeypatch):
    fitted.save(tmp_path / "model")
    before = {p.name: p.read_bytes() for p in (tmp_path / "model").iterdir()}

    def broken(tensors, filename):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        fitted.save(tmp_path / "model")
    assert {p.name: p.read_bytes() for p in (tmp_path / "model").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_save_over_an_existing_model_replaces_it(fitted, data, tmp_path):
    other = FlowMixture(2, n_epochs=2, random_state=5).fit(data)
    other.save(tmp_path / "model")
    fitted.save(tmp_path / "model")
    np.testing.assert_array_equal(FlowMixture.load(tmp_path / "model").predict(data), fitted.predict(data))


def test_save_refuses_to_overwrite_a_foreign_directory(fitted, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="non-empty directory that holds no flowmix model"):
        fitted.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_load_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a saved FlowMixture: expected config.json"):
        FlowMixture.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "other"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="is not a flowmix model file of format version"):
        FlowMixture.load(tmp_path)


def test_save_to_a_file_path_is_refused(fitted, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        fitted.save(target)


def test_save_before_fit(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        FlowMixture(2).save(tmp_path / "m")


def test_joblib_round_trip(fitted, data, tmp_path):
    joblib.dump(fitted, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(loaded.score_samples(data), fitted.score_samples(data))


def test_format_version_is_recorded(fitted, tmp_path):
    config = json.loads((fitted.save(tmp_path / "m") / "config.json").read_text())
    assert config["format_version"] == persistence.FORMAT_VERSION


def test_format_1_files_still_load_and_predict_identically():
    # Written by flowmix 0.1.0 (tests/fixtures/make_reference.py) before flow families existed.
    from safetensors.numpy import load_file

    expected = load_file(str(FIXTURES / "format1_expected.safetensors"))
    model = FlowMixture.load(FIXTURES / "format1_model")
    assert model.flow == "maf" and model.flow_params["n_layers"] == 2
    assert tuple(model.flow_params["hidden_units"]) == (8, 8)
    # 0.1's training: means in the data's box, MLE, the restart of lowest loss, its base_std.
    assert model.init == "box" and model.algorithm == "mle"
    assert model.recipe.fit.selection == "loss" and model.recipe.fit.base_std == 0.1
    np.testing.assert_array_equal(model.predict(expected["X"]), expected["predict"])
    # Written on an AVX2 CPU: float64 kernels of other CPUs round differently (AVX-512: 1e-13 relative).
    np.testing.assert_allclose(model.score_samples(expected["X"]), expected["score_samples"], rtol=1e-11)


def test_config_records_the_flow_family(tmp_path):
    X = np.random.RandomState(0).rand(120, 2)
    model = FlowMixture(
        2, flow="spline", flow_params={"n_bins": 5, "n_layers": 2}, n_epochs=3, random_state=0
    ).fit(X)
    config = json.loads((model.save(tmp_path / "m") / "config.json").read_text())
    assert config["flow"] == {
        "family": "spline",
        "config": {
            "hidden_units": [64],
            "n_layers": 2,
            "activation": "tanh",
            "n_bins": 5,
            "bound_margin": 0.1,
        },
    }
    loaded = FlowMixture.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    np.testing.assert_array_equal(loaded.density_.flows.half_width, model.density_.flows.half_width)


def test_unknown_format_version_is_refused(fitted, tmp_path):
    path = fitted.save(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    config["format_version"] = 99
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="version 99.*a newer flowmix may read it"):
        FlowMixture.load(path)


def test_a_model_file_whose_covariance_factor_is_not_triangular_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    X = _correlated()
    path = (
        FlowMixture(
            2,
            init="gmm",
            covariance_type="full",
            recipe=SingleFit(pretrain_epochs=1),
            n_init=1,
            n_epochs=1,
            random_state=0,
        )
        .fit(X)
        .save(tmp_path / "m")
    )
    tensors = load_file(str(path / "model.safetensors"))
    tensors["base_scale_tril"][0, 0, 0, 2] = 0.5
    save_file(tensors, str(path / "model.safetensors"))
    with pytest.raises(ValueError, match="lower-triangular with a positive diagonal"):
        FlowMixture.load(path)


def test_a_scaling_of_the_wrong_width_is_refused(tmp_path, two_tight_blobs):

    X, _ = two_tight_blobs
    recipe = Candidates().with_settings(pretrain_epochs=2)
    path = FlowMixture(2, n_epochs=2, recipe=recipe, random_state=0).fit(X).save(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    config["feature_scaling"]["offset"].append(0.0)
    config["feature_scaling"]["scale"].append(1.0)
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="its feature_scaling has 3 values, not n_features_in=2"):
        FlowMixture.load(path)


def test_format_2_files_still_load_with_their_settings_regrouped(data, tmp_path):
    # A model file of flowmix 0.2 before the settings were grouped: the same layout, flat parameters.
    recipe = SingleFit(selection="graph-cut", pretrain_epochs=3, base_std=0.2)
    model = FlowMixture(
        2,
        flow="maf",
        flow_params={"hidden_units": (8,), "n_layers": 2, "activation": "relu"},
        init="kmeans-partition",
        recipe=recipe,
        early_stopping=EarlyStopping(n_iter_no_change=4, tol=1e-3),
        n_init=2,
        n_epochs=6,
        random_state=0,
    ).fit(data)
    path = model.save(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    params = {k: v for k, v in config["params"].items() if k not in ("flow_params", "recipe")}
    params.update(
        flow_params=None, recipe="auto", hidden_units=[8], n_layers=2, activation="relu", subspace_dim="auto",
        selection="graph-cut", pretrain_epochs=3, stable_e_steps=3, base_std=0.2, shuffle=True,
        batch_order="shared", shuffle_buffer=None, early_stopping=True, n_iter_no_change=4, tol=1e-3,
        checkpoint_dir=None, checkpoint_every_epochs=10, checkpoint_every_seconds=None,
    )  # fmt: skip
    config.update(format_version=2, params=params)
    (path / "config.json").write_text(json.dumps(config))

    loaded = FlowMixture.load(path)
    np.testing.assert_array_equal(loaded.score_samples(data), model.score_samples(data))
    assert loaded.flow_params == {
        "hidden_units": (8,),
        "n_layers": 2,
        "activation": "relu",
        "subspace_dim": "auto",
    }
    assert loaded.early_stopping == EarlyStopping(n_iter_no_change=4, tol=1e-3)
    assert loaded.init == "kmeans-partition" and loaded.checkpoint is None
    settings = {"selection": "graph-cut", "pretrain_epochs": 3, "base_std": 0.2}
    assert isinstance(loaded.recipe, SingleFit) and loaded.recipe.init == "auto"
    assert {k: loaded.recipe.settings.get(k) for k in settings} == settings
    # Refitting the loaded model fits as the model's own settings did.
    refit = loaded.set_params(random_state=0).fit(data)
    np.testing.assert_array_equal(refit.losses_, model.losses_)
