"""The registry of presets: the folders shipped in this package.

The registry is the set of folders ``keras_sodeep/presets/<name>/`` that
hold a ``metadata.json``; the folder's name is the preset's name. The hashes
in that ``metadata.json`` pin the preset's other files, wherever they come
from (see `keras_sodeep.presets.files`). No separate index file is needed,
and a preset cannot be registered without its pinned hashes.
"""

import json
import os

PRESETS_DIR = os.path.dirname(os.path.abspath(__file__))
"""The folder of the presets shipped with the package, one folder each."""

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"

WEIGHTS_URL = (
    "https://github.com/keras-sodeep/keras-sodeep/releases/download/presets"
)
"""Default base URL of the preset files, ``<WEIGHTS_URL>/<name>/<file>``."""


def read_json(path):
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


def base_url():
    """The base URL of the preset files: `WEIGHTS_URL`, or
    ``$KERAS_SODEEP_WEIGHTS_URL``, without a trailing slash."""
    return os.environ.get("KERAS_SODEEP_WEIGHTS_URL", WEIGHTS_URL).rstrip("/")


def shipped_metadata():
    """Reads the shipped presets: a dict from name to metadata."""
    registry = {}
    if not os.path.isdir(PRESETS_DIR):
        return registry
    for name in sorted(os.listdir(PRESETS_DIR)):
        path = os.path.join(PRESETS_DIR, name, METADATA_FILE)
        if name.startswith((".", "_")) or not os.path.isfile(path):
            continue
        registry[name] = read_json(path)
    return registry


def preset_names():
    """The names of the shipped presets, sorted."""
    return list(shipped_metadata())


def list_presets():
    """Returns the known presets and their metadata.

    Returns:
        A dict from preset name to the content of its ``metadata.json``
        (architecture, ``seq_len``, training budget, the ``fidelity``
        figures, sha256 of its files), plus ``url``: where its files are
        downloaded from. Empty when no preset ships with the package.

    Example:

    >>> from keras_sodeep.presets import list_presets
    >>> info = list_presets()
    >>> info["histogram"]["architecture"]
    'HistogramSorter'
    >>> sorted(info["histogram"]["sha256"])
    ['config.json', 'model.weights.h5']
    """
    return {
        name: {**metadata, "url": f"{base_url()}/{name}"}
        for name, metadata in shipped_metadata().items()
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
        info: a dict like the one `list_presets` returns. Defaults to
            ``None``, which formats `list_presets()`.

    Returns:
        The table, a str; empty when there is no preset.

    Example:

    >>> from keras_sodeep.presets import presets_table
    >>> info = {"lstm-100": {"architecture": "LSTMSorter", "seq_len": 100,
    ...                      "fidelity": {"l1": 0.00331, "spearman": 0.9998}}}
    >>> print(presets_table(info))
    | preset | architecture | seq_len | l1 | spearman | training steps | ...
    |---|---|---|---|---|---|---|---|
    | lstm-100 | LSTMSorter | 100 | 0.00331 | 0.9998 |  |  |  |
    """
    info = list_presets() if info is None else info
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
