"""Loading and saving presets: `pretrained`, `save_preset`.

A *preset* is a folder, as in keras-hub:

```
<name>/
    config.json         keras.saving.serialize_keras_object(sorter)
    model.weights.h5    sorter.save_weights(...)
    metadata.json       what the sorter is and how good it is (below)
```

``metadata.json`` holds ``architecture`` (the sorter's class name),
``seq_len``, ``training_steps``, ``wall_time_s``, ``hardware``, ``fidelity``
(the sorter-fidelity figures: ``l1``, ``spearman``, ``exact_fraction``, the
same on rescaled lists, per length for length-generic sorters), ``sha256``
(a dict from ``config.json`` and ``model.weights.h5`` to the sha256 of that
file), ``keras_sodeep_version`` and ``keras_version``. `save_preset` writes
all three files.
"""

import json
import os

import keras
import numpy as np

from keras_sodeep import __version__
from keras_sodeep._checks import check_float
from keras_sodeep.presets import files, registry
from keras_sodeep.presets.registry import (
    CONFIG_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    read_json,
)
from keras_sodeep.ranking import DEFAULT_SMOOTH_WIDTH

_BUILD_LENGTH = 8  # Length of the dummy lists that build a generic sorter.

SMOOTH_PRESETS = ("histogram", "histogram-small")
"""The presets `smooth_histogram` accepts."""


def pretrained(name_or_path, trainable=False, smooth_width=None):
    """Returns a pretrained sorter, built and with its weights.

    Args:
        name_or_path: a preset name (see `list_presets`) or the path of a
            preset folder holding ``config.json``, ``model.weights.h5``
            and, optionally, a ``metadata.json`` whose sha256 are checked.
            A str that is a shipped preset's name is that preset, even
            when a folder of that name exists; a path object
            (``pathlib.Path``) is always a folder.
        trainable: bool, whether the sorter's weights are trainable. Defaults
            to ``False``: a sorter inside a loss is usually frozen.
        smooth_width: positive float or ``None``. With a width ``T``, the
            sorter's outputs are its smooth ranking, ``T`` times the list's
            interquartile spread wide (``smooth_outputs=True`` and
            ``gradient_temperature=T``, see ``keras_sodeep.sorters.Sorter``).
            Defaults to ``None``: the sorter as trained.

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
    >>> from keras_sodeep.presets import pretrained, save_preset
    >>> from keras_sodeep.sorters import GRUSorter
    >>> sorter = GRUSorter(units=8, num_layers=1)
    >>> x = np.array([[0.3, 2.0, -1.0, 0.7]], dtype="float32")
    >>> y = sorter(x)  # Builds the sorter.
    >>> folder = tempfile.mkdtemp()
    >>> _ = save_preset(sorter, folder, training_steps=0)
    >>> loaded = pretrained(folder)
    >>> bool(np.allclose(loaded(x), y)), loaded.trainable
    (True, False)

    ``pretrained("lstm-100")`` loads a preset by name: see `list_presets`.
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
    overrides = {}
    if smooth_width is not None:
        width = check_float(smooth_width, "smooth_width")
        overrides = {"gradient_temperature": width, "smooth_outputs": True}
    folder_only = not isinstance(name_or_path, str)
    return _load(os.fspath(name_or_path), trainable, folder_only, **overrides)


def _load(key, trainable, folder_only, **overrides):
    """`pretrained`, with ``overrides`` of the sorter's constructor config.

    The weights are read from the preset's file (never from another
    sorter's variables), so that this also works inside a traced function.
    """
    shipped = registry.shipped_metadata()
    if key in shipped and not folder_only:
        metadata = shipped[key]
        paths = files.preset_files(key, metadata)
    elif os.path.isdir(key):
        paths, metadata = files.folder_files(key)
    else:
        known = ", ".join(shipped) if shipped else "none are installed"
        raise ValueError(
            "`name_or_path` should be a known preset name or a preset "
            f"folder. Known presets: {known}. "
            f"Received: name_or_path={key!r}"
        )
    config = read_json(paths[CONFIG_FILE])
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
    dict of the sorter-fidelity figures).

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
            CONFIG_FILE: files.file_sha256(config_path),
            WEIGHTS_FILE: files.file_sha256(weights_path),
        },
        "keras_sodeep_version": __version__,
        "keras_version": keras.__version__,
    }
    with open(os.path.join(directory, METADATA_FILE), "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    return record


def smooth_histogram(width=DEFAULT_SMOOTH_WIDTH, preset="histogram"):
    """A histogram-sorter preset with soft outputs of the given width.

    The preset's trained weights in a ``HistogramSorter`` with
    ``smooth_outputs=True`` and ``gradient_temperature=width`` (see
    ``keras_sodeep.sorters.Sorter``): the sorter sorts each list into the
    preset's ``gradient_bins`` quantile groups, and its outputs, value and
    gradient, are each item ranked by a sigmoid against the groups' mean
    scores, ``width`` times the list's interquartile spread wide. As a
    ranker: ``PresetRanker(preset, smooth_width=width)``, or the string
    ``"PRESET-smooth:T"`` (``"PRESET-smooth"``: width 0.6).
    ``histogram-small`` makes three passes of 16 anchors and 32 groups;
    ``histogram`` four passes of up to 256 anchors and 64 groups, whose
    near-exact groups keep the few positives of a list apart.

    Args:
        width: positive float. Defaults to ``DEFAULT_SMOOTH_WIDTH`` (0.6).
        preset: a name of `SMOOTH_PRESETS`. Defaults to ``"histogram"``.

    Returns:
        The frozen sorter.

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.presets import smooth_histogram
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
    return pretrained(preset, smooth_width=width)
