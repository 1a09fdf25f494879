"""The paper's experiments: the grid of data sets and methods, a resumable runner, and the report.

Nothing in the estimator or the other library modules imports this package; it sits downstream of
them (data set -> FlowMixture / baselines -> metrics -> records -> tables, figures, report).

>>> from flowmix.experiments import TABLE1_DATASETS, TOY_DATASETS
>>> [d.name for d in TOY_DATASETS]
['circles', 'moons', 'pinwheel', 'smile', 'two_bananas']
"""

from flowmix.experiments.configs import (
    DATASETS,
    METHODS,
    METRICS,
    PAPER_TABLE1,
    PAPER_TABLE3,
    PAPER_TABLE4,
    QUICK,
    TABLE1_DATASETS,
    TOY_DATASETS,
    DatasetConfig,
    QuickSettings,
    get_dataset_config,
)

__all__ = [
    "DATASETS",
    "METHODS",
    "METRICS",
    "PAPER_TABLE1",
    "PAPER_TABLE3",
    "PAPER_TABLE4",
    "QUICK",
    "TABLE1_DATASETS",
    "TOY_DATASETS",
    "DatasetConfig",
    "QuickSettings",
    "get_dataset_config",
]
