"""flowmix: clustering and density estimation with mixtures of normalizing flows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# A plain literal: pyproject.toml reads it (``attr = "flowmix.__version__"``) without running the package.
__version__ = "0.2.0"

__all__ = ["Checkpointing", "EarlyStopping", "FlowMixture", "__version__", "load_dataset"]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load on first use
    from flowmix.datasets import load_dataset
    from flowmix.estimator import FlowMixture
    from flowmix.options import Checkpointing, EarlyStopping


def __getattr__(name: str) -> Any:
    # Loaded on first use, not at `import flowmix`: the estimator pulls in torch and scikit-learn
    # (seconds), which the command line's --help and argument errors, and the data-set code, never need.
    if name == "FlowMixture":
        from flowmix.estimator import FlowMixture

        return FlowMixture
    if name in ("Checkpointing", "EarlyStopping"):
        from flowmix import options

        return getattr(options, name)
    if name == "load_dataset":
        from flowmix.datasets import load_dataset

        return load_dataset
    raise AttributeError(f"module 'flowmix' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
