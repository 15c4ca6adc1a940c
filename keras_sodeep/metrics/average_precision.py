"""Mean average precision, exact and tie-correct."""

import keras
from keras import ops

from keras_sodeep.metrics.base import RankingMetric, sums_above
from keras_sodeep.ranking import sorted_tie_groups


def average_precision(labels, scores, weights):
    """Tie-correct (weighted) average precision, per last-axis list."""
    valid = weights > 0
    relevant = ops.cast(ops.logical_and(labels > 0, valid), weights.dtype)
    order, first, end = sorted_tie_groups(scores)
    w = ops.take_along_axis(weights, order, axis=-1)
    hits = w * ops.take_along_axis(relevant, order, axis=-1)
    _, seen = sums_above(w, first, end)
    _, found = sums_above(hits, first, end)
    positives = ops.sum(hits, axis=-1)
    ap = ops.divide_no_nan(
        ops.sum(hits * ops.divide_no_nan(found, seen), axis=-1), positives
    )
    return ap, positives > 0


@keras.saving.register_keras_serializable(package="keras_sodeep")
class MeanAveragePrecision(RankingMetric):
    """Mean average precision, exact and tie-correct.

    Items with a label > 0 are relevant (P). Over the distinct score
    thresholds ``t`` of a list, from the highest, with ``w`` the items'
    weights:

    ```
    AP = (1 / sum_{i in P} w_i) * sum_{i in P} w_i * precision(s_i)
    precision(t) = sum_{j in P, s_j >= t} w_j / sum_{j : s_j >= t} w_j
    ```

    Tied scores form one threshold, as in
    ``sklearn.metrics.average_precision_score``. With ``axis=0``,
    ``result()`` equals ``average_precision_score(y, s, average="macro",
    sample_weight=w)`` over every sample seen since ``reset_state`` (stored
    in buffers of ``capacity`` rows; beyond that, ``result()`` is NaN), with
    the classes (columns) that have no positive left out. With ``axis=-1`` it
    is the mean over lists (rows) with at least one relevant item of each
    list's AP, weighted by ``sample_weight`` (one weight per list). With no
    list that has a relevant item, ``result()`` is 0.

    Labels < 0 are padding, as are the ``False`` entries of a mask
    (``y_true`` as a dict ``{"labels": ..., "mask": ...}``); samples with a
    zero (or negative) weight are left out.

    Args:
        axis: int, the axis along which items are ranked: ``0`` (the batch is
            the list, one list per class column) or ``-1`` (each row is a
            list). Defaults to ``0``.
        capacity: int or ``None``, the number of samples stored for
            ``axis=0``. Defaults to ``None``: `default_capacity` of the
            number of columns (100,000 samples, fewer for wide outputs).
        name: str, the metric's name. Defaults to ``"map"``.
        dtype: the metric's dtype. Defaults to ``None`` (float32).

    Example:

    >>> from keras_sodeep.metrics import MeanAveragePrecision
    >>> metric = MeanAveragePrecision(axis=-1)
    >>> metric.update_state([[1, 0, 1, 0]], [[0.9, 0.8, 0.4, 0.1]])
    >>> round(float(metric.result()), 4)
    0.8333

    In ``compile()``:

    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[keras_sodeep.metrics.MeanAveragePrecision()])
    ```
    """

    _graded_labels = True

    def __init__(self, axis=0, capacity=None, name="map", dtype=None, **kwargs):
        super().__init__(
            axis=axis, capacity=capacity, name=name, dtype=dtype, **kwargs
        )

    def _per_list(self, labels, scores, weights):
        return average_precision(labels, scores, weights)
