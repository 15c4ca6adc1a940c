"""The convolutional sorter (the paper's Fig. 3b)."""

import keras
from keras import ops

from keras_sodeep._checks import check_int
from keras_sodeep.sorters.base import Sorter


@keras.saving.register_keras_serializable(package="keras_sodeep")
class CNNSorter(Sorter):
    """Convolutional sorter (the paper's Fig. 3b), for lists of a fixed length.

    The list is a length-``n`` sequence with the per-item features as
    channels. ``num_blocks`` blocks of ``Conv1D`` (``same`` padding,
    dilation rates 1, 2, 4, ... capped at ``n // 2`` so the receptive field
    spans the list) + ``BatchNormalization`` + ReLU extract features; a last
    ``Conv1D`` with ``n`` filters whose kernel spans the whole list gives
    one output channel per position, i.e. output ``i`` is the rank of item
    ``i``:

    ```
    h = [ReLU(BN(Conv1D_d(h)))]^num_blocks(features)       (n, filters)
    ranks / n ~= sigmoid(Conv1D(n filters, kernel n)(h))   (1, n) -> (n,)
    ```

    With ``spread_inputs=True`` (the default, see `Sorter`) the head has
    no sigmoid: its output, zero at initialization, corrects the spread
    estimate ``1 - q``, so training starts from a close ranking.

    Args:
        seq_len: int. The list length (required).
        filters: int. Channels of each block. Defaults to 64.
        kernel_size: int. Kernel size of each block. Defaults to 3.
        num_blocks: int. Number of Conv1D + BN + ReLU blocks. Defaults to 8.
        **kwargs: passed to ``keras.Model``.

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.sorters import CNNSorter
    >>> sorter = CNNSorter(seq_len=16, filters=8, num_blocks=2)
    >>> x = np.random.default_rng(0).normal(size=(4, 16)).astype("float32")
    >>> tuple(sorter(x).shape)
    (4, 16)
    """

    def __init__(
        self, seq_len, filters=64, kernel_size=3, num_blocks=8, **kwargs
    ):
        if seq_len is None:
            raise ValueError(
                "`seq_len` should be an int >= 1: a CNNSorter ranks lists "
                "of one length. Use `GRUSorter()` for lists of any length. "
                "Received: seq_len=None"
            )
        super().__init__(seq_len=seq_len, **kwargs)
        check_int(filters, "filters")
        check_int(kernel_size, "kernel_size")
        check_int(num_blocks, "num_blocks")
        self.filters = filters
        self.kernel_size = kernel_size
        self.num_blocks = num_blocks
        dtype = self._layer_dtype()
        max_rate = max(1, seq_len // 2)
        self.blocks = []
        for b in range(num_blocks):
            conv = keras.layers.Conv1D(
                filters,
                kernel_size,
                padding="same",
                dilation_rate=min(2**b, max_rate),
                use_bias=False,
                dtype=dtype,
                name=f"conv_{b}",
            )
            norm = keras.layers.BatchNormalization(dtype=dtype, name=f"bn_{b}")
            self.blocks.append((conv, norm))
        self.head = keras.layers.Conv1D(
            seq_len,
            seq_len,
            padding="valid",
            dtype="float32",
            name="head",
            **self._head_kwargs(),
        )

    def _build_layers(self, features_shape):
        shape = features_shape
        for conv, norm in self.blocks:
            conv.build(shape)
            shape = tuple(shape[:-1]) + (self.filters,)
            norm.build(shape)
        self.head.build(shape)

    def _rank(self, features, mask, training):
        h = features
        for conv, norm in self.blocks:
            h = ops.relu(norm(conv(h), training=training))
        return ops.reshape(self.head(h), (-1, self.seq_len))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "num_blocks": self.num_blocks,
            }
        )
        return config
