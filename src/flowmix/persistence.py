"""Model files: a directory with ``config.json`` (estimator parameters, flow family, format version)
and ``model.safetensors`` (the kept restart's tensors and the loss curves). Loading never unpickles.

Format versions:
    1. flowmix 0.1: MAF only; the flow's architecture is read from the estimator parameters.
    2. flowmix 0.2: the config names the flow family and its architecture (``"flow"``), and the
       tensors may hold per-component base scales.
Older versions still load: :func:`_migrate` brings their config up to the current version.
"""

from __future__ import annotations

import json
import os
import shutil
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from flowmix.density import MixtureOfFlows
from flowmix.flows import FLOW_FAMILIES

if TYPE_CHECKING:
    from flowmix.estimator import FlowMixture

CONFIG_FILE = "config.json"
TENSORS_FILE = "model.safetensors"
FORMAT_VERSION = 2
_RESULT_TENSORS = ("loss_curve", "losses")


def save_model(model: FlowMixture, path: str | os.PathLike) -> Path:
    """Write the fitted ``model`` to directory ``path``: config.json and model.safetensors.

    The pair is written to a temporary directory that then takes the place of ``path``, so an
    interrupted save never leaves a half-written model behind.
    """
    from safetensors.torch import save_file
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model, "density_")
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
    tensors["loss_curve"] = torch.as_tensor(model.loss_curve_)
    tensors["losses"] = torch.as_tensor(model.losses_)
    params = model.get_params()
    if params["hidden_units"] is not None:
        params["hidden_units"] = list(params["hidden_units"])
    if params["flow_params"] is not None:
        params["flow_params"] = dict(params["flow_params"])
    if not (params["random_state"] is None or isinstance(params["random_state"], Integral)):
        params["random_state"] = None  # a RandomState object has no JSON form
    if not isinstance(params["init"], str):
        params["init"] = None  # the user's labels are not kept; refitting needs them again
    config = {
        "format": "flowmix-model",
        "format_version": FORMAT_VERSION,
        "params": params,
        "flow": {"family": density.flows.family, "config": density.flows.config()},
        "base_std": density.base_std,
        "n_features_in": int(model.n_features_in_),
        "feature_names_in": list(map(str, getattr(model, "feature_names_in_", []))) or None,
        "best_restart": model.best_restart_,
        "n_iter": model.n_iter_,
    }
    # Both files go to a temporary sibling directory that then replaces ``path``: a model
    # directory always holds a matching pair, whatever interrupts the save.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    try:
        tmp.mkdir()
        save_file(tensors, str(tmp / TENSORS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        if path.exists():
            path.rename(old)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path


def load_model(cls: type[FlowMixture], path: str | os.PathLike, device: str | None = None) -> FlowMixture:
    """Read a model written by :func:`save_model` (any format version up to the current one)."""
    import numpy as np
    from safetensors.torch import load_file

    path = Path(path)
    config_path, tensors_path = path / CONFIG_FILE, path / TENSORS_FILE
    if not config_path.is_file() or not tensors_path.is_file():
        raise FileNotFoundError(
            f"{path} is not a saved FlowMixture: expected {CONFIG_FILE} and {TENSORS_FILE} in it "
            "(write one with FlowMixture.save)."
        )
    config = json.loads(config_path.read_text())
    version = config.get("format_version")
    if config.get("format") != "flowmix-model" or version not in range(1, FORMAT_VERSION + 1):
        raise ValueError(
            f"{config_path} is not a flowmix model file of format version 1 to {FORMAT_VERSION} "
            f"(it says format {config.get('format')!r}, version {version!r}); a newer flowmix may read it."
        )
    config = _migrate(config)
    params = config["params"]
    if params.get("hidden_units") is not None:
        params["hidden_units"] = tuple(params["hidden_units"])
    if device is not None:
        params["device"] = device
    model = cls(**params)
    tensors = load_file(str(tensors_path))
    k, d = params["n_components"], config["n_features_in"]
    family = config["flow"]["family"]
    if family not in FLOW_FAMILIES:
        raise ValueError(
            f"{config_path} holds a flow of family {family!r}, which this flowmix does not know."
        )
    flows = FLOW_FAMILIES[family](k, d, **_architecture(config["flow"]["config"]))
    scales = torch.zeros(1, k, d) if "base_scales" in tensors else None
    density = MixtureOfFlows(flows, torch.zeros(1, k, d), config["base_std"], scales).double()
    density.load_state_dict({key: v for key, v in tensors.items() if key not in _RESULT_TENSORS})
    density = density.to(model._torch_device())
    model._set_fitted(density, tensors["losses"].numpy(), config["best_restart"], config["n_iter"])
    model.n_features_in_ = d
    if config.get("feature_names_in"):
        model.feature_names_in_ = np.asarray(config["feature_names_in"], dtype=object)
    return model


def _architecture(flow_config: dict[str, Any]) -> dict[str, Any]:
    return {key: tuple(v) if key == "hidden_units" else v for key, v in flow_config.items()}


def _migrate(config: dict[str, Any]) -> dict[str, Any]:
    """A config of any older format version, rewritten as the current version."""
    config = dict(config)
    if config["format_version"] == 1:
        # 0.1 had one flow family, one algorithm and one selection rule.
        params = {"flow": "maf", "algorithm": "mle", "selection": "loss", **config["params"]}
        config["flow"] = {
            "family": "maf",
            "config": {key: params[key] for key in ("hidden_units", "n_layers", "activation")},
        }
        config["base_std"] = params["base_std"]
        config["params"] = params
        config["format_version"] = 2
    return config
