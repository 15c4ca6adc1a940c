"""`RankingMetric`, the base of the ranking metrics: inputs and state."""

import keras
from keras import ops

from keras_sodeep._checks import (
    as_tensor,
    check_int,
    check_list_axis,
    is_traced,
    same_shape,
    unpack_y_true,
)
from keras_sodeep.ranking import sorted_tie_groups

MAX_CAPACITY = 100_000
"""The most samples the ``axis=0`` buffers hold by default."""

BUFFER_BUDGET = 2**22
"""Floats the three ``axis=0`` buffers hold by default (16 MB in float32)."""


def default_capacity(num_columns):
    """The default ``capacity`` of an ``axis=0`` metric with ``C`` columns.

    ``MAX_CAPACITY`` samples, fewer for wide outputs, so that the three
    buffers (labels, scores, weights) hold about ``BUFFER_BUDGET`` floats,
    but at least 4,096 samples:

    ```
    capacity = min(100_000, max(4_096, 2**22 // (3 C)))
    ```

    One column: 100,000 samples (1.2 MB); 1,000 columns: 4,096 samples.
    """
    return min(MAX_CAPACITY, max(4096, BUFFER_BUDGET // (3 * num_columns)))


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


def sums_above(sorted_weights, first, end):
    """Sums of weights over items scored above (strictly, inclusively).

    For lists sorted by `keras_sodeep.ranking.sorted_tie_groups`, with
    ``first`` and ``end`` its tie groups: at each sorted position, the sum
    of ``sorted_weights`` over the items scored strictly above, and over
    those scored above or tied (itself included).
    """
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


def tied_positions(scores, valid):
    """The positions each item can take when ties are broken at random.

    Returns ``order`` (the sorting permutation of each last-axis list, by
    decreasing score) and, at each sorted position, ``above`` (the number
    of items that take part, ``valid``, scored strictly above) and
    ``tied`` (those tied with it, itself included; at least 1). Under
    uniformly random tie-breaking, an item that takes part is at each of
    the positions ``above + 1, ..., above + tied`` (1-based) with
    probability ``1 / tied``; items that take no part count nowhere.
    """
    order, first, end = sorted_tie_groups(scores)
    counts = ops.take_along_axis(ops.cast(valid, scores.dtype), order, -1)
    above, at_or_above = sums_above(counts, first, end)
    return order, above, ops.maximum(at_or_above - above, 1.0)


def _write_rows(variable, start, rows):
    """Writes ``rows`` into ``variable`` from row ``start`` on.

    On TensorFlow, ``slice_update`` of a variable's value copies the whole
    buffer (the value read aliases the variable); a sliced ``assign``
    writes the rows in place (outside ``tf.distribute``, whose variables
    slice into tensors). JAX updates donated state in place.
    """
    target = variable.value
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(target, tf.Variable) and not tf.distribute.has_strategy():
            stop = start + ops.shape(rows)[0]
            target[start:stop].assign(rows)
            return
    variable.assign(ops.slice_update(target, [start, 0], rows))


def _to_numeric_tensor(x, name):
    try:
        x = as_tensor(x)
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


class RankingMetric(keras.metrics.Metric):
    """Shared base: input checks, masks, the running sums and the buffers.

    A subclass sets ``_graded_labels`` (whether labels < 0 are padding) and
    implements ``_per_list(labels, scores, weights)``, the formula over the
    last axis of ``(L, n)`` tensors: ``weights`` are the items' non-negative
    weights, zero (with label and score 0) for items that take no part. It
    returns the per-list values and a boolean telling which lists have a
    defined value.
    """

    _graded_labels = False

    def __init__(self, axis=0, capacity=None, name=None, dtype=None, **kw):
        super().__init__(name=name, dtype=dtype, **kw)
        axis = check_list_axis(axis)
        if capacity is not None:
            capacity = check_int(capacity, "capacity")
        self.axis = int(axis)
        self.capacity = capacity
        self._capacity = capacity
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
        if self._capacity is None:
            self._capacity = default_capacity(num_columns)
        shape = (self._capacity, num_columns)
        self._num_columns = num_columns
        self.labels_seen = self._add_state(shape, "labels")
        self.scores_seen = self._add_state(shape, "scores")
        self.weights_seen = self._add_state(shape, "weights")
        self.count = self._add_state((), "count")
        # The value of `result()` inside compiled steps and the number of
        # samples it was computed from (see `result`).
        self.last_value = self._add_state((), "last_value")
        self.last_count = self._add_state((), "last_count")

    def _per_list(self, labels, scores, weights):
        raise NotImplementedError

    def _standardize(self, y_true, y_pred, sample_weight):
        """Checks the inputs; returns (L, n)-shaped labels, scores, weights
        (axis=-1) or (B, C)-shaped ones (axis=0)."""
        y_true, mask = unpack_y_true(y_true)
        y_true = _to_numeric_tensor(y_true, "y_true")
        y_pred = _to_numeric_tensor(y_pred, "y_pred")
        if mask is not None:
            mask = ops.cast(_to_numeric_tensor(mask, "mask"), "bool")
            if not same_shape(tuple(mask.shape), tuple(y_true.shape)):
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
        if not same_shape(tuple(y_true.shape), tuple(y_pred.shape)):
            raise ValueError(
                "`y_true` and `y_pred` should have the same shape. Received: "
                f"y_true.shape={tuple(y_true.shape)}, "
                f"y_pred.shape={tuple(y_pred.shape)}"
            )
        received = tuple(y_pred.shape)
        unbatched = len(received) == 1
        if unbatched:
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
            # `not <` rather than `>=`: a NaN label is not padding, it makes
            # its list NaN (see `_values`).
            valid = ops.logical_and(valid, ops.logical_not(labels < 0))
        weights = self._standardize_weights(
            sample_weight, scores, unbatched, received
        )
        if self.axis == 0 or len(weights.shape) == 1:
            return labels, scores, valid, weights
        # One weight per item (axis=-1): a weight <= 0 pads its item; the
        # list's weight is the mean weight of the items that take part.
        valid = ops.logical_and(valid, ops.logical_not(weights <= 0))
        taking_part = ops.cast(valid, self.dtype)
        list_weight = ops.divide_no_nan(
            ops.sum(ops.where(valid, weights, 0.0), axis=-1),
            ops.sum(taking_part, axis=-1),
        )
        return labels, scores, valid, list_weight

    def _standardize_weights(self, sample_weight, scores, unbatched, shape):
        """``sample_weight`` as one weight per list or sample, ``(L,)`` /
        ``(B,)``, or one per item, of the shape of ``scores``."""
        num_weights = ops.shape(scores)[0]
        if sample_weight is None:
            return ops.ones((num_weights,), dtype=self.dtype)
        sample_weight = ops.cast(
            _to_numeric_tensor(sample_weight, "sample_weight"), self.dtype
        )
        received = tuple(sample_weight.shape)
        if len(received) == 0:
            return ops.broadcast_to(sample_weight, (num_weights,))
        if unbatched and self.axis == -1 and len(received) == 1:
            # The items of the one list.
            sample_weight = ops.expand_dims(sample_weight, 0)
        if len(sample_weight.shape) == 2 and same_shape(
            tuple(sample_weight.shape), tuple(scores.shape)
        ):
            return sample_weight  # one weight per item
        if len(received) == 2 and received[-1] == 1:
            sample_weight = ops.squeeze(sample_weight, -1)
        if len(sample_weight.shape) == 1 and same_shape(
            tuple(sample_weight.shape), (scores.shape[0],)
        ):
            return sample_weight
        what = "sample" if self.axis == 0 else "list"
        raise ValueError(
            f"`sample_weight` should hold one weight per {what} (a scalar "
            "or a tensor of shape (B,) or (B, 1)) or one per item (the "
            f"shape of `y_pred`). Received: sample_weight.shape={received}, "
            f"y_pred.shape={shape}"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Accumulates the lists of a batch.

        Args:
            y_true: labels, or a dict ``{"labels": ..., "mask": ...}``.
            y_pred: scores, of the shape of the labels.
            sample_weight: optional weights: one per list (``axis=-1``)
                or per sample (``axis=0``), a scalar or of shape ``(B,)``
                or ``(B, 1)``; or one per item, of the shape of ``y_pred``,
                where a weight <= 0 pads its item (see the module
                docstring).
        """
        labels, scores, valid, sample_weight = self._standardize(
            y_true, y_pred, sample_weight
        )
        if self.axis == -1:
            weights = ops.cast(valid, self.dtype)
            values, defined = self._values(labels, scores, weights)
            # A NaN weight counts, and makes the result NaN.
            counted = ops.logical_and(
                ops.logical_or(defined, ops.isnan(sample_weight)),
                ops.logical_not(sample_weight <= 0),
            )
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
        if len(sample_weight.shape) == 1:
            # Every column of a sample shares its weight.
            sample_weight = sample_weight[:, None]
        weights = ops.where(valid, sample_weight, 0.0)
        context = _replica_context()
        if context is not None:
            # Every replica stores the samples of all the replicas. An
            # input that reaches the step unchanged has no device under
            # MultiWorkerMirroredStrategy, and all_gather needs one: the
            # copies are made on this replica's device.
            labels, scores, weights = context.all_gather(
                tuple(ops.copy(t) for t in (labels, scores, weights)), axis=0
            )
        batch_size = ops.cast(ops.shape(scores)[0], self.dtype)
        # Rows beyond `capacity` cannot be stored: `count` then exceeds
        # `capacity` and `result()` is NaN, whatever was written.
        labels = labels[: self._capacity]
        scores = scores[: self._capacity]
        weights = weights[: self._capacity]
        stored = ops.shape(scores)[0]
        start = ops.minimum(
            ops.cast(self.count, "int32"), self._capacity - stored
        )
        start = ops.maximum(start, 0)
        for variable, value in (
            (self.labels_seen, labels),
            (self.scores_seen, scores),
            (self.weights_seen, weights),
        ):
            _write_rows(variable, start, value)
        self.count.assign_add(batch_size)

    def _values(self, labels, scores, weights):
        """Per-list values; a NaN among a list's items makes it NaN (its
        label, score or weight; an item with a weight <= 0 takes no part)."""
        counted = ops.logical_not(weights <= 0)
        is_nan = ops.logical_or(ops.isnan(labels), ops.isnan(scores))
        is_nan = ops.logical_or(is_nan, ops.isnan(weights))
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
        while size < self._capacity:
            sizes.append(size)
            size *= 8
        return sizes + [self._capacity]

    def result(self):
        """The metric over everything seen since ``reset_state``.

        With ``axis=-1``, the weighted mean of the per-list values. With
        ``axis=0``, the exact value over the stored samples, from one sort
        of them. Called eagerly (as Keras does for the logs of an epoch, for
        ``evaluate``'s return value and for callbacks' epoch logs), it is
        always exact. Keras also calls it after every training step, inside
        the compiled step, for the progress bar: there it sorts the samples
        again only once their number has doubled since its last sort, and
        returns the value of that sort otherwise, so that the metric costs
        about two sorts of the epoch's samples rather than one per step.
        """
        if self.axis == -1:
            return ops.divide_no_nan(self.total, self.total_weight)
        if self._num_columns is None:
            return ops.zeros((), dtype=self.dtype)
        state = [
            ops.convert_to_tensor(v)
            for v in (
                self.count,
                self.labels_seen,
                self.scores_seen,
                self.weights_seen,
            )
        ]
        count = state[0]
        if not is_traced(count):
            return self._exact_result(*state)
        last_count = ops.convert_to_tensor(self.last_count)
        stale = ops.logical_or(
            ops.greater_equal(count, 2.0 * last_count),
            ops.less(count, last_count),
        )
        value = ops.cond(
            stale,
            lambda: self._exact_result(*state),
            lambda: ops.convert_to_tensor(self.last_value),
        )
        self.last_value.assign(value)
        self.last_count.assign(ops.where(stale, count, last_count))
        return value

    def _exact_result(self, count, labels, scores, weights):
        """The exact value from the state's tensors (a pure function)."""
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

        if not is_traced(count):
            # Eagerly the filled size is known: sort just that bucket (a
            # switch would trace its branches anew at every call on JAX).
            seen = float(ops.convert_to_numpy(count))
            size = next((s for s in sizes if seen <= s), sizes[-1])
            value = branch(size)(labels, scores, weights)
            return ops.where(count > self._capacity, float("nan"), value)
        index = ops.sum(
            ops.cast(
                ops.greater(count, ops.array(sizes[:-1], self.dtype)), "int32"
            )
        )
        value = ops.switch(
            index,
            [branch(size) for size in sizes],
            labels,
            scores,
            weights,
        )
        return ops.where(count > self._capacity, float("nan"), value)

    def reset_state(self):
        """Forgets every list seen (and empties the buffers)."""
        for variable in self.variables:
            variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "capacity": self.capacity})
        return config
