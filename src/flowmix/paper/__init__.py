"""The paper's reproduction harness: its data sets, the grid of methods, a resumable runner, the report.

The library (everything in ``flowmix`` outside this package) never imports it; the harness sits
downstream (data set -> FlowMixture / baselines -> metrics -> records -> tables, figures,
report), and its modules follow the same path:

- :mod:`~flowmix.paper.data`: the paper's toy and image sets, PCA variants and learned features
  (downloads, checksums, caches);
- ``flowmix.paper.configs``: the grid (data sets, methods, the paper's published values);
- :mod:`~flowmix.paper.baselines` and :mod:`~flowmix.paper.device_baselines`: k-means, EM/GMM and
  spectral clustering, with scikit-learn or in torch on a device;
- ``flowmix.paper.runner`` (with :mod:`~flowmix.paper.workers`): runs flows and baselines,
  writes records and toy artefacts; :mod:`~flowmix.paper.comparison`: flowmix's default beside
  the baselines on the toy sets;
- ``flowmix.paper.records``: the record store (``records.jsonl``) and the best-of-runs rule;
- ``flowmix.paper.tables``: which records are reported and the tables built from them, as data;
- :mod:`~flowmix.paper.figures` and ``flowmix.paper.report``: the paper's figures, and the
  tables rendered to Markdown, HTML and CSV;
- ``flowmix.paper.commands``: the one entry point, the ``reproduce``, ``report``, ``demo`` and
  ``datasets`` commands of the ``flowmix`` command line.

>>> from flowmix.paper import TABLE1_DATASETS, TOY_DATASETS
>>> [d.name for d in TOY_DATASETS]
['circles', 'moons', 'pinwheel', 'smile', 'two_bananas']
"""

from flowmix.paper.configs import (
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
