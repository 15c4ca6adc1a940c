"""The ranker registry: every accepted form of ``ranker=`` to a ranker."""

import os

import keras

from keras_sodeep.ranking.rankers import (
    ExactRanker,
    NeuralSortRanker,
    Ranker,
    SigmoidRanker,
    SorterRanker,
)

DEFAULT_RANKER = "histogram"
"""The ranker of ``ranker=None``, in a form `get` accepts: SoDeep's learned
sorter, the shipped ``histogram`` preset.

That preset is a ``keras_sodeep.sorters.HistogramSorter`` trained on
synthetic lists of 2 to 1,000 items: length-generic, ``O(n)`` time and
memory per list (no ``n x n`` matrix), invariant to scale and shift,
L1 about 5e-5 of a rank on the paper's lists of 100. Its gradient is the
smooth one of ``Sorter(gradient_temperature=0.1)``: inside a loss it moves
scores toward their target order at any score scale, where a sigmoid
ranker with a temperature in score units stalls (DESIGN §9.4; the README's
surrogate table has the figures)."""

# "PREFIX" or "PREFIX:ARGUMENT" -> factory(argument or None). Higher modules
# add entries (`keras_sodeep.sorters` adds "untrained"), so that this module
# imports none of them.
_SPEC_FACTORIES = {}
# Loads a preset name or folder; set by `keras_sodeep.preset_store`.
_PRESET_LOADER = []


def _temperature(spec, text, default):
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"The temperature in '{spec}' should be a number. "
            f"Received: {text!r}"
        ) from None


def _temperature_factory(prefix, cls, default):
    def factory(argument):
        spec = f"{prefix}:{argument}"
        return cls(temperature=_temperature(spec, argument, default))

    return factory


def _sigmoid_factory(argument):
    """``"sigmoid"``, ``"sigmoid:T"`` and ``"sigmoid:T:relative"``."""
    spec = f"sigmoid:{argument}"
    text, colon, option = (argument or "").partition(":")
    if colon and option != "relative":
        raise ValueError(
            "A sigmoid specification should be 'sigmoid', 'sigmoid:T' or "
            f"'sigmoid:T:relative'. Received: ranker={spec!r}"
        )
    return SigmoidRanker(
        temperature=_temperature(spec, text, 0.1), relative=bool(colon)
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


def register_preset_loader(loader):
    """Registers ``loader(name_or_path)``, which loads a preset sorter.

    `get` calls it for every string that is not a registered specification
    (``keras_sodeep.preset_store`` registers `pretrained`).
    """
    _PRESET_LOADER[:] = [loader]


register_spec("exact", lambda argument: ExactRanker())
register_spec("sigmoid", _sigmoid_factory)
register_spec(
    "neuralsort", _temperature_factory("neuralsort", NeuralSortRanker, 1.0)
)


def _from_string(spec):
    text = os.fspath(spec)
    prefix, colon, argument = text.partition(":")
    if not os.path.isdir(text) and prefix in _SPEC_FACTORIES:
        return _SPEC_FACTORIES[prefix](argument if colon else None)
    if not _PRESET_LOADER:
        raise ValueError(
            "`ranker` should be 'exact', 'sigmoid[:T[:relative]]', "
            "'neuralsort[:T]', "
            f"or one of {sorted(_SPEC_FACTORIES)}; preset names need "
            f"`import keras_sodeep`. Received: ranker={text!r}"
        )
    return _PRESET_LOADER[0](text)


def get(spec):
    """Returns the ranker of any accepted ``ranker=`` value.

    The one place where ranker specifications are read, in the style of
    ``keras.activations.get``; the losses, training, the benchmarks and
    the command line all use it. Accepted:

    - a ``Ranker``: returned as is;
    - a sorter (any Keras layer with the sorter interface, such as a
      ``keras_sodeep.sorters.Sorter``): wrapped in a frozen
      ``SorterRanker``;
    - ``None``: `DEFAULT_RANKER`;
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
    - ``"PRESET-smooth"`` or ``"PRESET-smooth:T"`` for ``PRESET`` in
      ``histogram``, ``histogram-small``: the preset with soft outputs of
      width ``T`` (default 0.6; see
      ``keras_sodeep.preset_store.smooth_histogram``);
    - any other string: a preset name or folder, loaded with
      ``keras_sodeep.pretrained`` (an existing folder wins).

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
    >>> type(ranking.get(None).sorter).__name__  # the `histogram` preset
    'HistogramSorter'
    """
    if spec is None:
        spec = DEFAULT_RANKER
    if isinstance(spec, dict):
        spec = keras.saving.deserialize_keras_object(spec)
    if isinstance(spec, str) or hasattr(spec, "__fspath__"):
        spec = _from_string(spec)
    if isinstance(spec, Ranker):
        return spec
    if isinstance(spec, keras.layers.Layer):
        return SorterRanker(spec)
    raise TypeError(
        "`ranker` should be a `keras_sodeep.ranking.Ranker`, a "
        "`keras_sodeep.sorters.Sorter`, a string specification ('exact', "
        "'sigmoid:T', 'neuralsort:T', 'untrained:ARCH', a preset name or "
        f"folder) or None. Received: ranker={spec!r}"
    )
