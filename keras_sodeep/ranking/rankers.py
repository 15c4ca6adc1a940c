"""The differentiable rankers: scores to ranks along the last axis."""

import keras
from keras import ops

from keras_sodeep._checks import check_bool, check_float, config_repr
from keras_sodeep.ranking.exact import (
    check_mask,
    exact_rank,
    pad_below_minimum,
)


@keras.saving.register_keras_serializable(package="keras_sodeep")
class Ranker(keras.layers.Layer):
    """Base class of the rankers: scores to differentiable ranks.

    A ranker maps scores of shape ``(..., n)`` to ranks of the same shape
    along the last axis, following the package's conventions: descending,
    1-based (the highest score gets rank about 1), in ``[1, m]`` for a list
    of ``m`` unmasked items; masked items take no part in the ranks of the
    others and get rank 0. Call it as ``ranker(scores, mask=None)``.

    A ranker is a Keras layer, so a loss that holds one saves its weights
    with the model (a learned sorter keeps its fine-tuned weights). Subclasses
    implement ``rank(scores, mask)`` on the last axis, where ``scores`` is a
    float tensor of rank >= 1 and ``mask`` is a boolean tensor of the same
    shape or ``None``; the base class checks the inputs and zeroes masked
    outputs.

    Non-finite scores give NaN ranks.

    Rankers compute in float32 by default, also under a mixed-precision
    dtype policy (``mixed_float16``, ``mixed_bfloat16``): half precision
    cannot hold ranks above 2048 (bfloat16: 256) exactly, and the pairwise
    terms of the analytic rankers overflow it. Half-precision scores are
    cast to float32 on the way in; pass ``dtype=`` to override.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, scores, mask=None):
        scores = ops.convert_to_tensor(scores)
        if not keras.backend.is_float_dtype(scores.dtype):
            scores = ops.cast(scores, self.compute_dtype)
        if len(scores.shape) == 0:
            raise ValueError(
                "`scores` should have at least one dimension to rank along. "
                f"Received: scores.shape={tuple(scores.shape)}"
            )
        mask = check_mask(mask, scores)
        ranks = self.rank(scores, mask)
        if mask is not None:
            ranks = ops.where(mask, ranks, ops.zeros_like(ranks))
        return ranks

    def rank(self, scores, mask):
        raise NotImplementedError(
            f"{type(self).__name__} should implement `rank(scores, mask)`."
        )

    def compute_mask(self, inputs, mask=None):
        return None

    def __repr__(self):
        return config_repr(
            self, self.get_config(), ("name", "trainable", "dtype")
        )

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="keras_sodeep")
class ExactRanker(Ranker):
    """Exact tie-averaged ranks (``exact_rank``) behind the ranker interface.

    The ranks have no gradient; use it as a reference in tests and
    benchmarks, or to evaluate a loss exactly.

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.ranking import ExactRanker
    >>> np.asarray(ExactRanker()(np.array([0.2, 0.9, 0.2]))).tolist()
    [2.5, 1.0, 2.5]
    """

    def rank(self, scores, mask):
        return exact_rank(scores, mask=mask, axis=-1)


class _TemperatureRanker(Ranker):
    """A ranker with one parameter, a positive ``temperature``."""

    def __init__(self, temperature, **kwargs):
        super().__init__(**kwargs)
        self.temperature = check_float(temperature, "temperature")

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": self.temperature})
        return config


def _list_spread(scores, mask):
    """Standard deviation of each list's unmasked items, shape (..., 1).

    Population standard deviation (``ddof=0``) over the unmasked items,
    without gradient; 1 where it is 0 (a constant list, one item, no item)
    or not finite. Masked items never reach it: ``scores`` should hold a
    finite value (e.g. 0) at masked positions.
    """
    x = ops.stop_gradient(scores)
    if mask is None:
        weight = ops.ones_like(x)
    else:
        weight = ops.cast(mask, x.dtype)
    count = ops.maximum(ops.sum(weight, axis=-1, keepdims=True), 1.0)
    mean = ops.sum(weight * x, axis=-1, keepdims=True) / count
    var = ops.sum(weight * ops.square(x - mean), axis=-1, keepdims=True)
    var = var / count
    ok = ops.logical_and(var > 0, ops.isfinite(var))
    return ops.where(ok, ops.sqrt(ops.where(ok, var, 1.0)), 1.0)


@keras.saving.register_keras_serializable(package="keras_sodeep")
class SigmoidRanker(_TemperatureRanker):
    """Pairwise sigmoid ranks: the SoDeep paper's handcrafted sorter.

    Each item counts, softly, the items that score higher:

    ```
    r_i = 1 + sum_{j != i, j unmasked} sigmoid((x_j - x_i) / (t * s))
    s = 1                                  if relative=False
    s = std of the list's unmasked items   if relative=True (1 if it is 0)
    ```

    with ``t`` the temperature. The paper writes ``lambda = 1 / t = 10``
    (``relative=False``). As the temperature goes to 0 the ranks tend to the
    exact tie-averaged ranks (a tied pair contributes ``sigmoid(0) = 1/2``).

    With ``relative=False`` the temperature is in the units of the scores:
    it should be small against the gaps between the scores to rank sharply,
    and large enough to pass gradient, so a temperature that suits scores of
    unit spread is too sharp for scores 100x larger (almost no gradient) and
    too blunt for scores 100x smaller. With ``relative=True`` it is a
    fraction of each list's spread ``s``, the population standard deviation
    of its unmasked items, computed without gradient: the ranks are then
    invariant to any positive affine map ``x -> a x + b`` of a list.
    Length-generic; cost O(n^2) time and memory per list.

    Args:
        temperature: positive float, the width of the sigmoid: in score
            units, or a fraction of the list's standard deviation with
            ``relative=True``. Defaults to ``0.1``.
        relative: bool, whether the temperature is relative to each list's
            spread. Defaults to ``False``.

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.ranking import SigmoidRanker
    >>> ranks = SigmoidRanker(temperature=0.01)(np.array([0.5, 2.0, -1.0]))
    >>> np.round(np.asarray(ranks), 3).tolist()
    [2.0, 1.0, 3.0]
    >>> scale_free = SigmoidRanker(temperature=0.3, relative=True)
    >>> x = np.array([0.5, 2.0, -1.0, 0.7])
    >>> [round(float(r), 3) for r in scale_free(x)]
    [2.652, 1.026, 3.986, 2.336]
    >>> np.allclose(scale_free(x), scale_free(100 * x), atol=1e-5)
    True
    """

    def __init__(self, temperature=0.1, relative=False, **kwargs):
        super().__init__(temperature, **kwargs)
        self.relative = check_bool(relative, "relative")

    def rank(self, scores, mask):
        if mask is not None:
            # Masked items (even NaN) reach neither the values nor, through
            # the second `where` below, the gradients.
            scores = ops.where(mask, scores, ops.zeros_like(scores))
        width = self.temperature
        if self.relative:
            spread = _list_spread(scores, mask)  # (..., 1)
            width = width * ops.expand_dims(spread, -1)  # (..., 1, 1)
        # diff[..., i, j] = x_j - x_i; the diagonal adds sigmoid(0) = 1/2.
        diff = ops.expand_dims(scores, -2) - ops.expand_dims(scores, -1)
        above = ops.sigmoid(diff / width)
        if mask is not None:
            valid = ops.expand_dims(mask, -2)
            above = ops.where(valid, above, ops.zeros_like(above))
        return 0.5 + ops.sum(above, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"relative": self.relative})
        return config


@keras.saving.register_keras_serializable(package="keras_sodeep")
class NeuralSortRanker(_TemperatureRanker):
    """Ranks from the NeuralSort relaxed permutation (Grover et al., 2019).

    For a list ``s`` of ``m`` unmasked items, NeuralSort relaxes the
    permutation matrix that sorts ``s`` in decreasing order: row ``i`` (the
    i-th sorted position) is a softmax over the items,

    ```
    P_hat[i, :] = softmax(((m + 1 - 2 i) s - A_s 1) / temperature)
    A_s[j, k] = |s_j - s_k|,   i = 1..m
    ```

    and tends to the one-hot row of the item at position ``i`` as the
    temperature goes to 0. ``P_hat[i, j]`` reads as the weight of item ``j``
    at position ``i``, and the rank of item ``j`` is its expected position:

    ```
    r_j = sum_i i P_hat[i, j] / sum_i P_hat[i, j]
    ```

    This is ``P_hat^T (1, ..., m)`` with each column normalized. The rows of
    ``P_hat`` sum to 1 but its columns only approximately do; normalizing
    keeps ``r_j`` in ``[1, m]`` at any temperature, and changes nothing in
    the limit, where ``P_hat`` is a permutation matrix (tied items share
    their positions, so the limit ranks are tie-averaged). Masked items are
    left out of ``A_s`` and of the softmax, and ``m`` counts only unmasked
    items. The temperature is in the units of the scores. Cost: O(n^2) time
    and memory per list.

    Args:
        temperature: positive float, the softmax temperature. Defaults to
            ``1.0``.

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.ranking import NeuralSortRanker
    >>> ranks = NeuralSortRanker(temperature=0.01)(np.array([0.5, 2.0, -1.0]))
    >>> np.round(np.asarray(ranks), 3).tolist()
    [2.0, 1.0, 3.0]
    """

    def __init__(self, temperature=1.0, **kwargs):
        super().__init__(temperature, **kwargs)

    def rank(self, scores, mask):
        dtype = scores.dtype
        n = ops.shape(scores)[-1]
        if mask is None:
            valid = ops.ones_like(scores, dtype="bool")
        else:
            valid = mask
        valid_f = ops.cast(valid, dtype)
        # Masked scores are replaced by a finite value so that no inf or NaN
        # reaches the (discarded) masked entries or their gradients.
        safe = ops.where(valid, scores, ops.zeros_like(scores))
        m = ops.sum(valid_f, axis=-1, keepdims=True)  # (..., 1)
        # B_j = sum_k |s_j - s_k| over unmasked k.
        pair = ops.abs(ops.expand_dims(safe, -1) - ops.expand_dims(safe, -2))
        b = ops.sum(pair * ops.expand_dims(valid_f, -2), axis=-1)  # (..., n)
        position = ops.cast(ops.arange(1, n + 1), dtype)  # (n,)
        coeff = ops.expand_dims(m + 1.0, -1) - 2.0 * ops.reshape(
            position, (-1, 1)
        )  # (..., n, 1): one row per sorted position
        logits = (
            coeff * ops.expand_dims(safe, -2) - ops.expand_dims(b, -2)
        ) / self.temperature  # (..., positions, items)
        neg = ops.cast(-1e9 if dtype != "float16" else -6e4, dtype)
        logits = ops.where(ops.expand_dims(valid, -2), logits, neg)
        # Softmax over the items (written out: lists of one item are fine).
        logits = logits - ops.max(logits, axis=-1, keepdims=True)
        p_hat = ops.exp(logits)
        p_hat = p_hat / ops.sum(p_hat, axis=-1, keepdims=True)
        # Only positions 1..m exist.
        row_valid = ops.cast(
            ops.expand_dims(position, -1) <= ops.expand_dims(m, -1), dtype
        )  # (..., n, 1)
        p_hat = p_hat * row_valid
        weight = ops.sum(p_hat, axis=-2)  # (..., n)
        expected = ops.sum(p_hat * ops.reshape(position, (-1, 1)), axis=-2)
        safe_weight = ops.where(weight > 0, weight, ops.ones_like(weight))
        ranks = expected / safe_weight
        nan = ops.logical_not(ops.isfinite(scores))
        return ops.where(nan, ops.cast(float("nan"), dtype), ranks)


def _check_run_time_length(flat, seq_len):
    """Refuses, at run time, lists longer than a fixed-length sorter's.

    A list length known only at run time (a ``[None, None]`` signature,
    tf.data batches of varying length) cannot be checked at trace time.
    TensorFlow only (a documented backend branch: `keras.ops` has no
    run-time assertion); on other backends such a list is cropped.
    """
    if keras.backend.backend() != "tensorflow":
        return flat
    import tensorflow as tf

    check = tf.debugging.assert_less_equal(
        tf.shape(flat)[-1],
        seq_len,
        message=(
            f"The sorter ranks lists of at most seq_len={seq_len} items; "
            "this list is longer. Use a length-generic ranker instead "
            "(e.g. `SigmoidRanker`, or a sorter with `seq_len=None`)."
        ),
    )
    with tf.control_dependencies([check]):
        return tf.identity(flat)


@keras.saving.register_keras_serializable(package="keras_sodeep")
class SorterRanker(Ranker):
    """Ranks from a learned sorter: ``ranks = sorter(scores) * n``.

    A sorter returns normalized ranks (rank / n); this ranker scales them
    back to ranks. Masked items are replaced by padding values below the
    minimum of the list, evenly spaced at the list's mean gap, so they sit
    at the bottom and the ``m`` unmasked items keep ranks ``1..m``. A
    fixed-length sorter (``sorter.seq_len = L``) ranks a shorter list the
    same way: the list is padded to ``L`` with such values, ranked, and
    cropped; the ranks of the real items are ``sorter(padded) * L``, which
    lie in ``1..m``. A sorter that takes masks (``supports_masking``, as
    every ``keras_sodeep.sorters.Sorter`` does) is given the mask of the
    real items too, so that padding takes no part in what it computes
    (a smooth gradient, its statistics). The padding carries no gradient.
    A list longer than
    ``L`` raises a ``ValueError`` (checked at trace time when the length is
    static).

    Recording hook: when the sorter has a ``_score_recorder`` attribute
    that is not ``None``, an object with a ``record(lists)`` method, the
    ranker hands it every batch of padded lists it passes to the sorter
    (``keras_sodeep.callbacks.SorterFinetuning`` installs one to fine-tune
    the sorter on them). This is the whole interface between the two.

    Args:
        sorter: a ``keras_sodeep.sorters.Sorter`` (any Keras model with a
            ``seq_len`` attribute, ``None`` for length-generic, called as
            ``sorter(scores)`` on ``(batch, length)`` scores and returning
            normalized ranks of the same shape).
        trainable: bool, whether the sorter's weights train with the model
            that holds the ranker. Defaults to ``False`` (frozen, as in the
            paper: sets ``sorter.trainable`` and calls the sorter in
            inference mode). ``keras_sodeep.callbacks.SorterFinetuning``
            can still fine-tune a frozen sorter on its own.

    Example:

    >>> import keras
    >>> from keras_sodeep.ranking import SigmoidRanker, SorterRanker
    >>> class Sharp(keras.Model):  # stands in for a trained sorter
    ...     seq_len = 8
    ...     def call(self, scores, mask=None):
    ...         return SigmoidRanker(0.001)(scores) / scores.shape[-1]
    >>> ranks = SorterRanker(Sharp())(keras.ops.array([0.3, 0.1, 0.7]))
    >>> [round(float(r), 3) for r in ranks]
    [2.0, 3.0, 1.0]
    """

    def __init__(self, sorter, trainable=False, **kwargs):
        super().__init__(trainable=trainable, **kwargs)
        if isinstance(sorter, dict):
            sorter = keras.saving.deserialize_keras_object(sorter)
        if not isinstance(sorter, keras.layers.Layer):
            raise TypeError(
                "`sorter` should be a Keras model (a "
                "`keras_sodeep.sorters.Sorter`). "
                f"Received: sorter={sorter!r}"
            )
        self.sorter = sorter
        self.sorter.trainable = bool(trainable)

    @property
    def seq_len(self):
        return getattr(self.sorter, "seq_len", None)

    def rank(self, scores, mask):
        dtype = scores.dtype
        seq_len = self.seq_len
        n = scores.shape[-1]
        if seq_len is not None and n is not None and n > seq_len:
            raise ValueError(
                f"The sorter ranks lists of at most seq_len={seq_len} items, "
                f"but received lists of {n} items. Use a length-generic "
                "ranker instead (e.g. `SigmoidRanker`, `NeuralSortRanker`, "
                "or a sorter with `seq_len=None`)."
            )
        n_dyn = ops.shape(scores)[-1]
        flat = ops.reshape(scores, (-1, n_dyn))
        if seq_len is not None and n is None:
            flat = _check_run_time_length(flat, seq_len)
        valid = None if mask is None else ops.reshape(mask, (-1, n_dyn))
        length = n_dyn if seq_len is None else seq_len
        padded = pad_below_minimum(flat, valid, seq_len)
        # The recording hook (see the class docstring).
        recorder = getattr(self.sorter, "_score_recorder", None)
        if recorder is not None:
            recorder.record(ops.stop_gradient(padded))
        training = None if self.trainable else False
        masking = getattr(self.sorter, "supports_masking", False)
        if masking and (valid is not None or seq_len is not None):
            # A masking sorter sees the mask and returns rank / m itself,
            # so padding takes no part in anything it computes.
            if valid is None:
                valid = ops.ones_like(flat, dtype="bool")
            if seq_len is not None:
                # The real items' mask, continued with False to seq_len.
                extra = ops.zeros_like(padded, dtype="bool")
                valid = ops.concatenate([valid, extra], axis=-1)
                valid = ops.reshape(valid[:, :seq_len], (-1, seq_len))
            normalized = self.sorter(padded, mask=valid, training=training)
            m = ops.sum(ops.cast(valid, dtype), axis=-1, keepdims=True)
            ranks = ops.cast(normalized, dtype)[:, :n_dyn] * m
            return ops.reshape(ranks, ops.shape(scores))
        normalized = self.sorter(padded, training=training)
        normalized = ops.cast(normalized, dtype)
        ranks = normalized[:, :n_dyn] * ops.cast(length, dtype)
        ranks = ops.reshape(ranks, ops.shape(scores))
        return ranks

    def get_config(self):
        config = super().get_config()
        config.update(
            {"sorter": keras.saving.serialize_keras_object(self.sorter)}
        )
        return config
