"""The table of sorter architectures, and `build_sorter`.

One table names every sorter family for the command line
(``keras-sodeep train --arch``), `build_sorter`, ``train_sorter`` and the
``"untrained:ARCH"`` ranker specification of ``keras_sodeep.ranking.get``.
"""

import collections

import keras
import numpy as np

from keras_sodeep import ranking
from keras_sodeep._checks import check_seq_len
from keras_sodeep.sorters.cnn import CNNSorter
from keras_sodeep.sorters.gru import GRUSorter
from keras_sodeep.sorters.histogram import HistogramSorter
from keras_sodeep.sorters.lstm import LSTMSorter

Architecture = collections.namedtuple(
    "Architecture", ["cls", "lengths", "width", "depth"]
)
"""An entry of `ARCHITECTURES`.

Fields: ``cls``, the sorter class; ``lengths``, ``"fixed"`` (needs a list
length), ``"generic"`` (any length) or ``"both"``; ``width`` and ``depth``,
the names of the constructor arguments that set its width and depth (the
command line's ``--units`` and ``--num-layers``), or ``None``.
"""

ARCHITECTURES = {
    "lstm": Architecture(LSTMSorter, "both", "units", "num_layers"),
    "cnn": Architecture(CNNSorter, "fixed", "filters", "num_blocks"),
    "gru": Architecture(GRUSorter, "generic", "units", "num_layers"),
    "histogram": Architecture(HistogramSorter, "generic", "hidden_units", None),
}
"""Sorter architectures by name: ``lstm``, ``cnn``, ``gru``, ``histogram``."""

DEFAULT_LENGTH = 100
"""The list length of a fixed-length sorter built without one."""


def _check_architecture(architecture):
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"`architecture` should be one of {', '.join(ARCHITECTURES)}. "
            f"Received: architecture={architecture!r}"
        )
    return ARCHITECTURES[architecture]


def build_sorter(architecture, seq_len=DEFAULT_LENGTH, **kwargs):
    """Builds an untrained sorter of a named architecture.

    Length: an int ``seq_len`` gives a fixed-length ``LSTMSorter`` or
    ``CNNSorter`` of that length; a ``(min, max)`` range or ``None`` asks
    for a length-generic sorter (``LSTMSorter(seq_len=None)``; a
    ``CNNSorter`` is fixed-length, so a range raises and ``None`` gives
    `DEFAULT_LENGTH`, i.e. ``CNNSorter(100)``). ``GRUSorter`` and
    ``HistogramSorter`` are always length-generic.

    Args:
        architecture: a name of `ARCHITECTURES`: ``"lstm"``
            (``LSTMSorter``), ``"cnn"`` (``CNNSorter``), ``"gru"``
            (``GRUSorter``) or ``"histogram"`` (``HistogramSorter``).
        seq_len: int, ``(min, max)`` pair or ``None``. Defaults to 100.
        **kwargs: arguments of the sorter's constructor, by their own
            names (``units=`` for LSTM and GRU, ``filters=`` for CNN,
            ``hidden_units=`` for histogram, ...).

    Returns:
        A built sorter.

    Example:

    >>> from keras_sodeep.sorters import build_sorter
    >>> build_sorter("cnn", 16, filters=8, num_blocks=2).seq_len
    16
    >>> build_sorter("lstm", None, units=4).seq_len is None
    True
    """
    entry = _check_architecture(architecture)
    if "seq_len" in kwargs:
        raise ValueError(
            "Give the length as `build_sorter(architecture, seq_len)`. "
            f"Received: seq_len={kwargs['seq_len']!r} in kwargs"
        )
    if seq_len is None:
        generic, build_len = True, DEFAULT_LENGTH
    else:
        min_len, build_len = check_seq_len(seq_len)
        generic = min_len != build_len
    if entry.lengths == "fixed":
        if generic and seq_len is not None:
            raise ValueError(
                f"A {entry.cls.__name__} ranks lists of one length: "
                f"`seq_len` should be an int. Received: seq_len={seq_len!r}"
            )
        kwargs["seq_len"] = build_len
    elif entry.lengths == "both":
        kwargs["seq_len"] = None if generic else build_len
    sorter = entry.cls(**kwargs)
    sorter(np.zeros((1, build_len), dtype="float32"))
    return sorter


def _untrained(argument):
    """``"untrained:ARCH"``: ``build_sorter(ARCH, None)`` with seed 0."""
    if argument not in ARCHITECTURES:
        raise ValueError(
            "In 'untrained:ARCH', ARCH should be one of "
            f"{', '.join(ARCHITECTURES)}. Received: 'untrained:{argument}'"
        )
    keras.utils.set_random_seed(0)
    return build_sorter(argument, None)


ranking.register_spec("untrained", _untrained)
