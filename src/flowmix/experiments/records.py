"""The record store of an experiment directory: ``<out>/records.jsonl``, one JSON object a line.

A record describes one (data set, method, run) and is identified by its key (data set, method,
run, configuration hash), see :func:`record_key`. Records are only ever appended, each batch in
one write that is flushed and synced before the call returns, so a kill leaves at worst a torn
last line; :func:`read_records` skips such a line. Re-running a grid looks up the keys already
present and skips them, which is what makes the runner resumable.

Which stored run is *reported* for a method on a data set is the paper's rule,
:func:`select_best`: the lowest training objective.

>>> select_best([
...     {"method": "kmeans", "run": 0, "objective": 2.0},
...     {"method": "kmeans", "run": 1, "objective": 1.5},
... ])["run"]
1
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "RECORDS_FILE",
    "SCHEMA_VERSION",
    "append_records",
    "config_hash",
    "jsonable",
    "read_records",
    "record_key",
    "select_best",
]

RECORDS_FILE = "records.jsonl"
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
    with path.open(encoding="utf-8") as fh:
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
    gets a line break before the new records, so they start on a line of their own.
    """
    path = Path(out_dir) / RECORDS_FILE
    lines = "".join(json.dumps(jsonable(r), sort_keys=True) + "\n" for r in records)
    needs_newline = False
    if path.is_file() and path.stat().st_size > 0:
        with path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            needs_newline = fh.read(1) != b"\n"
    with path.open("a", encoding="utf-8") as fh:
        # One write call per batch: records of a batched fit land together or not at all
        # (a torn last line is skipped on reading).
        fh.write(("\n" if needs_newline else "") + lines)
        fh.flush()
        os.fsync(fh.fileno())


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
