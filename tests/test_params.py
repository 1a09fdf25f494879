"""The table of settings (flowmix._params): one place per default, fingerprints, documentation."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
from sklearn.datasets import make_blobs, make_moons

from flowmix import Checkpointing, EarlyStopping, FlowMixture, _params
from flowmix.init import INITIALISATIONS
from flowmix.recipes import AUTO_INIT, Candidates, SingleFit, from_json, resolve

X, _ = make_moons(200, noise=0.05, random_state=0)


def documented_parameters() -> list[str]:
    doc = FlowMixture.__doc__
    section = doc[doc.index("Parameters\n    ----------") : doc.index("Attributes\n    ----------")]
    return re.findall(r"^    (\w+) : ", section, flags=re.MULTILINE)


def test_the_signature_is_the_table():
    signature = inspect.signature(FlowMixture).parameters
    named = [name for name, p in signature.items() if p.kind is not p.VAR_KEYWORD]
    assert named == list(_params.SETTINGS)
    assert {name: signature[name].default for name in named} == _params.defaults()
    assert len(named) <= 22


def test_every_parameter_is_documented_in_order():
    assert documented_parameters() == list(_params.SETTINGS)


def test_the_init_documentation_names_every_strategy():
    """It used to leave out "gmm-best"; the cycling strategy is documented as "auto"."""
    doc = FlowMixture.__doc__
    init_doc = doc[doc.index("    init : ") : doc.index("    algorithm : ")]
    missing = [name for name in INITIALISATIONS if name != AUTO_INIT and f'``"{name}"``' not in init_doc]
    assert missing == []


def test_no_stale_recipe_in_the_class_documentation():
    """The defaults of two rounds ago (spectral/GMM/k-means starts, a soft-EM refit) are gone."""
    doc = FlowMixture.__doc__.lower()
    assert "soft-em refit" not in doc and "the refit" not in doc
    assert "k-means, hard em" not in doc and "spectral clustering's objective for shapes" not in doc


@pytest.mark.parametrize("old", sorted(_params.MOVED))
def test_an_old_spelling_names_the_new_one(old):
    with pytest.raises(TypeError, match=re.escape(f"{old}=... is now {_params.MOVED[old]}")):
        FlowMixture(2, **{old: 1})


def test_validation_reads_the_table():
    params = FlowMixture(2).get_params()
    _params.validate(params)
    for name, bad in [("n_epochs", 0), ("n_init", "many"), ("batch_size", -1), ("learning_rate", np.inf)]:
        with pytest.raises(ValueError, match=name):
            _params.validate({**params, name: bad})
    with pytest.raises(ValueError, match="subspace_dim must be a positive integer or 'auto'"):
        _params.validate({**params, "flow_params": {"subspace_dim": 0}})
    with pytest.raises(ValueError, match="every_epochs must be a positive integer"):
        _params.validate({**params, "checkpoint": Checkpointing("runs", every_epochs=0)})


def test_the_fingerprint_carries_the_behaviour_version_and_leaves_out_how_a_fit_runs():
    params = FlowMixture(2).get_params()
    settings = _params.fingerprinted(params)
    assert settings["behaviour"] == _params.BEHAVIOUR_VERSION
    for name in ("device", "verbose", "random_state", "max_memory", "checkpoint", "inference_dtype"):
        assert name not in settings
    moved = _params.fingerprinted({**params, "early_stopping": EarlyStopping(n_iter_no_change=3)})
    assert moved["early_stopping"] == {"n_iter_no_change": 3, "tol": 1e-4}


def test_a_checkpoint_of_another_behaviour_version_is_refused(tmp_path, monkeypatch):
    """A checkpoint written before a behaviour change must not resume under the new rules."""
    settings = {"n_epochs": 3, "recipe": SingleFit(pretrain_epochs=2), "n_init": 1, "random_state": 0}
    FlowMixture(2, checkpoint=tmp_path, **settings).fit(X)
    FlowMixture(2, checkpoint=tmp_path, **settings).fit(X)  # the same behaviour resumes (at its end)
    monkeypatch.setattr(_params, "BEHAVIOUR_VERSION", _params.BEHAVIOUR_VERSION + 1)
    with pytest.raises(ValueError, match="fingerprint differs"):
        FlowMixture(2, checkpoint=tmp_path, **settings).fit(X)


def test_the_candidates_recipe_honours_n_init():
    """It used to train one restart whatever n_init said (and distributed='restarts' then refused)."""
    blobs, _ = make_blobs(150, centers=2, random_state=0)
    one = FlowMixture(2, n_epochs=3, recipe=Candidates().with_settings(pretrain_epochs=2), random_state=0)
    three = FlowMixture(
        2, n_epochs=3, n_init=3, recipe=Candidates().with_settings(pretrain_epochs=2), random_state=0
    )
    assert one.fit(blobs).losses_.shape[0] == 1
    assert three.fit(blobs).losses_.shape[0] == 3
    assert three.recipe_trace_["fit"]["settings"]["n_init"] == 3
    assert resolve("auto", {**FlowMixture(2).get_params(), "n_init": 4}).max_restarts == 4
    assert resolve("auto", FlowMixture(2).get_params()).max_restarts == 1
    assert resolve("single", FlowMixture(2).get_params()).max_restarts == 3


def test_format_2_parameters_of_the_default_recipe_keep_its_training():
    """A format-2 file of the default recipe: its pretraining kept, its ignored n_init no longer given."""
    old = {"n_components": 2, "recipe": "auto", "init": "auto", "selection": "auto", "covariance_type": "auto",
           "pretrain_epochs": 20, "stable_e_steps": 3, "n_init": 3, "hidden_units": None}  # fmt: skip
    new = _params.from_format_2(old)
    assert new["n_init"] == "auto" and new["flow_params"] is None
    recipe = from_json(new["recipe"])
    assert isinstance(recipe, Candidates)
    assert recipe.shapes.pretrain_epochs == recipe.gaussian.pretrain_epochs == 20
    assert (
        _params.from_format_2({**old, "pretrain_epochs": 100})["recipe"] == "auto"
    )  # the defaults: no object
