"""Model files: a directory with ``config.json`` (estimator parameters, flow family, format version)
and ``model.safetensors`` (the kept restart's tensors and the loss curves). Loading never unpickles.

Format versions:
    1. flowmix 0.1: MAF only; the flow's architecture is read from the estimator parameters.
    2. flowmix 0.2: the config names the flow family and its architecture (``"flow"``), and the
       tensors may hold per-component base scales.
    3. flowmix 0.2, settings grouped: the architecture in ``flow_params``, the training's
       details in the recipe (a single fit's as a JSON object), early stopping's patience in an
       object (:data:`flowmix._params.MOVED` lists where each old parameter went).

Older versions still load: ``_migrate`` brings their config up to the current version.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator

from flowmix import _params, recipes
from flowmix._io import atomic_write_dir
from flowmix.density import MixtureOfFlows
from flowmix.dequantization import plain as plain_dequantize
from flowmix.fitted import FittedMixture, base_attributes
from flowmix.flows import FLOW_FAMILIES, family_defaults
from flowmix.flows.base import AutoregressiveFlow
from flowmix.inference import joint_log_prob
from flowmix.memory_budget import resolve_budget
from flowmix.nn import ACTIVATIONS
from flowmix.options import EarlyStopping
from flowmix.preprocessing import FeatureScaling
from flowmix.subspace import Subspaces
from flowmix.training import TrainResult
from flowmix.validation import resolve_device

CONFIG_FILE = "config.json"
TENSORS_FILE = "model.safetensors"
FORMAT_VERSION = 3
_RESULT_TENSORS = ("loss_curve", "losses")


@dataclasses.dataclass
class SavedModel:
    """A model file read back: the estimator's parameters, its fitted mixture, and the other fitted
    attributes (names without the trailing underscore)."""

    params: dict[str, Any]
    fitted: FittedMixture
    attributes: dict[str, Any]


def save_model(model: BaseEstimator, path: str | os.PathLike) -> Path:
    """Write the fitted FlowMixture ``model`` to directory ``path``: config.json and model.safetensors.

    The pair is written to a temporary directory that then takes the place of ``path``, so an
    interrupted save never leaves a half-written model behind.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} exists and is not a directory; choose a directory path for the model.")
    if path.is_dir() and any(path.iterdir()) and not (path / CONFIG_FILE).is_file():
        raise ValueError(
            f"{path} is a non-empty directory that holds no flowmix model; choose a new or empty "
            "directory so that nothing else is overwritten."
        )
    density = model.density_
    tensors = {k: v.detach().cpu().contiguous() for k, v in density.state_dict().items()}
    # Contiguous copies: with early stopping the curves are views into the restarts' loss table.
    tensors["loss_curve"] = torch.as_tensor(model.loss_curve_).contiguous()
    tensors["losses"] = torch.as_tensor(model.losses_).contiguous()
    config = {
        "format": "flowmix-model",
        "format_version": FORMAT_VERSION,
        "params": params_to_json(model.get_params(deep=False)),
        "flow": {"family": density.flows.family, "config": density.flows.config()},
        "base_std": density.base_std,
        "n_features_in": int(model.n_features_in_),
        "subspace_dim": model.subspace_dim_,
        "dequantization_steps": _steps_list(model.dequantization_steps_),
        "feature_names_in": list(map(str, getattr(model, "feature_names_in_", []))) or None,
        "feature_scaling": {
            "offset": model.feature_scaling_.offset.tolist(),
            "scale": model.feature_scaling_.scale.tolist(),
        },
        "best_restart": model.best_restart_,
        "n_iter": model.n_iter_,
    }
    # Both files go to a temporary sibling directory that then replaces ``path``
    # (flowmix._io.atomic_write_dir): a model directory always holds a matching pair, and an
    # existing model survives whatever interrupts the save (an error, a full disk, Ctrl-C).

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp / TENSORS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=_json_scalar), encoding="utf-8")

    atomic_write_dir(path, write)
    return path


def params_to_json(params: dict[str, Any]) -> dict[str, Any]:
    """Estimator parameters (all or some) as model files and experiment records keep them: JSON values.

    Parameters that files do not keep (flowmix._params: ``saved``) are left out; a start given as
    an array, a random generator and a recipe without a JSON form become None (refitting needs
    them given again).
    """
    params = {name: value for name, value in params.items() if _params.SETTINGS[name].saved}
    if params.get("flow_params") is not None:
        params["flow_params"] = {
            k: list(v) if k == "hidden_units" else v for k, v in params["flow_params"].items()
        }
    if not (params.get("random_state") is None or isinstance(params["random_state"], Integral)):
        params["random_state"] = None  # a RandomState object has no JSON form
    if "init" in params and not isinstance(params["init"], str):
        params["init"] = None  # the user's labels are not kept; refitting needs them again
    if "dequantize" in params:
        params["dequantize"] = plain_dequantize(params["dequantize"])  # steps given as an array: a list
    if "recipe" in params:
        params["recipe"] = recipes.to_json(params["recipe"])
    if isinstance(params.get("early_stopping"), EarlyStopping):
        params["early_stopping"] = dataclasses.asdict(params["early_stopping"])
    return params


def params_from_json(params: dict[str, Any]) -> dict[str, Any]:
    """The estimator parameters that :func:`params_to_json` wrote (of the current format version)."""
    params = dict(params)
    if isinstance((params.get("flow_params") or {}).get("hidden_units"), list):  # JSON has no tuples
        params["flow_params"] = {
            **params["flow_params"],
            "hidden_units": tuple(params["flow_params"]["hidden_units"]),
        }
    if isinstance(params.get("early_stopping"), dict):
        params["early_stopping"] = EarlyStopping(**params["early_stopping"])
    if "recipe" in params:
        params["recipe"] = recipes.from_json(params["recipe"])
    return params


def _steps_list(steps: np.ndarray | None) -> list[float] | None:
    return None if steps is None else steps.tolist()


def _json_scalar(value: Any) -> Any:
    """numpy scalars (``n_components=np.int64(3)``, as scikit-learn's searches pass) as Python numbers."""

    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} has no JSON form")


def load_model(path: str | os.PathLike, device: str | None = None) -> SavedModel:
    """Read a model written by :func:`save_model` (any format version up to the current one).

    The files are checked before anything is built from them, so that a damaged or hostile model
    directory is refused with a ValueError instead of crashing, allocating without bound or
    loading a density that silently returns NaN: the config must be a JSON object of the right
    types; the safetensors header must describe float tensors packed exactly into the file; the
    config's sizes must fit in the tensors the file holds (checked by arithmetic and by building
    the architecture on torch's "meta" device, which allocates nothing); the tensors must be
    exactly the architecture's, with its autoregressive masks, finite values and a finite density.
    """
    from safetensors.torch import load_file

    path = Path(path)
    config_path, tensors_path = path / CONFIG_FILE, path / TENSORS_FILE
    if not config_path.is_file() or not tensors_path.is_file():
        raise FileNotFoundError(
            f"{path} is not a saved FlowMixture: expected {CONFIG_FILE} and {TENSORS_FILE} in it "
            "(write one with FlowMixture.save)."
        )
    layout = _read_layout(config_path, device)
    try:
        layout.params = params_from_json(_params.complete(layout.params))
    except (TypeError, ValueError) as err:
        raise _corrupt(config_path, f"its estimator parameters are not FlowMixture's ({err})") from None
    header = _read_header(tensors_path)
    _check_sizes(layout, header, tensors_path)
    with_scales = "base_scales" in header
    with_tril = "base_scale_tril" in header
    try:
        with torch.device("meta"):
            skeleton = _build(layout, with_scales, with_tril)
    except (ValueError, TypeError) as err:
        raise _corrupt(config_path, f"its flow settings cannot be built ({err})") from None
    expected = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    _check_tensor_shapes(layout, expected, header, tensors_path)

    # From here on every allocation is bounded by the size of the tensor file.
    try:
        tensors = load_file(str(tensors_path))
    except Exception as err:  # safetensors' own error type differs across its versions
        raise _corrupt(tensors_path, f"safetensors cannot read it ({err})") from None
    read = {name: tuple(t.shape) for name, t in tensors.items()}
    if read != {name: shape for name, (_, shape) in header.items()}:
        raise _corrupt(tensors_path, "its tensors changed while it was being read")
    density = _build(layout, with_scales, with_tril)
    state = {name: t for name, t in tensors.items() if name not in _RESULT_TENSORS}
    _check_tensor_values(density, state, tensors_path)
    density.load_state_dict(state)
    # The precision of the file's weights (float32 as fitted; float64 in older files), so that
    # the loaded model computes exactly what the saved one did in either inference_dtype.
    dtype = torch.float32 if all(t.dtype == torch.float32 for t in state.values()) else torch.float64
    params = layout.params
    density = density.to(resolve_device(params["device"]), dtype)
    losses = tensors["losses"].double().numpy()
    # The file keeps the losses and the kept restart's epoch count; what else a fit's result held
    # (stopped restarts, early-stopping bookkeeping) is not needed by a loaded model.
    result = TrainResult(losses, np.full(len(losses), -1), layout.n_iter)
    algorithm = None if params.get("algorithm", "auto") == "auto" else params["algorithm"]
    fitted = FittedMixture(density, result, layout.best_restart, algorithm=algorithm)
    attributes = _read_attributes(layout, config_path)
    _probe(fitted.density, params, config_path, tensors_path)
    return SavedModel(params, fitted, attributes)


def _read_attributes(layout: _Layout, config_path: Path) -> dict[str, Any]:
    """The fitted attributes a model file keeps besides its density: scaling, lattice, names."""
    attributes: dict[str, Any] = {
        "n_features_in": layout.n_features,
        "feature_scaling": FeatureScaling.identity(layout.n_features),
        "recipe_trace": None,  # what ran at fit time is not kept in the file
    }
    if layout.feature_scaling is not None:
        offset, scale = layout.feature_scaling["offset"], layout.feature_scaling["scale"]
        if len(offset) != layout.n_features:
            problem = f"its feature_scaling has {len(offset)} values, not n_features_in={layout.n_features}"
            raise _corrupt(config_path, problem)
        attributes["feature_scaling"] = FeatureScaling(
            np.asarray(offset, np.float64), np.asarray(scale, np.float64)
        )
    steps = layout.dequantization_steps
    attributes["dequantization_steps"] = None if steps is None else np.asarray(steps, dtype=np.float64)
    if layout.feature_names:
        attributes["feature_names_in"] = np.asarray(layout.feature_names, dtype=object)
    return attributes


def _probe(density: MixtureOfFlows, params: dict[str, Any], config_path: Path, tensors_path: Path) -> None:
    """A last check that needs no knowledge of the flow family: the model must give a finite density
    at a few finite points (its own base means). A zero scale, an overflowing weight or a parameter
    that breaks inference would not."""
    means = base_attributes(density)["base_means"].astype(np.float32)
    try:
        budget = resolve_budget(params["max_memory"], density.logits.device)
        probe = joint_log_prob(density, means, params["inference_dtype"], budget)
    except (ValueError, TypeError) as err:
        raise _corrupt(config_path, f"the model it describes cannot predict ({err})") from None
    if not np.isfinite(probe).all():
        raise _corrupt(tensors_path, "its tensors give a non-finite density at the components' own means")


# ----------------------------------------------------------------------------------------------
# Checks of a model directory, before anything is built from it.

#: Largest config.json read, in bytes; a real one takes a few kB (feature names included).
_MAX_CONFIG_BYTES = 16 * 2**20
#: safetensors' own limit on the JSON header of a tensor file.
_MAX_HEADER_BYTES = 100 * 2**20
#: Bytes per element of the safetensors dtypes; a model's tensors are among the float ones.
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
_FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
_DEVICE_TYPES = ("cpu", "cuda", "mps")


@dataclasses.dataclass
class _Layout:
    """What a config says, checked: the estimator's parameters and the fitted architecture."""

    params: dict[str, Any]
    family: str
    flow_kwargs: dict[str, Any]
    n_components: int
    n_features: int
    base_std: float
    best_restart: int
    n_iter: int
    feature_names: list[str] | None
    feature_scaling: dict[str, list[float]] | None  # checked lists; their length is checked with the tensors
    subspace_dim: int | None = None  # the flows' dimension where it is below n_features
    dequantization_steps: list[float] | None = None  # each feature's lattice step (flowmix.dequantization)


def _corrupt(path: Path, problem: str) -> ValueError:
    return ValueError(
        f"{path} is not a valid flowmix model file: {problem}. It is damaged or was not written by "
        "FlowMixture.save; restore the model directory from a copy, or fit and save the model again."
    )


def _short(value: Any) -> str:
    """repr of ``value`` cut to a line: a hostile file may hold values megabytes long."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def _is_count(value: Any, minimum: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _read_layout(config_path: Path, device: str | None) -> _Layout:
    """The checked contents of config.json (migrated to the current format version)."""
    config = _read_config(config_path)
    need = _needs(config_path)
    params = config.get("params")
    need(isinstance(params, dict), "its 'params' are not an object of estimator parameters")
    params = dict(params)
    unknown = sorted(set(params) - set(_params.SETTINGS))
    if unknown:
        raise ValueError(
            f"{config_path} sets estimator parameter(s) {_short(unknown)} that this flowmix's FlowMixture does "
            "not have; a newer flowmix may read it."
        )
    k, d = params.get("n_components"), config.get("n_features_in")
    need(_is_count(k), f"n_components is {_short(k)}, not a positive integer")
    need(_is_count(d), f"n_features_in is {_short(d)}, not a positive integer")
    family, kwargs = _read_flow(config, params, config_path)
    base_std = config.get("base_std")
    need(
        isinstance(base_std, (int, float)) and not isinstance(base_std, bool) and 0 < base_std < math.inf,
        f"base_std is {_short(base_std)}, not a positive finite number",
    )
    best, n_iter = config.get("best_restart"), config.get("n_iter")
    need(_is_count(best, 0), f"best_restart is {_short(best)}, not a non-negative integer")
    need(_is_count(n_iter, 0), f"n_iter is {_short(n_iter)}, not a non-negative integer")
    names = config.get("feature_names_in")
    need(
        names is None
        or (isinstance(names, list) and len(names) == d and all(isinstance(n, str) for n in names)),
        f"feature_names_in is not null or a list of {d} strings",
    )
    subspace_dim = config.get("subspace_dim")
    need(
        subspace_dim is None or (_is_count(subspace_dim) and subspace_dim < d),
        f"subspace_dim is {_short(subspace_dim)}, not null or a positive integer below n_features_in={d}",
    )
    steps = config.get("dequantization_steps")
    need(
        steps is None
        or (isinstance(steps, list) and len(steps) == d and all(_is_finite(v, 0) for v in steps)),
        f"dequantization_steps is not null or a list of {d} non-negative finite numbers",
    )
    scaling = config.get("feature_scaling")
    if scaling is not None:
        need(
            isinstance(scaling, dict) and set(scaling) == {"offset", "scale"},
            "its feature_scaling is not an object with an offset and a scale",
        )
        offset, scale = scaling["offset"], scaling["scale"]
        need(
            all(isinstance(c, list) and all(_is_finite(v) for v in c) for c in (offset, scale))
            and len(offset) == len(scale)
            and all(v > 0 for v in scale),
            "its feature_scaling is not equally many finite offsets and positive finite scales",
        )
    params = _with_device(params, device, config_path)
    return _Layout(
        params, family, kwargs, k, d, float(base_std), best, n_iter, names, scaling, subspace_dim, steps
    )


def _needs(config_path: Path):
    """``need(ok, problem)``: refuse the config as damaged unless ``ok``."""

    def need(ok: bool, problem: str) -> None:
        if not ok:
            raise _corrupt(config_path, problem)

    return need


def _is_finite(value: Any, minimum: float = -math.inf) -> bool:
    """A JSON number (not a boolean), finite and at least ``minimum``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and minimum <= value < math.inf


def _read_config(config_path: Path) -> dict[str, Any]:
    """config.json as a JSON object of a known format version, migrated to the current one."""
    size = config_path.stat().st_size
    if size > _MAX_CONFIG_BYTES:
        raise _corrupt(config_path, f"it is {size} bytes long, far more than a model's settings take")
    try:
        config = json.loads(config_path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _corrupt(config_path, f"it is not JSON text ({err})") from None
    if not isinstance(config, dict):
        raise _corrupt(config_path, f"it holds a JSON {type(config).__name__}, not an object of settings")
    version = config.get("format_version")
    # type() and not isinstance(): JSON's true would otherwise pass as version 1.
    if (
        config.get("format") != "flowmix-model"
        or type(version) is not int
        or not 1 <= version <= FORMAT_VERSION
    ):
        raise ValueError(
            f"{config_path} is not a flowmix model file of format version 1 to {FORMAT_VERSION} "
            f"(it says format {_short(config.get('format'))}, version {_short(version)}); a newer flowmix may read it."
        )
    return _migrate(config, config_path)


def _read_flow(
    config: dict[str, Any], params: dict[str, Any], config_path: Path
) -> tuple[str, dict[str, Any]]:
    """(flow family, its constructor's keyword arguments), checked."""
    need = _needs(config_path)
    flow = config.get("flow")
    need(
        isinstance(flow, dict)
        and isinstance(flow.get("family"), str)
        and isinstance(flow.get("config"), dict),
        "its 'flow' is not an object with a family name and a config",
    )
    family = flow["family"]
    if family not in FLOW_FAMILIES:
        raise ValueError(
            f"{config_path} holds a flow of family {_short(family)}, which this flowmix does not know (it knows "
            f"{sorted(FLOW_FAMILIES)}); a newer flowmix may read it."
        )
    need(
        params.get("flow", family) == family,
        f"its params say flow={_short(params.get('flow'))} but its flow is {_short(family)}",
    )
    kwargs = dict(flow["config"])
    extra = sorted(set(kwargs) - set(family_defaults(family)))
    need(not extra, f"its {family} flow config has unknown keys {_short(extra)}")
    # The architecture settings the family's config holds (a family without a network writes none).
    architecture = set(kwargs)
    if issubclass(FLOW_FAMILIES[family], AutoregressiveFlow):
        architecture |= {"hidden_units", "n_layers", "activation"}  # always written by these families
    if "hidden_units" in architecture:
        hidden = kwargs.get("hidden_units")
        need(
            isinstance(hidden, list) and bool(hidden) and all(_is_count(h) for h in hidden),
            f"the flow's hidden_units are {_short(hidden)}, not a list of positive integers",
        )
        kwargs["hidden_units"] = tuple(hidden)
    if "n_layers" in architecture:
        need(
            _is_count(kwargs.get("n_layers")),
            f"the flow's n_layers is {_short(kwargs.get('n_layers'))}, not a positive integer",
        )
    if "activation" in architecture:
        need(
            kwargs.get("activation") in ACTIVATIONS,
            f"the flow's activation {_short(kwargs.get('activation'))} is unknown",
        )
    return family, kwargs


def _with_device(params: dict[str, Any], device: str | None, config_path: Path) -> dict[str, Any]:
    """The parameters with ``device`` (the caller's, else the file's), refused if it is no device type."""
    if device is not None:
        params["device"] = device
    where = params.get("device", "cpu")
    try:
        device_type = torch.device(where).type
    except (RuntimeError, TypeError, ValueError):
        device_type = None
    if device_type not in _DEVICE_TYPES:
        raise ValueError(
            f"{config_path}: device {_short(where)} is not one of {', '.join(_DEVICE_TYPES)}; load the model "
            "with FlowMixture.load(path, device='cpu')."
        )
    return params


def _read_header(tensors_path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (dtype, shape) of every tensor, from a safetensors header checked against the file.

    Only the 8-byte length and the JSON header are read: the tensors are packed back to back
    after it, so their offsets must tile the rest of the file exactly.
    """
    size = tensors_path.stat().st_size
    with open(tensors_path, "rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise _corrupt(
                tensors_path, f"it is truncated ({size} bytes, too short for a safetensors header)"
            )
        n = int.from_bytes(prefix, "little")
        if n > _MAX_HEADER_BYTES or 8 + n > size:
            raise _corrupt(
                tensors_path,
                f"its header claims {n} bytes but the file holds {size}: it is truncated or its header is damaged",
            )
        raw = file.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _corrupt(tensors_path, "its safetensors header is not JSON") from None
    if not isinstance(header, dict):
        raise _corrupt(tensors_path, "its safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    data_size = size - 8 - n
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    spans = []
    for name, entry in header.items():
        if not (isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"}):
            raise _corrupt(
                tensors_path, f"its header entry of tensor {_short(name)} is not a dtype, shape and offsets"
            )
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _DTYPE_BYTES:
            raise _corrupt(tensors_path, f"tensor {_short(name)} has the unknown dtype {_short(dtype)}")
        # safetensors' dimensions are 64-bit; more than 8 of them is no tensor of a flowmix model.
        if not (
            isinstance(shape, list) and len(shape) <= 8 and all(_is_count(s, 0) and s < 2**63 for s in shape)
        ):
            raise _corrupt(tensors_path, f"tensor {_short(name)} has the shape {_short(shape)}")
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(_is_count(o, 0) and o < 2**63 for o in offsets)
        ):
            raise _corrupt(tensors_path, f"tensor {_short(name)} has the data offsets {_short(offsets)}")
        start, end = offsets
        if not start <= end <= data_size:
            raise _corrupt(
                tensors_path,
                f"tensor {_short(name)} claims bytes {start} to {end} of a {data_size}-byte data section "
                "(the file is truncated or its header lies)",
            )
        needed = math.prod(shape) * _DTYPE_BYTES[dtype]
        if end - start != needed:
            raise _corrupt(
                tensors_path,
                f"tensor {_short(name)} of shape {shape} and dtype {dtype} needs {needed} bytes but its offsets "
                f"span {end - start}",
            )
        if dtype not in _FLOAT_DTYPES:
            raise _corrupt(
                tensors_path, f"tensor {_short(name)} holds {dtype} values, not floating-point numbers"
            )
        spans.append((start, end))
        out[name] = (dtype, tuple(shape))
    position = 0
    for start, end in sorted(spans):
        if start != position:
            raise _corrupt(tensors_path, "its tensors overlap or leave gaps in the data section")
        position = end
    if position != data_size:
        raise _corrupt(
            tensors_path, f"{data_size - position} bytes after its last tensor belong to no tensor"
        )
    return out


def _check_sizes(layout: _Layout, header: dict[str, tuple[str, tuple[int, ...]]], tensors_path: Path) -> None:
    """Refuse, by arithmetic alone, a config whose sizes cannot fit in the tensors of the file.

    Every fitted model holds its K x D base means and, for each hidden width h, a first-layer
    weight of at least h numbers, one tensor or more per layer; integer options (such as a
    spline's bins) size some tensor as well. Without this check an absurd config
    (n_components=10**12) would be built, or looped over, before its tensors were compared.
    """
    total = sum(math.prod(shape) for _, shape in header.values())
    claims = [("n_components x n_features_in", layout.n_components * layout.n_features)]
    hidden = layout.flow_kwargs.get("hidden_units") or (0,)
    claims += [("a hidden layer width", max(hidden))]
    claims += [(key, v) for key, v in layout.flow_kwargs.items() if _is_count(v)]
    for what, value in claims:
        if value > total:
            raise _corrupt(
                tensors_path,
                f"its config asks for {what} = {value}, more than all {total} numbers its tensors hold",
            )
    n_layers, depth = layout.flow_kwargs.get("n_layers", 0), len(hidden)
    if n_layers * (depth + 1) > len(header):
        raise _corrupt(
            tensors_path,
            f"its config asks for {n_layers} flow layers of {depth + 1} linear maps, but it holds only "
            f"{len(header)} tensors",
        )


def _check_tensor_shapes(
    layout: _Layout,
    expected: dict[str, tuple[int, ...]],
    header: dict[str, tuple[str, tuple[int, ...]]],
    tensors_path: Path,
) -> None:
    """The file holds exactly the tensors of the config's architecture, each of its shape."""
    missing = sorted(set(expected) - set(header)) + [n for n in _RESULT_TENSORS if n not in header]
    if missing:
        raise _corrupt(tensors_path, f"tensor(s) {_short(missing)} are missing")
    extra = sorted(set(header) - set(expected) - set(_RESULT_TENSORS))
    if extra:
        raise _corrupt(
            tensors_path,
            f"it holds tensor(s) {_short(extra)} that a {layout.family} flow of its config has not",
        )
    for name, shape in expected.items():
        if header[name][1] != shape:
            raise _corrupt(
                tensors_path,
                f"tensor {name!r} has shape {header[name][1]}, but the config ({layout.n_components} components "
                f"of {layout.n_features} features, {layout.family} flow {layout.flow_kwargs}) needs {shape}",
            )
    losses, curve = header["losses"][1], header["loss_curve"][1]
    if (
        len(losses) != 2
        or len(curve) != 1
        or not layout.best_restart < losses[0]
        or layout.n_iter > losses[1]
    ):
        raise _corrupt(
            tensors_path,
            f"its losses (shape {losses}) and loss curve (shape {curve}) are not one row per restart and "
            f"one value per epoch, with best_restart={layout.best_restart} among the rows and "
            f"n_iter={layout.n_iter} epochs",
        )


def _check_tensor_values(density: MixtureOfFlows, state: dict[str, torch.Tensor], tensors_path: Path) -> None:
    """Finite tensors, positive base scales, and masks equal to the architecture's own."""
    for name, tensor in state.items():
        if not torch.isfinite(tensor).all():
            raise _corrupt(tensors_path, f"tensor {name!r} holds NaN or infinite values")
    if "base_scales" in state and not (state["base_scales"] > 0).all():
        raise _corrupt(tensors_path, "its base scales are not all positive")
    for name in ("subspace_scale", "subspace_residual_scale"):
        if name in state and not (state[name] > 0).all():
            raise _corrupt(tensors_path, f"its {name.replace('_', ' ')}s are not all positive")
    if "base_scale_tril" in state:
        tril = state["base_scale_tril"]
        if not torch.equal(tril, torch.tril(tril)) or not (torch.diagonal(tril, dim1=-2, dim2=-1) > 0).all():
            raise _corrupt(
                tensors_path, "its base covariance factors are not lower-triangular with a positive diagonal"
            )
    # The masked layers' masks are fixed by the architecture; an altered one would make the flow
    # non-autoregressive, and its log-determinant (hence every density) wrong.
    for name, mask in density.state_dict().items():
        if name.endswith(".mask") and not torch.equal(state[name].to(mask.dtype), mask):
            raise _corrupt(
                tensors_path, f"tensor {name!r} is not the autoregressive mask of its architecture"
            )


def _build(layout: _Layout, with_scales: bool, with_tril: bool = False) -> MixtureOfFlows:
    """The (untrained) density of the layout's architecture, in float64."""
    k, n_features = layout.n_components, layout.n_features
    d = layout.subspace_dim or n_features  # the flows' dimension
    flows = FLOW_FAMILIES[layout.family](k, d, **layout.flow_kwargs)
    scales = torch.ones(1, k, d) if with_scales else None
    tril = torch.eye(d).expand(1, k, d, d) if with_tril else None
    subspaces = None
    if layout.subspace_dim is not None:
        subspaces = Subspaces(
            torch.zeros(1, k, n_features),
            torch.zeros(1, k, n_features, d),
            torch.ones(1, k, d),
            torch.ones(1, k),
        )
    return MixtureOfFlows(flows, torch.zeros(1, k, d), layout.base_std, scales, tril, subspaces).double()


def _migrate(config: dict[str, Any], config_path: Path | None = None) -> dict[str, Any]:
    """A config of any older format version, rewritten as the current version."""
    config = dict(config)
    if config["format_version"] == 1:
        # 0.1 had one flow family, one algorithm and one selection rule.
        old = config.get("params")
        keys = ("hidden_units", "n_layers", "activation", "base_std")
        if not isinstance(old, dict) or any(key not in old for key in keys):
            raise _corrupt(
                config_path or Path(CONFIG_FILE),
                f"its format version 1 'params' are not an object with {', '.join(keys)}",
            )
        params = {"flow": "maf", "algorithm": "mle", "selection": "loss", **old}
        config["flow"] = {
            "family": "maf",
            "config": {key: params[key] for key in ("hidden_units", "n_layers", "activation")},
        }
        config["base_std"] = params["base_std"]
        config["params"] = params
        config["format_version"] = 2
    if config["format_version"] == 2:
        # 0.2 before the settings were grouped (flowmix._params.MOVED).
        if not isinstance(config.get("params"), dict):
            problem = "its 'params' are not an object of estimator parameters"
            raise _corrupt(config_path or Path(CONFIG_FILE), problem)
        config["params"] = _params.from_format_2(config["params"])
        config["format_version"] = 3
    return config
