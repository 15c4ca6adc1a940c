"""Exact, streaming, tie-correct ranking metrics.

Every metric ranks items along ``axis``:

- ``axis=-1``: each row of ``y_pred`` is a list (one query per row). The
  metric keeps a running, weighted sum of per-list values, so its result is
  the weighted mean over every list seen since ``reset_state``.
- ``axis=0``: the batch is the list (one list per column of a ``(B, C)``
  output, or a single list for ``(B,)`` / ``(B, 1)``). Ranking metrics over
  the batch axis do not decompose over batches, so the metric stores every
  sample it sees in fixed-capacity buffers and computes the exact value over
  all of them in ``result()``. When more than ``capacity`` samples arrive
  before ``reset_state``, ``result()`` returns NaN: it is never silently
  wrong. ``result()`` sorts only the filled part of the buffers, rounded up
  to 4096 x 8^j rows (or to ``capacity``), so its cost follows the number of
  samples seen, not ``capacity``.

Shared conventions: ranks are descending (see ``keras_sodeep.ranking``); a
metric never depends on the order of tied scores; ``y_true`` may be a dict
``{"labels": ..., "mask": ...}`` whose ``False`` mask entries take no part in
anything; for relevance grades (mAP, Recall@k), labels < 0 are padding too.
A NaN score or label among the items of a list makes that list's value NaN.

Distribution: under a ``tf.distribute`` strategy with several replicas
(``MirroredStrategy``, ...), each replica sees its shard of the global
batch. ``update_state`` then combines the replicas inside the step: the
running sums (``axis=-1``) are summed over the replicas and the samples
(``axis=0``) are gathered from all of them, so every replica holds the
state that one device would hold after the same global batches, and
``result()`` is the single-device value (up to float rounding), inside the
step and after it. The state variables aggregate as ``"only_first_replica"``:
they are read from one replica, never summed. The cost: each replica stores
and sorts every sample (``axis=0``).
"""

import numbers

import keras
from keras import ops

from keras_sodeep.ranking import exact_rank

_AXES = (0, -1)


def _replica_context():
    """The ``tf.distribute`` replica context of a step run on several
    replicas, else ``None`` (one device, the JAX backend, or code outside a
    replicated step)."""
    if keras.backend.backend() != "tensorflow":
        return None
    # Imported here: the package needs TensorFlow only for `tf.distribute`.
    import tensorflow as tf

    if not tf.distribute.has_strategy():
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def _sorted_tie_groups(scores):
    """Orders each last-axis list by decreasing score, with its tie groups.

    Returns ``order`` (the sorting permutation) and, for each sorted
    position, ``first`` and ``end``: the sorted positions where its tie group
    starts and ends (exclusive). Nothing here depends on how the sort breaks
    ties.
    """
    n = ops.shape(scores)[-1]
    positions = ops.broadcast_to(
        ops.arange(n, dtype="int32"), ops.shape(scores)
    )
    order = ops.cast(ops.argsort(-scores, axis=-1), "int32")
    values = ops.take_along_axis(scores, order, axis=-1)
    starts = ops.concatenate(
        [
            ops.ones_like(values[..., :1], dtype="bool"),
            ops.not_equal(values[..., 1:], values[..., :-1]),
        ],
        axis=-1,
    )
    group = ops.cumsum(ops.cast(starts, "int32"), axis=-1) - 1
    key = ops.where(starts, positions, positions + n)
    group_starts = ops.minimum(ops.sort(key, axis=-1), n)
    group_starts = ops.concatenate(
        [group_starts, ops.full_like(group_starts[..., :1], n)], axis=-1
    )
    first = ops.take_along_axis(group_starts, group, axis=-1)
    end = ops.take_along_axis(group_starts, group + 1, axis=-1)
    return order, first, end


def _sums_above(sorted_weights, first, end):
    """Sums of weights over items scored above (strictly, inclusively)."""
    cumulative = ops.concatenate(
        [
            ops.zeros_like(sorted_weights[..., :1]),
            ops.cumsum(sorted_weights, axis=-1),
        ],
        axis=-1,
    )
    above = ops.take_along_axis(cumulative, first, axis=-1)
    at_or_above = ops.take_along_axis(cumulative, end, axis=-1)
    return above, at_or_above


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
        high = ops.max(ops.where(valid, x, float("-inf")), axis=-1)
        low = ops.min(ops.where(valid, x, float("inf")), axis=-1)
        return high > low

    defined = ops.logical_and(spread(r), spread(s))
    rho = ops.clip(ops.divide_no_nan(cov, sd), -1.0, 1.0)
    return ops.where(defined, rho, 0.0), defined


def _average_precision(labels, scores, weights):
    """Tie-correct (weighted) average precision, per last-axis list."""
    valid = weights > 0
    relevant = ops.cast(ops.logical_and(labels > 0, valid), weights.dtype)
    order, first, end = _sorted_tie_groups(scores)
    w = ops.take_along_axis(weights, order, axis=-1)
    hits = w * ops.take_along_axis(relevant, order, axis=-1)
    _, seen = _sums_above(w, first, end)
    _, found = _sums_above(hits, first, end)
    positives = ops.sum(hits, axis=-1)
    ap = ops.divide_no_nan(
        ops.sum(hits * ops.divide_no_nan(found, seen), axis=-1), positives
    )
    return ap, positives > 0


def _recall_at_k(labels, scores, weights, k):
    """Expected recall in the top k under random tie-breaking, per list."""
    valid = weights > 0
    relevant = ops.cast(ops.logical_and(labels > 0, valid), weights.dtype)
    order, first, end = _sorted_tie_groups(scores)
    counts = ops.take_along_axis(ops.cast(valid, weights.dtype), order, -1)
    above, at_or_above = _sums_above(counts, first, end)
    tied = ops.maximum(at_or_above - above, 1.0)
    share = ops.clip((k - above) / tied, 0.0, 1.0)
    hits = ops.take_along_axis(weights * relevant, order, axis=-1)
    positives = ops.sum(hits, axis=-1)
    recall = ops.divide_no_nan(ops.sum(hits * share, axis=-1), positives)
    return recall, positives > 0


def _to_numeric_tensor(x, name):
    try:
        x = ops.convert_to_tensor(x)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"`{name}` should be a numeric tensor. Received: {name}={x!r}"
        ) from error
    dtype = keras.backend.standardize_dtype(x.dtype)
    if not (
        keras.backend.is_float_dtype(dtype)
        or keras.backend.is_int_dtype(dtype)
        or dtype == "bool"
    ):
        raise ValueError(
            f"`{name}` should be a numeric tensor. Received: {name} of "
            f"dtype {dtype}"
        )
    return x


def _same_shape(a, b):
    if len(a) != len(b):
        return False
    return all(x is None or y is None or x == y for x, y in zip(a, b))


class _RankingMetric(keras.metrics.Metric):
    """Shared base: input checks, masks, the running sums and the buffers.

    A subclass sets ``_graded_labels`` (whether labels < 0 are padding) and
    implements ``_per_list(labels, scores, weights)``, the formula over the
    last axis of ``(L, n)`` tensors: ``weights`` are the items' non-negative
    weights, zero (with label and score 0) for items that take no part. It
    returns the per-list values and a boolean telling which lists have a
    defined value.
    """

    _graded_labels = False

    def __init__(self, axis=0, capacity=100_000, name=None, dtype=None, **kw):
        super().__init__(name=name, dtype=dtype, **kw)
        if isinstance(axis, bool) or axis not in _AXES:
            raise ValueError(
                "`axis` should be 0 (the batch is the list) or -1 (each row "
                f"is a list). Received: axis={axis!r}"
            )
        if (
            isinstance(capacity, bool)
            or not isinstance(capacity, numbers.Integral)
            or capacity < 1
        ):
            raise ValueError(
                "`capacity` should be a positive int. "
                f"Received: capacity={capacity!r}"
            )
        self.axis = int(axis)
        self.capacity = int(capacity)
        self._direction = "up"
        self._num_columns = None
        if self.axis == -1:
            self.total = self._add_state((), "total")
            self.total_weight = self._add_state((), "total_weight")

    def _add_state(self, shape, name):
        # Every replica holds the whole state (see the module docstring):
        # read it from one replica, never sum it.
        return self.add_variable(
            shape=shape,
            initializer="zeros",
            dtype=self.dtype,
            aggregation="only_first_replica",
            name=name,
        )

    def _build_buffers(self, num_columns):
        shape = (self.capacity, num_columns)
        self._num_columns = num_columns
        self.labels_seen = self._add_state(shape, "labels")
        self.scores_seen = self._add_state(shape, "scores")
        self.weights_seen = self._add_state(shape, "weights")
        self.count = self._add_state((), "count")

    def _per_list(self, labels, scores, weights):
        raise NotImplementedError

    def _standardize(self, y_true, y_pred, sample_weight):
        """Checks the inputs; returns (L, n)-shaped labels, scores, weights
        (axis=-1) or (B, C)-shaped ones (axis=0)."""
        mask = None
        if isinstance(y_true, dict):
            unknown = set(y_true) - {"labels", "mask"}
            if "labels" not in y_true or unknown:
                raise ValueError(
                    "A dict `y_true` should have the keys 'labels' and "
                    f"optionally 'mask'. Received keys: {sorted(y_true)}"
                )
            mask = y_true.get("mask")
            y_true = y_true["labels"]
        y_true = _to_numeric_tensor(y_true, "y_true")
        y_pred = _to_numeric_tensor(y_pred, "y_pred")
        if mask is not None:
            mask = ops.cast(_to_numeric_tensor(mask, "mask"), "bool")
            if not _same_shape(tuple(mask.shape), tuple(y_true.shape)):
                raise ValueError(
                    "`mask` should have the shape of the labels. Received: "
                    f"mask.shape={tuple(mask.shape)}, "
                    f"labels.shape={tuple(y_true.shape)}"
                )
        # A (B,) target against a (B, 1) output, or the other way round.
        if len(y_true.shape) + 1 == len(y_pred.shape) == 2:
            if y_pred.shape[-1] == 1:
                y_true = ops.expand_dims(y_true, -1)
                mask = None if mask is None else ops.expand_dims(mask, -1)
        elif len(y_pred.shape) + 1 == len(y_true.shape) == 2:
            if y_true.shape[-1] == 1:
                y_pred = ops.expand_dims(y_pred, -1)
        for name, x in (("y_true", y_true), ("y_pred", y_pred)):
            if len(x.shape) not in (1, 2):
                raise ValueError(
                    f"`{name}` should have rank 1 or 2 (a list, or a batch "
                    f"of lists). Received: {name}.shape={tuple(x.shape)}"
                )
        if not _same_shape(tuple(y_true.shape), tuple(y_pred.shape)):
            raise ValueError(
                "`y_true` and `y_pred` should have the same shape. Received: "
                f"y_true.shape={tuple(y_true.shape)}, "
                f"y_pred.shape={tuple(y_pred.shape)}"
            )
        if len(y_pred.shape) == 1:
            # One list: the batch (axis=0) or the only row (axis=-1).
            new_axis = -1 if self.axis == 0 else 0
            y_true = ops.expand_dims(y_true, new_axis)
            y_pred = ops.expand_dims(y_pred, new_axis)
            if mask is not None:
                mask = ops.expand_dims(mask, new_axis)
        labels = ops.cast(y_true, self.dtype)
        scores = ops.cast(y_pred, self.dtype)
        valid = ops.ones_like(labels, dtype="bool") if mask is None else mask
        if self._graded_labels:
            valid = ops.logical_and(valid, labels >= 0)
        num_weights = ops.shape(scores)[0]
        if sample_weight is None:
            sample_weight = ops.ones((num_weights,), dtype=self.dtype)
        else:
            sample_weight = ops.cast(
                _to_numeric_tensor(sample_weight, "sample_weight"), self.dtype
            )
            shape = tuple(sample_weight.shape)
            if len(shape) == 2 and shape[-1] == 1:
                sample_weight = ops.squeeze(sample_weight, -1)
            if len(sample_weight.shape) == 0:
                sample_weight = ops.broadcast_to(sample_weight, (num_weights,))
            what = "sample" if self.axis == 0 else "list"
            if len(sample_weight.shape) != 1 or not _same_shape(
                tuple(sample_weight.shape), (scores.shape[0],)
            ):
                raise ValueError(
                    f"`sample_weight` should hold one weight per {what}: "
                    "a scalar or a tensor of shape (B,) or (B, 1). Received: "
                    f"sample_weight.shape={shape}, "
                    f"y_pred.shape={tuple(y_pred.shape)}"
                )
        return labels, scores, valid, sample_weight

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Accumulates the lists of a batch.

        Args:
            y_true: labels, or a dict ``{"labels": ..., "mask": ...}``.
            y_pred: scores, of the shape of the labels.
            sample_weight: optional weights, one per list (``axis=-1``) or
                one per sample (``axis=0``).
        """
        labels, scores, valid, sample_weight = self._standardize(
            y_true, y_pred, sample_weight
        )
        if self.axis == -1:
            weights = ops.cast(valid, self.dtype)
            values, defined = self._values(labels, scores, weights)
            counted = ops.logical_and(defined, sample_weight > 0)
            list_weight = ops.where(counted, sample_weight, 0.0)
            values = ops.where(counted, values, 0.0)
            sums = ops.stack(
                [ops.sum(list_weight * values), ops.sum(list_weight)]
            )
            context = _replica_context()
            if context is not None:
                sums = context.all_reduce("sum", sums)
            self.total.assign_add(sums[0])
            self.total_weight.assign_add(sums[1])
            return
        num_columns = scores.shape[-1]
        if num_columns is None:
            raise ValueError(
                "With `axis=0`, the last dimension of `y_pred` should be "
                f"known. Received: y_pred.shape={tuple(scores.shape)}"
            )
        if self._num_columns is None:
            self._build_buffers(num_columns)
        elif num_columns != self._num_columns:
            raise ValueError(
                f"`y_pred` should have {self._num_columns} columns, as in "
                "the batches seen before. Received: "
                f"y_pred.shape={tuple(scores.shape)}"
            )
        weights = ops.where(valid, sample_weight[:, None], 0.0)
        context = _replica_context()
        if context is not None:
            # Every replica stores the samples of all the replicas.
            labels, scores, weights = context.all_gather(
                (labels, scores, weights), axis=0
            )
        batch_size = ops.cast(ops.shape(scores)[0], self.dtype)
        # Rows beyond `capacity` cannot be stored: `count` then exceeds
        # `capacity` and `result()` is NaN, whatever was written.
        labels = labels[: self.capacity]
        scores = scores[: self.capacity]
        weights = weights[: self.capacity]
        stored = ops.shape(scores)[0]
        start = ops.minimum(
            ops.cast(self.count, "int32"), self.capacity - stored
        )
        start = [ops.maximum(start, 0), 0]
        for variable, value in (
            (self.labels_seen, labels),
            (self.scores_seen, scores),
            (self.weights_seen, weights),
        ):
            variable.assign(ops.slice_update(variable.value, start, value))
        self.count.assign_add(batch_size)

    def _values(self, labels, scores, weights):
        """Per-list values; a NaN among a list's items makes it NaN."""
        counted = weights > 0
        is_nan = ops.logical_or(ops.isnan(labels), ops.isnan(scores))
        has_nan = ops.any(ops.logical_and(counted, is_nan), axis=-1)
        # Items that take no part (and NaNs) get neutral, finite values so
        # that sorting stays well defined; their weight is zero.
        keep = ops.logical_and(counted, ops.logical_not(is_nan))
        weights = ops.where(keep, weights, 0.0)
        values, defined = self._per_list(
            ops.where(keep, labels, 0.0), ops.where(keep, scores, 0.0), weights
        )
        values = ops.where(has_nan, float("nan"), values)
        return values, ops.logical_or(defined, has_nan)

    def _buffer_sizes(self):
        sizes, size = [], 4096
        while size < self.capacity:
            sizes.append(size)
            size *= 8
        return sizes + [self.capacity]

    def result(self):
        if self.axis == -1:
            return ops.divide_no_nan(self.total, self.total_weight)
        if self._num_columns is None:
            return ops.zeros((), dtype=self.dtype)
        sizes = self._buffer_sizes()

        def branch(size):
            def column_mean(labels, scores, weights):
                values, defined = self._values(
                    ops.transpose(labels[:size]),
                    ops.transpose(scores[:size]),
                    ops.transpose(weights[:size]),
                )
                values = ops.where(defined, values, 0.0)
                num_defined = ops.sum(ops.cast(defined, self.dtype))
                return ops.divide_no_nan(ops.sum(values), num_defined)

            return column_mean

        count = ops.convert_to_tensor(self.count)
        index = ops.sum(
            ops.cast(
                ops.greater(count, ops.array(sizes[:-1], self.dtype)), "int32"
            )
        )
        value = ops.switch(
            index,
            [branch(size) for size in sizes],
            ops.convert_to_tensor(self.labels_seen),
            ops.convert_to_tensor(self.scores_seen),
            ops.convert_to_tensor(self.weights_seen),
        )
        return ops.where(count > self.capacity, float("nan"), value)

    def reset_state(self):
        """Forgets every list seen (and empties the buffers)."""
        for variable in self.variables:
            variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "capacity": self.capacity})
        return config


@keras.saving.register_keras_serializable(package="keras_sodeep")
class SpearmanCorrelation(_RankingMetric):
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

    Args:
        axis: int, the axis along which items are ranked: ``0`` (the batch is
            the list) or ``-1`` (each row is a list). Defaults to ``0``.
        capacity: int, the number of samples stored for ``axis=0``.
            Defaults to ``100_000``.
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
        self, axis=0, capacity=100_000, name="spearman", dtype=None, **kwargs
    ):
        super().__init__(
            axis=axis, capacity=capacity, name=name, dtype=dtype, **kwargs
        )

    def _per_list(self, labels, scores, weights):
        return _spearman(labels, scores, weights)


@keras.saving.register_keras_serializable(package="keras_sodeep")
class MeanAveragePrecision(_RankingMetric):
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
        capacity: int, the number of samples stored for ``axis=0``.
            Defaults to ``100_000``.
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

    def __init__(
        self, axis=0, capacity=100_000, name="map", dtype=None, **kwargs
    ):
        super().__init__(
            axis=axis, capacity=capacity, name=name, dtype=dtype, **kwargs
        )

    def _per_list(self, labels, scores, weights):
        return _average_precision(labels, scores, weights)


@keras.saving.register_keras_serializable(package="keras_sodeep")
class RecallAtK(_RankingMetric):
    """Recall at k: the share of a list's relevant items found in its top k.

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
        capacity: int, the number of samples stored for ``axis=0``.
            Defaults to ``100_000``.
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
    model.compile(optimizer="adam", loss=keras_sodeep.losses.RecallAtKLoss(),
                  metrics=[keras_sodeep.metrics.RecallAtK(k=5)])
    ```
    """

    _graded_labels = True

    def __init__(
        self, k, axis=-1, capacity=100_000, name=None, dtype=None, **kwargs
    ):
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"`k` should be a positive int. Received: k={k!r}")
        self.k = int(k)
        super().__init__(
            axis=axis,
            capacity=capacity,
            name=f"recall_at_{self.k}" if name is None else name,
            dtype=dtype,
            **kwargs,
        )

    def _per_list(self, labels, scores, weights):
        return _recall_at_k(labels, scores, weights, float(self.k))

    def get_config(self):
        config = super().get_config()
        config["k"] = self.k
        return config
