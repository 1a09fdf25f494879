"""The paper's training settings as named presets (Ciobanu, "Mixtures of Normalizing Flows").

Use them with ``FlowMixture.from_preset(name, n_components, **overrides)``. Every preset is one
MAF layer (one MADE, tanh units) trained by direct maximum likelihood and kept by lowest final
loss, base means drawn from U(0, 1)^D (``init="unit"``), base standard
deviation 0.1 (the reference code's value; the paper's text says variance 0.1, i.e.
``base_std=0.316``), Adam with learning rate 1e-3 and 10 restarts.

==================  ======  ======  ======  ==========================================
preset              hidden  epochs  batch   used for
==================  ======  ======  ======  ==========================================
``paper-toy``       10      2000    4000    circles, moons, pinwheel, smile, two bananas
``paper-mnist``     1024    10      4000    MNIST and MNIST5 (raw pixels)
``paper-fmnist``    1024    10      3500    Fashion-MNIST (raw pixels)
``paper-cifar10``   1024    10      1000    CIFAR-10 (raw pixels)
``paper-pca``       1024    10      1000    any 100-dimensional PCA variant
==================  ======  ======  ======  ==========================================

The reference ran each restart in its own process (its own mini-batch order) and shuffled the
image sets through a 1024-element buffer; flowmix's restarts share one full random permutation
per epoch unless ``batch_order="per-restart"`` and ``shuffle_buffer=1024`` are passed as overrides.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flowmix.recipes import SingleFit, Training

# How every preset trains (flowmix.recipes.SingleFit): means drawn from U(0, 1)^D, direct maximum
# likelihood, the restart of lowest final loss, a fixed number of epochs.
_TRAINING: dict[str, Any] = {
    "init": "unit",
    "algorithm": "mle",
    "selection": "loss",
    "early_stopping": False,
    "covariance_type": "diag",
    "n_init": 10,
    "stable_e_steps": None,  # the paper trains a fixed number of epochs
    "base_std": 0.1,
    "shuffle": True,
}
# One MAF layer of tanh units on every feature (the paper's flows model every pixel or component).
_FLOW: dict[str, Any] = {"n_layers": 1, "activation": "tanh", "subspace_dim": None}
_ESTIMATOR: dict[str, Any] = {
    "flow": "maf",
    "preprocessing": "none",  # the paper min-max scales the toy sets itself and fits the data as given
    "dequantize": None,  # the paper fits the data as given
    "learning_rate": 1e-3,
}

_FLOW_KEYS = {"hidden_units", *_FLOW}

# Per preset: (hidden units, epochs, batch size).
PRESETS: dict[str, tuple[tuple[int, ...], int, int]] = {
    "paper-toy": ((10,), 2000, 4000),
    "paper-mnist": ((1024,), 10, 4000),
    "paper-fmnist": ((1024,), 10, 3500),
    "paper-cifar10": ((1024,), 10, 1000),
    "paper-pca": ((1024,), 10, 1000),
}


def preset_params(name: str, **overrides: Any) -> dict[str, Any]:
    """The FlowMixture keyword arguments of preset ``name``, with ``overrides``.

    An override that names a field of :class:`flowmix.recipes.Training` or ``init`` changes the
    preset's training; one that names an architecture key (``hidden_units``, ``n_layers``,
    ``activation``, ``subspace_dim``) its flow_params; any other is an estimator parameter.
    """
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
    hidden, n_epochs, batch_size = PRESETS[name]
    training_keys = {"init", *(f.name for f in dataclasses.fields(Training))}
    training = {**_TRAINING, **{k: v for k, v in overrides.items() if k in training_keys}}
    flow = {**_FLOW, "hidden_units": hidden, **{k: v for k, v in overrides.items() if k in _FLOW_KEYS}}
    params = {**_ESTIMATOR, "n_epochs": n_epochs, "batch_size": batch_size}
    params.update({k: v for k, v in overrides.items() if k not in training_keys | _FLOW_KEYS})
    params["flow_params"] = {**flow, **(params.get("flow_params") or {})}
    params["recipe"] = SingleFit(**training)
    return params
