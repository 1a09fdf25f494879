"""One training of the mixture: split, start, initial density, pretrain, train, select.

A recipe (:mod:`flowmix.recipes`) decides which :class:`~flowmix.recipes.Fit` to train and hands
it to a :class:`Trainer`, which runs the pipeline on the preprocessed data and returns a
:class:`~flowmix.fitted.FittedMixture`: the kept density and what training recorded. The trainer
sets nothing on the estimator; the estimator stores the value the recipe returns.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowmix import _params
from flowmix.checkpoint import FitCheckpoint, Resumed, fingerprint
from flowmix.density import MixtureOfFlows
from flowmix.distributed import Distribution
from flowmix.fitted import FittedMixture
from flowmix.flows import make_flow
from flowmix.inference import joint_log_prob
from flowmix.init import Start, from_user_assignments, initialise, one_hot, shrunk_covariances
from flowmix.memory_budget import AUTO_BATCH_RULE, FitPlan, plan_fit, resolve_budget
from flowmix.options import Checkpointing, EarlyStopping
from flowmix.recipes import Fit
from flowmix.selection import HELD_OUT_SELECTIONS
from flowmix.subspace import fit_subspaces, largest_dim, own_coordinates, split_flow_params
from flowmix.training import TrainConfig, get_algorithm, pretrain, truncate_posteriors

Callback = Callable[[int, MixtureOfFlows], None]


@dataclasses.dataclass(frozen=True)
class Split:
    """The points a training sees: training rows, held-out rows (or None), and the starts' copy."""

    train: np.ndarray
    validation: np.ndarray | None
    start: np.ndarray  # what the start is computed from (the training rows, jittered on a lattice)
    train_rows: np.ndarray


class Trainer:
    """Trains the mixture with resolved settings on one preprocessed data set; what a recipe receives.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32
        The preprocessed points.
    params : mapping
        The estimator's parameters (``get_params()``), validated.
    seed : int
        The fit's seed; every random draw of a training derives from it.
    device : torch.device
    distribution : flowmix.distributed.Distribution
        How the work is shared among processes (or not).
    noise_widths : ndarray of shape (n_features,) or None
        Each feature's lattice step in X's units, for dequantisation (None: none).
    start_X : ndarray or None
        The points the starts see (X jittered once on a lattice; None: X).
    callback, callback_every
        ``callback(epoch, density)`` every ``callback_every`` epochs of training.
    """

    def __init__(
        self,
        X: np.ndarray,
        params: Mapping[str, Any],
        seed: int,
        device: torch.device,
        distribution: Distribution,
        *,
        noise_widths: np.ndarray | None = None,
        start_X: np.ndarray | None = None,
        callback: Callback | None = None,
        callback_every: int = 50,
    ):
        self.X = X
        self.params = dict(params)
        self.seed = seed
        self.device = distribution.place(device)
        self.distribution = distribution
        self.noise_widths = noise_widths
        self.start_X = X if start_X is None else start_X
        self.callback = callback
        self.callback_every = callback_every

    @property
    def n_components(self) -> int:
        return int(self.params["n_components"])

    @property
    def can_hold_out(self) -> bool:
        """Whether ``validation_fraction`` leaves validation points and enough training points."""
        n_samples = len(self.X)
        n_validation = round(self.params["validation_fraction"] * n_samples)
        return n_validation >= 1 and n_samples - n_validation >= self.n_components

    def plan(self, n_samples: int, n_init: int) -> FitPlan:
        """The memory plan of a training of ``n_init`` restarts on ``n_samples`` points (or a ValueError)."""
        return plan_fit(
            self.params, n_samples, self.X.shape[1], n_init, self.device, self.noise_widths is not None
        )

    def train(self, fit: Fit) -> FittedMixture:
        """Initialise, pretrain, train and select; the kept restart and what training recorded."""
        plan = self.plan(len(self.X) - self._n_validation(fit), fit.n_init)  # before anything large
        checkpoint, resumed = self._open_checkpoint(fit, plan)
        seed = self.seed if resumed is None else resumed.context["seed"]
        split = self._split(seed, fit)
        start = self._start(split, fit, seed)
        density = self._initial_density(start, split.start, torch.Generator().manual_seed(seed), fit)
        density = density.to(self.device)
        block = self.distribution.block(fit.n_init)
        responsibilities = start.responsibilities
        if block is not None:  # this process trains its block of the restarts only
            density = density.take_restarts(block)
            responsibilities = None if responsibilities is None else responsibilities[block]
        columns = self._columns(split.train)
        validation = None if split.validation is None else self._columns(split.validation)
        config = self._config(fit, plan, seed, block, checkpoint, resumed, validation)
        pretrained = resumed is not None and resumed.covers("pretrain")
        if responsibilities is not None and fit.pretrain_epochs > 0 and not pretrained:
            self._pretrain(density, columns, responsibilities, split, config, fit)
        local = get_algorithm(fit.algorithm)(density, columns, config)
        result = self.distribution.gather(local, self.params["n_epochs"])  # every restart's record
        check_failures(result.stopped_epoch, fit.n_init)
        best, kept, scores = self.distribution.keep(fit.selection, local, density, columns, validation)
        labels = self._labels(kept)
        return FittedMixture(kept, result, best, scores, fit.algorithm, plan, labels)

    # -------------------------------------------------------------- the pieces of one training

    def _holds_out(self, fit: Fit) -> bool:
        """Whether the fit keeps ``validation_fraction`` of the points away from training."""
        return fit.selection in HELD_OUT_SELECTIONS or fit.early_stopping

    def _n_validation(self, fit: Fit) -> int:
        """How many points the fit holds out (0 where it holds none out)."""
        return round(self.params["validation_fraction"] * len(self.X)) if self._holds_out(fit) else 0

    def _split(self, seed: int, fit: Fit) -> Split:
        """Training and validation rows: early stopping and the held-out selections hold rows out."""
        n_samples, n_validation = len(self.X), self._n_validation(fit)
        if not self._holds_out(fit):
            return Split(self.X, None, self.start_X, np.arange(n_samples))
        if not self.can_hold_out:
            raise ValueError(
                f"validation_fraction={self.params['validation_fraction']} leaves {n_validation} validation "
                f"and {n_samples - n_validation} training points of {n_samples}; early_stopping and "
                "the held-out selection rules need at least one validation point and "
                f"n_components={self.n_components} training points. Pass more data, change "
                "validation_fraction, or use early_stopping=False and a selection rule that needs no "
                "held-out points (recipe=SingleFit(selection='graph-cut'))."
            )
        order = np.random.RandomState(seed + 2).permutation(n_samples)
        train_rows, validation_rows = np.sort(order[n_validation:]), np.sort(order[:n_validation])
        return Split(self.X[train_rows], self.X[validation_rows], self.start_X[train_rows], train_rows)

    def _start(self, split: Split, fit: Fit, seed: int) -> Start:
        init = fit.init
        if not isinstance(init, str):  # the user's labels of every point; those of the training rows
            from_user_assignments(self.X, init, 1, self.n_components)  # refuses bad labels, naming all N
            init = np.asarray(init)[split.train_rows]
        return initialise(init, split.start, fit.n_init, self.n_components, np.random.RandomState(seed))

    def _columns(self, points: np.ndarray) -> torch.Tensor:
        """Points as columns (D, N), the layout of every layer (see flowmix.nn)."""
        return torch.as_tensor(np.ascontiguousarray(points.T), dtype=torch.float32, device=self.device)

    def _config(
        self,
        fit: Fit,
        plan: FitPlan,
        seed: int,
        block: np.ndarray | None,
        checkpoint: FitCheckpoint | None,
        resumed: Resumed | None,
        validation: torch.Tensor | None,
    ) -> TrainConfig:
        p = self.params
        patience = EarlyStopping.of(p["early_stopping"])
        return TrainConfig(
            n_epochs=p["n_epochs"],
            batch_size=plan.batch_size,
            learning_rate=p["learning_rate"],
            shuffle=fit.shuffle,
            generator=torch.Generator().manual_seed(seed + 1),
            batch_order=fit.batch_order,
            shuffle_buffer=fit.shuffle_buffer,
            restart_offset=0 if block is None else int(block[0]),
            verbose=p["verbose"],
            callback=self.callback,
            callback_every=self.callback_every,
            validation=validation if fit.early_stopping else None,
            n_iter_no_change=patience.n_iter_no_change,
            tol=patience.tol,
            stable_e_steps=fit.stable_e_steps,
            dequantization=self.noise_widths,
            checkpoint=checkpoint,
            resume=resumed,
            data_parallel=self.distribution.data_parallel(),
            group_max=self.distribution.group_max(),
        )

    def _pretrain(
        self,
        density: MixtureOfFlows,
        columns: torch.Tensor,
        responsibilities: np.ndarray,
        split: Split,
        config: TrainConfig,
        fit: Fit,
    ) -> None:
        """Each component trains on its own start cluster: the algorithm's M-step on the start."""
        if fit.algorithm == "hard-em":
            # Hard EM pretrains on hard clusters, so each flow sees only its own points (a soft GMM
            # start would send every point through every flow, several times the work).
            responsibilities = one_hot(responsibilities.argmax(-1), self.n_components)
        fixed = torch.as_tensor(responsibilities, dtype=torch.float32, device=self.device).transpose(1, 2)
        if fit.algorithm != "hard-em":  # the shares soft EM's E-steps drop too
            fixed = truncate_posteriors(fixed)
        validation_clusters = None
        if split.validation is not None and fit.early_stopping:
            validation_clusters = self._validation_clusters(split, responsibilities)
        pretrain_config = dataclasses.replace(
            config,
            n_epochs=fit.pretrain_epochs,
            callback=None,
            phase="pretrain",
            batch_order="shared",  # per-restart orders are built for the mixture's NLL only
            validation_responsibilities=validation_clusters,
        )
        pretrain(density, columns, fixed, pretrain_config)

    def _validation_clusters(self, split: Split, responsibilities: np.ndarray) -> torch.Tensor:
        """The start's clusters carried to the validation points: (R, K, M) one-hot.

        Each validation point takes the majority cluster of its 10 nearest training points, so that
        pretraining can stop on how well every component models its own held-out points.
        """
        from sklearn.neighbors import KNeighborsClassifier

        labels = []
        for r in responsibilities:
            neighbours = KNeighborsClassifier(min(10, len(split.train))).fit(split.train, r.argmax(1))
            labels.append(neighbours.predict(split.validation))
        assigned = one_hot(np.stack(labels), self.n_components)  # (R, M, K)
        return torch.as_tensor(assigned, device=self.device).transpose(1, 2).contiguous()

    def _labels(self, kept: MixtureOfFlows) -> np.ndarray:
        """Each point's most likely component under the kept density, as predict computes it."""
        budget = resolve_budget(self.params["max_memory"], self.device)
        dtype = self.params["inference_dtype"]
        return joint_log_prob(kept, self.X, dtype, budget).argmax(axis=1)

    def _open_checkpoint(self, fit: Fit, plan: FitPlan) -> tuple[FitCheckpoint | None, Resumed | None]:
        """The fit's checkpoint writer and the checkpoint to continue from, if ``checkpoint`` is set.

        Under ``distributed`` every process keeps its own checkpoint, in a subdirectory of its rank.
        """
        p = self.params
        checkpointing = Checkpointing.of(p["checkpoint"])
        if checkpointing is None:
            return None, None
        settings = _params.fingerprinted(p)
        settings.update(fit.describe())  # what the recipe resolved, its start among them
        if not isinstance(fit.init, str):
            settings["init"] = fingerprint({}, np.asarray(fit.init))
        if p["batch_size"] == "auto":  # the rule, or the smaller batch that max_memory made it take
            settings["batch_size"] = plan.batch_size if plan.shrunk else AUTO_BATCH_RULE
        folder = Path(checkpointing.folder)
        rank, world_size = self.distribution.rank, self.distribution.world_size
        if world_size > 1:
            settings["process"] = [rank, world_size]
            folder = folder / f"rank-{rank}-of-{world_size}"
        checkpoint = FitCheckpoint(
            folder,
            fingerprint(settings, self.X),
            every_epochs=checkpointing.every_epochs,
            every_seconds=checkpointing.every_seconds,
        )
        resumed = checkpoint.load()
        if resumed is not None and p["random_state"] is not None and resumed.context["seed"] != self.seed:
            raise ValueError(
                f"The checkpoint in {checkpointing.folder} is of a fit with another random_state; pass the "
                "interrupted fit's random_state to resume it, or another checkpoint folder to start afresh."
            )
        checkpoint.context = {"seed": self.seed if resumed is None else resumed.context["seed"]}
        return checkpoint, resumed

    def _initial_density(
        self, start: Start, X: np.ndarray, generator: torch.Generator, fit: Fit
    ) -> MixtureOfFlows:
        """The batched mixture of all restarts, set up from ``start`` (flows seeded by ``generator``).

        On principal subspaces (flow_params' ``subspace_dim``) every component is its start cluster's
        probabilistic PCA: its flow (the identity at first) sees the cluster's whitened principal
        coordinates, on a standard normal base.
        """
        p, k = self.params, self.n_components
        subspaces, responsibilities = None, start.responsibilities
        flow_options, subspace_dim = split_flow_params(p["flow_params"])
        if largest_dim(subspace_dim, X.shape[1]) < X.shape[1]:
            if responsibilities is None:  # a start of locations only: every component on the data's subspace
                responsibilities = np.full((fit.n_init, len(X), k), 1.0 / k)
            subspaces = fit_subspaces(X, responsibilities, subspace_dim)
        flows = make_flow(
            p["flow"],
            fit.n_init * k,
            X.shape[1] if subspaces is None else subspaces.dim,
            generator=generator,
            flow_params=flow_options,
        )
        if subspaces is None:
            flows.prepare(torch.from_numpy(X))
            means = torch.from_numpy(start.means)
            scales = None if start.scales is None else torch.as_tensor(start.scales)
            tril = None
            if fit.covariance_type == "full" and start.responsibilities is not None:
                covariances = torch.as_tensor(shrunk_covariances(X, start.responsibilities))
                tril = torch.linalg.cholesky(covariances).reshape(-1, *covariances.shape[1:])
        else:  # standard normal bases in whitened coordinates; the flows' box holds each component's own points
            flows.prepare(own_coordinates(X, responsibilities.argmax(-1), subspaces))
            means, tril = torch.zeros(*subspaces.scale.shape), None
            scales = torch.ones_like(means)
        density = MixtureOfFlows(flows, means, fit.base_std, scales, tril, subspaces)
        if start.weights is not None:
            with torch.no_grad():
                density.logits.copy_(torch.as_tensor(np.log(np.maximum(start.weights, 1e-12))))
        return density


def check_failures(stopped_epoch: np.ndarray, n_init: int) -> None:
    """Raise if every restart diverged; warn about the ones that did."""
    failed = np.flatnonzero(stopped_epoch >= 0)
    if failed.size == n_init:
        raise ValueError(
            f"All {n_init} restarts diverged (the loss became NaN or inf). Try a smaller "
            "learning_rate, scaling the data (e.g. MinMaxScaler or StandardScaler), a larger "
            "base_std (flowmix.recipes.SingleFit(base_std=...)), or more restarts (n_init)."
        )
    if failed.size:
        warnings.warn(
            f"{failed.size} of {n_init} restarts stopped early because their loss became "
            f"NaN or inf (restarts {failed.tolist()}); they were not considered.",
            RuntimeWarning,
            stacklevel=4,
        )
