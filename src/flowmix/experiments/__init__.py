"""The paper's experiments: the grid of data sets and methods, a resumable runner, and the report.

Nothing in the estimator or the other library modules imports this package; it sits downstream of
them (data set -> FlowMixture / baselines -> metrics -> records -> tables, figures, report), and its
modules follow the same path:

- :mod:`~flowmix.experiments.configs`: the grid (data sets, methods, the paper's published values);
- :mod:`~flowmix.experiments.runner`: runs flows and baselines, writes records and toy artefacts;
- :mod:`~flowmix.experiments.records`: the record store (``records.jsonl``) and the best-of-runs rule;
- :mod:`~flowmix.experiments.tables`: which records are reported and the tables built from them, as data;
- :mod:`~flowmix.experiments.report`: renders those tables to Markdown, HTML and CSV.

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
