"""Learned sorters: neural networks that approximate the rank function.

A sorter maps a batch of score lists of shape ``(batch_size, n)`` to their
normalized ranks ``rank / n`` in ``(0, 1]``, with the package's conventions
(descending, the highest score has rank 1; see ``keras_sodeep.ranking``).
Trained on synthetic lists and then frozen, a sorter is a differentiable
stand-in for :func:`keras_sodeep.ranking.exact_rank` (SoDeep, Engilberge et
al., CVPR 2019).

Every sorter starts from the same two per-item input features, computed over
the unmasked items of each list with ``keras.ops``:

```
u_i = (x_i - min_j x_j) / (max_j x_j - min_j x_j)     in [0, 1]
z_i = (u_i - mean_j u_j) / std_j u_j                  (mean 0, std 1)
features_i = [z_i, 2 u_i - 1]
```

Both are unchanged when a list is mapped by ``x -> a x + b`` with ``a > 0``,
so a sorter's output is invariant to the scale and shift of each list up to
float rounding, whatever its weights. A constant list gives ``u = 1/2`` and
``z = 0`` (no division by zero, no NaN). Non-finite unmasked scores give NaN
outputs.

Targets come from ``keras_sodeep.ranking.exact_rank``; this module imports
no other module of the package.
"""

import keras
from keras import ops

_NUM_FEATURES = 2


def _check_positive_int(value, name, minimum=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(
            f"`{name}` should be an int >= {minimum}. "
            f"Received: {name}={value!r}"
        )


def _masked_min_max(x, mask, count):
    """Min and max over the unmasked items; 0 for lists with no item."""
    inf = ops.cast(float("inf"), x.dtype)
    lo = ops.min(ops.where(mask, x, inf), axis=-1, keepdims=True)
    hi = ops.max(ops.where(mask, x, -inf), axis=-1, keepdims=True)
    nonempty = count > 0
    lo = ops.where(nonempty, lo, ops.zeros_like(lo))
    hi = ops.where(nonempty, hi, ops.zeros_like(hi))
    return lo, hi


def _list_features(scores, mask):
    """The affine-invariant per-item features, shape ``(batch, n, 2)``.

    Masked items get features 0 and take no part in the statistics.
    """
    maskf = ops.cast(mask, scores.dtype)
    count = ops.sum(maskf, axis=-1, keepdims=True)
    safe_count = ops.maximum(count, 1.0)
    x = ops.where(mask, scores, ops.zeros_like(scores))
    lo, hi = _masked_min_max(x, mask, count)
    spread = hi - lo
    has_spread = spread > 0
    u = (x - lo) / ops.where(has_spread, spread, ops.ones_like(spread))
    u = ops.where(has_spread, u, ops.full_like(u, 0.5))
    u = ops.where(mask, u, ops.zeros_like(u))
    mean = ops.sum(u, axis=-1, keepdims=True) / safe_count
    centered = ops.where(mask, u - mean, ops.zeros_like(u))
    var = ops.sum(ops.square(centered), axis=-1, keepdims=True) / safe_count
    # Double `where` so that a zero variance has a finite gradient too.
    positive = var > 0
    std = ops.sqrt(ops.where(positive, var, ops.ones_like(var)))
    z = ops.where(positive, centered / std, ops.zeros_like(centered))
    v = ops.where(mask, 2.0 * u - 1.0, ops.zeros_like(u))
    return ops.stack([z, v], axis=-1)


def _fill_masked(scores, mask):
    """Replaces masked scores by distinct values below the unmasked minimum.

    The k-th masked item of a list (in position order) gets
    ``min - k * gap``, where ``gap`` is the mean spacing of the unmasked
    scores, ``(max - min) / (m - 1)`` (1 when they are all equal). The
    unmasked items keep their ranks, and the filled list is an affine image
    of a list built from the unmasked scores alone, so the output stays
    invariant and does not depend on the masked values.
    """
    maskf = ops.cast(mask, scores.dtype)
    count = ops.sum(maskf, axis=-1, keepdims=True)
    x = ops.where(mask, scores, ops.zeros_like(scores))
    lo, hi = _masked_min_max(x, mask, count)
    spread = hi - lo
    gap = spread / ops.maximum(count - 1.0, 1.0)
    gap = ops.where(spread > 0, gap, ops.ones_like(gap))
    k = ops.cumsum(1.0 - maskf, axis=-1)
    return ops.where(mask, x, lo - gap * k)


@keras.saving.register_keras_serializable(package="keras_sodeep")
class Sorter(keras.Model):
    """Base class of the learned sorters.

    A sorter maps scores of shape ``(batch_size, n)`` to normalized ranks of
    the same shape:

    ```
    sorter(x)_i ~= rank_i / n,  rank_i = 1 + #{j : x_j > x_i}
    ```

    in ``(0, 1]`` (the highest score has rank 1). Subclasses build their
    layers in ``__init__`` and implement ``_rank(features, mask, training)``,
    which maps the per-item features of the module docstring, shape
    ``(batch_size, n, 2)``, to values in ``(0, 1)`` of shape
    ``(batch_size, n)``.

    Length handling: ``seq_len`` is the list length a fixed-length sorter
    was built for (its output layer is tied to it), or ``None`` for a
    length-generic sorter, which ranks lists of any length.

    Masks: ``mask`` (boolean, the shape of ``scores``, ``False`` marks
    padding) makes masked items output 0 and leaves the other outputs
    unchanged whatever the masked values are; ``n`` in ``rank / n`` is then
    the number ``m`` of unmasked items of the list. A length-generic sorter
    skips masked items (its recurrent layers receive the mask). A
    fixed-length sorter still sees ``seq_len`` items: it replaces the masked
    scores by distinct values below the smallest unmasked score, so that the
    unmasked items keep their ranks, and rescales their outputs by
    ``seq_len / m``. This is how a fixed-length sorter ranks a list shorter
    than ``seq_len``: pad it to ``seq_len`` with any value and mask the
    padding.

    ``scores`` may also be a dict ``{"scores": ..., "mask": ...}`` so that
    masked batches can go through ``fit()``.

    The outputs are float32, also under a mixed-precision dtype policy (the
    input standardization and the output layers run in float32).

    Args:
        seq_len: int or ``None``. The list length of a fixed-length sorter,
            ``None`` for a length-generic one. Defaults to ``None``.
        **kwargs: passed to ``keras.Model`` (``name``, ``dtype``, ...).
    """

    def __init__(self, seq_len=None, **kwargs):
        # Inputs are standardized in float32 inside `call`; Keras must not
        # cast raw scores to a float16 compute dtype first.
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        # Masked outputs are 0; the input mask is also the output mask.
        self.supports_masking = True
        if seq_len is not None:
            _check_positive_int(seq_len, "seq_len")
        self.seq_len = seq_len

    def _layer_dtype(self):
        return self.dtype_policy

    def build(self, input_shape=None):
        if isinstance(input_shape, dict):
            input_shape = input_shape["scores"]
        if input_shape is None:
            input_shape = (None, self.seq_len)
        input_shape = tuple(input_shape)
        self._check_shape(input_shape)
        if self.built:
            return
        n = input_shape[-1]
        self._build_layers((input_shape[0], n, _NUM_FEATURES))
        self.built = True

    def _build_layers(self, features_shape):
        raise NotImplementedError

    def _rank(self, features, mask, training):
        raise NotImplementedError

    def _check_shape(self, shape):
        if len(shape) != 2:
            raise ValueError(
                "`scores` should have shape (batch_size, list_size). "
                f"Received: scores.shape={tuple(shape)}"
            )
        n = shape[-1]
        if self.seq_len is not None and n != self.seq_len:
            raise ValueError(
                f"This {type(self).__name__} ranks lists of length "
                f"seq_len={self.seq_len} only. Received lists of length "
                f"{n} (scores.shape={tuple(shape)}). Pad shorter lists to "
                f"{self.seq_len} and pass a `mask`, or use a length-generic "
                "sorter such as `GRUSorter()` or `LSTMSorter(seq_len=None)`."
            )

    def call(self, scores, mask=None, training=False):
        if isinstance(scores, dict):
            # Keras fills `mask` with the (empty) masks of the dict's
            # entries; the mask is the dict's "mask" entry.
            if mask is None or isinstance(mask, dict):
                mask = scores.get("mask")
            scores = scores["scores"]
        scores = ops.convert_to_tensor(scores)
        self._check_shape(tuple(scores.shape))
        scores = ops.cast(scores, "float32")
        if mask is not None:
            mask = ops.convert_to_tensor(mask)
            if tuple(mask.shape) != tuple(scores.shape):
                raise ValueError(
                    "`mask` should have the shape of `scores`. Received: "
                    f"mask.shape={tuple(mask.shape)}, "
                    f"scores.shape={tuple(scores.shape)}"
                )
            mask = ops.cast(mask, "bool")
        if mask is not None and self.seq_len is not None:
            inner_mask = None
            scores = _fill_masked(scores, mask)
        else:
            inner_mask = mask
        full = ops.ones_like(scores, dtype="bool")
        features = _list_features(
            scores, full if inner_mask is None else inner_mask
        )
        ranks = ops.cast(self._rank(features, inner_mask, training), "float32")
        if mask is None:
            return ranks
        if self.seq_len is not None:
            count = ops.sum(ops.cast(mask, "float32"), axis=-1, keepdims=True)
            ranks = ranks * (self.seq_len / ops.maximum(count, 1.0))
        return ops.where(mask, ranks, ops.zeros_like(ranks))

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = input_shape["scores"]
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"seq_len": self.seq_len})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _bidirectional_stack(cell, units, num_layers, dtype, prefix):
    return [
        keras.layers.Bidirectional(
            cell(units, return_sequences=True, dtype=dtype),
            dtype=dtype,
            name=f"{prefix}_{i}",
        )
        for i in range(num_layers)
    ]


def _run_stack(layers, x, mask, training):
    for layer in layers:
        x = layer(x, mask=mask, training=training)
    return x


def _build_stack(layers, shape):
    for layer in layers:
        layer.build(shape)
        shape = tuple(shape[:-1]) + (2 * layer.forward_layer.units,)
    return shape


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
        _check_positive_int(units, "units")
        _check_positive_int(num_layers, "num_layers")
        self.units = units
        self.num_layers = num_layers
        dtype = self._layer_dtype()
        self.rnn_layers = _bidirectional_stack(
            keras.layers.LSTM, units, num_layers, dtype, "bilstm"
        )
        if seq_len is None:
            self.head = keras.layers.Dense(
                1, activation="sigmoid", dtype="float32", name="head"
            )
        else:
            self.head = keras.layers.Dense(
                seq_len, activation="sigmoid", dtype="float32", name="head"
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
        _check_positive_int(filters, "filters")
        _check_positive_int(kernel_size, "kernel_size")
        _check_positive_int(num_blocks, "num_blocks")
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
            activation="sigmoid",
            dtype="float32",
            name="head",
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

    def __init__(self, units=64, num_layers=3, context_units=32, **kwargs):
        seq_len = kwargs.pop("seq_len", None)
        if seq_len is not None:
            raise ValueError(
                "A GRUSorter is length-generic: `seq_len` should be None. "
                f"Received: seq_len={seq_len!r}"
            )
        super().__init__(seq_len=None, **kwargs)
        _check_positive_int(units, "units")
        _check_positive_int(num_layers, "num_layers")
        _check_positive_int(context_units, "context_units", minimum=0)
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
            1, activation="sigmoid", dtype="float32", name="head"
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
        config.pop("seq_len", None)
        config.update(
            {
                "units": self.units,
                "num_layers": self.num_layers,
                "context_units": self.context_units,
            }
        )
        return config


def _histogram_pass(t, weights, count, lo, hi, num_anchors, log_temperature):
    """One pass of `HistogramSorter`: soft counts at anchors, interpolated.

    Returns the estimated rank of every item (1 + the number of other items
    above it, in ``[1, count]``) and the two head features ``f`` (position
    in its bin) and ``m`` (soft number of other items in its bin). Each
    item is left out of its own counts, so that raising its score never
    raises its estimated rank.
    """
    delta = (hi - lo) / (num_anchors - 2)
    anchors = lo - delta / 2 + delta * ops.arange(num_anchors, dtype="float32")
    temperature = ops.exp(log_temperature) * delta
    # s[b, j, k]: item j lies above anchor k; c[b, k]: fraction above a_k.
    s = ops.sigmoid((ops.expand_dims(t, -1) - anchors) / temperature)
    c = ops.sum(s * ops.expand_dims(weights, -1), axis=1) / count
    position = (t - anchors[0]) / delta
    index = ops.clip(ops.floor(position), 0, num_anchors - 2)
    f = position - index
    index = ops.cast(index, "int32")
    c_low = ops.take_along_axis(c, index, axis=-1)
    c_high = ops.take_along_axis(c, index + 1, axis=-1)
    # The item's own soft counts at the two anchors of its bin.
    own_low = ops.sigmoid((t - ops.take(anchors, index)) / temperature)
    own_high = ops.sigmoid((t - ops.take(anchors, index + 1)) / temperature)
    above = count * c_high - own_high
    m = count * (c_low - c_high) - (own_low - own_high)
    rank = 1.0 + above + m * (1.0 - f)
    return rank, f, m


@keras.saving.register_keras_serializable(package="keras_sodeep")
class HistogramSorter(Sorter):
    """Length-generic sorter from learned soft histograms, O(n K) per list.

    Each pass counts, for ``K`` anchors ``a_k`` spread evenly over the
    range of a coordinate ``t``, the fraction of the list above each
    anchor with a learned temperature, and reads each item's rank off
    those counts by interpolating inside the item's bin:

    ```
    s_jk   = sigmoid((t_j - a_k) / (tau * delta)),   c_k = sum_j s_jk
    above_i = c_hi - s_i,hi,   m_i = (c_lo - c_hi) - (s_i,lo - s_i,hi)
    rank_i ~= 1 + above_i + m_i (1 - f_i)
    ```

    where ``[a_lo, a_hi]`` is the bin of item ``i``, ``f_i`` its place in
    the bin, ``above_i`` the other items above the bin and ``m_i`` the
    other items in it. The estimate is exact when an item has its bin to
    itself; when items share a bin it is their expected rank if they are
    spread evenly in it. Leaving each item out of its own counts keeps the
    sign of its gradient right: raising a score never raises its rank.

    The first pass runs on the min-max feature ``2 u - 1``; each later
    pass runs on the previous pass's estimate of the quantile,
    ``1 - (rank - 1/2) / n``, where items are spread nearly evenly, so
    that with ``K`` anchors a bin holds about ``n / K`` items whatever the
    distribution of the list. A small MLP head, zero at initialization,
    adds a learned correction (in ranks) from ``f``, ``m`` and ``n``:

    ```
    rank_i / n ~= (rank_i + MLP([f_i, log(1 + m_i), 1 / n, log n])) / n
    ```

    The counting and interpolation are built in, so an untrained sorter
    already ranks closely (see the Example); training on synthetic lists
    fits the temperatures and the correction head to the exact ranks.

    The output is the estimate itself, not squashed into ``(0, 1)``: it
    stays within about half a rank of ``[1 / n, 1]``.

    The cost is ``O(n * sum(anchors))`` per list, below the ``O(n^2)`` of
    `keras_sodeep.ranking.SigmoidRanker` once ``n`` exceeds the total
    number of anchors, and every step is parallel (no recurrence). Masked
    items take no part in the counts. Gradients reach every item's score:
    through its own position in its bin (the local density of the list)
    and, through the soft counts, from the items near its bin's anchors.

    Args:
        anchors: tuple of ints >= 3, the number of anchors of each pass.
            Defaults to ``(64, 256)``.
        hidden_units: int, width of the correction head. Defaults to 16.
        gradient_anchors: int >= 3 or ``None``. With sharp learned
            temperatures, an item's gradient comes from the other items in
            its own bin and near its bin's anchors, so it is sparse when
            bins hold few items (short lists). If set, the backward pass
            instead follows a coarse one-pass estimate with this many
            anchors over the list's range and a temperature of one bin (a
            straight-through surrogate, like a ``SigmoidRanker`` whose
            temperature is a fraction of the list's range); the outputs,
            and the gradients of the sorter's own weights, are unchanged.
            Defaults to ``None``: the sorter's own gradient.
        **kwargs: passed to ``keras.Model`` (``seq_len`` is accepted only
            as ``None``).

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.ranking import exact_rank
    >>> from keras_sodeep.sorters import HistogramSorter
    >>> sorter = HistogramSorter()
    >>> x = np.random.default_rng(0).normal(size=(4, 500)).astype("float32")
    >>> exact = np.asarray(exact_rank(x)) / 500
    >>> bool(np.mean(np.abs(np.asarray(sorter(x)) - exact)) < 0.01)
    True
    >>> tuple(sorter(np.zeros((3, 7))).shape)
    (3, 7)
    """

    def __init__(
        self,
        anchors=(64, 256),
        hidden_units=16,
        gradient_anchors=None,
        **kwargs,
    ):
        seq_len = kwargs.pop("seq_len", None)
        if seq_len is not None:
            raise ValueError(
                "A HistogramSorter is length-generic: `seq_len` should be "
                f"None. Received: seq_len={seq_len!r}"
            )
        super().__init__(seq_len=None, **kwargs)
        if isinstance(anchors, int):
            anchors = (anchors,)
        anchors = tuple(anchors) if isinstance(anchors, (list, tuple)) else ()
        if not anchors or any(
            not isinstance(a, int) or isinstance(a, bool) or a < 3
            for a in anchors
        ):
            raise ValueError(
                "`anchors` should be a non-empty tuple of ints >= 3, the "
                f"anchors of each pass. Received: anchors={anchors!r}"
            )
        _check_positive_int(hidden_units, "hidden_units")
        if gradient_anchors is not None:
            _check_positive_int(gradient_anchors, "gradient_anchors", 3)
        self.anchors = anchors
        self.hidden_units = hidden_units
        self.gradient_anchors = gradient_anchors
        self.hidden = keras.layers.Dense(
            hidden_units, activation="relu", dtype="float32", name="hidden"
        )
        self.head = keras.layers.Dense(
            1, kernel_initializer="zeros", dtype="float32", name="head"
        )

    def _build_layers(self, features_shape):
        self.log_temperature = self.add_weight(
            shape=(len(self.anchors),),
            initializer=keras.initializers.Constant(-1.0),
            name="log_temperature",
            dtype="float32",
        )
        batch, n, _ = features_shape
        self.hidden.build((batch, n, 4))
        self.head.build((batch, n, self.hidden_units))

    def _rank(self, features, mask, training):
        v = ops.cast(features[..., 1], "float32")
        t = v if self.gradient_anchors is None else ops.stop_gradient(v)
        if mask is None:
            weights = ops.ones_like(t)
        else:
            weights = ops.cast(mask, "float32")
        count = ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1.0)
        # float32 also under a mixed-precision policy (no autocast).
        log_temperature = ops.cast(self.log_temperature, "float32")
        lo, hi = -1.0, 1.0
        for p, num_anchors in enumerate(self.anchors):
            rank, f, m = _histogram_pass(
                t, weights, count, lo, hi, num_anchors, log_temperature[p]
            )
            t = 1.0 - (rank - 0.5) / count
            lo, hi = 0.0, 1.0
        n = count + ops.zeros_like(t)
        head_features = ops.stack(
            [f, ops.log1p(ops.relu(m)), 1.0 / n, ops.log(n)], axis=-1
        )
        correction = ops.squeeze(self.head(self.hidden(head_features)), -1)
        ranks = (rank + correction) / count
        if self.gradient_anchors is None:
            return ranks
        smooth, _, _ = _histogram_pass(
            v, weights, count, -1.0, 1.0, self.gradient_anchors, 0.0
        )
        smooth = smooth / count
        return ranks + smooth - ops.stop_gradient(smooth)

    def get_config(self):
        config = super().get_config()
        config.pop("seq_len", None)
        config.update(
            {
                "anchors": list(self.anchors),
                "hidden_units": self.hidden_units,
                "gradient_anchors": self.gradient_anchors,
            }
        )
        return config
