"""Learned sorters: neural networks that approximate the rank function.

A sorter maps a batch of score lists of shape ``(batch_size, n)`` to their
normalized ranks ``rank / n`` in ``(0, 1]`` (see `base` for the shared input
features, masks and length handling). One module per family:

- `lstm`: ``LSTMSorter`` (the paper's Fig. 3a), fixed-length or generic;
- `cnn`: ``CNNSorter`` (Fig. 3b), fixed-length;
- `gru`: ``GRUSorter``, length-generic;
- `histogram`: ``HistogramSorter``, length-generic, O(n K);

and `architectures`, the table of their names (`ARCHITECTURES`) with
`build_sorter`.
"""

from keras_sodeep.sorters.architectures import (
    ARCHITECTURES,
    DEFAULT_LENGTH,
    build_sorter,
)
from keras_sodeep.sorters.base import Sorter
from keras_sodeep.sorters.cnn import CNNSorter
from keras_sodeep.sorters.gru import GRUSorter
from keras_sodeep.sorters.histogram import HistogramSorter
from keras_sodeep.sorters.lstm import LSTMSorter

__all__ = [
    "ARCHITECTURES",
    "CNNSorter",
    "DEFAULT_LENGTH",
    "GRUSorter",
    "HistogramSorter",
    "LSTMSorter",
    "Sorter",
    "build_sorter",
]
