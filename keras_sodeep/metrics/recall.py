"""Top-k metrics and the first relevant item.

Recall (the share of the relevant items in the top k), precision (the
share of the top k that is relevant), hit rate (whether some relevant
item is in the top k) and the reciprocal rank of the first relevant item.
"""

import keras
from keras import ops

from keras_sodeep._checks import check_int
from keras_sodeep.metrics.base import (
    RankingMetric,
    sums_above,
    tied_positions,
)
from keras_sodeep.ranking import sorted_tie_groups


def _in_top_k(labels, scores, weights, k):
    """``(order, p, relevant)``: each sorted item's probability of being in
    the top k under random tie-breaking, and its relevance (sorted)."""
    valid = weights > 0
    relevant = ops.cast(ops.logical_and(labels > 0, valid), weights.dtype)
    order, above, tied = tied_positions(scores, valid)
    share = ops.clip((k - above) / tied, 0.0, 1.0)
    return order, share, ops.take_along_axis(relevant, order, axis=-1)


def _recall_at_k(labels, scores, weights, k):
    """Expected recall in the top k under random tie-breaking, per list."""
    order, share, relevant = _in_top_k(labels, scores, weights, k)
    hits = ops.take_along_axis(weights, order, axis=-1) * relevant
    positives = ops.sum(hits, axis=-1)
    recall = ops.divide_no_nan(ops.sum(hits * share, axis=-1), positives)
    return recall, positives > 0


def _precision_at_k(labels, scores, weights, k):
    """Expected precision in the top k under random tie-breaking, per
    list: over ``min(k, m)``, ``m`` the items that take part."""
    _, share, relevant = _in_top_k(labels, scores, weights, k)
    size = ops.sum(ops.cast(weights > 0, weights.dtype), axis=-1)
    found = ops.sum(relevant * share, axis=-1)
    return ops.divide_no_nan(found, ops.minimum(size, k)), size > 0


class _TopKMetric(RankingMetric):
    """A metric of the top ``k`` items, named ``f"{_prefix}_at_{k}"``."""

    _graded_labels = True
    _prefix = None

    def __init__(
        self, k, axis=-1, capacity=None, name=None, dtype=None, **kwargs
    ):
        self.k = check_int(k, "k")
        super().__init__(
            axis=axis,
            capacity=capacity,
            name=f"{self._prefix}_at_{self.k}" if name is None else name,
            dtype=dtype,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        config["k"] = self.k
        return config


@keras.saving.register_keras_serializable(package="keras_sodeep")
class RecallAtK(_TopKMetric):
    """Recall at k: the share of a list's relevant items found in its top k.

    See `HitRateAtK` for the other meaning of "Recall@k" in retrieval.

    Items with a label > 0 are relevant (P). Tied scores are broken at
    random, and the metric takes the expected value: an item with ``a``
    items scored strictly above it and ``g`` items (itself included) tied
    with it is in the top k with probability ``p``:

    ```
    p_i = clip((k - a_i) / g_i, 0, 1)
    recall@k = sum_{i in P} w_i p_i / sum_{i in P} w_i
    ```

    ``result()`` is the mean over lists with at least one relevant item,
    weighted by ``sample_weight`` (one weight per list) for ``axis=-1``, the
    plain mean over columns for ``axis=0``; with no such list it is 0. With
    ``axis=0`` the lists are every sample seen since ``reset_state`` (stored
    in buffers of ``capacity`` rows; beyond that, ``result()`` is NaN) and
    ``sample_weight`` gives the samples' ``w_i`` (a zero weight leaves the
    sample out; ``a`` and ``g`` count samples). Otherwise ``w_i = 1``.

    Labels < 0 are padding, as are the ``False`` entries of a mask
    (``y_true`` as a dict ``{"labels": ..., "mask": ...}``).

    Args:
        k: int, the number of top items that count as retrieved.
        axis: int, the axis along which items are ranked: ``-1`` (each row
            is a list) or ``0`` (the batch is the list). Defaults to ``-1``.
        capacity: int or ``None``, the number of samples stored for
            ``axis=0``. Defaults to ``None``: `default_capacity` of the
            number of columns (100,000 samples, fewer for wide outputs).
        name: str, the metric's name. Defaults to ``f"recall_at_{k}"``.
        dtype: the metric's dtype. Defaults to ``None`` (float32).

    Example:

    >>> from keras_sodeep.metrics import RecallAtK
    >>> metric = RecallAtK(k=2)
    >>> metric.update_state([[1, 0, 1, 0]], [[0.9, 0.5, 0.5, 0.1]])
    >>> float(metric.result())
    0.75

    In ``compile()``:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[keras_sodeep.metrics.RecallAtK(k=5)])
    ```

    Not to be confused with the hit rate (a list counts when *some*
    relevant item is in its top k), which `HitRateAtK`,
    ``keras_sodeep.losses.RecallAtKLoss`` and
    ``keras_sodeep.retrieval.recall_at_k`` measure.
    """

    _prefix = "recall"

    def _per_list(self, labels, scores, weights):
        return _recall_at_k(labels, scores, weights, float(self.k))


def _first_relevant(labels, scores, weights, length):
    """Where the first relevant item lands under random tie-breaking.

    With ``a`` items strictly above the best relevant item and ``t`` items
    tied with it, ``p`` of them relevant, the first relevant item lands at
    ``a + J``, ``J`` its position in a random order of the tie:

    ```
    P(J > m) = C(t - p, m) / C(t, m) = prod_{i < m} (t - p - i) / (t - i)
    ```

    Returns ``a``, ``P(J > m)`` for ``m = 0..length`` (last axis) and
    whether the list has a relevant item.
    """
    dtype = weights.dtype
    valid = weights > 0
    relevant = ops.cast(ops.logical_and(labels > 0, valid), dtype)
    order, first, end = sorted_tie_groups(scores)
    counts = ops.take_along_axis(ops.cast(valid, dtype), order, -1)
    hits = ops.take_along_axis(relevant, order, axis=-1)
    above, at_or_above = sums_above(counts, first, end)
    _, found = sums_above(hits, first, end)
    best = ops.expand_dims(ops.argmax(hits, axis=-1), -1)

    def at_best(x):
        return ops.squeeze(ops.take_along_axis(x, best, axis=-1), -1)

    before, tied = at_best(above), at_best(at_or_above - above)
    tied_negatives = tied - at_best(found)
    i = ops.arange(length, dtype=dtype)
    ratio = ops.relu(ops.expand_dims(tied_negatives, -1) - i) / ops.maximum(
        ops.expand_dims(tied, -1) - i, 1.0
    )
    miss = ops.concatenate(
        [ops.ones_like(ratio[..., :1]), ops.cumprod(ratio, axis=-1)], axis=-1
    )
    return before, miss, ops.sum(relevant, axis=-1) > 0


def _hit_rate_at_k(labels, scores, weights, k):
    """Expected hit rate in the top k under random tie-breaking, per list:
    ``1 - P(J > k - a)`` (see `_first_relevant`)."""
    before, miss, has_relevant = _first_relevant(labels, scores, weights, k)
    m = ops.cast(ops.clip(k - before, 0, k), "int32")
    p_miss = ops.squeeze(
        ops.take_along_axis(miss, ops.expand_dims(m, -1), axis=-1), -1
    )
    return ops.where(has_relevant, 1.0 - p_miss, 0.0), has_relevant


def _reciprocal_rank(labels, scores, weights):
    """Expected reciprocal rank of the first relevant item under random
    tie-breaking, per list: ``sum_j P(J = j) / (a + j)`` (see
    `_first_relevant`)."""
    n = ops.shape(scores)[-1]
    before, miss, has_relevant = _first_relevant(labels, scores, weights, n)
    landing = miss[..., :-1] - miss[..., 1:]  # P(J = j), j = 1..n
    j = ops.arange(1, n + 1, dtype=weights.dtype)
    rr = ops.sum(landing / (ops.expand_dims(before, -1) + j), axis=-1)
    return ops.where(has_relevant, rr, 0.0), has_relevant


@keras.saving.register_keras_serializable(package="keras_sodeep")
class HitRateAtK(_TopKMetric):
    """Hit rate at k: whether some relevant item of a list is in its top k.

    The retrieval meaning of "Recall@k" (``keras_sodeep.retrieval.
    recall_at_k``, ``keras_sodeep.losses.RecallAtKLoss``); `RecallAtK` is
    the share of the relevant items instead. Tied scores are broken at
    random and the metric takes the expected value: with ``a`` items
    strictly above the best relevant item and ``t`` items (itself
    included) tied with it, ``p`` of them relevant,

    ```
    hit@k = 1 - C(t - p, k - a) / C(t, k - a)      (1 if k - a >= t - p + 1,
                                                    0 if k <= a)
    ```

    ``result()`` is the mean over lists with at least one relevant item,
    weighted by ``sample_weight`` (one weight per list) for ``axis=-1``,
    the plain mean over columns for ``axis=0``; with no such list it is 0.
    With ``axis=0`` the lists are every sample seen since ``reset_state``
    (stored in buffers of ``capacity`` rows; beyond that, ``result()`` is
    NaN); a sample with a zero weight is left out, and positive weights
    play no further part (a hit is all or nothing).

    Labels < 0 are padding, as are the ``False`` entries of a mask
    (``y_true`` as a dict ``{"labels": ..., "mask": ...}``).

    Args:
        k: int, the number of top items that count as retrieved.
        axis: int, ``-1`` (each row is a list) or ``0`` (the batch is the
            list). Defaults to ``-1``.
        capacity: int or ``None``, the number of samples stored for
            ``axis=0``. Defaults to ``None``: `default_capacity` of the
            number of columns (100,000 samples, fewer for wide outputs).
        name: str, the metric's name. Defaults to ``f"hit_rate_at_{k}"``.
        dtype: the metric's dtype. Defaults to ``None`` (float32).

    Example:

    >>> from keras_sodeep.metrics import HitRateAtK
    >>> metric = HitRateAtK(k=2)
    >>> metric.update_state([[1, 0, 1, 0], [0, 0, 0, 1]],
    ...                     [[0.9, 0.5, 0.5, 0.1], [0.9, 0.5, 0.5, 0.1]])
    >>> float(metric.result())
    0.5

    In ``compile()``, beside the loss of the same meaning:

    ```python
    model.compile(optimizer="adam", loss=keras_sodeep.losses.RecallAtKLoss(),
                  metrics=[keras_sodeep.metrics.HitRateAtK(k=5)])
    ```
    """

    _prefix = "hit_rate"

    def _per_list(self, labels, scores, weights):
        return _hit_rate_at_k(labels, scores, weights, self.k)


@keras.saving.register_keras_serializable(package="keras_sodeep")
class PrecisionAtK(_TopKMetric):
    """Precision at k: the share of a list's top k that is relevant.

    Items with a label > 0 are relevant (P); ``m`` items of the list take
    part. Tied scores are broken at random, and the metric takes the
    expected value: with ``a_i`` items scored strictly above item ``i``
    and ``g_i`` tied with it (itself included),

    ```
    p_i = clip((k - a_i) / g_i, 0, 1)
    precision@k = sum_{i in P} p_i / min(k, m)
    ```

    A list shorter than k is divided by its length, as in keras-rs and
    TensorFlow Ranking: a list whose items are all relevant scores 1.
    ``result()`` is the mean over lists with at least one item (a list
    without relevant items scores 0), weighted by ``sample_weight`` (one
    weight per list) for ``axis=-1``, the plain mean over columns for
    ``axis=0``. With ``axis=0`` the lists are every sample seen since
    ``reset_state`` (stored in buffers of ``capacity`` rows; beyond that,
    ``result()`` is NaN); a sample with a zero weight is left out, and
    positive weights play no further part.

    Labels < 0 are padding, as are the ``False`` entries of a mask
    (``y_true`` as a dict ``{"labels": ..., "mask": ...}``).

    Args:
        k: int, the number of top items that count as retrieved.
        axis: int, ``-1`` (each row is a list) or ``0`` (the batch is the
            list). Defaults to ``-1``.
        capacity: int or ``None``, the number of samples stored for
            ``axis=0``. Defaults to ``None``: `default_capacity` of the
            number of columns (100,000 samples, fewer for wide outputs).
        name: str, the metric's name. Defaults to ``f"precision_at_{k}"``.
        dtype: the metric's dtype. Defaults to ``None`` (float32).

    Example:

    >>> from keras_sodeep.metrics import PrecisionAtK
    >>> metric = PrecisionAtK(k=2)
    >>> metric.update_state([[1, 0, 1, 0]], [[0.9, 0.5, 0.5, 0.1]])
    >>> float(metric.result())
    0.75

    In ``compile()``:

    ```python
    model.compile(optimizer="adam", loss="mse",
                  metrics=[keras_sodeep.metrics.PrecisionAtK(k=5)])
    ```
    """

    _prefix = "precision"

    def _per_list(self, labels, scores, weights):
        return _precision_at_k(labels, scores, weights, float(self.k))


@keras.saving.register_keras_serializable(package="keras_sodeep")
class MeanReciprocalRank(RankingMetric):
    """Mean reciprocal rank: one over the rank of a list's first relevant
    item.

    Items with a label > 0 are relevant. Tied scores are broken at random,
    and the metric takes the expected value: with ``a`` items scored
    strictly above the best relevant item and ``t`` items tied with it
    (itself included), ``p`` of them relevant, the first relevant item is
    at rank ``a + J``, ``J`` its position in a random order of the tie:

    ```
    P(J > j) = C(t - p, j) / C(t, j)
    RR = sum_{j >= 1} (P(J > j - 1) - P(J > j)) / (a + j)
    ```

    ``result()`` is the mean over lists with at least one relevant item,
    weighted by ``sample_weight`` (one weight per list) for ``axis=-1``,
    the plain mean over columns for ``axis=0``; with no such list it is 0.
    (keras-rs counts a list without relevant items as 0.) With ``axis=0``
    the lists are every sample seen since ``reset_state`` (stored in
    buffers of ``capacity`` rows; beyond that, ``result()`` is NaN); a
    sample with a zero weight is left out, and positive weights play no
    further part.

    Labels < 0 are padding, as are the ``False`` entries of a mask
    (``y_true`` as a dict ``{"labels": ..., "mask": ...}``).

    Args:
        axis: int, ``-1`` (each row is a list) or ``0`` (the batch is the
            list). Defaults to ``-1``.
        capacity: int or ``None``, the number of samples stored for
            ``axis=0``. Defaults to ``None``: `default_capacity` of the
            number of columns (100,000 samples, fewer for wide outputs).
        name: str, the metric's name. Defaults to ``"mrr"``.
        dtype: the metric's dtype. Defaults to ``None`` (float32).

    Example:

    >>> from keras_sodeep.metrics import MeanReciprocalRank
    >>> metric = MeanReciprocalRank()
    >>> metric.update_state([[0, 1, 0, 1], [0, 0, 1, 0]],
    ...                     [[0.9, 0.5, 0.5, 0.1], [0.3, 0.2, 0.1, 0.0]])
    >>> round(float(metric.result()), 4)
    0.375

    In ``compile()``:

    ```python
    model.compile(optimizer="adam", loss="mse",
                  metrics=[keras_sodeep.metrics.MeanReciprocalRank()])
    ```
    """

    _graded_labels = True

    def __init__(
        self, axis=-1, capacity=None, name="mrr", dtype=None, **kwargs
    ):
        super().__init__(
            axis=axis, capacity=capacity, name=name, dtype=dtype, **kwargs
        )

    def _per_list(self, labels, scores, weights):
        return _reciprocal_rank(labels, scores, weights)
