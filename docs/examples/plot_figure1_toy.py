"""
The paper's Figure 1 on one toy set
===================================

Figure 1 of the paper shows, for each toy set, the data, the clusters of the best of 10 runs, the
decision regions with the points coloured by their true labels, and the mixture's density.
``flowmix reproduce toy`` draws it for all five sets (:doc:`/reproducing`); here
:func:`flowmix.paper.figures.toy_figure_row` draws it for the smile set, first with the paper's settings
(the ``paper-toy`` preset: one MAF layer per component, random base means, maximum likelihood, 10
restarts x 2000 epochs, lowest loss kept), then with flowmix's default recipe (with fewer epochs than
its default, to keep the example short).
"""

# %%
import time

import matplotlib.pyplot as plt

from flowmix import FlowMixture, load_dataset
from flowmix.metrics import adjusted_rand
from flowmix.paper.figures import ToyPanel, grid_2d, toy_figure_row
from flowmix.recipes import Candidates

data = load_dataset("smile")  # 400 points in [0, 1]^2, 4 classes
X, y = data.X, data.y
xx, yy, grid = grid_2d(X, n=150)

models = {
    "paper preset": FlowMixture.from_preset("paper-toy", 4, random_state=0),
    "flowmix recipe": FlowMixture(
        4, recipe=Candidates().with_settings(pretrain_epochs=50), n_epochs=100, random_state=0
    ),
}
panels = []
for name, model in models.items():
    start = time.perf_counter()
    model.fit(X)
    labels = model.predict(X)
    print(f"{name}: ARI {adjusted_rand(y, labels):.3f}, fit {time.perf_counter() - start:.1f} s")
    panels.append(
        ToyPanel(
            name=name,
            X=X,
            y_true=y,
            y_pred=labels,
            grid=(xx, yy),
            grid_labels=model.predict(grid).reshape(xx.shape),
            grid_log_density=model.score_samples(grid).reshape(xx.shape),
            n_clusters=4,
        )
    )

# %%
# The figure
# ----------
# ``toy_figure_row`` draws one row into four axes of any figure;
# :func:`flowmix.paper.figures.toy_figure` builds the whole figure and writes it to PNG, PDF or SVG, as
# ``flowmix reproduce toy`` does.
fig, axes = plt.subplots(len(panels), 4, figsize=(10, 2.6 * len(panels)))
for i, panel in enumerate(panels):
    toy_figure_row(axes[i], panel, titles=(i == 0))
fig.tight_layout()
