"""Pretrained sorters: presets, their metadata, download and cache.

`pretrained` and `presets` are also ``keras_sodeep.pretrained`` and
``keras_sodeep.presets``. (The module is named for the store, not for the
function, so that the function does not shadow it.) Preset names and folders
are ranker specifications too (``keras_sodeep.ranking.get``): this module
registers `pretrained` as the ranking registry's preset loader.

A *preset* is a folder, as in keras-hub:

```
<name>/
    config.json         keras.saving.serialize_keras_object(sorter)
    model.weights.h5    sorter.save_weights(...)
    metadata.json       what the sorter is and how good it is (below)
```

``metadata.json`` holds ``architecture`` (the sorter's class name),
``seq_len``, ``training_steps``, ``wall_time_s``, ``hardware``, ``fidelity``
(the figures of the §9.1 protocol of DESIGN.md: ``l1``, ``spearman``,
``exact_fraction``, the same on rescaled lists, per length for
length-generic sorters), ``sha256`` (a dict from ``config.json`` and
``model.weights.h5`` to the sha256 of that file), ``keras_sodeep_version``
and ``keras_version``. `save_preset` writes all three files.

**The registry** is the set of folders shipped in the package,
``keras_sodeep/presets/<name>/``, each with at least its ``metadata.json``.
The hashes in the shipped ``metadata.json`` pin the other two files, wherever
they come from. Adding a trained preset is dropping its folder there: the
whole folder (small sorters ship with the package), or only
``metadata.json`` and ``config.json`` when the weights are published for
download at ``<base URL>/<name>/model.weights.h5``. No separate index file
is needed (nor shipped: the package data is ``presets/*/*``), and a preset
cannot be registered without its pinned hashes.

**Resolution** of each file of a preset, always checked against the sha256
of the shipped ``metadata.json``:

1. the local cache, ``$KERAS_SODEEP_HOME/presets/<name>/``, where
   ``KERAS_SODEEP_HOME`` defaults to ``<Keras home>/keras_sodeep`` (the Keras
   home is ``$KERAS_HOME``, else ``~/.keras``, as for
   ``keras.utils.get_file``); a cached file whose hash does not match is
   removed and fetched again (when the cache is read-only it is left there
   and ignored; when another process removes or replaces it first, that is
   fine too);
2. the copy shipped inside the package; a mismatch raises ``ValueError``;
3. a download with ``keras.utils.get_file`` from ``<base URL>/<name>/<file>``
   into the cache. The base URL is `WEIGHTS_URL` unless the environment
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
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse

import keras
import numpy as np

from keras_sodeep import __version__, ranking

WEIGHTS_URL = (
    "https://github.com/keras-sodeep/keras-sodeep/releases/download/presets"
)
"""Default base URL of the preset files, ``<WEIGHTS_URL>/<name>/<file>``."""

DOWNLOAD_TIMEOUT = 60.0
"""Default timeout in seconds of each network operation of a download."""

_URL_SCHEMES = ("http", "https", "ftp", "file")
_PARTIAL_PREFIX = ".download-"
_STALE_AFTER_S = 24 * 3600  # A temporary download folder this old is dead.
_TIMEOUT_LOCK = threading.Lock()

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"

_SHIPPED_DIR = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "presets"
)
_BUILD_LENGTH = 8  # Length of the dummy lists that build a generic sorter.


# ---------------------------------------------------------------------------
# Registry.
# ---------------------------------------------------------------------------


def _read_json(path):
    """The JSON object (a dict) in file `path`; ``ValueError`` otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"`{path}` is not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise ValueError(
            f"`{path}` should hold a JSON object ({{...}}). Received: a "
            f"JSON {type(value).__name__}: {json.dumps(value)[:80]}"
        )
    return value


def _registry():
    """Reads the shipped presets: a dict from name to metadata."""
    registry = {}
    if not os.path.isdir(_SHIPPED_DIR):
        return registry
    for name in sorted(os.listdir(_SHIPPED_DIR)):
        path = os.path.join(_SHIPPED_DIR, name, METADATA_FILE)
        if name.startswith((".", "_")) or not os.path.isfile(path):
            continue
        registry[name] = _read_json(path)
    return registry


def _base_url():
    return os.environ.get("KERAS_SODEEP_WEIGHTS_URL", WEIGHTS_URL).rstrip("/")


def _checked_base_url():
    """The base URL, if it is a URL a download can use; else raises."""
    url = _base_url()
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
    try:
        timeout = float(value)
    except ValueError:
        timeout = float("nan")
    if not 0 < timeout < float("inf"):
        raise ValueError(
            "KERAS_SODEEP_DOWNLOAD_TIMEOUT should be a positive number of "
            f"seconds. Received: {value!r}"
        )
    return timeout


def presets():
    """Returns the known presets and their metadata.

    Returns:
        A dict from preset name to the content of its ``metadata.json``
        (architecture, ``seq_len``, training budget, the §9.1 ``fidelity``
        figures, sha256 of its files), plus ``url``: where its files are
        downloaded from. Empty when no preset ships with the package.

    Example:

    >>> from keras_sodeep.preset_store import presets
    >>> {n: m["fidelity"]["l1"] for n, m in presets().items()}  # doctest: +SKIP
    {'lstm-100': 0.0033}
    """
    return {
        name: {**metadata, "url": f"{_base_url()}/{name}"}
        for name, metadata in _registry().items()
    }


def _numeric_first(key):
    # JSON sorts "1000" before "200"; list lengths read better by value.
    return (0, int(key), "") if str(key).isdigit() else (1, 0, str(key))


def _flatten(value, prefix=""):
    if isinstance(value, dict):
        items = {}
        for key in sorted(value, key=_numeric_first):
            items.update(_flatten(value[key], f"{prefix}{key}/"))
        return items
    return {prefix[:-1]: value}


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def presets_table(info=None):
    """Formats presets and their fidelity figures as a Markdown table.

    One row per preset: its architecture, ``seq_len``, every figure of its
    ``fidelity`` dict (nested keys joined with ``/``), training steps, wall
    time and hardware.

    Args:
        info: a dict like the one `presets` returns. Defaults to ``None``,
            which formats `presets()`.

    Returns:
        The table, a str; empty when there is no preset.

    Example:

    >>> from keras_sodeep.preset_store import presets_table
    >>> info = {"lstm-100": {"architecture": "LSTMSorter", "seq_len": 100,
    ...                      "fidelity": {"l1": 0.00331, "spearman": 0.9998}}}
    >>> print(presets_table(info))
    | preset | architecture | seq_len | l1 | spearman | training steps | ...
    |---|---|---|---|---|---|---|---|
    | lstm-100 | LSTMSorter | 100 | 0.00331 | 0.9998 |  |  |  |
    """
    info = presets() if info is None else info
    if not info:
        return ""
    fidelity = {
        name: _flatten(m.get("fidelity") or {}) for name, m in info.items()
    }
    figures = list(dict.fromkeys(k for row in fidelity.values() for k in row))
    header = ["preset", "architecture", "seq_len", *figures]
    header += ["training steps", "wall time (s)", "hardware"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, metadata in info.items():
        seq_len = metadata.get("seq_len")
        row = [name, metadata.get("architecture"), seq_len or "any"]
        row += [fidelity[name].get(key) for key in figures]
        row += [
            metadata.get("training_steps"),
            metadata.get("wall_time_s"),
            metadata.get("hardware"),
        ]
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Files: cache, shipped copy, download.
# ---------------------------------------------------------------------------


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


def _sha256_of(f):
    digest = hashlib.sha256()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _sha256(path):
    with open(path, "rb") as f:
        return _sha256_of(f)


def _checked_cache_file(path, expected):
    """Whether the cached file `path` has sha256 `expected`.

    A stale or corrupt file is removed, unless another process has already
    removed it or put another file in its place (the inode tells) or the
    cache is read-only: then it is left as it is.
    """
    try:
        with open(path, "rb") as f:
            if _sha256_of(f) == expected:
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
                    _sha256(path),
                ) from e
            raise OSError(
                f"Could not download {url}: {e}. Check the network, set "
                "KERAS_SODEEP_WEIGHTS_URL to a reachable copy of the "
                f"presets, or place the file at {target}."
            ) from e
        got = _sha256(path)
        if got != expected:
            raise _mismatch(f"{url} (the download was not kept)", expected, got)
        os.replace(path, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _resolve_file(name, fname, expected):
    """The path of a checked copy of file `fname` of preset `name`."""
    cached = os.path.join(cache_dir(), name, fname)
    if _checked_cache_file(cached, expected):
        return cached
    shipped = os.path.join(_SHIPPED_DIR, name, fname)
    if os.path.isfile(shipped):
        got = _sha256(shipped)
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


def _preset_files(name, metadata):
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


def _folder_files(folder):
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
        metadata = _read_json(metadata_path)
    for fname, expected in _hashes(metadata, metadata_path).items():
        path = os.path.join(folder, fname)
        if os.path.isfile(path):
            got = _sha256(path)
            if got != expected:
                raise _mismatch(path, expected, got)
    return paths, metadata


# ---------------------------------------------------------------------------
# Loading and saving.
# ---------------------------------------------------------------------------


def pretrained(name_or_path, trainable=False):
    """Returns a pretrained sorter, built and with its weights.

    Args:
        name_or_path: a preset name (see `presets`) or the path of a preset
            folder holding ``config.json``, ``model.weights.h5`` and,
            optionally, a ``metadata.json`` whose sha256 are checked. An
            existing folder wins over a preset of the same name.
        trainable: bool, whether the sorter's weights are trainable. Defaults
            to ``False``: a sorter inside a loss is usually frozen.

    Returns:
        The sorter, a ``keras_sodeep.sorters.Sorter``.

    Raises:
        ValueError: for an unknown name (the message lists the known ones),
            a folder that is not a preset, or a file whose sha256 does not
            match the recorded one.
        OSError: when a file has to be downloaded and cannot be.

    Example:

    >>> import tempfile
    >>> import numpy as np
    >>> from keras_sodeep.preset_store import pretrained, save_preset
    >>> from keras_sodeep.sorters import GRUSorter
    >>> sorter = GRUSorter(units=8, num_layers=1)
    >>> x = np.array([[0.3, 2.0, -1.0, 0.7]], dtype="float32")
    >>> y = sorter(x)  # Builds the sorter.
    >>> folder = tempfile.mkdtemp()
    >>> _ = save_preset(sorter, folder, training_steps=0)
    >>> loaded = pretrained(folder)
    >>> bool(np.allclose(loaded(x), y)), loaded.trainable
    (True, False)

    ``pretrained("lstm-100")`` loads a preset by name: see `presets`.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            "`name_or_path` should be a preset name or a folder path. "
            f"Received: name_or_path={name_or_path!r}"
        )
    if not isinstance(trainable, bool):
        raise TypeError(
            f"`trainable` should be a bool. Received: trainable={trainable!r}"
        )
    return _load(os.fspath(name_or_path), trainable)


def _load(key, trainable, **overrides):
    """`pretrained`, with ``overrides`` of the sorter's constructor config.

    The weights are read from the preset's file (never from another
    sorter's variables), so that this also works inside a traced function.
    """
    if os.path.isdir(key):
        paths, metadata = _folder_files(key)
    else:
        registry = _registry()
        if key not in registry:
            known = ", ".join(registry) if registry else "none are installed"
            raise ValueError(
                "`name_or_path` should be a known preset name or a preset "
                f"folder. Known presets: {known}. "
                f"Received: name_or_path={key!r}"
            )
        metadata = registry[key]
        paths = _preset_files(key, metadata)
    config = _read_json(paths[CONFIG_FILE])
    config["config"].update(overrides)
    sorter = keras.saving.deserialize_keras_object(config)
    seq_len = getattr(sorter, "seq_len", None) or metadata.get("seq_len")
    dummy = np.linspace(1.0, -1.0, seq_len or _BUILD_LENGTH, dtype="float32")
    sorter(dummy[None, :])
    sorter.load_weights(paths[WEIGHTS_FILE])
    sorter.trainable = trainable
    return sorter


def save_preset(sorter, directory, **metadata):
    """Writes a sorter as a preset folder.

    Writes ``config.json``, ``model.weights.h5`` and ``metadata.json`` into
    ``directory`` (created if needed). The metadata records the
    architecture, ``seq_len``, the sha256 of the two other files and the
    package versions, plus the given keyword arguments (by convention
    ``training_steps``, ``wall_time_s``, ``hardware`` and ``fidelity``, a
    dict of the §9.1 figures).

    Args:
        sorter: a built sorter (called once, or trained), a ``keras.Model``
            whose config round-trips through
            ``keras.saving.serialize_keras_object``.
        directory: str or path, the preset folder.
        **metadata: JSON-serializable values to record.

    Returns:
        The metadata written, a dict.
    """
    if not isinstance(sorter, keras.Model) or not sorter.built:
        raise ValueError(
            "`sorter` should be a built keras.Model. "
            f"Received: sorter={sorter!r}"
        )
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    config_path = os.path.join(directory, CONFIG_FILE)
    weights_path = os.path.join(directory, WEIGHTS_FILE)
    config = keras.saving.serialize_keras_object(sorter)
    # A preset is a frozen sorter: its training set-up stays out of it.
    config.pop("compile_config", None)
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    # The weights alone: a compiled sorter's save_weights also writes its
    # optimizer's slots, twice the size of the model for Adam.
    bare = keras.saving.deserialize_keras_object(config)
    dummy = np.zeros(
        (1, getattr(sorter, "seq_len", None) or _BUILD_LENGTH), "float32"
    )
    bare(dummy)
    bare.set_weights(sorter.get_weights())
    bare.save_weights(weights_path)
    record = {
        "architecture": type(sorter).__name__,
        "seq_len": getattr(sorter, "seq_len", None),
        **metadata,
        "sha256": {
            CONFIG_FILE: _sha256(config_path),
            WEIGHTS_FILE: _sha256(weights_path),
        },
        "keras_sodeep_version": __version__,
        "keras_version": keras.__version__,
    }
    with open(os.path.join(directory, METADATA_FILE), "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    return record


SMOOTH_SUFFIX = "-smooth"
"""``"PRESET-smooth[:T]"`` (`ranking.get`): a preset with soft outputs."""

SMOOTH_PRESETS = ("histogram", "histogram-small")
"""The presets with a ``"PRESET-smooth[:T]"`` specification."""

DEFAULT_SMOOTH_WIDTH = 0.6
"""The width ``T`` of ``"PRESET-smooth"`` without one."""


def smooth_histogram(width=DEFAULT_SMOOTH_WIDTH, preset="histogram"):
    """A histogram-sorter preset with soft outputs of the given width.

    The preset's trained weights in a ``HistogramSorter`` with
    ``smooth_outputs=True`` and ``gradient_temperature=width`` (see
    ``keras_sodeep.sorters.Sorter``): the sorter sorts each list into the
    preset's ``gradient_bins`` quantile groups, and its outputs, value and
    gradient, are each item ranked by a sigmoid against the groups' mean
    scores, ``width`` times the list's interquartile spread wide.
    ``ranking.get`` builds it from ``"PRESET-smooth:T"``
    (``"PRESET-smooth"``: width 0.6): ``"histogram-small-smooth:0.6"`` is
    the default of `SpearmanLoss` (``histogram-small``: three passes of
    16 anchors, 32 groups), ``"histogram-smooth:0.15"`` the default of
    `MeanAveragePrecisionLoss` (``histogram``: four passes of up to 256
    anchors, 64 groups; its near-exact groups keep the few positives of a
    list apart).

    Args:
        width: positive float. Defaults to `DEFAULT_SMOOTH_WIDTH`.
        preset: a name of `SMOOTH_PRESETS`. Defaults to ``"histogram"``.

    Returns:
        The frozen sorter.

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.preset_store import smooth_histogram
    >>> sorter = smooth_histogram(0.6)
    >>> x = np.array([[0.5, 2.0, -1.0, 0.7]], dtype="float32")
    >>> ranks = np.asarray(sorter(x))[0] * 4  # soft ranks in [1, 4]
    >>> [int(i) for i in np.argsort(ranks)]  # best first, as the scores
    [1, 3, 0, 2]
    """
    if preset not in SMOOTH_PRESETS:
        raise ValueError(
            f"`preset` should be one of {SMOOTH_PRESETS}. "
            f"Received: preset={preset!r}"
        )
    return _load(preset, False, gradient_temperature=width, smooth_outputs=True)


def _smooth_spec(preset):
    prefix = preset + SMOOTH_SUFFIX

    def factory(argument):
        if argument is None:
            return smooth_histogram(preset=preset)
        try:
            width = float(argument)
        except ValueError:
            width = float("nan")
        if not width > 0 or width == float("inf"):
            raise ValueError(
                f"In '{prefix}:T', T should be a positive number, the soft "
                "ranks' width as a fraction of the list's interquartile "
                f"spread. Received: ranker='{prefix}:{argument}'"
            )
        return smooth_histogram(width, preset)

    return prefix, factory


ranking.register_preset_loader(pretrained)
for _preset in SMOOTH_PRESETS:
    ranking.register_spec(*_smooth_spec(_preset))
