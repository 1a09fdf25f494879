"""The record store of an experiment directory: ``<out>/records.jsonl``, one JSON object a line.

A record describes one (data set, method, run) and is identified by its key (data set, method,
run, configuration hash), see :func:`record_key`. Records are only ever appended, each batch in
one write that is flushed and synced before the call returns, so a kill leaves at worst a torn
last line; :func:`read_records` skips such a line. Re-running a grid looks up the keys already
present and skips them, which is what makes the runner resumable.

Several processes may share one experiment directory (a grid fanned out over machines or GPUs):

- appending takes an exclusive lock on ``records.jsonl`` and reading a shared one (``flock``), so
  batches of two writers never interleave and no reader sees another's half-written line;
- a unit of work (one fit, one baseline run) is *claimed* before it is run, :func:`try_claim`: an
  exclusive lock on ``<out>/.claims/<unit>.lock``, held for as long as the unit runs. The kernel
  drops the lock when its process ends, however it ends, so the claim of a killed process is free
  again at once (no time-outs, no stale files to clean up by hand). A process that gets a claim
  reads the records again before running the unit: whoever held it before may have finished it.

Locks are advisory ``flock`` locks: reliable on a local file system and on NFS (Linux maps them to
NFS byte-range locks); where :mod:`fcntl` does not exist (Windows) they are no-ops and one
directory must have one writer.

Which stored run is *reported* for a method on a data set is the paper's rule,
:func:`select_best`: the lowest training objective.

>>> select_best([
...     {"method": "kmeans", "run": 0, "objective": 2.0},
...     {"method": "kmeans", "run": 1, "objective": 1.5},
... ])["run"]
1
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

try:  # POSIX only; see the module docstring for what happens without it.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "CLAIMS_DIR",
    "RECORDS_FILE",
    "SCHEMA_VERSION",
    "Claim",
    "append_records",
    "claim_owner",
    "config_hash",
    "jsonable",
    "read_records",
    "record_key",
    "select_best",
    "try_claim",
    "unit_name",
]

RECORDS_FILE = "records.jsonl"
#: Folder of the claim files of the units of work being run, inside the experiment directory.
CLAIMS_DIR = ".claims"
#: Version of the record layout, written into every record as ``"schema"``.
SCHEMA_VERSION = 1

RecordKey = tuple[str, str, int, str]
_KEY_FIELDS = frozenset({"dataset", "method", "run", "config_hash"})


# ------------------------------------------------------------------------------------------------
# Keys


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able configuration.

    >>> config_hash({"b": 1, "a": [1, 2]}) == config_hash({"a": [1, 2], "b": 1})
    True
    """
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def record_key(record: dict[str, Any]) -> RecordKey:
    """(data set, method, run, configuration hash): what a re-run looks up to skip a finished run."""
    return (record["dataset"], record["method"], int(record["run"]), record["config_hash"])


# ------------------------------------------------------------------------------------------------
# Reading and appending


def read_records(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every complete record of ``<out_dir>/records.jsonl`` (none if the file is absent).

    Lines that are not valid JSON objects (a line cut short by a kill) are skipped with a log
    message.
    """
    path = Path(out_dir) / RECORDS_FILE
    if not path.is_file():
        return []
    records = []
    with path.open(encoding="utf-8") as fh, _locked(fh, exclusive=False):
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s:%d is not a complete JSON record; ignored", path, lineno)
                continue
            if isinstance(record, dict) and record.keys() >= _KEY_FIELDS:
                records.append(record)
    logger.debug("read %d record(s) from %s", len(records), path)
    return records


def append_records(out_dir: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> None:
    """Append ``records`` to ``<out_dir>/records.jsonl`` in one write, flushed and synced.

    Values are made JSON-able first (:func:`jsonable`). A file whose last line was torn by a kill
    gets a line break before the new records, so they start on a line of their own. The file is
    locked for the whole append, so concurrent writers' batches never interleave.
    """
    path = Path(out_dir) / RECORDS_FILE
    data = "".join(json.dumps(jsonable(r), sort_keys=True) + "\n" for r in records).encode("utf-8")
    if not data:
        return
    with path.open("ab") as fh, _locked(fh, exclusive=True):
        # Under the lock: the end of the file is where the last writer left it.
        end = fh.seek(0, os.SEEK_END)
        if end > 0:
            with path.open("rb") as last:
                last.seek(end - 1)
                if last.read(1) != b"\n":
                    data = b"\n" + data
        # Records of a batched fit land together or not at all (a torn last line is skipped
        # on reading); the lock, not the size of the write, keeps other writers out of the batch.
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def _locked(fh: IO[Any], *, exclusive: bool) -> Iterator[None]:
    """Hold a ``flock`` lock on the open file ``fh`` (blocking); a no-op without :mod:`fcntl`."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    try:
        yield
    finally:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def jsonable(value: Any) -> Any:
    """``value`` with numpy arrays and scalars turned into lists and numbers, non-finite floats into None.

    >>> jsonable({"a": np.arange(2), "b": float("nan"), 3: (np.int64(1),)})
    {'a': [0, 1], 'b': None, '3': [1]}
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


# ------------------------------------------------------------------------------------------------
# Claims: one process per unit of work


def unit_name(dataset: str, method: str, digest: str, run: int | str) -> str:
    """The name of a unit of work: one baseline run, or ``run="all"`` for a batched flows fit.

    >>> unit_name("mnist5", "kmeans", "0123456789ab", 3)
    'mnist5--kmeans--0123456789ab--3'
    """
    name = f"{dataset}--{method}--{digest}--{run}"
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"Unit name {name!r} may hold only letters, digits, '-' and '_'.")
    return name


class Claim:
    """A unit of work held by this process; release it (or leave the ``with`` block) when done.

    Created by :func:`try_claim`. The claim file holds the owner's host, process id and start time,
    for people looking at a running grid; the lock on it, not its content, is what excludes others.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the unit up (idempotent): remove the claim file, then drop the lock."""
        if self._fd is None:
            return
        # Unlinking *before* unlocking: a process that opened the file meanwhile and then gets the
        # lock finds the path gone or holding another file, and tries again (see try_claim).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Claim({str(self.path)!r}, held={self.held})"


def try_claim(out_dir: str | os.PathLike[str], unit: str) -> Claim | None:
    """Claim ``unit`` in ``out_dir`` for this process, or None if a live process holds it.

    Never waits. The claim lasts until :meth:`Claim.release` or the end of the process (a kill
    included: the kernel drops the lock, so the unit can be claimed again at once). Having the
    claim does not mean the unit is still to do: read the records again before running it.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     first = try_claim(tmp, "moons--kmeans--abc--0")
    ...     second = try_claim(tmp, "moons--kmeans--abc--0")
    ...     first.release()
    ...     third = try_claim(tmp, "moons--kmeans--abc--0")
    ...     (first is not None, second is None, third is not None)
    (True, True, True)
    >>> third.release()
    """
    folder = Path(out_dir) / CLAIMS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{unit}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    return None
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if not same:
            # The previous holder released (unlinked) it between our open and our lock.
            os.close(fd)
            continue
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "claimed_at": time.time()}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(owner) + "\n").encode())
        return Claim(path, fd)


def claim_owner(out_dir: str | os.PathLike[str], unit: str) -> dict[str, Any] | None:
    """Who wrote the claim file of ``unit`` (host, pid, claimed_at), if it exists and is readable."""
    path = Path(out_dir) / CLAIMS_DIR / f"{unit}.lock"
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


# ------------------------------------------------------------------------------------------------
# Best of runs


def select_best(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The reported run among the runs of one method on one data set (the paper's protocol).

    The run with the lowest training objective (final loss, inertia, negative log-likelihood);
    diverged runs and runs without an objective are ignored. Random labels optimise nothing: the
    first run (lowest run index) is reported. Ties go to the lower run index.
    """
    if not records:
        return None
    if records[0]["method"] == "random":
        return min(records, key=lambda r: int(r["run"]))
    usable = [r for r in records if not r.get("diverged") and _finite(r.get("objective"))]
    if not usable:
        return None
    return min(usable, key=lambda r: (float(r["objective"]), int(r["run"])))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
