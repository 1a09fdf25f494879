"""flowmix: clustering and density estimation with mixtures of normalizing flows."""

from flowmix.estimator import FlowMixture

__version__ = "0.1.0"

__all__ = ["FlowMixture", "__version__", "load_dataset"]


def __getattr__(name: str):
    # Imported lazily so that `import flowmix` stays fast and the estimator never pulls in
    # the data-set code.
    if name == "load_dataset":
        from flowmix.datasets import load_dataset

        return load_dataset
    raise AttributeError(f"module 'flowmix' has no attribute {name!r}")
