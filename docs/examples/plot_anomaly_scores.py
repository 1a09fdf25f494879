"""
Anomaly scores from ``score_samples``
=====================================

The log density of a point under a fitted mixture is a natural anomaly score: points in regions
the model gives little mass to are unusual. Here the model is fitted to clean two-moons data; new
points, some of them drawn uniformly over the plane, are flagged when their log density falls below
the 1% quantile of the training points' log densities.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_moons
from sklearn.metrics import roc_auc_score

from flowmix import FlowMixture
from flowmix.paper.figures import grid_2d
from flowmix.recipes import Candidates

X_train, _ = make_moons(600, noise=0.06, random_state=0)
# The default recipe, shortened: 30 pretraining epochs (the recipe's setting) and 40 of training.
short = Candidates().with_settings(pretrain_epochs=30)
model = FlowMixture(2, recipe=short, n_epochs=40, random_state=0).fit(X_train)

rng = np.random.RandomState(1)
inliers, _ = make_moons(200, noise=0.06, random_state=1)
outliers = rng.uniform(low=[-1.5, -1.0], high=[2.5, 1.5], size=(40, 2))
X_new = np.vstack([inliers, outliers])
is_outlier = np.r_[np.zeros(len(inliers)), np.ones(len(outliers))]

# %%
# A threshold from the training data
# ----------------------------------
threshold = np.quantile(model.score_samples(X_train), 0.01)
scores = model.score_samples(X_new)
flagged = scores < threshold
print(f"threshold (1% quantile of training log densities): {threshold:.2f}")
print(
    f"flagged {flagged.sum()} of {len(X_new)} new points; {int(flagged[is_outlier == 1].sum())} of "
    f"{len(outliers)} uniform points, {int(flagged[is_outlier == 0].sum())} of {len(inliers)} moon points"
)
print(f"ROC AUC of -score_samples as an outlier score: {roc_auc_score(is_outlier, -scores):.3f}")

# %%
# The score surface and the flagged points
# ----------------------------------------
xx, yy, grid = grid_2d(X_new, n=150)
surface = model.score_samples(grid).reshape(xx.shape)
fig, ax = plt.subplots(figsize=(7, 4.8))
contour = ax.contourf(xx, yy, np.maximum(surface, threshold - 10), levels=20, cmap="Blues")
ax.contour(xx, yy, surface, levels=[threshold], colors="k", linewidths=1)
fig.colorbar(contour, ax=ax, label="log density")
ax.scatter(*X_new[~flagged].T, s=8, c="tab:green", label="kept")
ax.scatter(*X_new[flagged].T, s=30, marker="x", c="tab:red", label="flagged as anomalies")
ax.set_title("black line: the 1% threshold")
ax.legend(loc="lower left")
fig.tight_layout()
