"""The bidirectional LSTM sorter (the paper's Fig. 3a)."""

import keras
from keras import ops

from keras_sodeep._checks import check_int
from keras_sodeep.sorters.base import (
    Sorter,
    _bidirectional_stack,
    _build_stack,
    _run_stack,
)


@keras.saving.register_keras_serializable(package="keras_sodeep")
class LSTMSorter(Sorter):
    """Bidirectional LSTM sorter (the paper's Fig. 3a).

    A stack of ``num_layers`` bidirectional LSTMs reads the standardized
    list; a position-mixing linear map of all the recurrent features then
    gives one output per position, squashed into ``(0, 1)``:

    ```
    h = BiLSTM^num_layers(features)                    (n, 2 * units)
    ranks / n ~= sigmoid(W flatten(h) + b),  W: (n, n * 2 * units)
    ```

    (the reference code's ``Conv1d(seq_len, seq_len, 2 * units)`` is this
    dense map). With ``seq_len=None`` the position-mixing map is replaced by
    a per-position head, ``sigmoid(w . h_i + b)``, which makes the sorter
    length-generic and lets it skip masked items.

    With ``spread_inputs=True`` (the default, see `Sorter`) the head has
    no sigmoid: its output, zero at initialization, corrects the spread
    estimate ``1 - q``, so training starts from a close ranking.

    Args:
        seq_len: int or ``None``. The list length, or ``None`` for a
            length-generic sorter with a per-position head.
        units: int. Units of each LSTM direction. Defaults to 128.
        num_layers: int. Number of bidirectional LSTM layers. Defaults to 2.
        **kwargs: passed to ``keras.Model``.

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.sorters import LSTMSorter
    >>> sorter = LSTMSorter(seq_len=8, units=4, num_layers=1)
    >>> x = np.random.default_rng(0).normal(size=(2, 8)).astype("float32")
    >>> ranks = sorter(x)
    >>> tuple(ranks.shape)
    (2, 8)
    >>> bool(np.allclose(sorter(1000 * x + 50), ranks, atol=1e-5))
    True

    Train it on lists with their exact normalized ranks as targets
    (``keras_sodeep.ranking.exact_rank``):
    ``sorter.compile(optimizer="adam", loss="mse")`` and
    ``sorter.fit(x, exact_rank(x) / 8)``.
    """

    def __init__(self, seq_len, units=128, num_layers=2, **kwargs):
        super().__init__(seq_len=seq_len, **kwargs)
        check_int(units, "units")
        check_int(num_layers, "num_layers")
        self.units = units
        self.num_layers = num_layers
        dtype = self._layer_dtype()
        self.rnn_layers = _bidirectional_stack(
            keras.layers.LSTM, units, num_layers, dtype, "bilstm"
        )
        if seq_len is None:
            self.head = keras.layers.Dense(
                1, dtype="float32", name="head", **self._head_kwargs()
            )
        else:
            self.head = keras.layers.Dense(
                seq_len, dtype="float32", name="head", **self._head_kwargs()
            )

    def _build_layers(self, features_shape):
        shape = _build_stack(self.rnn_layers, features_shape)
        if self.seq_len is None:
            self.head.build(shape)
        else:
            self.head.build((shape[0], self.seq_len * shape[-1]))

    def _rank(self, features, mask, training):
        h = _run_stack(self.rnn_layers, features, mask, training)
        if self.seq_len is None:
            return ops.squeeze(self.head(h), axis=-1)
        h = ops.reshape(h, (-1, self.seq_len * 2 * self.units))
        return self.head(h)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "num_layers": self.num_layers})
        return config
