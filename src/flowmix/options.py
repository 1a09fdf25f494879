"""Grouped settings of FlowMixture: early stopping's patience, and where and how often to checkpoint.

``FlowMixture(early_stopping=True)`` stops with the default patience; pass
``early_stopping=EarlyStopping(n_iter_no_change=10, tol=1e-3)`` to set it.
``FlowMixture(checkpoint="folder")`` checkpoints every 10 epochs; pass
``checkpoint=Checkpointing("folder", every_seconds=600)`` to set how often.

Examples
--------
>>> EarlyStopping.of(True)
EarlyStopping(n_iter_no_change=25, tol=0.0001)
>>> Checkpointing.of("runs/a").every_epochs
10
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


@dataclass(frozen=True)
class EarlyStopping:
    """Hold out ``validation_fraction`` of the points and stop once their NLL stops improving.

    Parameters
    ----------
    n_iter_no_change : int, default=25
        Epochs without an improvement of at least ``tol`` that stop a restart; each restart keeps
        the parameters of its best epoch.
    tol : float, default=1e-4
        Smallest decrease of the validation NLL (nats per point) that counts as an improvement.
    """

    n_iter_no_change: int = 25
    tol: float = 1e-4

    def __post_init__(self) -> None:
        _positive_int("n_iter_no_change", self.n_iter_no_change)
        if not isinstance(self.tol, Real) or isinstance(self.tol, bool) or not 0 <= self.tol < math.inf:
            raise ValueError(f"tol must be a non-negative finite number, got {self.tol!r}.")

    @classmethod
    def of(cls, early_stopping: Any) -> EarlyStopping:
        """The patience an ``early_stopping`` setting stands for (the defaults unless it is one)."""
        return early_stopping if isinstance(early_stopping, EarlyStopping) else cls()


@dataclass(frozen=True)
class Checkpointing:
    """Write a checkpoint to ``folder`` while fitting, and continue from it after a crash.

    Parameters
    ----------
    folder : str or path
        Created if missing. A checkpoint of the same settings and data there is continued
        (bit-identically on the same machine); one of other settings or data is refused.
    every_epochs : int or None, default=10
        Write every this many epochs (and at the end of each phase).
    every_seconds : float or None, default=None
        Write at most this many seconds apart as well.
    """

    folder: str | os.PathLike[str]
    every_epochs: int | None = 10
    every_seconds: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.folder, str | os.PathLike):
            raise TypeError(
                f"checkpoint must be a folder path, a Checkpointing or None, got {self.folder!r}."
            )
        if Path(self.folder).exists() and not Path(self.folder).is_dir():
            raise ValueError(
                f"checkpoint={str(self.folder)!r} is a file; pass a directory (it is created if missing)."
            )
        if self.every_epochs is not None:
            _positive_int("every_epochs", self.every_epochs)
        seconds = self.every_seconds
        if seconds is not None and (not isinstance(seconds, Real) or not 0 < seconds < math.inf):
            raise ValueError(f"every_seconds must be a positive number or None, got {seconds!r}.")

    @classmethod
    def of(cls, checkpoint: Any) -> Checkpointing | None:
        """The checkpointing a ``checkpoint`` setting stands for: None, a folder, or one of these."""
        if checkpoint is None or isinstance(checkpoint, Checkpointing):
            return checkpoint
        return cls(checkpoint)
