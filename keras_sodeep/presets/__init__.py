"""Pretrained sorters: presets, their metadata, download and cache.

A *preset* is a trained sorter saved as a folder (``config.json``,
``model.weights.h5``, ``metadata.json``; see `io`). The presets shipped with
the package are the folders next to this file, one per preset, named after
it (`registry`); their files are resolved from the local cache, the copy
shipped in the package, or a checked download (`files`).

- `list_presets()`: the presets and their metadata (fidelity figures,
  training budget, sha256 of their files); `presets_table` formats them.
- `pretrained(name_or_path)`: a preset's sorter, built, with its weights.
- `PresetRanker(name, smooth_width=None)`: a preset as a ranker, loaded on
  first use; preset names, ``"NAME-smooth:T"`` and preset folders are
  shorthands for it in ``keras_sodeep.ranking.get`` (importing this
  subpackage registers them there).
- `save_preset(sorter, folder)`: writes a preset folder.
"""

from keras_sodeep import ranking
from keras_sodeep.presets.files import (
    DOWNLOAD_TIMEOUT,
    cache_dir,
    weights_sha256,
)
from keras_sodeep.presets.io import (
    DEFAULT_SMOOTH_WIDTH,
    SMOOTH_PRESETS,
    pretrained,
    save_preset,
    smooth_histogram,
)
from keras_sodeep.presets.ranker import PresetRanker
from keras_sodeep.presets.registry import (
    CONFIG_FILE,
    METADATA_FILE,
    PRESETS_DIR,
    WEIGHTS_FILE,
    WEIGHTS_URL,
    list_presets,
    preset_names,
    presets_table,
    read_json,
)

ranking.register_presets(PresetRanker, preset_names)

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_SMOOTH_WIDTH",
    "DOWNLOAD_TIMEOUT",
    "METADATA_FILE",
    "PRESETS_DIR",
    "PresetRanker",
    "SMOOTH_PRESETS",
    "WEIGHTS_FILE",
    "WEIGHTS_URL",
    "cache_dir",
    "list_presets",
    "preset_names",
    "presets_table",
    "pretrained",
    "read_json",
    "save_preset",
    "smooth_histogram",
    "weights_sha256",
]
