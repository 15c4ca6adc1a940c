"""The length-generic bidirectional GRU sorter."""

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
class GRUSorter(Sorter):
    """Length-generic bidirectional GRU sorter.

    No layer is tied to the list length, so one model ranks lists of any
    length and skips masked items. A list-level context (a masked mean over
    items of learned soft thresholds of the features, a soft histogram of
    the list) is appended to every item; a stack of bidirectional GRUs
    reads the list; a per-position head gives the normalized rank:

    ```
    c = mean_j sigmoid(A features_j + a)                   (context_units,)
    h = BiGRU^num_layers([features_i, c])                  (n, 2 * units)
    ranks_i / n ~= sigmoid(MLP([h_i, features_i, c]))
    ```

    ``c`` holds fractions of the list, whatever its length, which helps the
    head turn the recurrent features into ``rank / n``. The reference
    code's later ``gruc`` model is the same idea without context or MLP
    head.

    With ``spread_inputs=True`` (the default, see `Sorter`) the head has
    no sigmoid: its output, zero at initialization, corrects the spread
    estimate ``1 - q``, so training starts from a close ranking.

    Args:
        units: int. Units of each GRU direction. Defaults to 64.
        num_layers: int. Number of bidirectional GRU layers. Defaults to 3.
        context_units: int. Size of the list context; 0 disables it.
            Defaults to 32.
        **kwargs: passed to ``keras.Model`` (``seq_len`` is accepted only
            as ``None``).

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.sorters import GRUSorter
    >>> sorter = GRUSorter(units=8, num_layers=1, context_units=4)
    >>> x = np.random.default_rng(0).normal(size=(2, 5)).astype("float32")
    >>> mask = np.array([[True] * 5, [True, True, True, False, False]])
    >>> ranks = np.asarray(sorter(x, mask=mask))
    >>> ranks.shape, ranks[1, 3:].tolist()
    ((2, 5), [0.0, 0.0])
    >>> tuple(sorter(np.zeros((3, 40))).shape)
    (3, 40)
    """

    _generic_only = True

    def __init__(self, units=64, num_layers=3, context_units=32, **kwargs):
        super().__init__(**kwargs)
        check_int(units, "units")
        check_int(num_layers, "num_layers")
        check_int(context_units, "context_units", minimum=0)
        self.units = units
        self.num_layers = num_layers
        self.context_units = context_units
        dtype = self._layer_dtype()
        self.context = None
        if context_units:
            self.context = keras.layers.Dense(
                context_units,
                activation="sigmoid",
                dtype="float32",
                name="context",
            )
        self.rnn_layers = _bidirectional_stack(
            keras.layers.GRU, units, num_layers, dtype, "bigru"
        )
        self.hidden = keras.layers.Dense(
            units, activation="relu", dtype=dtype, name="hidden"
        )
        self.head = keras.layers.Dense(
            1, dtype="float32", name="head", **self._head_kwargs()
        )

    def _build_layers(self, features_shape):
        batch, n, f = features_shape
        if self.context is not None:
            self.context.build(features_shape)
            f += self.context_units
        shape = _build_stack(self.rnn_layers, (batch, n, f))
        self.hidden.build((batch, n, shape[-1] + f))
        self.head.build((batch, n, self.units))

    def _rank(self, features, mask, training):
        x = features
        if self.context is not None:
            soft = self.context(features)
            if mask is None:
                c = ops.mean(soft, axis=1, keepdims=True)
            else:
                w = ops.expand_dims(ops.cast(mask, soft.dtype), -1)
                total = ops.sum(soft * w, axis=1, keepdims=True)
                c = total / ops.maximum(ops.sum(w, axis=1, keepdims=True), 1)
            c = c + ops.zeros_like(soft[..., :1])
            x = ops.concatenate([features, c], axis=-1)
        h = _run_stack(self.rnn_layers, x, mask, training)
        h = ops.concatenate([ops.cast(h, x.dtype), x], axis=-1)
        return ops.squeeze(self.head(self.hidden(h)), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "num_layers": self.num_layers,
                "context_units": self.context_units,
            }
        )
        return config
