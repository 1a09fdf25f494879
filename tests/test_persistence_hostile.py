"""Damaged and hostile model directories are refused with a clear ValueError, never loaded half-way.

Each test starts from a model written by ``FlowMixture.save`` and breaks one thing in it: the
safetensors file (truncated, a header that lies about offsets, dtypes or shapes, tensors missing,
extra, overlapping, tampered), or config.json (not JSON, wrong types, shapes that disagree with the
tensors, absurd sizes, unknown versions and families). A last property test lets hypothesis flip
and cut bytes of both files at random.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowmix import FlowMixture, persistence
from flowmix.recipes import Candidates, SingleFit

X = np.random.RandomState(0).rand(60, 3)
REFUSED = "is not a valid flowmix model file"
ADVICE = "restore the model directory from a copy, or fit and save the model again"


def _fit(flow: str, init: str = "kmeans") -> FlowMixture:
    return FlowMixture(
        2, flow=flow, flow_params={"hidden_units": (4,), "n_layers": 2}, n_epochs=2,
        recipe=SingleFit(pretrain_epochs=0), n_init=1, init=init, random_state=0,
    ).fit(X)  # fmt: skip


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """One pristine model directory per flow family (and one with per-component base scales)."""
    root = tmp_path_factory.mktemp("models")
    models = {"maf": _fit("maf"), "spline": _fit("spline"), "scaled": _fit("maf", "kmeans-partition")}
    return {name: model.save(root / name) for name, model in models.items()}


@pytest.fixture(params=["maf", "spline"])
def model_dir(request, saved, tmp_path) -> Path:
    """A fresh copy of a saved model, free to break."""
    return _copy(saved[request.param], tmp_path / "model")


def _copy(source: Path, target: Path) -> Path:
    target.mkdir()
    for name in (persistence.CONFIG_FILE, persistence.TENSORS_FILE):
        (target / name).write_bytes((source / name).read_bytes())
    return target


def _split(path: Path) -> tuple[dict, bytes]:
    """(header, data section) of a safetensors file."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _join(path: Path, header: dict, data: bytes) -> None:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def _edit_header(model_dir: Path, edit) -> None:
    tensors = model_dir / persistence.TENSORS_FILE
    header, data = _split(tensors)
    edit(header)
    _join(tensors, header, data)


def _edit_config(model_dir: Path, edit) -> None:
    path = model_dir / persistence.CONFIG_FILE
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


def _refused(model_dir: Path, match: str) -> ValueError:
    with pytest.raises(ValueError, match=match) as info:
        FlowMixture.load(model_dir)
    return info.value


def _weight_name(header: dict) -> str:
    return next(name for name in header if name.endswith(".weight"))


# ----------------------------------------------------------------------------------------------
# The tensor file


@pytest.mark.parametrize("keep", [0, 5, 8, 40, -1, -200])
def test_truncated_tensor_file(model_dir, keep):
    tensors = model_dir / persistence.TENSORS_FILE
    raw = tensors.read_bytes()
    tensors.write_bytes(raw[: keep if keep >= 0 else len(raw) + keep])
    error = _refused(model_dir, REFUSED)
    assert "truncated" in str(error) and ADVICE in str(error)


def test_header_length_that_lies(model_dir):
    tensors = model_dir / persistence.TENSORS_FILE
    raw = tensors.read_bytes()
    tensors.write_bytes(struct.pack("<Q", 2**62) + raw[8:])
    _refused(model_dir, r"its header claims 4611686018427387904 bytes but the file holds \d+")


def test_header_that_is_not_json(model_dir):
    tensors = model_dir / persistence.TENSORS_FILE
    tensors.write_bytes(struct.pack("<Q", 6) + b"{oops}" + b"\0" * 64)
    _refused(model_dir, "its safetensors header is not JSON")


def test_offsets_beyond_the_file(model_dir):
    def edit(header):
        header[_weight_name(header)]["data_offsets"][1] += 10**15

    _edit_header(model_dir, edit)
    _refused(
        model_dir,
        r"claims bytes \d+ to \d+ of a \d+-byte data section \(the file is truncated or its header lies",
    )


def test_shape_that_disagrees_with_the_offsets(model_dir):
    def edit(header):
        header[_weight_name(header)]["shape"] = [10**12, 10**12]

    _edit_header(model_dir, edit)
    _refused(
        model_dir,
        r"of shape \[1000000000000, 1000000000000\] and dtype F(32|64) needs \d+ bytes but its offsets span",
    )


# Same element size, other kind; other element size; no safetensors dtype at all.
_INTEGER_TWIN = {"F64": "I64", "F32": "I32", "F16": "I16", "BF16": "I16"}
_OTHER_WIDTH = {"F64": "F32", "F32": "F64", "F16": "F32", "BF16": "F64"}


@pytest.mark.parametrize(
    ("change", "message"),
    [(_INTEGER_TWIN.get, "holds I(64|32|16) values, not floating-point numbers"),
     (_OTHER_WIDTH.get, "needs \\d+ bytes but its offsets span"),
     (lambda _: "F128", "has the unknown dtype 'F128'"), (lambda _: 7, "has the unknown dtype 7")],
)  # fmt: skip
def test_wrong_dtype(model_dir, change, message):
    def edit(header):
        entry = header[_weight_name(header)]
        entry["dtype"] = change(entry["dtype"])

    _edit_header(model_dir, edit)
    _refused(model_dir, message)


def test_overlapping_tensors(model_dir):
    def edit(header):
        # Two tensors of the same size: the second now reads the first's bytes, and its own are nobody's.
        a, b = (name for name in header if name.endswith("layers.0.bias"))
        header[b]["data_offsets"] = list(header[a]["data_offsets"])

    _edit_header(model_dir, edit)
    _refused(model_dir, "its tensors overlap or leave gaps in the data section")


def test_trailing_bytes(model_dir):
    with open(model_dir / persistence.TENSORS_FILE, "ab") as file:
        file.write(b"\0" * 16)
    _refused(model_dir, "16 bytes after its last tensor belong to no tensor")


def _resave(model_dir: Path, edit) -> None:
    """Rewrite the tensor file with safetensors after ``edit(tensors)`` (a well-formed file)."""
    from safetensors.torch import load_file, save_file

    path = model_dir / persistence.TENSORS_FILE
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


def test_missing_tensor(model_dir):
    _resave(model_dir, lambda t: t.pop("logits"))
    _refused(model_dir, r"tensor\(s\) \['logits'\] are missing")


def test_missing_result_tensor(model_dir):
    _resave(model_dir, lambda t: t.pop("losses"))
    _refused(model_dir, r"tensor\(s\) \['losses'\] are missing")


def test_extra_tensor(model_dir):
    import torch

    _resave(model_dir, lambda t: t.update(evil=torch.zeros(3, dtype=torch.float64)))
    _refused(model_dir, r"it holds tensor\(s\) \['evil'\] that a (maf|spline) flow of its config has not")


def test_tensor_of_the_wrong_shape(model_dir):
    import torch

    _resave(model_dir, lambda t: t.update(logits=torch.zeros(1, 5, dtype=torch.float64)))
    _refused(model_dir, r"tensor 'logits' has shape \(1, 5\), but the config \(2 components of 3 features")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights(model_dir, value):
    def edit(tensors):
        name = next(n for n in tensors if n.endswith(".bias"))
        tensors[name][0, 0] = value

    _resave(model_dir, edit)
    _refused(model_dir, r"tensor '.*\.bias' holds NaN or infinite values")


def test_altered_mask(model_dir):
    def edit(tensors):
        name = next(n for n in tensors if n.endswith(".mask"))
        tensors[name].fill_(1.0)  # every output sees every input: no longer autoregressive

    _resave(model_dir, edit)
    _refused(model_dir, r"tensor '.*\.mask' is not the autoregressive mask of its architecture")


def test_non_positive_base_scales(saved, tmp_path):
    model_dir = _copy(saved["scaled"], tmp_path / "m")
    _resave(model_dir, lambda t: t["base_scales"].mul_(-1))
    _refused(model_dir, "its base scales are not all positive")


@pytest.mark.parametrize("name", ["subspace_scale", "subspace_residual_scale"])
def test_non_positive_subspace_scales(tmp_path, name):
    wide = np.random.RandomState(0).rand(60, 50)
    model = FlowMixture(2, flow_params={"subspace_dim": 3, "hidden_units": (4,)}, n_epochs=1,
                        recipe=Candidates().with_settings(pretrain_epochs=0), random_state=0)  # fmt: skip
    model_dir = model.fit(wide).save(tmp_path / "m")
    _resave(model_dir, lambda t: t[name].zero_())
    _refused(model_dir, f"its {name.replace('_', ' ')}s are not all positive")


def test_a_subspace_dim_beyond_the_features_is_refused(tmp_path):
    wide = np.random.RandomState(0).rand(60, 50)
    model = FlowMixture(2, flow_params={"subspace_dim": 3, "hidden_units": (4,)}, n_epochs=1,
                        recipe=Candidates().with_settings(pretrain_epochs=0), random_state=0)  # fmt: skip
    model_dir = model.fit(wide).save(tmp_path / "m")
    config = json.loads((model_dir / persistence.CONFIG_FILE).read_text())
    config["subspace_dim"] = 50
    (model_dir / persistence.CONFIG_FILE).write_text(json.dumps(config))
    _refused(model_dir, "subspace_dim is 50, not null or a positive integer below n_features_in=50")


def test_degenerate_spline_interval(saved, tmp_path):
    # Finite tensors that still make a density of NaN: the spline's interval has zero width.
    model_dir = _copy(saved["spline"], tmp_path / "m")
    _resave(model_dir, lambda t: t["flows.half_width"].zero_())
    _refused(model_dir, "its tensors give a non-finite density at the components' own means")


# ----------------------------------------------------------------------------------------------
# The config


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\xff\xfe\x00", "it is not JSON text"), (b"{", "it is not JSON text"), (b"[" * 100_000, "it is not JSON text"),
     (b"[1, 2]", "it holds a JSON list, not an object of settings"), (b'"model"', "it holds a JSON str")],
)  # fmt: skip
def test_config_that_is_not_a_json_object(model_dir, content, message):
    (model_dir / persistence.CONFIG_FILE).write_bytes(content)
    error = _refused(model_dir, message)
    assert ADVICE in str(error)


def test_config_far_too_large(model_dir):
    with open(model_dir / persistence.CONFIG_FILE, "ab") as file:
        file.truncate(persistence._MAX_CONFIG_BYTES + 1)  # sparse on most file systems
    _refused(model_dir, r"it is \d+ bytes long, far more than a model's settings take")


@pytest.mark.parametrize("version", [0, persistence.FORMAT_VERSION + 1, "2", True, None, 2.0])
def test_unknown_format_versions(model_dir, version):
    _edit_config(model_dir, lambda c: c.update(format_version=version))
    _refused(model_dir, f"version {version!r}\\); a newer flowmix may read it")


def test_unknown_flow_family(model_dir):
    _edit_config(model_dir, lambda c: c["flow"].update(family="glow"))
    _refused(
        model_dir,
        r"holds a flow of family 'glow', which this flowmix does not know \(it knows \['maf', 'spline'\]\)",
    )


def test_unknown_estimator_parameter(model_dir):
    _edit_config(model_dir, lambda c: c["params"].update(exploit=1))
    _refused(
        model_dir,
        r"sets estimator parameter\(s\) \['exploit'\] that this flowmix's FlowMixture does not have",
    )


def _set(path: str, value):
    """An edit that sets config[path] (dotted) to ``value``."""

    def edit(config):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value

    return edit


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("params", [1], "its 'params' are not an object"),
        ("params.n_components", "2", "n_components is '2', not a positive integer"),
        ("params.n_components", 2.0, "n_components is 2.0, not a positive integer"),
        ("params.n_components", True, "n_components is True, not a positive integer"),
        ("params.n_components", 0, "n_components is 0, not a positive integer"),
        ("n_features_in", -3, "n_features_in is -3, not a positive integer"),
        ("flow", "maf", "its 'flow' is not an object with a family name and a config"),
        ("flow.config.hidden_units", 4, "the flow's hidden_units are 4, not a list of positive integers"),
        ("flow.config.hidden_units", [], "the flow's hidden_units are \\[\\], not a list"),
        ("flow.config.hidden_units", [0], "the flow's hidden_units are \\[0\\], not a list"),
        ("flow.config.n_layers", None, "the flow's n_layers is None, not a positive integer"),
        ("flow.config.activation", "swish", "the flow's activation 'swish' is unknown"),
        ("flow.config.dropout", 0.5, "flow config has unknown keys \\['dropout'\\]"),
        ("base_std", float("nan"), "base_std is nan, not a positive finite number"),
        ("base_std", -1, "base_std is -1, not a positive finite number"),
        ("best_restart", 7, "with best_restart=7 among the rows"),
        ("best_restart", -1, "best_restart is -1, not a non-negative integer"),
        ("n_iter", 10**6, "n_iter=1000000 epochs"),
        ("feature_names_in", ["a"], "feature_names_in is not null or a list of 3 strings"),
        ("params.flow", "other", "its params say flow='other' but its flow is"),
    ],
)
def test_wrongly_typed_config(model_dir, path, value, message):
    _edit_config(model_dir, _set(path, value))
    error = _refused(model_dir, message)
    assert ADVICE in str(error)


def test_device_that_is_not_a_compute_device(model_dir):
    _edit_config(model_dir, _set("params.device", "meta"))
    _refused(
        model_dir,
        r"device 'meta' is not one of cpu, cuda, mps; load the model with FlowMixture.load\(path, device='cpu'\)",
    )
    FlowMixture.load(model_dir, device="cpu")  # the advice works


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "n_features_in",
            4,
            r"tensor 'base_means' has shape \(1, 2, 3\), but the config \(2 components of 4",
        ),
        ("params.n_components", 3, r"tensor 'logits' has shape \(1, 2\), but the config \(3 components"),
        ("flow.config.hidden_units", [5], r"has shape \(2, 4, 3\), but the config .* needs \(2, 5, 3\)"),
        ("flow.config.hidden_units", [4, 4], r"are missing"),
        ("flow.config.n_layers", 1, r"it holds tensor\(s\) \['flows.mades.1"),
    ],
)
def test_config_that_disagrees_with_the_tensors(model_dir, path, value, message):
    _edit_config(model_dir, _set(path, value))
    _refused(model_dir, message)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("params.n_components", 10**12, "n_components x n_features_in = 3000000000000, more than all"),
        ("n_features_in", 10**12, "n_components x n_features_in = 2000000000000, more than all"),
        ("flow.config.hidden_units", [10**9], "a hidden layer width = 1000000000, more than all"),
        (
            "flow.config.n_layers",
            10**9,
            "its config asks for n_layers = 1000000000, more than all",
        ),
        ("flow.config.hidden_units", [1] * 10**5, "flow layers of 100001 linear maps"),
    ],
)
def test_absurd_sizes_are_refused_before_anything_is_built(model_dir, monkeypatch, path, value, message):
    def must_not_build(*args, **kwargs):
        raise AssertionError("an absurd config reached the flow's constructor")

    monkeypatch.setattr(persistence, "_build", must_not_build)
    _edit_config(model_dir, _set(path, value))
    _refused(model_dir, message)


def test_absurd_spline_bins_are_refused_before_anything_is_built(saved, tmp_path, monkeypatch):
    model_dir = _copy(saved["spline"], tmp_path / "m")
    monkeypatch.setattr(persistence, "_build", lambda *a, **k: pytest.fail("built an absurd config"))
    _edit_config(model_dir, _set("flow.config.n_bins", 10**9))
    _refused(model_dir, "its config asks for n_bins = 1000000000, more than all")


def test_invalid_flow_option_is_refused(saved, tmp_path):
    model_dir = _copy(saved["spline"], tmp_path / "m")
    _edit_config(model_dir, _set("flow.config.n_bins", 1))
    _refused(model_dir, r"its flow settings cannot be built \(n_bins must be an integer >= 2, got 1.\)")


def test_format_1_config_without_its_architecture(tmp_path):
    model_dir = _copy(Path(__file__).parent / "fixtures" / "format1_model", tmp_path / "m")
    _edit_config(model_dir, lambda c: c["params"].pop("n_layers"))
    _refused(model_dir, "its format version 1 'params' are not an object with hidden_units, n_layers")


# ----------------------------------------------------------------------------------------------
# Saving


def test_numpy_integer_parameters_save_and_load(tmp_path):
    # scikit-learn's parameter searches pass numpy scalars; json could not write them.
    model = FlowMixture(np.int64(2), flow="maf", flow_params={"hidden_units": (np.int64(4),)},
                        n_epochs=np.int64(1), recipe=SingleFit(pretrain_epochs=0), n_init=1, init="kmeans",
                        random_state=np.int64(0)).fit(X)  # fmt: skip
    loaded = FlowMixture.load(model.save(tmp_path / "m"))
    assert loaded.n_components == 2 and loaded.flow_params["hidden_units"] == (4,)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_interrupted_save_leaves_nothing(saved, tmp_path, monkeypatch):
    model = FlowMixture.load(saved["maf"])

    def interrupted(tensors, filename):
        Path(filename).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr("safetensors.torch.save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_interrupt_between_the_renames_keeps_the_previous_model(saved, tmp_path, monkeypatch):
    """Ctrl-C just after the old model was moved aside: it is put back, whole."""
    target = _copy(saved["maf"], tmp_path / "m")
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    model = FlowMixture.load(saved["spline"])
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the new directory onto the target
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr("flowmix._io.os.replace", replace)
    with pytest.raises(KeyboardInterrupt):
        model.save(target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


# ----------------------------------------------------------------------------------------------
# Random damage


def _damage(raw: bytes, cut: int | None, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(raw)
    for position, value in flips:
        data[position % len(data)] ^= value
    return bytes(data[:cut] if cut is not None else data)


# FLOWMIX_FUZZ_SCALE=20: 20 times the examples, fresh random ones (a deeper search, by hand).
_SCALE = int(os.environ.get("FLOWMIX_FUZZ_SCALE", "0"))


@settings(
    max_examples=60 * max(_SCALE, 1),
    deadline=None,
    derandomize=not _SCALE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    which=st.sampled_from(["maf", "spline"]),
    target=st.sampled_from([persistence.TENSORS_FILE, persistence.CONFIG_FILE]),
    cut=st.none() | st.integers(0, 4000),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4),
)
def test_random_damage_is_refused_or_harmless(saved, tmp_path_factory, which, target, cut, flips):
    model_dir = _copy(saved[which], tmp_path_factory.mktemp("damaged") / "m")
    path = model_dir / target
    path.write_bytes(_damage(path.read_bytes(), cut, flips))
    try:
        model = FlowMixture.load(model_dir)
    except ValueError as err:
        refusal = str(err)
    else:
        refusal = None
    if refusal is not None:
        assert REFUSED in refusal or "a newer flowmix may read it" in refusal
        return
    # Damage that survives every check (a changed weight, a changed setting) still gives a model
    # that works: labels in range and finite densities of the right shape.
    labels, log_density = model.predict(X), model.score_samples(X)
    assert labels.shape == (len(X),) and set(labels) <= set(range(model.n_components))
    assert log_density.shape == (len(X),) and np.isfinite(log_density).all()
