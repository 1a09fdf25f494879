"""Where data files live, how they are checked and how missing ones are downloaded.

Every file is named by its path relative to a *data root*, with the same layout as the project's
shared data folder::

    <root>/mnist/train-images-idx3-ubyte.gz          (and the three other IDX files)
    <root>/fashion-mnist/train-images-idx3-ubyte.gz  (same four names)
    <root>/cifar-10/cifar10.npz                      (or cifar-10/cifar-10-python.tar.gz)

Roots are searched in this order: the ``data_dir`` argument, the ``FLOWMIX_DATA`` environment
variable, then the per-user cache (``$XDG_CACHE_HOME/flowmix`` or ``~/.cache/flowmix``). A file is
used only after its SHA-256 matches :data:`SHA256`; hashing all of MNIST takes a few hundredths of a
second and the 170 MB CIFAR-10 file about a third of a second, so it is done on every load rather
than cached.

A missing file is downloaded (unless ``download=False`` or ``FLOWMIX_NO_DOWNLOAD=1``) into the first
writable root. The bytes are streamed into a hidden temporary file next to the target and renamed
into place only once their checksum matches, so an interrupted or corrupt download never leaves a
file that a later load would trust.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from flowmix import _environment
from flowmix._io import atomic_write

logger = logging.getLogger(__name__)

__all__ = [
    "MIRRORS",
    "SHA256",
    "DatasetError",
    "data_roots",
    "default_cache_dir",
    "download_file",
    "find_file",
    "locate",
    "sha256_of",
    "verify_file",
]


class DatasetError(ValueError):
    """A data file is missing, corrupt, malformed or could not be downloaded.

    The message names the file, where it was expected and what to do about it.
    """


#: SHA-256 of every file flowmix reads, by path relative to a data root. The MNIST and
#: Fashion-MNIST values are those of the original distribution files; ``cifar10.npz`` is the
#: project's lossless rebuild (see the shared data README); ``cifar-10-python.tar.gz`` is the
#: official archive, whose SHA-256 is the one Keras publishes in ``keras/datasets/cifar10.py``
#: (its md5, c58f30108f718f92721af3b95e74349a, is the one torchvision checks).
#: Tests replace entries of this table to serve small synthetic files.
SHA256: dict[str, str] = {
    "mnist/train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "mnist/train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "mnist/t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "mnist/t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "fashion-mnist/train-images-idx3-ubyte.gz": (
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
    ),
    "fashion-mnist/train-labels-idx1-ubyte.gz": (
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
    ),
    "fashion-mnist/t10k-images-idx3-ubyte.gz": (
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
    ),
    "fashion-mnist/t10k-labels-idx1-ubyte.gz": (
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
    ),
    "cifar-10/cifar10.npz": "a44cc18e4ad961b5158c7da062a6232fb65938b615bf013046199b823b75c43d",
    "cifar-10/cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
}

#: Canonical download locations: the first folder of a relative path -> base URLs tried in order.
#: A file ``<folder>/<name>`` is fetched from ``<base><name>``. ``cifar10.npz`` has no download
#: source: the official tarball is downloaded and converted instead.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "cifar-10": ("https://www.cs.toronto.edu/~kriz/",),
}

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


def default_cache_dir() -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/flowmix``, else ``~/.cache/flowmix``."""
    return _environment.user_cache_dir()


def data_roots(
    data_dir: str | os.PathLike[str] | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> list[Path]:
    """The folders searched for data files, in order, without duplicates.

    Parameters
    ----------
    data_dir : path, optional
        Searched first when given.
    cache_dir : path, optional
        The per-user cache, searched last; :func:`default_cache_dir` when not given.
    """
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    if _environment.data_dir() is not None:
        roots.append(_environment.data_dir())
    roots.append(Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir())
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def download_allowed(download: bool) -> bool:
    """``download`` unless the environment variable ``FLOWMIX_NO_DOWNLOAD`` is set to a true value."""
    return download and not _environment.downloads_refused()


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, expected: str | Sequence[str], what: str = "") -> str:
    """Return the SHA-256 of ``path``; raise :class:`DatasetError` unless it is (one of) ``expected``."""
    accepted = (expected,) if isinstance(expected, str) else tuple(expected)
    actual = sha256_of(path)
    if actual not in accepted:
        label = f"{what} file" if what else "File"
        raise DatasetError(
            f"{label} {path} failed its checksum: SHA-256 is {actual}, expected {accepted[0]}. "
            "The file is corrupt, truncated or not the original. Delete it and load again to "
            "download a fresh copy, or replace it with the original file."
        )
    return actual


def find_file(relpath: str, roots: Sequence[Path]) -> Path | None:
    """The first existing ``<root>/<relpath>``, or None."""
    for root in roots:
        candidate = root / relpath
        if candidate.is_file():
            return candidate
    return None


def writable_root(roots: Sequence[Path]) -> Path:
    """The first root that exists (or can be created) and is writable."""
    for root in roots:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(root, os.W_OK | os.X_OK):
            return root
    raise DatasetError(
        "None of the data folders can be written to: "
        + ", ".join(str(r) for r in roots)
        + ". Pass a writable data_dir, or set FLOWMIX_DATA to a writable folder."
    )


def mirror_urls(relpath: str, mirrors: Sequence[str] | None = None) -> list[str]:
    """URLs to try for ``relpath``.

    ``mirrors`` (or, when None, the whitespace-separated ``FLOWMIX_MIRROR`` environment variable)
    lists base URLs laid out like a data root: the file is fetched from ``<base>/<relpath>``, and
    only those bases are tried. Without either, the canonical :data:`MIRRORS` are used.
    """
    if mirrors is None:
        mirrors = _environment.mirrors()
    if mirrors is not None:
        return [base.rstrip("/") + "/" + relpath for base in mirrors]
    folder, _, name = relpath.partition("/")
    return [base + name for base in MIRRORS.get(folder, ())]


def download_file(
    relpath: str,
    dest: Path,
    urls: Sequence[str],
    sha256: str,
    *,
    progress: bool | None = None,
    timeout: float = _TIMEOUT_S,
) -> Path:
    """Download ``relpath`` to ``dest``, trying ``urls`` in order until one gives the right bytes.

    The body is streamed into a temporary file in ``dest``'s folder and renamed to ``dest`` only
    after its SHA-256 equals ``sha256``; on any failure the temporary file is removed.

    Parameters
    ----------
    relpath : str
        Name used in messages.
    dest : Path
        Final location.
    urls : sequence of str
        Tried in order.
    sha256 : str
        Expected hex digest.
    progress : bool or None
        Show a tqdm bar; None shows it only when stderr is a terminal.
    timeout : float
        Socket timeout in seconds.

    Raises
    ------
    DatasetError
        When every URL failed; the message lists each URL with its error.
    """
    if not urls:
        raise DatasetError(f"No download location is known for {relpath}; place the file at {dest}.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for url in urls:
        try:
            _download_one(url, dest, sha256, progress=progress, timeout=timeout)
        except (OSError, ValueError, http.client.HTTPException, _BadDownload) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            errors.append(f"  {url}: {reason}")
            logger.warning("download of %s from %s failed: %s", relpath, url, reason)
            continue
        logger.info("downloaded %s from %s", relpath, url)
        return dest
    raise DatasetError(
        f"Could not download {relpath} to {dest}; every mirror failed:\n"
        + "\n".join(errors)
        + f"\nDownload the file by hand and place it at {dest} (or set FLOWMIX_MIRROR to a "
        "reachable mirror laid out like the data folder)."
    )


class _BadDownload(Exception):
    """A response whose bytes are incomplete or fail the checksum."""


def _download_one(url: str, dest: Path, sha256: str, *, progress: bool | None, timeout: float) -> None:
    atomic_write(
        dest,
        lambda tmp: _fetch_verified(url, tmp, sha256, name=dest.name, progress=progress, timeout=timeout),
    )


def _fetch_verified(
    url: str, tmp: Path, sha256: str, *, name: str, progress: bool | None, timeout: float
) -> None:
    """Stream ``url`` into ``tmp``; raise :class:`_BadDownload` unless all bytes came and match ``sha256``."""
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "flowmix-datasets"})
    with open(tmp, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
        length_header = response.headers.get("Content-Length")
        expected_len = int(length_header) if length_header and length_header.isdigit() else None
        digest = hashlib.sha256()
        received = 0
        with tqdm(
            total=expected_len,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=name,
            disable=(None if progress is None else not progress),
            leave=False,
        ) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except http.client.IncompleteRead as exc:  # some Python versions raise on early EOF
                    received += len(exc.partial)
                    raise _BadDownload(f"connection closed after {received} of {expected_len} bytes") from exc
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    # http.client does not always raise when the peer closes early, so count the bytes.
    if expected_len is not None and received != expected_len:
        raise _BadDownload(f"connection closed after {received} of {expected_len} bytes")
    actual = digest.hexdigest()
    if actual != sha256:
        raise _BadDownload(f"checksum mismatch: SHA-256 of the download is {actual}, expected {sha256}")


def locate(
    relpath: str,
    roots: Sequence[Path],
    *,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    checksums: Mapping[str, str] | None = None,
    what: str = "",
    progress: bool | None = None,
) -> Path:
    """Find ``relpath`` in ``roots`` (downloading it if allowed), verify it and return its path.

    Parameters
    ----------
    relpath : str
        Path relative to a data root, e.g. ``"mnist/train-labels-idx1-ubyte.gz"``.
    roots : sequence of Path
        Searched in order; a download goes to the first writable one.
    download : bool
        Download when missing (also needs ``FLOWMIX_NO_DOWNLOAD`` unset).
    mirrors : sequence of str, optional
        Base URLs laid out like a data root; see :func:`mirror_urls`.
    checksums : mapping, optional
        Replaces :data:`SHA256`.
    what : str
        Data-set name for messages.
    progress : bool or None
        Download progress bar; None shows it when stderr is a terminal.

    Raises
    ------
    DatasetError
        Missing with downloads off, checksum mismatch, or download failure.
    """
    table = SHA256 if checksums is None else checksums
    expected = table[relpath]
    path = find_file(relpath, roots)
    if path is None:
        if not download_allowed(download):
            where = ", ".join(str(r / relpath) for r in roots)
            raise DatasetError(
                f"{what + ' ' if what else ''}data file {relpath} was not found. Looked for: {where}. "
                "Copy the file to one of these places (or set FLOWMIX_DATA to a folder that holds "
                f"{relpath}), or allow downloading (download=True with FLOWMIX_NO_DOWNLOAD unset)."
            )
        dest = writable_root(roots) / relpath
        logger.info("%s not found locally; downloading to %s", relpath, dest)
        return download_file(relpath, dest, mirror_urls(relpath, mirrors), expected, progress=progress)
    verify_file(path, expected, what)
    logger.debug("using %s (SHA-256 verified)", path)
    return path
