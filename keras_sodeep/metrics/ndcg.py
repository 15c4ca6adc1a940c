"""Discounted cumulative gain (DCG) and its normalized form (NDCG)."""

import keras
from keras import ops

from keras_sodeep._checks import check_int
from keras_sodeep.metrics.base import RankingMetric, tied_positions

GAINS = ("exponential", "linear")


def gains(labels, valid, gain):
    """``2^g - 1`` ("exponential") or ``g`` ("linear") of the grades ``g``
    of the items that take part, 0 for the others."""
    if gain == "exponential":
        labels = ops.power(ops.cast(2.0, labels.dtype), labels) - 1.0
    return ops.where(valid, labels, 0.0)


def _cumulative_discount(n, dtype):
    """``sum_{p <= m} 1 / log2(1 + p)`` for ``m = 0..n``."""
    positions = ops.arange(1, n + 1, dtype=dtype)
    discount = 1.0 / ops.log2(1.0 + positions)
    return ops.concatenate(
        [ops.zeros((1,), dtype=dtype), ops.cumsum(discount)], axis=0
    )


def _dcg(labels, scores, weights, k, gain):
    """Expected DCG@k under random tie-breaking, and the ideal DCG@k, per
    list."""
    dtype = weights.dtype
    valid = weights > 0
    item_gains = gains(labels, valid, gain)
    order, above, tied = tied_positions(scores, valid)
    n = ops.shape(scores)[-1]
    cumulative = _cumulative_discount(n, dtype)
    limit = ops.cast(n if k is None else k, dtype)

    def discount_to(m):
        """The discounts summed over the positions 1..min(m, k)."""
        return ops.take(cumulative, ops.cast(ops.minimum(m, limit), "int32"))

    # An item tied with `tied - 1` others is at each of the positions
    # above + 1, ..., above + tied with probability 1 / tied.
    discount = (discount_to(above + tied) - discount_to(above)) / tied
    sorted_gains = ops.take_along_axis(item_gains, order, axis=-1)
    dcg = ops.sum(sorted_gains * discount, axis=-1)
    # The ideal order: by decreasing gain (padding has gain 0, at the end).
    ideal_gains = -ops.sort(-item_gains, axis=-1)
    position_discount = cumulative[1:] - cumulative[:-1]
    position_discount = ops.where(
        ops.arange(1, n + 1, dtype=dtype) <= limit, position_discount, 0.0
    )
    ideal = ops.sum(ideal_gains * position_discount, axis=-1)
    return dcg, ideal


def _check_k(k):
    return None if k is None else check_int(k, "k")


def _check_gain(gain):
    if gain not in GAINS:
        raise ValueError(
            '`gain` should be "exponential" or "linear". Received: '
            f"gain={gain!r}"
        )
    return gain


class _DiscountedGainMetric(RankingMetric):
    """DCG-type metric with ``k`` and ``gain``, named ``prefix[_at_k]``."""

    _graded_labels = True
    _prefix = None

    def __init__(
        self,
        k=None,
        gain="exponential",
        axis=-1,
        capacity=None,
        name=None,
        dtype=None,
        **kwargs,
    ):
        self.k = _check_k(k)
        self.gain = _check_gain(gain)
        if name is None:
            name = self._prefix if k is None else f"{self._prefix}_at_{k}"
        super().__init__(
            axis=axis, capacity=capacity, name=name, dtype=dtype, **kwargs
        )

    def get_config(self):
        config = super().get_config()
        config.update({"k": self.k, "gain": self.gain})
        return config


@keras.saving.register_keras_serializable(package="keras_sodeep")
class DCG(_DiscountedGainMetric):
    """Discounted cumulative gain of a list's top k.

    Graded labels ``g >= 0``; ``gain(g) = 2^g - 1`` ("exponential") or
    ``g`` ("linear"); the item at rank ``r`` counts with the discount
    ``1 / log2(1 + r)`` if ``r <= k``. Tied scores are broken at random
    and the metric takes the expected value: with ``a_i`` items scored
    strictly above item ``i`` and ``t_i`` tied with it (itself included),
    ``i`` is at each of the ranks ``a_i + 1, ..., a_i + t_i`` with
    probability ``1 / t_i``:

    ```
    D(m) = sum_{r=1}^{min(m, k)} 1 / log2(1 + r)
    DCG@k = sum_i gain(g_i) * (D(a_i + t_i) - D(a_i)) / t_i
    ```

    This is the tie handling of ``sklearn.metrics.dcg_score`` (whose gain
    is linear: the labels as given). ``result()`` is the mean over lists
    with at least one item, weighted by ``sample_weight`` (one weight per
    list) for ``axis=-1``, the plain mean over columns for ``axis=0``.
    With ``axis=0`` the lists are every sample seen since ``reset_state``
    (stored in buffers of ``capacity`` rows; beyond that, ``result()`` is
    NaN); a sample with a zero weight is left out, and positive weights
    play no further part.

    Labels < 0 are padding, as are the ``False`` entries of a mask
    (``y_true`` as a dict ``{"labels": ..., "mask": ...}``).

    Args:
        k: int or ``None``, the rank cut-off. Defaults to ``None`` (every
            item counts).
        gain: str, ``"exponential"`` (``2^g - 1``) or ``"linear"``
            (``g``). Defaults to ``"exponential"``.
        axis: int, ``-1`` (each row is a list) or ``0`` (the batch is the
            list). Defaults to ``-1``.
        capacity: int or ``None``, the number of samples stored for
            ``axis=0``. Defaults to ``None``: `default_capacity` of the
            number of columns (100,000 samples, fewer for wide outputs).
        name: str, the metric's name. Defaults to ``"dcg"``, or
            ``f"dcg_at_{k}"`` with ``k``.
        dtype: the metric's dtype. Defaults to ``None`` (float32).

    Example:

    >>> from keras_sodeep.metrics import DCG
    >>> metric = DCG(gain="linear")
    >>> metric.update_state([[3, 0, 1]], [[0.9, 0.5, 0.5]])
    >>> round(float(metric.result()), 4)
    3.5655

    In ``compile()``:

    ```python
    model.compile(optimizer="adam", loss="mse",
                  metrics=[keras_sodeep.metrics.DCG(k=10)])
    ```
    """

    _prefix = "dcg"

    def _per_list(self, labels, scores, weights):
        dcg, _ = _dcg(labels, scores, weights, self.k, self.gain)
        return dcg, ops.any(weights > 0, axis=-1)


@keras.saving.register_keras_serializable(package="keras_sodeep")
class NDCG(_DiscountedGainMetric):
    """Normalized discounted cumulative gain of a list's top k.

    `DCG` (tie-correct: the expected value under random tie-breaking)
    over the ideal DCG, that of the items sorted by their labels:

    ```
    NDCG@k = DCG@k / IDCG@k
    IDCG@k = sum_{r=1}^{k} gain(g_(r)) / log2(1 + r),  g_(1) >= g_(2) >= ...
    ```

    with ``gain(g) = 2^g - 1`` ("exponential") or ``g`` ("linear") for the
    graded labels ``g >= 0``. Equals ``sklearn.metrics.ndcg_score`` (gain
    ``2^g - 1``: pass it as ``y_true``) on lists with a positive gain.
    ``result()`` is the mean over lists with ``IDCG@k > 0`` (sklearn and
    keras-rs count the others as 0), weighted by ``sample_weight`` (one
    weight per list) for ``axis=-1``, the plain mean over columns for
    ``axis=0``; with no such list it is 0. With ``axis=0`` the lists are
    every sample seen since ``reset_state`` (stored in buffers of
    ``capacity`` rows; beyond that, ``result()`` is NaN); a sample with a
    zero weight is left out, and positive weights play no further part.

    Labels < 0 are padding, as are the ``False`` entries of a mask
    (``y_true`` as a dict ``{"labels": ..., "mask": ...}``).

    Args:
        k: int or ``None``, the rank cut-off. Defaults to ``None`` (every
            item counts).
        gain: str, ``"exponential"`` (``2^g - 1``) or ``"linear"``
            (``g``). Defaults to ``"exponential"``.
        axis: int, ``-1`` (each row is a list) or ``0`` (the batch is the
            list). Defaults to ``-1``.
        capacity: int or ``None``, the number of samples stored for
            ``axis=0``. Defaults to ``None``: `default_capacity` of the
            number of columns (100,000 samples, fewer for wide outputs).
        name: str, the metric's name. Defaults to ``"ndcg"``, or
            ``f"ndcg_at_{k}"`` with ``k``.
        dtype: the metric's dtype. Defaults to ``None`` (float32).

    Example:

    >>> from keras_sodeep.metrics import NDCG
    >>> metric = NDCG(k=2)
    >>> metric.update_state([[3, 0, 1], [0, 0, 0]],
    ...                     [[0.1, 0.5, 0.9], [0.1, 0.2, 0.3]])
    >>> round(float(metric.result()), 4)
    0.131

    In ``compile()``:

    ```python
    model.compile(optimizer="adam", loss="mse",
                  metrics=[keras_sodeep.metrics.NDCG(k=10)])
    ```
    """

    _prefix = "ndcg"

    def _per_list(self, labels, scores, weights):
        dcg, ideal = _dcg(labels, scores, weights, self.k, self.gain)
        return ops.divide_no_nan(dcg, ideal), ideal > 0
