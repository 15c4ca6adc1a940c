"""Learned sorters: neural networks that approximate the rank function.

A sorter maps a batch of score lists of shape ``(batch_size, n)`` to their
normalized ranks ``rank / n`` in ``(0, 1]``, with the package's conventions
(descending, the highest score has rank 1; see ``keras_sodeep.ranking``).
Trained on synthetic lists and then frozen, a sorter is a differentiable
stand-in for :func:`keras_sodeep.ranking.exact_rank` (SoDeep, Engilberge et
al., CVPR 2019).

Every sorter starts from per-item input features computed over the
unmasked items of each list with ``keras.ops``:

```
u_i = (x_i - min_j x_j) / (max_j x_j - min_j x_j)     in [0, 1]
z_i = (u_i - mean_j u_j) / std_j u_j                  (mean 0, std 1)
q_i = spread_evenly(2 u - 1)_i                         in (0, 1)
features_i = [2 q_i - 1]              (spread_inputs=True, the default)
features_i = [z_i, 2 u_i - 1]         (spread_inputs=False, the paper's)
```

All are unchanged when a list is mapped by ``x -> a x + b`` with ``a > 0``,
so a sorter's output is invariant to the scale and shift of each list up
to float rounding, whatever its weights. ``q`` estimates each item's
quantile by soft counting (`counting.spread_evenly`): min-max and z-scores
squeeze a heavy-tailed or clustered list into a few values, ``q`` spreads
every list about evenly, so a network that sees ``q`` alone sees the same
kind of input whatever the list's distribution. Its output is then a
correction to the estimate ``1 - q`` (its head starts at zero). With
``spread_inputs=False`` the sorter is the paper's: features ``[z, 2u - 1]``
and a sigmoid head. A constant list gives ``u = 1/2`` and ``z = 0`` (no
division by zero, no NaN). A non-finite unmasked score makes its list's
outputs NaN (and only that list's); each list is first divided by its
largest magnitude, so lists near the edges of float32 (``1e38``,
``1e-38``) rank as well as others.

Targets come from ``keras_sodeep.ranking.exact_rank``. A fixed-length sorter
pads masked items with ``keras_sodeep.ranking.pad_below_minimum``. This
module holds the base class and what the sorters share; each family has its
own module (`lstm`, `cnn`, `gru`, `histogram`), `counting` holds the soft
counting they share, and `architectures` names them.
"""

import keras
from keras import ops

from keras_sodeep._checks import check_bool, check_float, check_int
from keras_sodeep.ranking import check_mask, pad_below_minimum
from keras_sodeep.ranking.smooth import smooth_ranks
from keras_sodeep.sorters.counting import spread_evenly


def _masked_min_max(x, mask, count):
    """Min and max over the unmasked items; 0 for lists with no item."""
    inf = ops.cast(float("inf"), x.dtype)
    lo = ops.min(ops.where(mask, x, inf), axis=-1, keepdims=True)
    hi = ops.max(ops.where(mask, x, -inf), axis=-1, keepdims=True)
    nonempty = count > 0
    lo = ops.where(nonempty, lo, ops.zeros_like(lo))
    hi = ops.where(nonempty, hi, ops.zeros_like(hi))
    return lo, hi


def _list_features(scores, mask, kind="spread"):
    """The affine-invariant per-item features, ``(batch, n, 1 or 2)``.

    ``kind``: ``"spread"`` gives ``[2q - 1]``, ``"paper"`` ``[z, 2u - 1]``,
    ``"min_max"`` ``[2u - 1]`` alone. Masked items get features 0 and take
    no part in the statistics.
    """
    maskf = ops.cast(mask, scores.dtype)
    count = ops.sum(maskf, axis=-1, keepdims=True)
    safe_count = ops.maximum(count, 1.0)
    x = ops.where(mask, scores, 0.0)
    lo, hi = _masked_min_max(x, mask, count)
    spread = hi - lo
    has_spread = spread > 0
    u = (x - lo) / ops.where(has_spread, spread, 1.0)
    u = ops.where(has_spread, u, 0.5)
    v = ops.where(mask, 2.0 * u - 1.0, 0.0)
    if kind == "min_max":
        return v[..., None]
    if kind == "paper":
        u = ops.where(mask, u, 0.0)
        mean = ops.sum(u, axis=-1, keepdims=True) / safe_count
        centered = ops.where(mask, u - mean, 0.0)
        var = ops.sum(ops.square(centered), axis=-1, keepdims=True)
        var = var / safe_count
        # Double `where` so that a zero variance has a finite gradient too.
        positive = var > 0
        std = ops.sqrt(ops.where(positive, var, 1.0))
        z = ops.where(positive, centered / std, 0.0)
        return ops.stack([z, v], axis=-1)
    q = spread_evenly(v, maskf, safe_count)
    return ops.where(mask, 2.0 * q - 1.0, 0.0)[..., None]


def _item_count(mask):
    """The number of unmasked items of each list, ``(batch, 1)``, >= 1."""
    count = ops.sum(ops.cast(mask, "float32"), axis=-1, keepdims=True)
    return ops.maximum(count, 1.0)


def _finite_unit_scale(scores, mask):
    """Each list divided by its largest magnitude, non-finite scores by 0.

    Ranks do not change when a list is divided by a positive number, and
    lists near the edges of float32 (``1e38``: ``max - min`` overflows;
    ``1e-38``: squares underflow) come back to ``[-1, 1]``. The divisor
    carries no gradient, so the scores' gradient is exact. Returns the
    scaled scores and ``broken``, ``(batch, 1)``: whether a list holds a
    non-finite unmasked score (its ranks are NaN). Non-finite values, and
    anything at a masked position, reach no value or gradient.
    """
    finite = ops.isfinite(scores)
    valid = finite if mask is None else ops.logical_and(finite, mask)
    x = ops.where(valid, scores, ops.zeros_like(scores))
    scale = ops.max(ops.abs(ops.stop_gradient(x)), axis=-1, keepdims=True)
    scale = ops.where(scale > 0, scale, ops.ones_like(scale))
    bad = ops.logical_not(finite)
    if mask is not None:
        bad = ops.logical_and(bad, mask)
    broken = ops.any(bad, axis=-1, keepdims=True)
    return x / scale, broken


@keras.saving.register_keras_serializable(package="keras_sodeep")
class Sorter(keras.Model):
    """Base class of the learned sorters.

    A sorter maps scores of shape ``(batch_size, n)`` to normalized ranks of
    the same shape:

    ```
    sorter(x)_i ~= rank_i / n,  rank_i = 1 + #{j : x_j > x_i}
    ```

    in ``(0, 1]`` (the highest score has rank 1). Subclasses build their
    layers in ``__init__`` (their output layers take `_head_kwargs`) and
    implement ``_rank(features, mask, training)``, which maps the per-item
    features of the module docstring, shape ``(batch_size, n, F)``, to
    values of shape ``(batch_size, n)``: normalized ranks, or with
    ``spread_inputs`` corrections added to ``1 - q``.

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

    Gradient: a sorter's own gradient with respect to its scores is
    whatever its network learned, often sparse or noisy between training
    lists. With ``gradient_temperature`` set, the outputs are unchanged but
    the scores' gradient is that of
    ``keras_sodeep.ranking.smooth.smooth_ranks`` instead, a
    sigmoid ranking against ``gradient_bins`` quantile groups of the list
    with a width of ``gradient_temperature`` times the list's interquartile
    spread: smooth, dense and scale-free (the surrogate-quality benchmark
    measures what each choice does inside a loss). The sorter's weights
    keep their own gradient, so training and fine-tuning are unaffected.

    With ``smooth_outputs=True`` as well, the outputs are that smooth
    ranking itself, value and gradient (``(1/2 + smooth_ranks) / n``): the
    sorter only sorts the list into its quantile groups. A loss on such
    soft ranks keeps asking for a margin between items relative to their
    spread instead of stopping once their order is right, which
    regularizes: `keras_sodeep.losses.SpearmanLoss` and
    `keras_sodeep.losses.MeanAveragePrecisionLoss` rank with it by default
    (``"histogram-smooth:T"``, see
    ``keras_sodeep.presets.PresetRanker``), and its fidelity is
    that of a sigmoid ranking, not the sorter's.

    Args:
        seq_len: int or ``None``. The list length of a fixed-length sorter,
            ``None`` for a length-generic one. Defaults to ``None``.
        spread_inputs: bool. Whether the network sees the spread feature
            ``q`` alone and corrects the estimate ``1 - q`` (``True``), or
            is the paper's sorter on ``[z, 2u - 1]`` with a sigmoid head
            (``False``). Defaults to ``True``.
        gradient_temperature: positive float or ``None``, the width of the
            smooth gradient as a fraction of the list's interquartile
            spread; ``None`` keeps the sorter's own gradient. Defaults to
            ``None``.
        gradient_bins: int >= 2, the number of quantile groups of the
            smooth gradient. Defaults to 64.
        smooth_outputs: bool, whether the outputs are the smooth ranking
            too (needs ``gradient_temperature``). Defaults to ``False``.
        **kwargs: passed to ``keras.Model`` (``name``, ``dtype``, ...).
    """

    # Whether the architecture is length-generic only (no `seq_len`).
    _generic_only = False
    # Whether the architecture has a network that `spread_inputs` affects.
    _has_spread_option = True

    def __init__(
        self,
        seq_len=None,
        spread_inputs=True,
        gradient_temperature=None,
        gradient_bins=64,
        smooth_outputs=False,
        **kwargs,
    ):
        if self._generic_only and seq_len is not None:
            raise ValueError(
                f"A {type(self).__name__} is length-generic: `seq_len` "
                f"should be None. Received: seq_len={seq_len!r}"
            )
        # Inputs are standardized in float32 inside `call`; Keras must not
        # cast raw scores to a float16 compute dtype first.
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        # Masked outputs are 0; the input mask is also the output mask.
        self.supports_masking = True
        if seq_len is not None:
            check_int(seq_len, "seq_len")
        self.seq_len = seq_len
        if not isinstance(spread_inputs, bool):
            raise ValueError(
                "`spread_inputs` should be a bool. "
                f"Received: spread_inputs={spread_inputs!r}"
            )
        self.spread_inputs = spread_inputs and self._has_spread_option
        if gradient_temperature is not None:
            gradient_temperature = check_float(
                gradient_temperature, "gradient_temperature"
            )
        self.gradient_temperature = gradient_temperature
        check_int(gradient_bins, "gradient_bins", minimum=2)
        self.gradient_bins = gradient_bins
        self.smooth_outputs = check_bool(smooth_outputs, "smooth_outputs")
        if smooth_outputs and gradient_temperature is None:
            raise ValueError(
                "`smooth_outputs=True` needs the smooth ranking's width: set "
                "`gradient_temperature` (e.g. 0.6). Received: "
                "gradient_temperature=None"
            )

    def _head_kwargs(self):
        """Arguments of the output layer: a zero correction, or a sigmoid."""
        if self.spread_inputs:
            return {"kernel_initializer": "zeros"}
        return {"activation": "sigmoid"}

    def _feature_kind(self):
        """The input features `_rank` receives (see `_list_features`)."""
        return "spread" if self.spread_inputs else "paper"

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
        num_features = 2 if self._feature_kind() == "paper" else 1
        self._build_layers((input_shape[0], n, num_features))
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

    def call(self, scores, mask=None, training=None):
        if isinstance(scores, dict):
            # Keras fills `mask` with the (empty) masks of the dict's
            # entries; the mask is the dict's "mask" entry.
            if mask is None or isinstance(mask, dict):
                mask = scores.get("mask")
            scores = scores["scores"]
        scores = ops.convert_to_tensor(scores)
        self._check_shape(tuple(scores.shape))
        scores = ops.cast(scores, "float32")
        mask = check_mask(mask, scores)
        scores, broken = _finite_unit_scale(scores, mask)
        if mask is not None and self.seq_len is not None:
            inner_mask = None
            scores = pad_below_minimum(scores, mask)
        else:
            inner_mask = mask
        full = ops.ones_like(scores, dtype="bool")
        inner_valid = full if inner_mask is None else inner_mask
        # With a smooth gradient, the network sees the scores without one.
        smooth = self.gradient_temperature is not None
        features = _list_features(
            ops.stop_gradient(scores) if smooth else scores,
            inner_valid,
            kind=self._feature_kind(),
        )
        ranks = ops.cast(
            self._frozen_rank(features, inner_mask, training), "float32"
        )
        if self.spread_inputs:
            q = 0.5 * (features[..., 0] + 1.0)
            ranks = ranks + 1.0 - q + 0.5 / _item_count(inner_valid)
        valid = full if mask is None else mask
        count = _item_count(valid)
        if mask is not None and self.seq_len is not None:
            ranks = ranks * (self.seq_len / count)
        if smooth:
            surrogate = (
                smooth_ranks(
                    scores,
                    ranks,
                    valid,
                    self.gradient_bins,
                    self.gradient_temperature,
                )
                / count
            )
            if self.smooth_outputs:
                ranks = surrogate + 0.5 / count
            else:
                ranks = ranks + surrogate - ops.stop_gradient(surrogate)
        # A list with a non-finite (unmasked) score has NaN ranks.
        ranks = ops.where(broken, float("nan"), ranks)
        if mask is None:
            return ranks
        return ops.where(mask, ranks, ops.zeros_like(ranks))

    def _frozen_rank(self, features, mask, training):
        """`_rank`; a frozen sorter (``trainable=False``, as the shipped
        presets are) reads its weights as constants, without gradient.

        TensorFlow's eager ``GradientTape`` watches every variable created
        trainable, whatever the layer's ``trainable`` says now, and keeps
        every intermediate of the ops that read it: for a preset sorter on
        a list of a million items, gigabytes of soft counts that no
        gradient needs.
        """
        if self.trainable or not self.built:
            return self._rank(features, mask, training)
        mapping = [(v, ops.stop_gradient(v.value)) for v in self.variables]
        with keras.StatelessScope(state_mapping=mapping):
            return self._rank(features, mask, training)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = input_shape["scores"]
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        if not self._generic_only:
            config.update({"seq_len": self.seq_len})
        if self._has_spread_option:
            config.update({"spread_inputs": self.spread_inputs})
        config.update(
            {
                "gradient_temperature": self.gradient_temperature,
                "gradient_bins": self.gradient_bins,
                "smooth_outputs": self.smooth_outputs,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**upgrade_config(cls, config))


def upgrade_config(cls, config):
    """A sorter config written by an earlier keras_sodeep, in today's terms.

    Saved models keep the config of the sorter of their loss. A key that
    earlier versions wrote is given its old meaning: a config without
    ``spread_inputs`` is the paper's sorter (``spread_inputs=False``, the
    only kind there was); ``gradient_anchors=None`` (no gradient
    surrogate) is dropped. A key whose old meaning no version has today
    (``gradient_anchors=N``, a straight-through gradient from a one-pass
    histogram) is refused with a ``ValueError`` that says how to load the
    model. Today's configs come back unchanged.
    """
    config = dict(config)
    if cls._has_spread_option and "spread_inputs" not in config:
        config["spread_inputs"] = False
    if "gradient_anchors" in config:
        anchors = config.pop("gradient_anchors")
        if anchors is not None:
            raise ValueError(
                f"This {cls.__name__} was saved by an earlier keras_sodeep "
                f"with gradient_anchors={anchors!r}, a gradient surrogate "
                "this version no longer has (today's `gradient_temperature` "
                "computes another gradient). Load the model with "
                "`keras.saving.load_model(path, compile=False)` and compile "
                "it again with a ranker of today."
            )
    return config


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
