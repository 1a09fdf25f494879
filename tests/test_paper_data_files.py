"""Downloading against a local HTTP server on 127.0.0.1: good, corrupt and dropped responses.

The server serves small synthetic files whose checksums the tests put into
``flowmix.paper.data.files.SHA256``; the canonical mirror table is emptied so nothing can reach the
real network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import re
import struct
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from flowmix.paper.data import DatasetError, load_dataset
from flowmix.paper.data import files as dsfiles

pytestmark = pytest.mark.usefixtures("isolated")


class _Handler(BaseHTTPRequestHandler):
    # routes: URL path -> (mode, body); mode is "ok", "drop" (announce more bytes than sent, then
    # close) or "404".
    routes: ClassVar[dict[str, tuple[str, bytes]]] = {}
    hits: ClassVar[list[str]] = []

    def do_GET(self):
        self.hits.append(self.path)
        mode, body = self.routes.get(self.path, ("404", b""))
        if mode == "404":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) + (100_000 if mode == "drop" else 0)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if mode == "drop":
            self.close_connection = True

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server():
    """A local server; yields (base URL, routes dict, list of requested paths)."""
    routes: dict[str, tuple[str, bytes]] = {}
    hits: list[str] = []
    handler = type("Handler", (_Handler,), {"routes": routes, "hits": hits})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", routes, hits
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def idx_gz(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, dtype=np.uint8)
    raw = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    return gzip.compress(raw)


def serve_mnist(routes, monkeypatch, prefix: str = "", folder: str = "mnist", n: tuple[int, int] = (30, 10)):
    """Register synthetic MNIST files at ``<prefix>/<folder>/<name>``; return (images, labels)."""
    rng = np.random.default_rng(3)
    xs, ys = [], []
    for split, count in zip(("train", "t10k"), n, strict=False):
        x = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, count, dtype=np.uint8)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            rel = f"{folder}/{split}-{kind}-ubyte.gz"
            body = idx_gz(arr)
            routes[f"{prefix}/{rel}"] = ("ok", body)
            monkeypatch.setitem(dsfiles.SHA256, rel, hashlib.sha256(body).hexdigest())
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_download_then_load(tmp_path, server, monkeypatch):
    base, routes, hits = server
    x, y = serve_mnist(routes, monkeypatch)
    ds = load_dataset("mnist", data_dir=tmp_path, mirrors=[base])
    np.testing.assert_array_equal(ds.X, x.reshape(-1, 784).astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.y, y)
    assert leftovers(tmp_path / "mnist") == sorted(
        [
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
        ]
    )
    assert len(hits) == 4
    # second load: files are local, nothing is fetched
    load_dataset("mnist", data_dir=tmp_path, mirrors=[base])
    assert len(hits) == 4


def test_corrupt_download_leaves_nothing(tmp_path, server, monkeypatch):
    base, routes, _ = server
    serve_mnist(routes, monkeypatch)
    routes["/mnist/train-labels-idx1-ubyte.gz"] = ("ok", b"not the right bytes")
    with pytest.raises(DatasetError) as err:
        load_dataset("mnist", data_dir=tmp_path, mirrors=[base])
    msg = str(err.value)
    assert "Could not download mnist/train-labels-idx1-ubyte.gz to" in msg
    assert f"{base}/mnist/train-labels-idx1-ubyte.gz: checksum mismatch: SHA-256 of the download is" in msg
    assert "train-labels-idx1-ubyte.gz" not in leftovers(tmp_path)
    assert not [n for n in leftovers(tmp_path) if n.startswith(".")]


def test_dropped_connection_leaves_nothing(tmp_path, server, monkeypatch):
    base, routes, _ = server
    serve_mnist(routes, monkeypatch)
    _, body = routes["/mnist/train-images-idx3-ubyte.gz"]
    routes["/mnist/train-images-idx3-ubyte.gz"] = ("drop", body)
    with pytest.raises(DatasetError) as err:
        load_dataset("mnist", data_dir=tmp_path, mirrors=[base])
    msg = str(err.value)
    assert "mnist/train-images-idx3-ubyte.gz" in msg
    assert re.search(r"train-images-idx3-ubyte.gz: connection closed after \d+ of \d+ bytes", msg), msg
    assert "train-images-idx3-ubyte.gz" not in leftovers(tmp_path)
    assert not [n for n in leftovers(tmp_path) if n.startswith(".")]


def test_next_mirror_is_tried(tmp_path, server, monkeypatch):
    base, routes, hits = server
    x, _ = serve_mnist(routes, monkeypatch, prefix="/good")
    routes["/bad/mnist/train-images-idx3-ubyte.gz"] = ("ok", b"garbage")
    ds = load_dataset("mnist", data_dir=tmp_path, mirrors=[f"{base}/missing", f"{base}/bad", f"{base}/good/"])
    np.testing.assert_array_equal(ds.X, x.reshape(-1, 784).astype(np.float32) / 255)
    assert (
        "/bad/mnist/train-images-idx3-ubyte.gz" in hits and "/missing/mnist/t10k-labels-idx1-ubyte.gz" in hits
    )


def test_all_mirrors_failing_lists_each(tmp_path, server, monkeypatch):
    base, routes, _ = server
    serve_mnist(routes, monkeypatch)
    with pytest.raises(DatasetError) as err:
        load_dataset("fmnist", data_dir=tmp_path, mirrors=[f"{base}/a", f"{base}/b"])
    msg = str(err.value)
    assert "every mirror failed" in msg
    assert f"{base}/a/fashion-mnist/train-images-idx3-ubyte.gz: Not Found" in msg
    assert f"{base}/b/fashion-mnist/train-images-idx3-ubyte.gz: Not Found" in msg
    assert "place it at" in msg


def test_env_mirror_and_canonical_table(tmp_path, server, monkeypatch):
    base, routes, _ = server
    serve_mnist(routes, monkeypatch, prefix="/env")
    monkeypatch.setenv("FLOWMIX_MIRROR", f"{base}/env")
    assert load_dataset("mnist", data_dir=tmp_path).X.shape == (40, 784)
    # The canonical table maps "<folder>/<name>" to "<base><name>".
    monkeypatch.delenv("FLOWMIX_MIRROR")
    monkeypatch.setattr(dsfiles, "MIRRORS", {"mnist": (f"{base}/canonical/",)})
    assert dsfiles.mirror_urls("mnist/x.gz") == [f"{base}/canonical/x.gz"]


def test_no_download_env_wins(tmp_path, server, monkeypatch):
    base, routes, hits = server
    serve_mnist(routes, monkeypatch)
    monkeypatch.setenv("FLOWMIX_NO_DOWNLOAD", "1")
    with pytest.raises(DatasetError, match="was not found"):
        load_dataset("mnist", data_dir=tmp_path, mirrors=[base])
    assert hits == []


def test_download_goes_to_cache_when_no_data_dir(tmp_path, server, monkeypatch):
    base, routes, _ = server
    serve_mnist(routes, monkeypatch)
    cache = tmp_path / "cache"
    load_dataset("mnist", cache_dir=cache, mirrors=[base])
    assert (cache / "mnist/train-images-idx3-ubyte.gz").is_file()


def test_cifar_tarball_downloaded_and_converted(tmp_path, server, monkeypatch):
    base, routes, _ = server
    rng = np.random.default_rng(5)
    x_train = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    y_train, y_test = np.arange(10) % 10, np.array([3, 4])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for i, name in enumerate(names):
            xs, ys = (x_train[2 * i : 2 * i + 2], y_train[2 * i : 2 * i + 2]) if i < 5 else (x_test, y_test)
            payload = pickle.dumps(
                {b"data": xs.transpose(0, 3, 1, 2).reshape(len(xs), -1), b"labels": [int(v) for v in ys]},
                protocol=2,
            )
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    body = buf.getvalue()
    routes["/cifar-10/cifar-10-python.tar.gz"] = ("ok", body)
    monkeypatch.setitem(dsfiles.SHA256, "cifar-10/cifar-10-python.tar.gz", hashlib.sha256(body).hexdigest())
    ds = load_dataset("cifar10", data_dir=tmp_path, mirrors=[base])
    expected = np.concatenate([x_train, x_test]).reshape(12, -1).astype(np.float32) / 255
    np.testing.assert_array_equal(ds.X, expected)
    np.testing.assert_array_equal(ds.y, np.concatenate([y_train, y_test]))
    assert (tmp_path / "cifar-10/cifar10.npz").is_file()
