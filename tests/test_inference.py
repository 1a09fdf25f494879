"""float32 and float64 inference (flowmix.inference, FlowMixture's ``inference_dtype``)."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from flowmix import FlowMixture
from flowmix import density as density_module
from flowmix import inference as inference_module
from flowmix.density import MixtureOfFlows
from flowmix.flows import make_flow
from flowmix.inference import Inference

FIXTURES = Path(__file__).parent / "fixtures"

# float32 against float64 log densities: a float32 pass through a 1000-unit network keeps about
# 6 significant digits of each term, so 1e-5 relative to (1 + |log p|) leaves a margin of ~10.
SCORE_RTOL = 1e-5
# Three rational-quadratic layers amplify the rounding where a bin is steep: the worst of 1000
# random points measured 1.1e-5 (typical 1e-6), so spline flows get three times the margin.
SPLINE_SCORE_RTOL = 3e-5


def close_in_float32(got: np.ndarray, reference: np.ndarray, rtol: float = SCORE_RTOL) -> None:
    error = np.abs(got - reference) / (1 + np.abs(reference))
    assert error.max() <= rtol, error.max()


@pytest.fixture(scope="module")
def data():
    return np.random.RandomState(0).rand(400, 6)


@pytest.fixture(scope="module")
def maf(data):
    # 256 hidden units: two blocks of the blocked products.
    return FlowMixture(
        3,
        flow="maf",
        flow_params={"hidden_units": (256,)},
        init="kmeans",
        n_epochs=20,
        n_init=1,
        random_state=0,
    ).fit(data)


def trained_like(flows: torch.nn.Module, seed: int) -> torch.nn.Module:
    """``flows`` with every weight moved off its initial value (biases too), masks kept."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in flows.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=generator, dtype=param.dtype))
        for module in flows.modules():
            if hasattr(module, "zero_masked_"):
                module.zero_masked_()
    return flows


def test_float32_chunks_hold_no_more_bytes_than_float64_chunks():
    density = MixtureOfFlows(make_flow("maf", 10, 784, hidden_units=(1024,)), torch.zeros(1, 10, 784), 0.1)
    fast, reference = Inference(density, torch.float32), Inference(density, torch.float64)
    assert fast.blocked is not None and reference.blocked is None
    assert reference.points_per_chunk == density.points_per_chunk()
    budget = density_module.INFERENCE_CHUNK_FLOATS * 8
    assert fast.points_per_chunk * fast.blocked.floats_per_point() * 4 <= budget
    # Skipping the masked weights also skips their activations: more points per chunk.
    assert fast.points_per_chunk > 2 * reference.points_per_chunk
    # Chunks are whole blocks, so only a call's last block is padded.
    assert fast.points_per_block % 64 == 0 and fast.points_per_chunk % fast.points_per_block == 0
    assert reference.points_per_block is None


def test_the_fitted_density_stays_in_float32_and_inference_makes_no_lasting_copy(maf, data):
    assert maf.density_.logits.dtype == torch.float32
    before = {k: v.clone() for k, v in maf.density_.state_dict().items()}
    model = copy.deepcopy(maf).set_params(inference_dtype="float64")
    model.score_samples(data)
    assert model.density_.logits.dtype == torch.float32
    for key, value in model.density_.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("flow", ["maf", "spline"])
def test_float32_scores_and_labels_are_close_to_float64(flow, data):
    model = FlowMixture(
        3,
        flow=flow,
        flow_params={"hidden_units": (64,)},
        init="kmeans",
        n_epochs=20,
        n_init=1,
        random_state=0,
    ).fit(data)
    test = np.random.RandomState(1).rand(1000, 6)
    scores32, labels32 = model.score_samples(test), model.predict(test)
    model.set_params(inference_dtype="float64")
    scores64, labels64 = model.score_samples(test), model.predict(test)
    assert not np.array_equal(scores32, scores64)  # really two precisions
    close_in_float32(scores32, scores64, SPLINE_SCORE_RTOL if flow == "spline" else SCORE_RTOL)
    assert (labels32 != labels64).mean() <= 0.01


def invariance_mixture(flow: str, hidden_units: tuple[int, ...], full_covariance: bool) -> MixtureOfFlows:
    """A 5-D mixture of 3 flows with trained-looking weights and mixture weights."""
    dim, n_components = 5, 3
    generator = torch.Generator().manual_seed(4)
    flows = make_flow(flow, n_components, dim, hidden_units=hidden_units, generator=generator)
    flows = trained_like(flows, 5)
    flows.prepare(torch.rand(200, dim, generator=generator))
    means = torch.rand(1, n_components, dim, generator=generator)
    tril = None
    if full_covariance:
        lower = 0.2 * torch.randn(1, n_components, dim, dim, generator=generator)
        diagonal = 0.3 + torch.rand(1, n_components, dim, generator=generator)
        tril = torch.tril(lower, -1) + torch.diag_embed(diagonal)
    density = MixtureOfFlows(flows, means, 0.3, base_scale_tril=tril)
    with torch.no_grad():
        density.logits.normal_(generator=generator)
    return density


INVARIANCE_CASES = {
    # name: (flow, hidden_units, full-covariance bases, runs BlockedMAF)
    "spline": ("spline", (16,), False, False),
    "maf-blocked": ("maf", (256,), False, True),
    "maf-generic": ("maf", (16, 16), False, False),
    "spline-full-covariance": ("spline", (16,), True, False),
    "maf-full-covariance": ("maf", (32,), True, False),
}


@pytest.mark.parametrize("case", sorted(INVARIANCE_CASES))
@pytest.mark.parametrize("narrow", [False, True], ids=["flowmix-width", "64-point-blocks"])
def test_float32_results_of_a_point_do_not_depend_on_the_other_points_of_its_call(case, narrow, monkeypatch):
    flow, hidden_units, full_covariance, blocked = INVARIANCE_CASES[case]
    if narrow:  # the narrowest blocks: 300 points take five, the last one padded
        monkeypatch.setattr(inference_module, "_BLOCK_FLOATS", 1)
    inference = Inference(invariance_mixture(flow, hidden_units, full_covariance), torch.float32)
    assert (inference.blocked is not None) == blocked
    assert inference.kernel == ("BlockedMAF" if blocked else "generic")
    assert inference.points_per_block == 64 if narrow else inference.points_per_block > 300
    # Some points beyond the spline's interval, in its identity tails.
    x = torch.rand(300, 5, generator=torch.Generator().manual_seed(6)) * 1.4 - 0.2
    whole = inference.joint_log_prob(x)
    assert torch.equal(inference.joint_log_prob(x.flip(0)), whole.flip(-1))
    order = torch.randperm(300, generator=torch.Generator().manual_seed(7))
    assert torch.equal(inference.joint_log_prob(x[order]), whole[..., order])
    for i in range(0, 300, 23):
        assert torch.equal(inference.joint_log_prob(x[i : i + 1]), whole[..., i : i + 1]), i
    bounds = [0, 37, 38, 103, 232, 300]  # 37, 1, 65, 129 and 68 points
    pieces = [inference.joint_log_prob(x[a:b]) for a, b in itertools.pairwise(bounds)]
    assert torch.equal(torch.cat(pieces, dim=-1), whole)


def test_float32_predictions_of_a_point_do_not_depend_on_the_other_points_predicted(maf, data):
    scores, proba, labels = maf.score_samples(data), maf.predict_proba(data), maf.predict(data)
    order = np.random.RandomState(2).permutation(len(data))
    np.testing.assert_array_equal(maf.score_samples(data[order]), scores[order])
    np.testing.assert_array_equal(maf.predict_proba(data[::-1]), proba[::-1])
    np.testing.assert_array_equal(maf.predict(data[order]), labels[order])
    one_by_one = np.concatenate([maf.score_samples(data[i : i + 1]) for i in range(0, 400, 7)])
    np.testing.assert_array_equal(one_by_one, scores[::7])
    np.testing.assert_array_equal(maf.score_samples(data[:123]), scores[:123])


def test_float32_chunks_change_no_bit(maf, data, monkeypatch):
    monkeypatch.setattr(inference_module, "_BLOCK_FLOATS", 1)  # blocks of 64 points
    whole, labels = maf.score_samples(data), maf.predict(data)
    inference = Inference(maf.density_, torch.float32)
    assert inference.points_per_chunk > len(data)  # one chunk of seven blocks
    monkeypatch.setattr(density_module, "INFERENCE_CHUNK_FLOATS", 1)
    assert Inference(maf.density_, torch.float32).points_per_chunk == 64  # one block per chunk
    np.testing.assert_array_equal(maf.score_samples(data), whole)
    np.testing.assert_array_equal(maf.predict(data), labels)


def test_labels_are_computed_in_the_inference_dtype(data):
    params = {
        "flow": "maf",
        "flow_params": {"hidden_units": (16,)},
        "init": "kmeans",
        "n_epochs": 5,
        "n_init": 1,
    }
    for dtype in ("float32", "float64"):
        model = FlowMixture(3, inference_dtype=dtype, random_state=0, **params).fit(data)
        np.testing.assert_array_equal(model.labels_, model.predict(data))


@pytest.mark.parametrize("bad", ["float16", "double", None, np.float32, 32])
def test_an_unknown_inference_dtype_is_refused_before_fitting_and_at_predict(maf, data, bad):
    # One message, before fitting (flowmix._params) and at predict (flowmix.inference).
    message = "inference_dtype must be 'float32' \\(fast\\) or 'float64'"
    with pytest.raises(ValueError, match=message):
        FlowMixture(2, inference_dtype=bad, n_epochs=1).fit(data)
    with pytest.raises(ValueError, match=message):
        copy.deepcopy(maf).set_params(inference_dtype=bad).predict(data)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_and_load_predict_as_before_in_both_dtypes(maf, data, tmp_path, dtype):
    model = copy.deepcopy(maf).set_params(inference_dtype=dtype)
    path = model.save(tmp_path / "m")
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        assert f.get_tensor("logits").dtype == torch.float32  # saved as trained
    assert json.loads((path / "config.json").read_text())["params"]["inference_dtype"] == dtype
    loaded = FlowMixture.load(path)
    assert loaded.inference_dtype == dtype
    for other in ("float32", "float64"):
        model.set_params(inference_dtype=other)
        loaded.set_params(inference_dtype=other)
        np.testing.assert_array_equal(loaded.score_samples(data), model.score_samples(data))
        np.testing.assert_array_equal(loaded.predict(data), model.predict(data))


def test_models_saved_before_inference_dtype_load_in_float64():
    model = FlowMixture.load(FIXTURES / "format1_model")
    assert model.inference_dtype == "float64"
    assert model.density_.logits.dtype == torch.float64  # kept as the file holds it
    X = np.random.RandomState(0).rand(50, 3)
    reference = model.score_samples(X)
    close_in_float32(model.set_params(inference_dtype="float32").score_samples(X), reference)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_byte_budget_makes_chunks_smaller_and_refuses_what_cannot_fit(dtype):
    density = invariance_mixture("spline", (16,), False)
    free = Inference(density, dtype)
    model = sum(t.numel() * t.element_size() for t in [*free.density.parameters(), *free.density.buffers()])
    smallest = free.points_per_block or 1
    per_point = free._bytes_per_point()
    tight = Inference(density, dtype, max_bytes=model + 3 * smallest * per_point + per_point // 2)
    assert tight.points_per_chunk == 3 * smallest < free.points_per_chunk
    x = torch.rand(500, 5, generator=torch.Generator().manual_seed(8))
    if dtype == torch.float32:  # whole blocks either way: the same bits
        assert torch.equal(tight.joint_log_prob(x), free.joint_log_prob(x))
    with pytest.raises(ValueError, match=r"raise max_memory \(set_params works on a fitted model\)"):
        Inference(density, dtype, max_bytes=model + smallest * per_point - 1)
