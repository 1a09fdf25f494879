"""Bad input gets an error that says what to do."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from flowmix import FlowMixture
from flowmix.recipes import Candidates, SingleFit

X_GOOD = np.random.RandomState(0).rand(40, 2)


@pytest.fixture(scope="module")
def fitted():
    return FlowMixture(2, n_epochs=3, random_state=0).fit(X_GOOD)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(bad):
    X = X_GOOD.copy()
    X[3, 1] = bad
    with pytest.raises(ValueError, match=r"contains (NaN|infinity).*drop or impute"):
        FlowMixture(2, n_epochs=1).fit(X)


def test_non_numeric_values():
    X = X_GOOD.astype(object)
    X[0, 0] = "abc"
    with pytest.raises(ValueError, match="X must be numeric: could not convert.*Encode or drop non-numeric"):
        FlowMixture(2, n_epochs=1).fit(X)


def test_one_dimensional_input():
    with pytest.raises(ValueError, match=r"got a 1-D array\. Reshape your data with X\.reshape\(-1, 1\)"):
        FlowMixture(2, n_epochs=1).fit(X_GOOD[:, 0])


def test_three_dimensional_input():
    with pytest.raises(ValueError, match=r"got a 3-D array of shape \(4, 5, 2\)\. Flatten each sample"):
        FlowMixture(2, n_epochs=1).fit(np.zeros((4, 5, 2)))


def test_empty_input():
    with pytest.raises(ValueError, match=r"0 sample\(s\).*a minimum of 1 is required.*pass at least one row"):
        FlowMixture(2, n_epochs=1).fit(np.zeros((0, 2)))


def test_fewer_samples_than_components():
    with pytest.raises(ValueError, match="n_samples=3 should be >= n_components=5.*Lower n_components"):
        FlowMixture(5, n_epochs=1).fit(X_GOOD[:3])


def test_wrong_feature_count_at_predict(fitted):
    with pytest.raises(ValueError, match="X has 3 features, but FlowMixture is expecting 2 features.*same"):
        fitted.predict(np.zeros((2, 3)))


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples", "score"])
def test_use_before_fit(method):
    with pytest.raises(NotFittedError, match="not fitted yet. Call 'fit'"):
        getattr(FlowMixture(2), method)(X_GOOD)


def test_sample_before_fit_and_bad_count(fitted):
    with pytest.raises(NotFittedError):
        FlowMixture(2).sample(3)
    with pytest.raises(ValueError, match="n_samples must be a positive integer, got 0"):
        fitted.sample(0)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_components": 0}, "n_components must be a positive integer, got 0"),
        ({"n_epochs": 2.5}, "n_epochs must be a positive integer, got 2.5"),
        ({"batch_size": "big"}, "batch_size must be a positive integer or 'auto', got 'big'"),
        ({"batch_size": 0}, "batch_size must be a positive integer or 'auto', got 0"),
        ({"learning_rate": float("nan")}, "learning_rate must be a positive finite number"),
        (
            {"flow_params": {"hidden_units": ()}},
            "hidden_units must be a non-empty tuple of positive integers",
        ),
        ({"flow_params": {"activation": "swish"}}, "activation must be one of"),
        (
            {"init": "random"},
            r"init must be one of \['auto', 'box', 'unit', 'kmeans', 'kmeans-partition', 'gmm', 'gmm-best', "
            r"'spectral', 'genie', 'spectral-gmm-kmeans'\]",
        ),
        ({"device": "tpu:9"}, "is not a torch device; use 'cpu' or 'cuda'"),
    ],
)
def test_bad_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        FlowMixture(**{"n_components": 2, "n_epochs": 1, **params}).fit(X_GOOD)


def test_a_bad_base_std_is_refused_by_the_recipe():
    # base_std is a setting of the recipe's training, refused when the recipe is made.
    with pytest.raises(ValueError, match="base_std must be a positive finite number"):
        SingleFit(base_std=-1.0)
    with pytest.raises(ValueError, match="base_std must be a positive finite number"):
        Candidates().with_settings(base_std=-1.0)


def test_hidden_units_given_as_an_int():
    with pytest.raises(TypeError, match=r"hidden_units must be a tuple of layer widths, e.g. \(32,\)"):
        FlowMixture(2, flow_params={"hidden_units": 32}).fit(X_GOOD)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu():
    with pytest.raises(ValueError, match="device='cuda' was requested but torch sees no CUDA GPU"):
        FlowMixture(2, n_epochs=1, device="cuda").fit(X_GOOD)


def test_fitting_a_dataframe_does_not_warn_about_feature_names():
    pd = pytest.importorskip("pyarrow")
    import warnings

    table = pd.table({"a": X_GOOD[:, 0], "b": X_GOOD[:, 1]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = FlowMixture(2, n_epochs=2, random_state=0).fit(table)
    assert list(model.feature_names_in_) == ["a", "b"]
