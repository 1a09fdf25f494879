"""Checkpoints inside a fit: everything needed to continue training, in one file written atomically.

A checkpoint is one safetensors file, ``checkpoint.safetensors`` in the fit's checkpoint directory.
Its tensors are the training loop's state (model, Adam moments, the mini-batch generator, the losses
so far, early-stopping bookkeeping); its metadata (JSON) name the phase (pretraining or the training
algorithm), the counters, and a fingerprint of the estimator's settings and the training data. One
file renamed into place (:func:`flowmix._io.atomic_write`) means a kill at any moment leaves either
the previous checkpoint or the new one, never a mix of two. Resuming restores the loop exactly, so
the finished fit is bit-identical to one that was never interrupted (same seed, same machine).

A checkpoint whose fingerprint differs (other settings, other data) is refused: continuing it would
silently mix two fits.

Examples
--------
>>> import tempfile
>>> import torch
>>> with tempfile.TemporaryDirectory() as folder:
...     saver = FitCheckpoint(folder, fingerprint="abc", every_epochs=5)
...     saver.save("train", {"w": torch.ones(2)}, {"epochs_run": 5})
...     loaded = FitCheckpoint(folder, fingerprint="abc").load()
>>> loaded.phase, loaded.meta["epochs_run"], loaded.tensors["w"].tolist()
('train', 5, [1.0, 1.0])
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from flowmix._io import atomic_write

__all__ = ["FitCheckpoint", "Resumed", "fingerprint"]

CHECKPOINT_FILE = "checkpoint.safetensors"
CHECKPOINT_FORMAT = 1
# Order of a fit's phases: a checkpoint of a later phase means the earlier ones are done.
PHASES = ("pretrain", "train")


@dataclass
class Resumed:
    """A checkpoint read back: its phase, loop counters and tensors."""

    phase: str
    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    context: dict[str, Any]

    def covers(self, phase: str) -> bool:
        """Whether ``phase`` finished before this checkpoint was written (it is an earlier phase)."""
        return PHASES.index(phase) < PHASES.index(self.phase)


def fingerprint(settings: dict[str, Any], *arrays: np.ndarray) -> str:
    """SHA-256 of the settings (as sorted JSON) and the arrays' shapes, dtypes and bytes."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=repr).encode())
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class FitCheckpoint:
    """Reads and writes the checkpoint of one fit in ``directory``.

    Parameters
    ----------
    directory : path
        Folder of the checkpoint (created when the first checkpoint is written).
    fingerprint : str
        Identifies the settings and data; a checkpoint with another fingerprint is refused.
    every_epochs : int or None, default=None
        Write after every this many epochs of a phase (and always at a phase's end).
    every_seconds : float or None, default=None
        Also write when this many seconds passed since the last write.
    context : dict, default=None
        Facts about the fit kept beside the state (JSON), e.g. the seed it drew.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        fingerprint: str,
        every_epochs: int | None = None,
        every_seconds: float | None = None,
        context: dict[str, Any] | None = None,
    ):
        self.directory = Path(directory)
        self.path = self.directory / CHECKPOINT_FILE
        self.fingerprint = fingerprint
        self.every_epochs = every_epochs
        self.every_seconds = every_seconds
        self.context = dict(context or {})
        self._last_write = time.monotonic()

    def due(self, epochs_run: int) -> bool:
        """Whether a checkpoint should be written after ``epochs_run`` epochs of the current phase."""
        if self.every_epochs is not None and epochs_run % self.every_epochs == 0:
            return True
        return self.every_seconds is not None and time.monotonic() - self._last_write >= self.every_seconds

    def save(self, phase: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Write the state of ``phase`` atomically, replacing any earlier checkpoint."""
        header = {
            "format": CHECKPOINT_FORMAT,
            "phase": phase,
            "fingerprint": self.fingerprint,
            "torch": torch.__version__,
            "context": self.context,
            "meta": meta,
        }
        self._remove_leftovers()
        cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
        metadata = {"flowmix_checkpoint": json.dumps(header)}
        atomic_write(self.path, lambda tmp: save_file(cpu, str(tmp), metadata=metadata))
        self._last_write = time.monotonic()

    def _remove_leftovers(self) -> None:
        """Delete temporary files of writes that a kill interrupted (ours and safetensors' own).

        The directory belongs to this fit's checkpoint, so every hidden temporary file in it is a
        leftover; without this, each kill during a write would leave one behind for good.
        """
        if self.directory.is_dir():
            for leftover in self.directory.glob(".*tmp*"):
                leftover.unlink(missing_ok=True)

    def load(self) -> Resumed | None:
        """The checkpoint in the directory, None if there is none; refuses one of another fit."""
        if not self.path.exists():
            return None
        try:
            tensors = load_file(str(self.path))
            with safe_open(str(self.path), "pt") as handle:
                header = json.loads((handle.metadata() or {})["flowmix_checkpoint"])
        except Exception as err:  # safetensors' own error type differs across its versions
            raise ValueError(
                f"{self.path} is not a readable flowmix checkpoint ({err}). Delete it to start the fit "
                "afresh, or pass another checkpoint folder."
            ) from err
        if header.get("format") != CHECKPOINT_FORMAT or header.get("phase") not in PHASES:
            raise ValueError(
                f"{self.path} has checkpoint format {header.get('format')!r}, phase {header.get('phase')!r}; "
                f"this flowmix writes format {CHECKPOINT_FORMAT}. Delete it to start the fit afresh."
            )
        if header["fingerprint"] != self.fingerprint:
            raise ValueError(
                f"The checkpoint in {self.directory} was written by a fit with other settings or other data, "
                "or by a flowmix whose fits behave otherwise (its fingerprint differs), so resuming from it "
                "would mix two fits. Pass the same parameters, random_state and data as the interrupted "
                "fit, or another checkpoint folder (or delete this one) to start afresh."
            )
        return Resumed(phase=header["phase"], meta=header["meta"], tensors=tensors, context=header["context"])
