"""Spearman's rank correlation, exact and streaming."""

import keras
from keras import ops

from keras_sodeep.metrics.base import RankingMetric
from keras_sodeep.ranking import exact_rank


def _spearman(labels, scores, weights):
    """Weighted Pearson correlation of the exact ranks, per last-axis list."""
    valid = weights > 0
    r = exact_rank(labels, mask=valid)
    s = exact_rank(scores, mask=valid)
    total = ops.sum(weights, axis=-1, keepdims=True)
    r_mean = ops.divide_no_nan(ops.sum(weights * r, -1, keepdims=True), total)
    s_mean = ops.divide_no_nan(ops.sum(weights * s, -1, keepdims=True), total)
    dr = ops.where(valid, r - r_mean, 0.0)
    ds = ops.where(valid, s - s_mean, 0.0)
    cov = ops.sum(weights * dr * ds, axis=-1)
    sd = ops.sqrt(ops.sum(weights * dr * dr, -1)) * ops.sqrt(
        ops.sum(weights * ds * ds, -1)
    )

    def spread(x):
        # `initial`: an empty batch has lists of no item to reduce.
        inf = float("inf")
        high = ops.max(ops.where(valid, x, -inf), axis=-1, initial=-inf)
        low = ops.min(ops.where(valid, x, inf), axis=-1, initial=inf)
        return high > low

    defined = ops.logical_and(spread(r), spread(s))
    rho = ops.clip(ops.divide_no_nan(cov, sd), -1.0, 1.0)
    return ops.where(defined, rho, 0.0), defined


@keras.saving.register_keras_serializable(package="keras_sodeep")
class SpearmanCorrelation(RankingMetric):
    """Spearman's rank correlation between targets and predictions.

    The Pearson correlation of the exact, tie-averaged ranks of ``y_true`` and
    ``y_pred`` within a list, ``r`` and ``s``:

    ```
    rho = sum_i w_i (r_i - r_mean) (s_i - s_mean)
          / sqrt(sum_i w_i (r_i - r_mean)^2 * sum_i w_i (s_i - s_mean)^2)
    ```

    With ``axis=0``, ``result()`` equals ``scipy.stats.spearmanr`` over every
    sample seen since ``reset_state`` (stored in buffers of ``capacity``
    rows; beyond that, ``result()`` is NaN). For a ``(B, C)`` output it is
    the mean over the ``C`` columns of each column's Spearman. With
    ``axis=-1`` it is the weighted mean over lists (rows) of each list's
    Spearman, weighted by ``sample_weight`` (one weight per list).

    A list whose targets or predictions are all tied (or that has fewer than
    two items) has no defined correlation and is left out of the mean; with
    no defined list at all, ``result()`` is 0. Masked items (``y_true`` as a
    dict ``{"labels": ..., "mask": ...}``) take no part; labels are real
    values, so only the mask pads them. With ``axis=0``, ``sample_weight``
    has one weight per sample: a zero (or negative) weight leaves the sample
    out, positive weights weight the Pearson correlation of the ranks above,
    the ranks themselves being those of the samples with a positive weight.
    A NaN weight, like a NaN label or score, makes the result NaN (it is
    not a zero weight); with ``axis=-1`` a list's NaN weight does.

    Args:
        axis: int, the axis along which items are ranked: ``0`` (the batch is
            the list) or ``-1`` (each row is a list). Defaults to ``0``.
        capacity: int or ``None``, the number of samples stored for
            ``axis=0``. Defaults to ``None``: `default_capacity` of the
            number of columns (100,000 samples, fewer for wide outputs).
        name: str, the metric's name. Defaults to ``"spearman"``.
        dtype: the metric's dtype. Defaults to ``None`` (float32).

    Example:

    >>> from keras_sodeep.metrics import SpearmanCorrelation
    >>> metric = SpearmanCorrelation()
    >>> metric.update_state([1.0, 2.0, 3.0], [0.1, 0.3, 0.2])
    >>> metric.update_state([4.0], [0.9])
    >>> round(float(metric.result()), 4)
    0.8

    In ``compile()``:

    ```python
    model.compile(optimizer="adam", loss="mse",
                  metrics=[keras_sodeep.metrics.SpearmanCorrelation()])
    ```
    """

    def __init__(
        self, axis=0, capacity=None, name="spearman", dtype=None, **kwargs
    ):
        super().__init__(
            axis=axis, capacity=capacity, name=name, dtype=dtype, **kwargs
        )

    def _per_list(self, labels, scores, weights):
        return _spearman(labels, scores, weights)
