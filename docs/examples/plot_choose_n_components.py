"""
Choosing the number of components
=================================

When the number of clusters is unknown, fit a few values of ``n_components`` and compare them with
an information criterion or a held-out likelihood:

- :meth:`~flowmix.FlowMixture.bic` (and ``aic``) adds a penalty for the free parameters of the
  flows to the training log-likelihood; lower is better.
- :meth:`~flowmix.FlowMixture.score` on points held out from the fit is the mean log-likelihood
  of new data; higher is better.

Flows have many parameters, so BIC penalises every extra component heavily: with the default spline
flows (hundreds of parameters per component) and a few hundred points it prefers a single component.
A small flow keeps the penalty in proportion; here each component is the paper's MAF with one layer of
8 hidden units. The data are three clusters: two moons and a blob.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_blobs, make_moons
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from flowmix import FlowMixture
from flowmix.recipes import Candidates

moons, _ = make_moons(500, noise=0.06, random_state=0)
blob, _ = make_blobs(250, centers=[[0.5, -2.0]], cluster_std=0.25, random_state=0)
X = StandardScaler().fit_transform(np.vstack([moons, blob]))
X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)

ks = [1, 2, 3, 4, 5]
bic, held_out, models = [], [], {}
for k in ks:
    model = FlowMixture(
        k,
        flow="maf",
        flow_params={"hidden_units": (8,), "n_layers": 1},
        recipe=Candidates().with_settings(pretrain_epochs=40),
        n_epochs=60,
        random_state=0,
    ).fit(X_train)
    models[k] = model
    bic.append(model.bic(X_train))
    held_out.append(model.score(X_test))
    print(
        f"k={k}: BIC {bic[-1]:9.1f}  held-out mean log-likelihood {held_out[-1]:.3f}  "
        f"({model.n_parameters()} free parameters)"
    )

best_k = ks[int(np.argmin(bic))]
print("BIC chooses", best_k, "components; the held-out likelihood", ks[int(np.argmax(held_out))])

# %%
# The two criteria, and the chosen model
# --------------------------------------
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.plot(ks, bic, "o-", label="BIC (training points)")
left.set_xlabel("n_components")
left.set_ylabel("BIC (lower is better)")
twin = left.twinx()
twin.plot(ks, held_out, "s--", c="tab:orange", label="held-out log-likelihood")
twin.set_ylabel("held-out mean log-likelihood (higher is better)")
left.set_xticks(ks)
left.legend(loc="upper center")
twin.legend(loc="lower center")
labels = models[best_k].predict(X)
right.scatter(X[:, 0], X[:, 1], c=labels, s=5, cmap="tab10", vmin=0, vmax=9)
right.set_title(f"the model BIC chooses: {best_k} components")
fig.tight_layout()
