"""Preset files: resolution, cache and download.

**Resolution** of each file of a preset, always checked against the sha256
of the shipped ``metadata.json`` (see `keras_sodeep.presets.registry`):

1. the local cache, ``$KERAS_SODEEP_HOME/presets/<name>/``, where
   ``KERAS_SODEEP_HOME`` defaults to ``<Keras home>/keras_sodeep`` (the Keras
   home is ``$KERAS_HOME``, else ``~/.keras``, as for
   ``keras.utils.get_file``); a cached file whose hash does not match is
   removed and fetched again (when the cache is read-only it is left there
   and ignored; when another process removes or replaces it first, that is
   fine too);
2. the copy shipped inside the package; a mismatch raises ``ValueError``;
3. a download with ``keras.utils.get_file`` from ``<base URL>/<name>/<file>``
   into the cache. The base URL is ``WEIGHTS_URL`` unless the environment
   variable ``KERAS_SODEEP_WEIGHTS_URL`` overrides it; it should be an
   ``http``, ``https``, ``ftp`` or ``file`` URL.

**Downloads.** Every network operation (connecting, each read) times out
after `DOWNLOAD_TIMEOUT` seconds, or ``$KERAS_SODEEP_DOWNLOAD_TIMEOUT``
(a positive number); a server that accepts the connection and never
answers gives an ``OSError``, not a hang. (``keras.utils.get_file`` takes
no timeout: the socket default timeout is set for the time of the
download, so other threads that open sockets meanwhile without a timeout
of their own get it too.) A file is downloaded into a temporary folder
``<cache>/<name>/.download-<host>-<pid>-*``, checked, then renamed into
place (an atomic replace), so a corrupt or partial download never takes
the place of a file. A process killed during a download (SIGKILL,
SIGTERM) leaves its temporary folder behind; the next load of that preset
removes it, as every such folder of a process of this host that has
ended, and every one older than a day.
"""

import hashlib
import os
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse

import keras

from keras_sodeep._checks import parse_positive_number
from keras_sodeep.presets import registry
from keras_sodeep.presets.registry import (
    CONFIG_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    WEIGHTS_URL,
    read_json,
)

DOWNLOAD_TIMEOUT = 60.0
"""Default timeout in seconds of each network operation of a download."""

_URL_SCHEMES = ("http", "https", "ftp", "file")
_PARTIAL_PREFIX = ".download-"
_STALE_AFTER_S = 24 * 3600  # A temporary download folder this old is dead.
_TIMEOUT_LOCK = threading.Lock()


def _checked_base_url():
    """The base URL, if it is a URL a download can use; else raises."""
    url = registry.base_url()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in _URL_SCHEMES or not (parts.netloc or parts.path):
        raise ValueError(
            "The base URL of the presets should be an "
            f"{', '.join(_URL_SCHEMES)} URL (set by "
            "KERAS_SODEEP_WEIGHTS_URL, default "
            f"{WEIGHTS_URL}). Received: {url!r}"
        )
    return url


def _download_timeout():
    """`DOWNLOAD_TIMEOUT`, or ``$KERAS_SODEEP_DOWNLOAD_TIMEOUT``."""
    value = os.environ.get("KERAS_SODEEP_DOWNLOAD_TIMEOUT")
    if value is None:
        return DOWNLOAD_TIMEOUT
    timeout = parse_positive_number(value)
    if timeout is None:
        raise ValueError(
            "KERAS_SODEEP_DOWNLOAD_TIMEOUT should be a positive number of "
            f"seconds. Received: {value!r}"
        )
    return timeout


def cache_dir():
    """Returns the folder where downloaded presets are cached.

    ``$KERAS_SODEEP_HOME/presets``; ``KERAS_SODEEP_HOME`` defaults to
    ``<Keras home>/keras_sodeep``, the Keras home being ``$KERAS_HOME``, else
    ``~/.keras``. The folder is created on the first download.
    """
    home = os.environ.get("KERAS_SODEEP_HOME")
    if home is None:
        keras_home = os.environ.get("KERAS_HOME")
        if keras_home is None:
            base = os.path.expanduser("~")
            if not os.access(base, os.W_OK):
                base = tempfile.gettempdir()
            keras_home = os.path.join(base, ".keras")
        home = os.path.join(keras_home, "keras_sodeep")
    return os.path.join(os.path.expanduser(home), "presets")


def sha256_of(f):
    """The sha256 (hex) of the rest of the open binary file `f`."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path):
    """The sha256 (hex) of the file at `path`."""
    with open(path, "rb") as f:
        return sha256_of(f)


def check_cached_file(path, expected):
    """Whether the cached file `path` has sha256 `expected`.

    A stale or corrupt file is removed, unless another process has already
    removed it or put another file in its place (the inode tells) or the
    cache is read-only: then it is left as it is.
    """
    try:
        with open(path, "rb") as f:
            if sha256_of(f) == expected:
                return True
            inode = os.fstat(f.fileno()).st_ino
    except OSError:  # Missing, or removed meanwhile.
        return False
    try:
        if os.stat(path).st_ino == inode:
            os.remove(path)
    except OSError:  # Removed meanwhile, or a read-only cache.
        pass
    return False


def _mismatch(what, expected, got):
    return ValueError(
        f"Checksum mismatch for {what}: expected sha256 {expected}, got {got}."
    )


def _partial_prefix():
    host = socket.gethostname().replace("-", "_") or "host"
    return f"{_PARTIAL_PREFIX}{host}-{os.getpid()}-"


def _is_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # It exists, under another user.
        return True
    return True


def _remove_dead_downloads(folder):
    """Removes the temporary download folders that no process will finish.

    Those of this host whose process has ended (killed mid-download), and
    any older than a day. Another process's live download is left alone.
    """
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    host = socket.gethostname().replace("-", "_") or "host"
    for entry in entries:
        if not entry.startswith(_PARTIAL_PREFIX):
            continue
        path = os.path.join(folder, entry)
        fields = entry[len(_PARTIAL_PREFIX) :].split("-")
        dead = False
        if len(fields) >= 3 and fields[0] == host and fields[1].isdigit():
            dead = not _is_alive(int(fields[1]))
        try:
            dead = dead or time.time() - os.path.getmtime(path) > _STALE_AFTER_S
        except OSError:
            continue  # Gone already.
        if dead:
            shutil.rmtree(path, ignore_errors=True)


def _get_file(url, fname, folder, expected, timeout):
    """``keras.utils.get_file`` with a timeout on every socket operation."""
    with _TIMEOUT_LOCK:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout)
        try:
            return keras.utils.get_file(
                fname=fname,
                origin=url,
                cache_dir=folder,
                cache_subdir=".",
                file_hash=expected,
                hash_algorithm="sha256",
            )
        finally:
            socket.setdefaulttimeout(previous)


def _download(url, target, expected):
    """Downloads `url` to `target` if its sha256 is `expected`."""
    timeout = _download_timeout()
    folder = os.path.dirname(target)
    try:
        os.makedirs(folder, exist_ok=True)
        partial = tempfile.mkdtemp(prefix=_partial_prefix(), dir=folder)
    except OSError as e:
        raise OSError(
            f"Could not download {url}: the cache folder {folder} is not "
            f"writable ({e}). Set KERAS_SODEEP_HOME to a writable folder."
        ) from e
    fname = os.path.basename(target)
    path = os.path.join(partial, fname)
    try:
        try:
            path = _get_file(url, fname, partial, expected, timeout)
        except Exception as e:
            if isinstance(e, ValueError) and os.path.isfile(path):
                # get_file checked the hash of a complete download.
                raise _mismatch(
                    f"{url} (the download was not kept)",
                    expected,
                    file_sha256(path),
                ) from e
            raise OSError(
                f"Could not download {url}: {e}. Check the network, set "
                "KERAS_SODEEP_WEIGHTS_URL to a reachable copy of the "
                f"presets, or place the file at {target}."
            ) from e
        got = file_sha256(path)
        if got != expected:
            raise _mismatch(f"{url} (the download was not kept)", expected, got)
        os.replace(path, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _resolve_file(name, fname, expected):
    """The path of a checked copy of file `fname` of preset `name`."""
    cached = os.path.join(cache_dir(), name, fname)
    if check_cached_file(cached, expected):
        return cached
    shipped = os.path.join(registry.PRESETS_DIR, name, fname)
    if os.path.isfile(shipped):
        got = file_sha256(shipped)
        if got != expected:
            raise _mismatch(
                f"the copy of {fname} shipped with the package at {shipped} "
                "(reinstall keras_sodeep)",
                expected,
                got,
            )
        return shipped
    url = f"{_checked_base_url()}/{name}/{fname}"
    return _download(url, cached, expected)


def _hashes(metadata, where):
    """The ``sha256`` dict of a preset's metadata (empty if absent)."""
    hashes = metadata.get("sha256") or {}
    if not isinstance(hashes, dict):
        raise ValueError(
            f"The `sha256` of the metadata of {where} should be a dict from "
            f"file name to sha256. Received: sha256={hashes!r}"
        )
    return hashes


def preset_files(name, metadata):
    """The checked paths of the config and weights of shipped preset `name`.

    A dict from file name to path; each file is resolved as the module
    docstring says, against the hashes of `metadata`.
    """
    hashes = _hashes(metadata, f"preset '{name}'")
    _remove_dead_downloads(os.path.join(cache_dir(), name))
    paths = {}
    for fname in (CONFIG_FILE, WEIGHTS_FILE):
        if fname not in hashes:
            raise ValueError(
                f"The metadata of preset '{name}' records no sha256 for "
                f"{fname}. Received: sha256={hashes}"
            )
        paths[fname] = _resolve_file(name, fname, hashes[fname])
    return paths


def folder_files(folder):
    """``(paths, metadata)`` of a preset folder, its files checked.

    The folder should hold ``config.json`` and ``model.weights.h5``; its
    ``metadata.json``, optional, pins their sha256.
    """
    paths = {f: os.path.join(folder, f) for f in (CONFIG_FILE, WEIGHTS_FILE)}
    missing = [f for f, path in paths.items() if not os.path.isfile(path)]
    if missing:
        raise ValueError(
            f"A preset folder should hold {CONFIG_FILE} and {WEIGHTS_FILE}. "
            f"Received: {folder}, which lacks {', '.join(missing)}"
        )
    metadata_path = os.path.join(folder, METADATA_FILE)
    metadata = {}
    if os.path.isfile(metadata_path):
        metadata = read_json(metadata_path)
    for fname, expected in _hashes(metadata, metadata_path).items():
        path = os.path.join(folder, fname)
        if os.path.isfile(path):
            got = file_sha256(path)
            if got != expected:
                raise _mismatch(path, expected, got)
    return paths, metadata


def weights_sha256(name_or_path):
    """The sha256 of the weights of a preset or preset folder.

    For a shipped preset, the hash its metadata records (nothing is
    read or downloaded); for a folder, the hash its ``metadata.json``
    records, else that of its ``model.weights.h5``.

    Args:
        name_or_path: a shipped preset's name, or a preset folder.

    Returns:
        The sha256, a hex str, or ``None`` when nothing records it.
    """
    key = os.fspath(name_or_path)
    shipped = registry.shipped_metadata()
    if key in shipped:
        return _hashes(shipped[key], f"preset '{key}'").get(WEIGHTS_FILE)
    metadata_path = os.path.join(key, METADATA_FILE)
    if os.path.isfile(metadata_path):
        recorded = _hashes(read_json(metadata_path), metadata_path)
        if WEIGHTS_FILE in recorded:
            return recorded[WEIGHTS_FILE]
    weights = os.path.join(key, WEIGHTS_FILE)
    return file_sha256(weights) if os.path.isfile(weights) else None
