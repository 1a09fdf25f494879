"""The one table of FlowMixture's settings: default, constraint, fingerprint, file, version.

Every constructor parameter has one :class:`Setting` here. The estimator's signature, its
validation (:func:`validate`), the checkpoint fingerprint (:func:`fingerprinted`) and the model
files' migration (:func:`complete`, :func:`from_format_2`) read this table; nothing else restates
a default. :data:`MOVED` names, for every parameter of earlier versions that is no longer one,
where its setting now lives.

``BEHAVIOUR_VERSION`` moves whenever a fit's result changes for the same settings and data
(a new stopping rule, another start): it enters every checkpoint fingerprint, so a checkpoint
written under other rules is refused instead of being resumed under the new ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from flowmix.dequantization import check_dequantize
from flowmix.dequantization import plain as plain_dequantize
from flowmix.distributed import MODES
from flowmix.flows import FLOW_FAMILIES, check_flow_params
from flowmix.inference import torch_inference_dtype
from flowmix.init import INITIALISATIONS
from flowmix.options import Checkpointing, EarlyStopping
from flowmix.preprocessing import PREPROCESSINGS
from flowmix.recipes import RECIPES, Candidates, Recipe, Training
from flowmix.recipes import to_json as recipes_to_json
from flowmix.subspace import PARAMS_KEY as SUBSPACE_KEY
from flowmix.subspace import split_flow_params
from flowmix.training import ALGORITHMS
from flowmix.validation import check_positive_int, check_positive_number, resolve_device

#: Moves when a fit's result changes for the same settings and data (see the module docstring).
BEHAVIOUR_VERSION = 2

_UNSET = object()


@dataclass(frozen=True)
class Setting:
    """One constructor parameter.

    Attributes
    ----------
    default
        The constructor's default.
    check
        ``check(name, value)`` raises a ValueError or TypeError that says what to pass instead.
    fingerprinted
        Whether it changes a fit's result, so that a checkpoint of another value is another fit.
    saved
        Whether model files keep it.
    since
        The flowmix version it came in.
    before
        For a setting added after model files existed: the value under which such a file was
        fitted (given to files that lack it).
    """

    default: Any
    check: Callable[[str, Any], None]
    fingerprinted: bool = True
    saved: bool = True
    since: str = "0.1"
    before: Any = _UNSET


# ------------------------------------------------------------------------------ constraints


def _or_auto(check: Callable[[str, Any], None]) -> Callable[[str, Any], None]:
    def checked(name: str, value: Any) -> None:
        if isinstance(value, str) and value == "auto":
            return
        try:
            check(name, value)
        except ValueError:
            raise ValueError(f"{name} must be a positive integer or 'auto', got {value!r}.") from None

    return checked


def _one_of(choices: Any, extra: tuple[Any, ...] = ()) -> Callable[[str, Any], None]:
    def checked(name: str, value: Any) -> None:
        names = [*extra, *choices]
        if not any(isinstance(value, type(n)) and value == n for n in names):
            raise ValueError(f"{name} must be one of {names}, got {value!r}.")

    return checked


def _check_fraction(name: str, value: Any) -> None:
    if not isinstance(value, Real) or isinstance(value, bool) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}.")


def _check_distributed(name: str, value: Any) -> None:
    if value is not None and value not in MODES:
        raise ValueError(f"{name} must be None or one of {list(MODES)}, got {value!r}.")


def _check_covariance_type(name: str, value: Any) -> None:
    if value not in ("auto", "full", "diag"):
        raise ValueError(f"{name} must be 'auto', 'full' or 'diag', got {value!r}.")


def _check_early_stopping(name: str, value: Any) -> None:
    if isinstance(value, bool | np.bool_ | EarlyStopping) or (isinstance(value, str) and value == "auto"):
        return
    raise ValueError(f"{name} must be True, False, 'auto' or a flowmix.EarlyStopping, got {value!r}.")


def _check_flow_params(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict of options or None, got {value!r}.")
    _, subspace_dim = split_flow_params(value)
    if subspace_dim is not None:
        _or_auto(check_positive_int)(SUBSPACE_KEY, subspace_dim)


def _check_dequantize(name: str, value: Any) -> None:
    check_dequantize(value)


def _check_recipe(name: str, value: Any) -> None:
    if not isinstance(value, Recipe) and (not isinstance(value, str) or value not in ("auto", *RECIPES)):
        raise ValueError(f"recipe must be 'auto', one of {list(RECIPES)} or a Recipe object, got {value!r}.")


def _check_init(name: str, value: Any) -> None:
    if value is None:
        raise ValueError(
            "init=None: this model was loaded from a file fitted from an array of labels, which the "
            "file does not keep; pass init= (a strategy name or the labels) to fit it again."
        )
    if isinstance(value, str) and value != "auto" and value not in INITIALISATIONS:
        raise ValueError(f"init must be one of {['auto', *INITIALISATIONS]}, got {value!r}.")


def _check_checkpoint(name: str, value: Any) -> None:
    Checkpointing.of(value)


def _check_inference_dtype(name: str, value: Any) -> None:
    torch_inference_dtype(value)


def _check_device(name: str, value: Any) -> None:
    resolve_device(value)


def _anything(name: str, value: Any) -> None:
    """random_state and verbose: whatever scikit-learn takes (checked where they are used)."""


# ------------------------------------------------------------------------------ the table

SETTINGS: dict[str, Setting] = {
    "n_components": Setting(1, check_positive_int),
    "flow": Setting("spline", _one_of(FLOW_FAMILIES), since="0.2", before="maf"),
    "flow_params": Setting(None, _check_flow_params, since="0.2"),
    "preprocessing": Setting("auto", _one_of(PREPROCESSINGS), since="0.2", before="none"),
    "dequantize": Setting("auto", _check_dequantize, since="0.2", before=None),
    "recipe": Setting("auto", _check_recipe, since="0.2"),
    "init": Setting("auto", _check_init, since="0.2"),
    "algorithm": Setting("auto", _one_of(ALGORITHMS, ("auto",)), since="0.2"),
    "covariance_type": Setting("auto", _check_covariance_type, since="0.2"),
    "n_init": Setting("auto", _or_auto(check_positive_int)),
    "n_epochs": Setting(200, check_positive_int),
    "batch_size": Setting("auto", _or_auto(check_positive_int)),
    "learning_rate": Setting(3e-3, check_positive_number),
    "early_stopping": Setting("auto", _check_early_stopping, since="0.2"),
    "validation_fraction": Setting(0.1, _check_fraction, since="0.2"),
    "device": Setting("cpu", _check_device, fingerprinted=False),
    # Read when predicting; models saved before it existed predicted in float64.
    "inference_dtype": Setting(
        "float32", _check_inference_dtype, fingerprinted=False, since="0.2", before="float64"
    ),
    # A budget; where it makes batch_size="auto" smaller, the smaller batch is fingerprinted.
    "max_memory": Setting("auto", _or_auto(check_positive_int), fingerprinted=False, since="0.2"),
    "checkpoint": Setting(None, _check_checkpoint, fingerprinted=False, saved=False, since="0.2"),
    "distributed": Setting(None, _check_distributed, since="0.2"),
    "random_state": Setting(None, _anything, fingerprinted=False),
    "verbose": Setting(False, _anything, fingerprinted=False),
}

#: Parameters of earlier versions and where their settings live now (for errors and old files).
MOVED: dict[str, str] = {
    **{
        name: f"flow_params={{'{name}': ...}}"
        for name in ("hidden_units", "n_layers", "activation", SUBSPACE_KEY)
    },
    **{
        name: (
            f"recipe=flowmix.recipes.SingleFit({name}=...) (a single fit) or "
            f"recipe=flowmix.recipes.Candidates().with_settings({name}=...) (the default recipe)"
        )
        for name in (
            "selection",
            "pretrain_epochs",
            "stable_e_steps",
            "base_std",
            "shuffle",
            "batch_order",
            "shuffle_buffer",
        )
    },
    "n_iter_no_change": "early_stopping=flowmix.EarlyStopping(n_iter_no_change=...)",
    "tol": "early_stopping=flowmix.EarlyStopping(tol=...)",
    "checkpoint_dir": "checkpoint=FOLDER",
    "checkpoint_every_epochs": "checkpoint=flowmix.Checkpointing(FOLDER, every_epochs=...)",
    "checkpoint_every_seconds": "checkpoint=flowmix.Checkpointing(FOLDER, every_seconds=...)",
}


def refuse_moved(given: Mapping[str, Any]) -> None:
    """A TypeError that names the new spelling of every parameter of earlier versions in ``given``."""
    if given:
        moves = "; ".join(f"{name}=... is now {MOVED.get(name, 'no parameter')}" for name in sorted(given))
        raise TypeError(f"FlowMixture got parameters it no longer has: {moves}.")


def defaults() -> dict[str, Any]:
    """Every parameter's default."""
    return {name: setting.default for name, setting in SETTINGS.items()}


def validate(params: Mapping[str, Any]) -> None:
    """Refuse, with a message that says what to pass instead, any value outside its constraint."""
    for name, setting in SETTINGS.items():
        setting.check(name, params[name])
    check_flow_params(params["flow"], split_flow_params(params["flow_params"])[0])


def check_recipe(recipe: Recipe, params: Mapping[str, Any]) -> None:
    """Refuse a resolved recipe that cannot run with these parameters."""
    if params["distributed"] == "data" and any(t.batch_order == "per-restart" for t in recipe.trainings()):
        raise ValueError(
            "batch_order='per-restart' cannot run with distributed='data' (every process must draw "
            "the same batches); use batch_order='shared'."
        )


def fingerprinted(params: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that decide a fit's result, as a checkpoint fingerprint takes them."""
    out: dict[str, Any] = {}
    for name, setting in SETTINGS.items():
        if setting.fingerprinted:
            out[name] = plain_dequantize(params[name]) if name == "dequantize" else params[name]
    if isinstance(out["early_stopping"], EarlyStopping):
        stopping = out["early_stopping"]
        out["early_stopping"] = {"n_iter_no_change": stopping.n_iter_no_change, "tol": stopping.tol}
    options, subspace_dim = split_flow_params(params["flow_params"])
    out["flow_params"] = {**options, SUBSPACE_KEY: subspace_dim}
    out["behaviour"] = BEHAVIOUR_VERSION
    return out


def complete(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A model file's parameters, with those it predates set as it was fitted (``before``) or to
    their defaults."""
    out = dict(saved)
    for name, setting in SETTINGS.items():
        if name not in out:
            out[name] = setting.default if setting.before is _UNSET else setting.before
    return out


def from_format_2(saved: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of a model file of format version 2 (flowmix 0.2 before the settings were
    grouped) as this version's: architecture into flow_params, the training's details into the
    recipe, checkpoint settings dropped (files never kept them), patience into early_stopping."""
    old = dict(saved)
    new = {name: old.pop(name) for name in list(old) if name in SETTINGS}
    flow_params = dict(new.get("flow_params") or {})
    for name in ("hidden_units", "n_layers", "activation"):
        if old.get(name) is not None:
            flow_params[name] = old[name]
    if "subspace_dim" in old:
        flow_params[SUBSPACE_KEY] = old["subspace_dim"]
    new["flow_params"] = flow_params or None
    for name in ("hidden_units", "n_layers", "activation", "subspace_dim"):
        old.pop(name, None)
    for name in ("checkpoint_dir", "checkpoint_every_epochs", "checkpoint_every_seconds"):
        old.pop(name, None)
    patience = {k: old.pop(k) for k in ("n_iter_no_change", "tol") if k in old}
    if new.get("early_stopping") is True and patience:
        new["early_stopping"] = EarlyStopping(**patience)
    training = {k: old.pop(k) for k in list(old) if k in MOVED}
    selection = training.get("selection", "auto")
    explicit = (
        selection != "auto"
        or new.get("init", "auto") != "auto"
        or new.get("covariance_type", "auto") != "auto"
    )
    kept = {k: v for k, v in training.items() if not (k == "selection" and v == "auto")}
    if new.get("recipe", "auto") in ("auto", "single") and explicit:
        new["recipe"] = {"name": "single", **kept}
    elif new.get("recipe", "auto") in ("auto", "candidates"):
        new["n_init"] = "auto"  # the candidates recipe trained one restart whatever n_init said
        defaults = Training()
        changed = {k: v for k, v in kept.items() if k != "selection" and getattr(defaults, k) != v}
        if changed:  # its trainings' settings, as they were
            new["recipe"] = recipes_to_json(Candidates().with_settings(**changed))
    return new
