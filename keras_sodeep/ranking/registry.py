"""The ranker registry: every accepted form of ``ranker=`` to a ranker."""

import os

import keras

from keras_sodeep._checks import parse_positive_number
from keras_sodeep.ranking.rankers import (
    ExactRanker,
    NeuralSortRanker,
    Ranker,
    SigmoidRanker,
    SorterRanker,
)

SMOOTH_SUFFIX = "-smooth"
"""``"PRESET-smooth[:T]"``: a preset with soft outputs of width ``T``."""

DEFAULT_SMOOTH_WIDTH = 0.6
"""The width ``T`` of ``"PRESET-smooth"`` without one."""

# "PREFIX" or "PREFIX:ARGUMENT" -> factory(argument or None). Higher modules
# add entries (`keras_sodeep.sorters` adds "untrained"), so that this module
# imports none of them.
_SPEC_FACTORIES = {}
# `(factory, names)` of the presets, set by `keras_sodeep.presets`.
_PRESETS = []


def _number(spec, form, text, default):
    """The number ``T`` of a specification ``form`` such as ``'sigmoid:T'``.

    ``text`` is the text of ``T`` in ``spec`` (``None`` or empty: the
    ``default``). The one parser of the numbers of specifications.
    """
    if not text:
        return default
    value = parse_positive_number(text)
    if value is None:
        raise ValueError(
            f"In '{form}', T should be a number > 0. Received: ranker={spec!r}"
        )
    return value


def _temperature_factory(prefix, cls, default):
    def factory(argument):
        spec = prefix if argument is None else f"{prefix}:{argument}"
        return cls(temperature=_number(spec, f"{prefix}:T", argument, default))

    return factory


def _sigmoid_factory(argument):
    """``"sigmoid"``, ``"sigmoid:T"`` and ``"sigmoid:T:relative"``."""
    spec = "sigmoid" if argument is None else f"sigmoid:{argument}"
    text, colon, option = (argument or "").partition(":")
    if colon and option != "relative":
        raise ValueError(
            "A sigmoid specification should be 'sigmoid', 'sigmoid:T' or "
            f"'sigmoid:T:relative'. Received: ranker={spec!r}"
        )
    return SigmoidRanker(
        temperature=_number(spec, "sigmoid:T", text, 0.1),
        relative=bool(colon),
    )


def register_spec(prefix, factory):
    """Registers the string specification ``"PREFIX"`` / ``"PREFIX:ARG"``.

    ``factory(argument)`` receives the text after the colon (``None``
    without one) and returns a ``Ranker`` or a sorter. Modules above this
    one use it (``keras_sodeep.sorters`` registers ``"untrained"``), so
    that `get` understands their specifications without this module
    importing them.

    Args:
        prefix: str, the name before the colon.
        factory: callable ``factory(argument) -> Ranker or Sorter``.
    """
    _SPEC_FACTORIES[prefix] = factory


def register_presets(factory, names):
    """Registers the ranker of preset names and preset folders.

    `get` calls ``factory(name_or_folder, smooth_width)`` (a ``Ranker``)
    for a preset name, ``"NAME-smooth[:T]"`` or a folder;
    ``names()`` returns the known preset names. ``keras_sodeep.presets``
    registers ``PresetRanker`` and its registry when the package is
    imported, so that this module imports nothing above it.

    Args:
        factory: callable ``factory(name, smooth_width) -> Ranker``.
        names: callable ``names() -> list of str``.
    """
    _PRESETS[:] = [(factory, names)]


register_spec("exact", lambda argument: ExactRanker())
register_spec("sigmoid", _sigmoid_factory)
register_spec(
    "neuralsort", _temperature_factory("neuralsort", NeuralSortRanker, 1.0)
)


def looks_like_path(spec):
    """Whether a ``ranker=`` value names a folder rather than a preset.

    A ``pathlib.Path`` (any ``os.PathLike``) does, and so does a string
    with a path separator or starting with ``.`` or ``~``
    (``"./my-preset"``, ``"~/presets/x"``, ``"/data/x"``). Any other
    string is a name: a folder named ``histogram`` in the working
    directory never replaces the ``histogram`` preset.
    """
    if not isinstance(spec, str):
        return isinstance(spec, os.PathLike)
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    return spec.startswith((".", "~")) or any(s in spec for s in separators)


def _from_string(spec):
    if looks_like_path(spec):
        if not _PRESETS:
            raise ValueError(
                "Preset folders need `import keras_sodeep`. "
                f"Received: ranker={os.fspath(spec)!r}"
            )
        folder = os.path.expanduser(spec) if isinstance(spec, str) else spec
        return _PRESETS[0][0](folder, None)
    prefix, colon, argument = spec.partition(":")
    if prefix in _SPEC_FACTORIES:
        return _SPEC_FACTORIES[prefix](argument if colon else None)
    names = _PRESETS[0][1]() if _PRESETS else []
    if spec in names:
        return _PRESETS[0][0](spec, None)
    preset = prefix[: -len(SMOOTH_SUFFIX)]
    if prefix.endswith(SMOOTH_SUFFIX) and preset in names:
        form = f"{prefix}:T"
        width = _number(spec, form, argument, DEFAULT_SMOOTH_WIDTH)
        return _PRESETS[0][0](preset, width)
    known = (
        ", ".join(names) if names else "none (they need `import keras_sodeep`)"
    )
    raise ValueError(
        "`ranker` should be 'exact', 'sigmoid[:T[:relative]]', "
        f"'neuralsort[:T]', one of {sorted(_SPEC_FACTORIES)} with its "
        "argument, a preset name, 'NAME-smooth[:T]' or a preset folder "
        "(a path: './folder', '/path/to/folder' or a pathlib.Path). "
        f"Known presets: {known}. Received: ranker={spec!r}"
    )


def get(spec):
    """Returns the ranker of any accepted ``ranker=`` value.

    The one place where ranker specifications are read, in the style of
    ``keras.activations.get``; the losses, training, the benchmarks and
    the command line all use it. Accepted:

    - a ``Ranker``: returned as is;
    - a sorter (any Keras layer with the sorter interface, such as a
      ``keras_sodeep.sorters.Sorter``): wrapped in a frozen
      ``SorterRanker``;
    - a dict: a serialized ranker (``keras.saving`` form);
    - ``"exact"``: ``ExactRanker()``;
    - ``"sigmoid"`` or ``"sigmoid:T"``: ``SigmoidRanker(T)`` (default 0.1);
    - ``"sigmoid:T:relative"``: ``SigmoidRanker(T, relative=True)``, the
      scale-free form (the temperature is a fraction of each list's
      standard deviation);
    - ``"neuralsort"`` or ``"neuralsort:T"``: ``NeuralSortRanker(T)``
      (default 1.0);
    - ``"untrained:ARCH"``: an untrained sorter of
      ``keras_sodeep.sorters.ARCHITECTURES`` (see
      ``keras_sodeep.sorters.build_sorter``), a baseline;
    - a preset name (``keras_sodeep.list_presets()``):
      ``keras_sodeep.PresetRanker(name)``, loaded on first use;
    - ``"NAME-smooth"`` or ``"NAME-smooth:T"``: the preset with soft
      outputs of width ``T`` (default 0.6),
      ``PresetRanker(name, smooth_width=T)``;
    - a preset folder: a ``pathlib.Path``, or a string that looks like a
      path (see `looks_like_path`): ``PresetRanker(folder)``. A name
      always means the preset or specification of that name, never a
      folder of the working directory.

    Args:
        spec: the specification.

    Returns:
        A ``Ranker``.

    Example:

    >>> from keras_sodeep import ranking
    >>> ranking.get("sigmoid:0.5").temperature
    0.5
    >>> ranker = ranking.get("sigmoid:0.3:relative")
    >>> ranker.temperature, ranker.relative
    (0.3, True)
    >>> ranking.get("histogram")  # a preset, loaded on first use
    PresetRanker('histogram')
    >>> ranking.get("histogram-small-smooth:0.6")
    PresetRanker('histogram-small', smooth_width=0.6)
    >>> type(ranking.get("histogram").sorter).__name__
    'HistogramSorter'
    """
    if spec is None:
        raise TypeError(
            "`ranker=None` means a loss's own default ranker, which the "
            "loss gives (`type(loss).default_ranker()`); `ranking.get` "
            "needs a ranker, a sorter or a specification."
        )
    if isinstance(spec, dict):
        spec = keras.saving.deserialize_keras_object(spec)
    if isinstance(spec, (str, os.PathLike)):
        spec = _from_string(spec)
    if isinstance(spec, Ranker):
        return spec
    if isinstance(spec, keras.layers.Layer):
        return SorterRanker(spec)
    raise TypeError(
        "`ranker` should be a `keras_sodeep.ranking.Ranker`, a "
        "`keras_sodeep.sorters.Sorter`, a string specification ('exact', "
        "'sigmoid:T', 'neuralsort:T', 'untrained:ARCH', a preset name or "
        f"folder). Received: ranker={spec!r}"
    )


def check_saved_ranker(class_name, config):
    """Checks the ``ranker`` entry of a loss's config read from a file.

    A loss's config stores its ranker, serialized. A config whose
    ``ranker`` is ``None`` was written by an earlier version of
    keras_sodeep, where ``None`` meant that version's default ranker; the
    default has changed since (the paper's sigmoid, then the ``histogram``
    preset, then soft presets), so such a loss would silently compute
    another loss. Call this from the loss's ``from_config``.

    Args:
        class_name: str, the loss's class name (for the message).
        config: the loss's config dict.

    Returns:
        ``config``, unchanged.

    Raises:
        ValueError: for a config whose ``ranker`` is ``None``; the message
            says how to load the model.

    Example:

    >>> from keras_sodeep.ranking import check_saved_ranker
    >>> config = {"axis": 0, "ranker": {"class_name": "ExactRanker"}}
    >>> check_saved_ranker("SpearmanLoss", config) is config
    True
    >>> check_saved_ranker("SpearmanLoss", {"axis": 0, "ranker": None})
    Traceback (most recent call last):
    ...
    ValueError: This SpearmanLoss was saved by an earlier keras_sodeep ...
    """
    if "ranker" in config and config["ranker"] is None:
        raise ValueError(
            f"This {class_name} was saved by an earlier keras_sodeep with "
            "its default ranker (its config stores `ranker=None`); the "
            "default ranker has changed since, so it would compute another "
            "loss. Load the model with `keras.saving.load_model(path, "
            "compile=False)` and compile it again with an explicit ranker, "
            f"e.g. `{class_name}(ranker=...)`."
        )
    return config
