"""Flow families: the registry the estimator builds its components from.

Adding an autoregressive family means writing a :class:`~flowmix.flows.base.Transformer` and an
:class:`~flowmix.flows.base.AutoregressiveFlow` subclass that composes it with the stacked MADE
(any other family subclasses :class:`~flowmix.flows.base.StackedFlow`), and adding it to
:data:`FLOW_FAMILIES`; the contract tests (tests/test_flow_contract.py) then cover it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from flowmix.flows.base import StackedFlow
from flowmix.flows.maf import StackedMAF
from flowmix.flows.spline import StackedSplineFlow

FLOW_FAMILIES: dict[str, type[StackedFlow]] = {
    StackedMAF.family: StackedMAF,
    StackedSplineFlow.family: StackedSplineFlow,
}

# Architecture arguments every family takes; the rest of a family's keywords are its flow_params.
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
    """``flow_params`` as a dict, or a ValueError naming the keywords family ``name`` accepts."""
    params = dict(flow_params or {})
    allowed = set(family_defaults(name)) - set(_ARCHITECTURE)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(
            f"flow_params {unknown} are not options of flow={name!r}; it accepts {sorted(allowed) or 'none'} "
            "(hidden_units, n_layers and activation are FlowMixture parameters of their own)."
        )
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
    kwargs = check_flow_params(name, flow_params)
    for key, value in zip(_ARCHITECTURE, (hidden_units, n_layers, activation), strict=True):
        if value is not None:
            kwargs[key] = tuple(value) if key == "hidden_units" else value
    return family(n_stack, dim, generator=generator, **kwargs)
