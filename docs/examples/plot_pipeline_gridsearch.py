"""
A scikit-learn Pipeline with GridSearchCV
=========================================

:class:`~flowmix.FlowMixture` is an ordinary scikit-learn estimator, so it goes into a
``Pipeline`` after a scaler, and its parameters can be searched with ``GridSearchCV``. Without
labels the search uses the estimator's ``score``: the mean log-likelihood of the held-out fold
(higher is better). Here it chooses the number of components and the flow family for data made of
three clusters, with small flows and few epochs to keep the search short.

The likelihood measures the density, not the clustering: one spline flow can model several clusters
on its own, so the held-out likelihood may prefer fewer components than there are clusters. To
choose a number of *clusters*, compare an information criterion (see
:ref:`sphx_glr_auto_examples_plot_choose_n_components.py`) or pass your own ``scoring`` callable.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_blobs, make_moons
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from flowmix import FlowMixture
from flowmix.recipes import Candidates

moons, _ = make_moons(400, noise=0.06, random_state=0)
blob, _ = make_blobs(200, centers=[[0.5, -2.0]], cluster_std=0.25, random_state=0)
X = np.vstack([moons, blob])

pipeline = make_pipeline(
    StandardScaler(),
    FlowMixture(
        flow_params={"hidden_units": (16,)},
        recipe=Candidates().with_settings(pretrain_epochs=20),
        n_epochs=30,
        random_state=0,
    ),
)
search = GridSearchCV(
    pipeline,
    param_grid={"flowmixture__n_components": [1, 2, 3, 4], "flowmixture__flow": ["maf", "spline"]},
    cv=3,
)
search.fit(X)
print("best parameters:", search.best_params_)
print(f"best mean held-out log-likelihood: {search.best_score_:.3f}")

# %%
# Held-out log-likelihood for every setting
# -----------------------------------------
results = search.cv_results_
fig, ax = plt.subplots(figsize=(6, 4))
for flow in ("maf", "spline"):
    rows = np.flatnonzero(results["param_flowmixture__flow"] == flow)
    ks = results["param_flowmixture__n_components"][rows].astype(int)
    ax.errorbar(
        ks,
        results["mean_test_score"][rows],
        yerr=results["std_test_score"][rows],
        marker="o",
        capsize=3,
        label=f'flow="{flow}"',
    )
ax.set_xlabel("n_components")
ax.set_ylabel("mean held-out log-likelihood (3 folds)")
ax.set_xticks([1, 2, 3, 4])
ax.legend()
fig.tight_layout()

# %%
# The refitted best pipeline
# --------------------------
# ``GridSearchCV`` refits the best setting on all the data; it predicts like any pipeline.
best = search.best_estimator_
labels = best.predict(X)
fig, ax = plt.subplots(figsize=(5, 4))
ax.scatter(X[:, 0], X[:, 1], c=labels, s=6, cmap="tab10", vmin=0, vmax=9)
ax.set_title(f"best pipeline: {search.best_params_['flowmixture__n_components']} components")
fig.tight_layout()
