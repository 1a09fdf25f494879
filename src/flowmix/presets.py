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

from typing import Any

_COMMON: dict[str, Any] = {
    "flow": "maf",
    "algorithm": "mle",
    "selection": "loss",
    "early_stopping": False,
    "n_iter_no_change": 10,  # unused (no early stopping); the value the presets' checkpoints were keyed by
    "covariance_type": "diag",
    "n_layers": 1,
    "activation": "tanh",
    "base_std": 0.1,
    "preprocessing": "none",  # the paper min-max scales the toy sets itself and fits the data as given
    "subspace_dim": None,  # the paper's flows model every pixel (or principal component)
    "stable_e_steps": None,  # the paper trains a fixed number of epochs
    "dequantize": None,  # the paper fits the data as given
    "init": "unit",
    "learning_rate": 1e-3,
    "n_init": 10,
    "shuffle": True,
}

PRESETS: dict[str, dict[str, Any]] = {
    "paper-toy": {**_COMMON, "hidden_units": (10,), "n_epochs": 2000, "batch_size": 4000},
    "paper-mnist": {**_COMMON, "hidden_units": (1024,), "n_epochs": 10, "batch_size": 4000},
    "paper-fmnist": {**_COMMON, "hidden_units": (1024,), "n_epochs": 10, "batch_size": 3500},
    "paper-cifar10": {**_COMMON, "hidden_units": (1024,), "n_epochs": 10, "batch_size": 1000},
    "paper-pca": {**_COMMON, "hidden_units": (1024,), "n_epochs": 10, "batch_size": 1000},
}


def preset_params(name: str) -> dict[str, Any]:
    """A copy of the keyword arguments of preset ``name``."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
    return dict(PRESETS[name])
