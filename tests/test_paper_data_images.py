"""Image loaders on small synthetic files: IDX parsing, CIFAR npz and tarball, errors, PCA cache.

Checksums of the synthetic files are injected into ``flowmix.paper.data.files.SHA256``; downloads are
switched off or pointed nowhere, so nothing here touches the network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

import flowmix
from flowmix.paper.data import DatasetError, images, list_datasets, load_dataset
from flowmix.paper.data import files as dsfiles

pytestmark = pytest.mark.usefixtures("isolated")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def idx_bytes(arr: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes."""
    arr = np.asarray(arr, dtype=np.uint8)
    return struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def put(root: Path, rel: str, data: bytes, monkeypatch, checksum: bool = True) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if checksum:
        monkeypatch.setitem(dsfiles.SHA256, rel, sha(data))
    return path


def make_idx_set(root: Path, folder: str, monkeypatch, n_train: int = 40, n_test: int = 12, seed: int = 0):
    """Write the four gzip IDX files of a tiny MNIST-like set; return (images, labels), train then test."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        put(root, f"{folder}/{split}-images-idx3-ubyte.gz", gzip.compress(idx_bytes(x)), monkeypatch)
        put(root, f"{folder}/{split}-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(y)), monkeypatch)
        out[split] = (x, y)
    x = np.concatenate([out["train"][0], out["t10k"][0]])
    y = np.concatenate([out["train"][1], out["t10k"][1]])
    return x, y


# ----------------------------------------------------------------------------------------------
# IDX


def test_mnist_pixels_labels_and_order(tmp_path, monkeypatch):
    x, y = make_idx_set(tmp_path, "mnist", monkeypatch)
    ds = load_dataset("mnist", data_dir=tmp_path, download=False)
    assert ds.name == "mnist" and ds.class_names == tuple("0123456789")
    assert ds.X.shape == (52, 784) and ds.X.dtype == np.float32
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.X, x.reshape(52, 784).astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.X, (x.reshape(52, 784) / 255.0).astype(np.float32))
    np.testing.assert_array_equal(ds.y, y)
    assert "60000 train then 10000 test" in ds.description


def test_mnist5_keeps_digits_0_to_4_in_order(tmp_path, monkeypatch):
    x, y = make_idx_set(tmp_path, "mnist", monkeypatch)
    ds = load_dataset("mnist5", data_dir=tmp_path, download=False)
    keep = y < 5
    assert ds.class_names == tuple("01234")
    np.testing.assert_array_equal(ds.y, y[keep])
    np.testing.assert_array_equal(ds.X, x[keep].reshape(-1, 784).astype(np.float32) / 255)


def test_idx_streaming_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "_CHUNK_BYTES", 784 * 7)  # 7 images per chunk, sets not a multiple of 7
    x, _ = make_idx_set(tmp_path, "fashion-mnist", monkeypatch, n_train=30, n_test=11)
    ds = load_dataset("fmnist", data_dir=tmp_path, download=False)
    np.testing.assert_array_equal(ds.X, x.reshape(-1, 784).astype(np.float32) / 255)
    assert ds.class_names[0] == "T-shirt/top" and len(ds.class_names) == 10


def test_missing_file_with_downloads_off(tmp_path, monkeypatch):
    make_idx_set(tmp_path, "mnist", monkeypatch)
    (tmp_path / "mnist/t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError) as err:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert "mnist data file mnist/t10k-labels-idx1-ubyte.gz was not found" in msg
    assert str(tmp_path / "mnist/t10k-labels-idx1-ubyte.gz") in msg
    assert "FLOWMIX_DATA" in msg and "download=True" in msg
    monkeypatch.setenv("FLOWMIX_NO_DOWNLOAD", "1")
    with pytest.raises(DatasetError, match="was not found"):
        load_dataset("mnist", data_dir=tmp_path, download=True)


def test_checksum_mismatch_names_file(tmp_path, monkeypatch):
    make_idx_set(tmp_path, "mnist", monkeypatch)
    path = tmp_path / "mnist/train-labels-idx1-ubyte.gz"
    monkeypatch.setitem(dsfiles.SHA256, "mnist/train-labels-idx1-ubyte.gz", "0" * 64)
    with pytest.raises(
        DatasetError,
        match=f"mnist file {path} failed its checksum: SHA-256 is [0-9a-f]{{64}}, "
        f"expected 0{{64}}. .*Delete it",
    ):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_lookup_order_data_dir_then_env_then_cache(tmp_path, monkeypatch):
    a, b, cache = tmp_path / "a", tmp_path / "b", tmp_path / "cache"
    xa, _ = make_idx_set(a, "mnist", monkeypatch, seed=1)
    make_idx_set(b, "mnist", monkeypatch, seed=2)
    # Only b's checksums are registered now, so loading succeeds only if b (the env folder) is read.
    monkeypatch.setenv("FLOWMIX_DATA", str(b))
    ds = load_dataset("mnist", download=False, cache_dir=cache)
    assert ds.X.shape[0] == 52
    make_idx_set(a, "mnist", monkeypatch, seed=1)  # re-register a's checksums
    ds = load_dataset("mnist", data_dir=a, download=False, cache_dir=cache)
    np.testing.assert_array_equal(ds.X, xa.reshape(-1, 784).astype(np.float32) / 255)
    assert dsfiles.data_roots(a, cache) == [a, b, cache]
    monkeypatch.delenv("FLOWMIX_DATA")
    assert dsfiles.data_roots() == [tmp_path / "xdg" / "flowmix"]


@pytest.mark.parametrize(
    ("rel", "content", "message"),
    [
        (
            "mnist/train-images-idx3-ubyte.gz",
            gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 20),
            "is not an IDX file of unsigned bytes with 3 dimension",
        ),
        (
            "mnist/train-labels-idx1-ubyte.gz",
            gzip.compress(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00"),
            "magic number 3329, expected 2049",
        ),
        (
            "mnist/train-labels-idx1-ubyte.gz",
            gzip.compress(idx_bytes(np.zeros(39, np.uint8))),
            "holds 40 images but .* holds 39 labels",
        ),
        (
            "mnist/train-labels-idx1-ubyte.gz",
            gzip.compress(idx_bytes(np.zeros(40, np.uint8)))[:-12],
            "(is not a valid gzip file|ended early)",
        ),
        (
            "mnist/train-labels-idx1-ubyte.gz",
            gzip.compress(idx_bytes(np.zeros(40, np.uint8)) + b"junk"),
            "has bytes after the data",
        ),
        ("mnist/t10k-images-idx3-ubyte.gz", b"this is not gzip at all", "is not a valid gzip file"),
        (
            "mnist/t10k-images-idx3-ubyte.gz",
            gzip.compress(struct.pack(">BBBBIII", 0, 0, 8, 3, 12, 28, 28) + b"\x00" * (784 * 11)),
            "ended early",
        ),
    ],
    ids=[
        "bad-ndim",
        "bad-magic",
        "count-mismatch",
        "truncated-gzip",
        "trailing-bytes",
        "not-gzip",
        "short-data",
    ],
)
def test_malformed_idx_files(tmp_path, monkeypatch, rel, content, message):
    make_idx_set(tmp_path, "mnist", monkeypatch)
    put(tmp_path, rel, content, monkeypatch)  # the checksum matches: the parser must catch it
    with pytest.raises(DatasetError, match=message):
        load_dataset("mnist", data_dir=tmp_path, download=False)


# ----------------------------------------------------------------------------------------------
# CIFAR-10


def make_cifar_arrays(n_train: int = 20, n_test: int = 7, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def expected_cifar(arrays):
    x = np.concatenate([arrays["x_train"], arrays["x_test"]])
    return x.reshape(len(x), -1).astype(np.float32) / 255, np.concatenate(
        [arrays["y_train"], arrays["y_test"]]
    )


def test_cifar_npz_is_flattened_hwc(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "_CHUNK_BYTES", 3072 * 3)
    arrays = make_cifar_arrays()
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    put(tmp_path, "cifar-10/cifar10.npz", buf.getvalue(), monkeypatch)
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    X, y = expected_cifar(arrays)
    assert ds.X.shape == (27, 3072) and ds.X.dtype == np.float32 and ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.X, X)
    np.testing.assert_array_equal(ds.y, y)
    # pixel (row 0, col 0) of image 0 is features 0, 1, 2 = R, G, B
    np.testing.assert_array_equal(ds.X[0, :3] * 255, arrays["x_train"][0, 0, 0])
    assert ds.class_names[:2] == ("airplane", "automobile")


def test_cifar_npz_fortran_order_falls_back(tmp_path, monkeypatch):
    arrays = make_cifar_arrays(n_train=4, n_test=2)
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asfortranarray(v) for k, v in arrays.items()})
    put(tmp_path, "cifar-10/cifar10.npz", buf.getvalue(), monkeypatch)
    np.testing.assert_array_equal(load_dataset("cifar10", data_dir=tmp_path).X, expected_cifar(arrays)[0])


def test_cifar_npz_errors(tmp_path, monkeypatch):
    buf = io.BytesIO()
    np.savez_compressed(buf, x_train=np.zeros((2, 32, 32, 3), np.uint8), y_train=np.zeros(2, np.uint8))
    put(tmp_path, "cifar-10/cifar10.npz", buf.getvalue(), monkeypatch)
    with pytest.raises(DatasetError, match="lacks the arrays"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    buf = io.BytesIO()
    arrays = make_cifar_arrays(n_train=3, n_test=1)
    np.savez_compressed(buf, **{**arrays, "x_train": arrays["x_train"].reshape(3, 3072)})
    put(tmp_path, "cifar-10/cifar10.npz", buf.getvalue(), monkeypatch)
    with pytest.raises(
        DatasetError, match=r"array x_train.npy has shape \(3, 3072\); expected \(N, 32, 32, 3\)"
    ):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for member in ("x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy"):
            zf.writestr(member, b"not an npy header")
    put(tmp_path, "cifar-10/cifar10.npz", buf.getvalue(), monkeypatch)
    with pytest.raises(DatasetError, match="is not a readable .npz file"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    put(tmp_path, "cifar-10/cifar10.npz", b"PK not a zip", monkeypatch)
    with pytest.raises(DatasetError, match="is not a readable .npz file"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    (tmp_path / "cifar-10/cifar10.npz").unlink()
    with pytest.raises(
        DatasetError, match="neither cifar-10/cifar10.npz nor cifar-10/cifar-10-python.tar.gz"
    ):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


def cifar_batch_pickle(x_hwc: np.ndarray, y: np.ndarray, label: str) -> bytes:
    """A batch in the python-version layout: rows are the R, G and B planes, each row-major."""
    data = x_hwc.transpose(0, 3, 1, 2).reshape(len(x_hwc), 3072)
    batch = {
        b"batch_label": label.encode(),
        b"labels": [int(v) for v in y],
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(y))],
    }
    return pickle.dumps(batch, protocol=2)


def make_cifar_tarball(arrays, *, evil: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        members = {}
        per = len(arrays["y_train"]) // 5
        for i in range(5):
            sl = slice(i * per, (i + 1) * per)
            members[f"data_batch_{i + 1}"] = cifar_batch_pickle(
                arrays["x_train"][sl], arrays["y_train"][sl], "train"
            )
        members["test_batch"] = cifar_batch_pickle(arrays["x_test"], arrays["y_test"], "test")
        members["batches.meta"] = pickle.dumps({b"label_names": [b"airplane"]}, protocol=2)
        if evil is not None:
            members["data_batch_3"] = evil
        for name, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def test_cifar_tarball_converted_once_to_npz(tmp_path, monkeypatch):
    arrays = make_cifar_arrays(n_train=25, n_test=6)
    put(tmp_path, "cifar-10/cifar-10-python.tar.gz", make_cifar_tarball(arrays), monkeypatch)
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    X, y = expected_cifar(arrays)
    np.testing.assert_array_equal(ds.X, X)
    np.testing.assert_array_equal(ds.y, y)
    npz = tmp_path / "cifar-10/cifar10.npz"
    with np.load(npz, allow_pickle=False) as f:
        assert sorted(f.files) == ["x_test", "x_train", "y_test", "y_train"]
        np.testing.assert_array_equal(f["x_train"], arrays["x_train"])
        assert f["x_train"].dtype == np.uint8
    sidecar = json.loads((tmp_path / "cifar-10/cifar10.npz.source.json").read_text())
    assert sidecar["sha256"] == dsfiles.sha256_of(npz)
    assert not [p for p in (tmp_path / "cifar-10").iterdir() if p.name.startswith(".")]
    # later loads read the npz (the tarball may go) and verify it through the sidecar
    (tmp_path / "cifar-10/cifar-10-python.tar.gz").unlink()
    np.testing.assert_array_equal(load_dataset("cifar10", data_dir=tmp_path, download=False).X, X)
    with open(npz, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\xff\xfe")
    with pytest.raises(DatasetError, match="failed its checksum"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_tarball_unpickler_refuses_code(tmp_path, monkeypatch):
    arrays = make_cifar_arrays(n_train=10, n_test=2)
    evil = pickle.dumps({b"data": _Evil()}, protocol=2)
    put(tmp_path, "cifar-10/cifar-10-python.tar.gz", make_cifar_tarball(arrays, evil=evil), monkeypatch)
    with pytest.raises(
        DatasetError, match=r"data_batch_3 is not a CIFAR-10 batch \(refusing to load (posix|nt)\.system"
    ):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert not (tmp_path / "cifar-10/cifar10.npz").exists()


def test_cifar_tarball_missing_batch(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        payload = cifar_batch_pickle(np.zeros((1, 32, 32, 3), np.uint8), np.zeros(1, np.uint8), "x")
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    put(tmp_path, "cifar-10/cifar-10-python.tar.gz", buf.getvalue(), monkeypatch)
    with pytest.raises(DatasetError, match=r"lacks the batches \['data_batch_2'"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


# ----------------------------------------------------------------------------------------------
# PCA


def test_pca_variant_fits_whole_set_and_is_cached(tmp_path, monkeypatch):
    from sklearn.decomposition import PCA

    x, _ = make_idx_set(tmp_path / "data", "mnist", monkeypatch, n_train=110, n_test=20)
    cache = tmp_path / "cache"
    ds = load_dataset("mnist_pca", data_dir=tmp_path / "data", download=False, cache_dir=cache)
    assert ds.name == "mnist_pca" and ds.X.shape == (130, 100) and ds.X.dtype == np.float32
    assert "PCA(n_components=100, random_state=0)" in ds.description
    ref = PCA(n_components=100, random_state=0).fit_transform(x.reshape(130, 784).astype(np.float32) / 255)
    np.testing.assert_allclose(ds.X, ref, rtol=0, atol=1e-4)
    (cached,) = (cache / "pca").glob("mnist-pca100-v*-*.npy")
    assert cached.name.startswith(f"mnist-pca100-v{flowmix.__version__}-")
    assert not [p for p in (cache / "pca").iterdir() if p.name.startswith(".")]

    import sklearn.decomposition

    def no_pca(*args, **kwargs):
        raise AssertionError("the cached projection should have been used")

    monkeypatch.setattr(sklearn.decomposition, "PCA", no_pca)
    again = load_dataset("mnist", pca=100, data_dir=tmp_path / "data", download=False, cache_dir=cache)
    np.testing.assert_array_equal(again.X, ds.X)
    assert again.name == "mnist_pca"
    with pytest.raises(AssertionError, match="cached projection"):
        load_dataset("mnist", pca=7, data_dir=tmp_path / "data", download=False, cache_dir=cache)


def _no_decoding(*args, **kwargs):
    raise AssertionError("a cached PCA projection must not decode the images")


def test_pca_cache_hit_decodes_no_image(tmp_path, monkeypatch):
    _, y = make_idx_set(tmp_path / "data", "mnist", monkeypatch, n_train=30, n_test=9)
    where = {"data_dir": tmp_path / "data", "download": False, "cache_dir": tmp_path / "cache"}
    first = load_dataset("mnist5", pca=4, **where)
    np.testing.assert_array_equal(first.y, y[y < 5])
    monkeypatch.setattr(images, "_idx_images_into", _no_decoding)
    again = load_dataset("mnist5", pca=4, **where)
    np.testing.assert_array_equal(again.X, first.X)
    np.testing.assert_array_equal(again.y, first.y)
    assert again.y.dtype == np.int64 and again.name == "mnist5_pca4"
    assert again.description == first.description and again.class_names == tuple("01234")
    # a miss (another k) does decode
    with pytest.raises(AssertionError, match="must not decode"):
        load_dataset("mnist5", pca=3, **where)
    # the checksums are still verified on a cache hit
    put(tmp_path / "data", "mnist/t10k-labels-idx1-ubyte.gz", b"tampered", monkeypatch, checksum=False)
    with pytest.raises(DatasetError, match="failed its checksum"):
        load_dataset("mnist5", pca=4, **where)


def test_pca_cache_hit_decodes_no_cifar_image(tmp_path, monkeypatch):
    arrays = make_cifar_arrays(n_train=12, n_test=5)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    put(tmp_path, "cifar-10/cifar10.npz", buf.getvalue(), monkeypatch)
    where = {"data_dir": tmp_path, "download": False, "cache_dir": tmp_path / "cache"}
    first = load_dataset("cifar10", pca=3, **where)
    np.testing.assert_array_equal(first.y, expected_cifar(arrays)[1])
    monkeypatch.setattr(images, "read_cifar_npz", _no_decoding)
    monkeypatch.setattr(images, "_npy_member_into", _no_decoding)
    again = load_dataset("cifar10", pca=3, **where)
    np.testing.assert_array_equal(again.X, first.X)
    np.testing.assert_array_equal(again.y, first.y)
    assert again.y.dtype == np.int64 and again.name == "cifar10_pca3"


def test_pca_cache_is_keyed_by_source_files(tmp_path, monkeypatch):
    make_idx_set(tmp_path / "a", "mnist", monkeypatch, seed=1)
    a = load_dataset("mnist", pca=3, data_dir=tmp_path / "a", download=False, cache_dir=tmp_path / "c")
    make_idx_set(tmp_path / "b", "mnist", monkeypatch, seed=2)
    b = load_dataset("mnist", pca=3, data_dir=tmp_path / "b", download=False, cache_dir=tmp_path / "c")
    assert a.name == "mnist_pca3" and not np.allclose(a.X, b.X)
    assert len(list((tmp_path / "c/pca").glob("mnist-pca3-*.npy"))) == 2


def test_pca_argument_validation():
    with pytest.raises(ValueError, match="'mnist_pca' means pca=100; pass name='mnist' with pca=50 instead"):
        load_dataset("mnist_pca", pca=50)
    with pytest.raises(ValueError, match="pca must be an integer between 1 and 783 for 'mnist', got 784"):
        load_dataset("mnist", pca=784)
    with pytest.raises(ValueError, match="got 2.5"):
        load_dataset("cifar10", pca=2.5)


# ----------------------------------------------------------------------------------------------
# list_datasets


def test_list_datasets_reports_local_files(tmp_path, monkeypatch):
    rows = {r["name"]: r for r in list_datasets(tmp_path)}
    assert set(rows) == {
        "circles",
        "moons",
        "pinwheel",
        "smile",
        "two_bananas",
        "mnist",
        "mnist5",
        "fmnist",
        "cifar10",
        "mnist_pca",
        "mnist5_pca",
        "fmnist_pca",
        "cifar10_pca",
    }
    assert rows["mnist"] == {
        "name": "mnist",
        "kind": "image",
        "n_samples": 70000,
        "n_features": 784,
        "n_classes": 10,
        "available": False,
        "location": None,
    }
    assert rows["cifar10_pca"]["n_features"] == 100 and rows["mnist5"]["n_samples"] == 35735
    assert rows["smile"]["available"] and rows["smile"]["kind"] == "toy"
    make_idx_set(tmp_path, "mnist", monkeypatch)
    put(tmp_path, "cifar-10/cifar-10-python.tar.gz", b"x", monkeypatch)
    rows = {r["name"]: r for r in list_datasets(tmp_path)}
    assert rows["mnist"]["available"] and rows["mnist_pca"]["location"] == str(tmp_path)
    assert rows["cifar10"]["available"] and not rows["fmnist"]["available"]


def test_the_paper_loader_lists_its_names_for_an_unknown_one():
    with pytest.raises(
        ValueError, match="Unknown data set 'mnist7'; valid names: circles, moons, .*cifar10_pca"
    ):
        load_dataset("mnist7")


def test_pca_on_toy_set_is_refused():
    message = r"'moons' is a 2-D toy set: PCA variants exist only for the image sets \(mnist, mnist5, "
    for k in (100, 1, 2):
        with pytest.raises(ValueError, match=message):
            load_dataset("moons", pca=k)
    with pytest.raises(ValueError, match="PCA variants exist only for the image sets"):
        load_dataset("smile", pca=100, smile_drop_first_row=True)
    with pytest.raises(ValueError, match="Unknown data set 'moons_pca'"):
        load_dataset("moons_pca")
