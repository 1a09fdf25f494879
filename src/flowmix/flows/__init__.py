"""Flow families."""

from flowmix.flows.maf import StackedMAF

__all__ = ["StackedMAF"]
