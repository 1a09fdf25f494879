"""Flow families: the registry the estimator builds its components from.

Adding an autoregressive family means writing a :class:`~flowmix.flows.base.Transformer` and an
:class:`~flowmix.flows.base.AutoregressiveFlow` subclass that composes it with the stacked MADE
(any other family subclasses :class:`~flowmix.flows.base.StackedFlow`), and adding it to
:data:`FLOW_FAMILIES`; the contract tests (tests/test_flow_contract.py) then cover it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any

import torch

from flowmix.flows.base import StackedFlow
from flowmix.flows.maf import StackedMAF
from flowmix.flows.spline import StackedSplineFlow
from flowmix.nn import ACTIVATIONS

FLOW_FAMILIES: dict[str, type[StackedFlow]] = {
    StackedMAF.family: StackedMAF,
    StackedSplineFlow.family: StackedSplineFlow,
}

# Architecture arguments every family takes (None: the family's default), given in flow_params
# beside the family's own options.
_ARCHITECTURE = ("hidden_units", "n_layers", "activation")

__all__ = ["FLOW_FAMILIES", "StackedFlow", "StackedMAF", "StackedSplineFlow", "family_defaults", "make_flow"]


def _family(name: str) -> type[StackedFlow]:
    if name not in FLOW_FAMILIES:
        raise ValueError(f"flow must be one of {sorted(FLOW_FAMILIES)}, got {name!r}.")
    return FLOW_FAMILIES[name]


def family_defaults(name: str) -> dict[str, Any]:
    """The default keyword arguments of family ``name`` (architecture and flow_params).

    Example:
        >>> family_defaults("spline")["n_bins"]
        8
    """
    signature = inspect.signature(_family(name).__init__)
    return {
        key: param.default
        for key, param in signature.parameters.items()
        if key not in ("self", "n_stack", "dim", "generator") and param.default is not inspect.Parameter.empty
    }


def check_flow_params(name: str, flow_params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``flow_params`` as a dict, or an error naming the keywords family ``name`` accepts.

    They hold the architecture (``hidden_units``, ``n_layers``, ``activation``; None or missing:
    the family's default) and the family's own options (a spline's ``n_bins``...).

    Example:
        >>> check_flow_params("spline", {"hidden_units": [32], "n_bins": 4})
        {'hidden_units': (32,), 'n_bins': 4}
    """
    if flow_params is not None and not isinstance(flow_params, Mapping):
        raise TypeError(f"flow_params must be a dict of options or None, got {flow_params!r}.")
    params = {key: value for key, value in (flow_params or {}).items() if value is not None}
    allowed = set(family_defaults(name))
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(
            f"flow_params {unknown} are not options of flow={name!r}; it accepts {sorted(allowed)}."
        )
    hidden = params.get("hidden_units")
    if isinstance(hidden, Integral):
        raise TypeError(f"hidden_units must be a tuple of layer widths, e.g. ({hidden},), got {hidden!r}.")
    if hidden is not None:
        if (
            isinstance(hidden, str)
            or not hidden
            or not all(isinstance(h, Integral) and h >= 1 for h in hidden)
        ):
            raise ValueError(f"hidden_units must be a non-empty tuple of positive integers, got {hidden!r}.")
        params["hidden_units"] = tuple(int(h) for h in hidden)
    layers = params.get("n_layers")
    if layers is not None and (not isinstance(layers, Integral) or isinstance(layers, bool) or layers < 1):
        raise ValueError(f"n_layers must be a positive integer, got {layers!r}.")
    if params.get("activation") is not None and params["activation"] not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {params['activation']!r}.")
    return params


def make_flow(
    name: str,
    n_stack: int,
    dim: int,
    *,
    hidden_units: Sequence[int] | None = None,
    n_layers: int | None = None,
    activation: str | None = None,
    generator: torch.Generator | None = None,
    flow_params: Mapping[str, Any] | None = None,
) -> StackedFlow:
    """A stack of ``n_stack`` flows of family ``name``; None takes the family's default.

    Example:
        >>> make_flow("maf", 6, 2, hidden_units=(5,)).n_free_parameters()
        24
    """
    family = _family(name)
    given = zip(_ARCHITECTURE, (hidden_units, n_layers, activation), strict=True)
    architecture = {key: value for key, value in given if value is not None}
    kwargs = check_flow_params(name, {**(flow_params or {}), **architecture})
    return family(n_stack, dim, generator=generator, **kwargs)
