"""The loss bases: `ListwiseLoss` (inputs, masks, reduction) and
`RankingLoss` (a `ListwiseLoss` that ranks with a ranker).

`ListwiseLoss` turns ``(y_true, y_pred)`` once into lists along the last
axis, `Lists` (``labels``, ``scores`` and ``valid``, the items that take
part), and asks the concrete loss for one thing, `ListwiseLoss.compute_terms`.
It then leaves out the lists that cannot be scored and scales the values
for Keras's reduction (see ``keras_sodeep.losses`` for the conventions).
Its public methods `is_embeddings`, `standardize_weights`, `standardize`
and `loss_values` are the interface that wrappers (``CrossBatchMemory``,
``GlobalBatchLoss``) use. `RankingLoss` adds the ranker (``ranker=``) and
its default.
"""

import collections

import keras
from keras import ops

from keras_sodeep import ranking
from keras_sodeep._checks import (
    as_tensor,
    check_list_axis,
    config_repr,
    reject_ragged,
    same_shape,
    unpack_y_true,
)
from keras_sodeep.losses.embeddings import embedding_labels, embedding_lists
from keras_sodeep.presets import PresetRanker

Lists = collections.namedtuple(
    "Lists", ["labels", "scores", "valid", "per_item", "moved", "poisoned"]
)
Lists.__doc__ = """Lists along the last axis, as `ListwiseLoss.standardize`
returns them.

Fields: ``labels``, ``scores`` (float ``(..., n)``) and ``valid`` (bool
``(..., n)``, the items that take part); ``per_item`` (bool: the loss
returns one value per item, lists along ``axis=0``); ``moved`` (the axis
the lists ran along before they were moved last, or ``None``);
``poisoned`` (bool ``(...,)``: the lists with a non-finite score or a NaN
label among the items that take part, whose loss is NaN).
"""


def _raise_eagerly(bad, message):
    """Raises ``ValueError(message)`` if any of ``bad`` holds, when running
    eagerly; a no-op on symbolic tensors (inside a compiled function)."""
    try:
        found = bool(ops.any(bad))
    except Exception:  # a symbolic tensor inside a compiled function
        return
    if found:
        raise ValueError(message)


def _check_items(labels, scores, valid):
    """Finds the items that take part and hold a non-finite score or a NaN
    label: raises when running eagerly, else returns them (bool)."""
    bad_score = ops.logical_and(valid, ops.logical_not(ops.isfinite(scores)))
    _raise_eagerly(
        bad_score,
        "`y_pred` should hold finite scores at the items that take part "
        "(masked and padded items may hold anything). Received NaN or "
        "infinite values.",
    )
    bad_label = ops.logical_and(valid, ops.isnan(labels))
    _raise_eagerly(
        bad_label,
        "`y_true` should hold no NaN at the items that take part (mask "
        "them, or give relevance labels < 0 to pad). Received NaN.",
    )
    return ops.logical_or(bad_score, bad_label)


def _match_rank(x, target):
    """Squeezes a trailing size-1 axis so that `x` has the rank of target."""
    if len(x.shape) == len(target.shape) + 1 and x.shape[-1] == 1:
        return ops.squeeze(x, -1)
    if len(target.shape) == len(x.shape) + 1 and target.shape[-1] == 1:
        return ops.expand_dims(x, -1)
    return x


@keras.saving.register_keras_serializable(package="keras_sodeep")
def _is_empty(x):
    """Whether a tensor's static shape has a zero-size dimension."""
    return any(d == 0 for d in x.shape)


@keras.saving.register_keras_serializable(package="keras_sodeep")
class ListwiseLoss(keras.losses.Loss):
    """Base class of the list losses: inputs, masks, padding and reduction.

    A subclass implements `compute_terms` on lists along the last axis; the
    base class does everything else: the ``{"labels", "mask"}`` dict of
    ``y_true``, per-item ``sample_weight`` (padding in ``fit``), shape
    checks, ``axis``, embeddings, masks and the per-sample values that
    Keras reduces (see ``keras_sodeep.losses``). The loss of a list is the
    sum of its terms, averaged over the lists that can be scored:

    ```
    loss = mean over lists with list_valid of sum_i terms_i
    ```

    Losses that rank with a ranker derive from `RankingLoss`, which adds
    ``ranker=``; the losses that compute their own ranks (``SupAPLoss``,
    ``RankedListLoss``, ...) derive from this class and take no ranker.

    Wrappers and custom training loops use the public steps of
    ``__call__``: ``y_true, sample_weight = loss.standardize_weights(y_true,
    y_pred, sample_weight)`` (per-item weights as padding), ``lists =
    loss.standardize(y_true, y_pred)``, then ``loss.loss_values(lists)``;
    `is_embeddings` tells whether a batch is read as embeddings.

    Class attributes: ``relevance_labels`` (labels < 0 are padding;
    default ``True``) and ``accepts_embeddings`` (``y_pred`` of shape
    ``(B, D)`` with integer labels ``(B,)`` is a batch of embeddings;
    default ``True``).

    Args:
        axis: ``0`` (the batch is the list) or ``-1`` (each row is a list).
            Defaults to ``-1``.
        reduction, name, dtype: as for ``keras.losses.Loss``.

    Example: the share of relevant items scored below zero.

    >>> import numpy as np
    >>> from keras import ops
    >>> from keras_sodeep.losses import ListwiseLoss
    >>> class NegativeRelevant(ListwiseLoss):
    ...     def compute_terms(self, labels, scores, valid):
    ...         positive = ops.logical_and(valid, labels > 0)
    ...         num_pos = ops.sum(ops.cast(positive, scores.dtype), -1)
    ...         below = ops.logical_and(positive, scores < 0)
    ...         terms = ops.cast(below, scores.dtype)
    ...         terms = terms / ops.expand_dims(ops.maximum(num_pos, 1.0), -1)
    ...         return terms, num_pos > 0
    >>> float(NegativeRelevant()(np.array([[1.0, 1.0, 0.0]]),
    ...                          np.array([[0.5, -0.1, 2.0]])))
    0.5
    """

    relevance_labels = True
    accepts_embeddings = True

    def __init__(
        self,
        *,
        axis=-1,
        reduction="sum_over_batch_size",
        name=None,
        dtype=None,
        **kwargs,
    ):
        if "ranker" in kwargs:
            raise TypeError(
                f"{type(self).__name__} computes its own ranks and takes no "
                f"`ranker`. Received: ranker={kwargs['ranker']!r}"
            )
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} got unexpected arguments: "
                f"{sorted(kwargs)}"
            )
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.axis = check_list_axis(axis)

    def compute_terms(self, labels, scores, valid):
        """The loss of each list as a sum of terms: the one hook.

        Args:
            labels: float tensor ``(..., n)``, lists along the last axis.
            scores: float tensor ``(..., n)``.
            valid: bool tensor ``(..., n)``, the items that take part.

        Returns:
            ``(terms, list_valid)``: ``terms`` of shape ``(..., n)`` (one
            term per item; zero for invalid items) or ``(..., 1)`` for a
            loss that does not split over items (then ``axis=0`` is not
            supported); ``list_valid``, bool ``(...,)``, the lists that
            count.
        """
        raise NotImplementedError(
            f"{type(self).__name__} should implement "
            "`compute_terms(labels, scores, valid)`."
        )

    # -- inputs -----------------------------------------------------------

    def is_embeddings(self, y_true, y_pred):
        """Whether ``(y_true, y_pred)`` is read as a batch of embeddings:
        ``y_pred`` of shape ``(B, D)`` with labels ``(B,)`` or ``(B, 1)``,
        for a loss that accepts embeddings."""
        labels, _ = unpack_y_true(y_true)
        if not self.accepts_embeddings or len(y_pred.shape) != 2:
            return False
        if y_pred.shape[-1] == 1 or same_shape(labels.shape, y_pred.shape):
            return False
        label_shape = tuple(labels.shape)
        return len(label_shape) == 1 or (
            len(label_shape) == 2 and label_shape[-1] == 1
        )

    def standardize(self, y_true, y_pred, reference=None):
        """Checks the inputs; returns `Lists` along the last axis.

        Args:
            y_true: labels, or a ``{"labels", "mask"}`` dict.
            y_pred: scores, or embeddings ``(B, D)``.
            reference: optional, for embeddings: ``(unit, labels, valid)``
                of more gallery items (see
                ``keras_sodeep.losses.embeddings.embedding_lists``), such
                as a cross-batch memory.

        Returns:
            A `Lists`.
        """
        labels, mask = unpack_y_true(y_true)
        labels = as_tensor(labels, dtype=self.dtype)
        y_pred = as_tensor(y_pred, dtype=self.dtype)
        if len(y_pred.shape) == 0:
            raise ValueError(
                "`y_pred` should have at least one dimension. Received: "
                f"y_pred.shape={tuple(y_pred.shape)}"
            )
        if self.is_embeddings(labels, y_pred):
            return self._embedding_lists(labels, y_pred, mask, reference)
        original = tuple(labels.shape)
        labels = _match_rank(labels, y_pred)
        if not same_shape(labels.shape, y_pred.shape):
            raise ValueError(
                "`y_true` should have the shape of `y_pred`"
                + (
                    " (or, for embeddings, shape (B,) or (B, 1) with "
                    "`y_pred` of shape (B, D))"
                    if self.accepts_embeddings
                    else ""
                )
                + f". Received: y_true.shape={original}, "
                f"y_pred.shape={tuple(y_pred.shape)}"
            )
        if mask is not None:
            mask = _match_rank(as_tensor(mask), y_pred)
            if not same_shape(mask.shape, y_pred.shape):
                raise ValueError(
                    "`mask` should have the shape of the labels. Received: "
                    f"mask.shape={tuple(mask.shape)}, "
                    f"y_pred.shape={tuple(y_pred.shape)}"
                )
        valid = (
            ops.ones_like(y_pred, dtype="bool")
            if mask is None
            else ops.not_equal(mask, 0)
        )
        if self.relevance_labels:
            # `not <` rather than `>=`: a NaN label is not padding.
            valid = ops.logical_and(valid, ops.logical_not(labels < 0))
        bad = _check_items(labels, y_pred, valid)
        # Masked items are replaced before any arithmetic (the first `where`
        # of each `where` a loss applies later), so that whatever they hold
        # reaches neither the loss nor its gradients.
        labels = ops.where(valid, labels, 0.0)
        y_pred = ops.where(valid, y_pred, 0.0)
        if len(y_pred.shape) == 1:
            if self.axis == 0:
                # Axis 0 of a single list is its last axis: per-item values.
                return Lists(labels, y_pred, valid, True, None, ops.any(bad))
            # A single list along the last axis: one sample.
            lists = [ops.expand_dims(x, 0) for x in (labels, y_pred, valid)]
            poisoned = ops.any(ops.expand_dims(bad, 0), axis=-1)
            return Lists(*lists, False, None, poisoned)
        if self.axis == 0:
            lists = [ops.moveaxis(x, 0, -1) for x in (labels, y_pred, valid)]
            poisoned = ops.any(ops.moveaxis(bad, 0, -1), axis=-1)
            return Lists(*lists, True, 0, poisoned)
        poisoned = ops.any(bad, axis=-1)
        return Lists(labels, y_pred, valid, False, None, poisoned)

    def _embedding_lists(self, labels, embeddings, mask, reference=None):
        """`Lists` of a batch of embeddings (see `embedding_lists`)."""
        flat, sample_valid = embedding_labels(labels, mask)
        finite = ops.all(ops.isfinite(embeddings), axis=-1)
        bad = _check_items(
            flat,
            ops.where(finite, 0.0, float("nan")),
            sample_valid,
        )
        relevance, scores, valid = embedding_lists(
            labels, embeddings, mask, reference
        )
        # A bad sample is in every query's gallery: every list is NaN.
        poisoned = ops.logical_and(ops.any(bad), ops.ones_like(flat) > 0)
        return Lists(relevance, scores, valid, False, None, poisoned)

    def standardize_weights(self, y_true, y_pred, sample_weight):
        """Reads per-item ``sample_weight`` as padding plus weights.

        Returns ``(y_true, sample_weight)`` for Keras's reduction: items
        with a weight <= 0 join the mask; lists along ``axis=-1`` with one
        weight per item get the mean of their items' positive weights as
        their weight; along ``axis=0`` the weights stay per item (a
        ``(B,)`` weight spreads over the columns of a ``(B, C)`` output).
        """
        labels, mask = unpack_y_true(y_true)
        y_pred = as_tensor(y_pred)
        weights = as_tensor(sample_weight, dtype=self.dtype)
        if self.is_embeddings(as_tensor(labels), y_pred):
            return y_true, sample_weight
        rank = len(y_pred.shape)
        per_item = rank == 1 or self.axis == 0
        if per_item and rank == 2 and len(weights.shape) == 1:
            weights = ops.expand_dims(weights, -1)
        weights = _match_rank(weights, y_pred)
        if not (
            (per_item and len(weights.shape) == rank)
            or same_shape(weights.shape, y_pred.shape)
        ):
            return y_true, sample_weight
        weights = ops.broadcast_to(weights, ops.shape(y_pred))
        item_valid = weights > 0
        if mask is not None:
            mask = ops.broadcast_to(
                _match_rank(as_tensor(mask), y_pred), ops.shape(y_pred)
            )
            item_valid = ops.logical_and(item_valid, ops.not_equal(mask, 0))
        y_true = {"labels": labels, "mask": item_valid}
        if per_item:
            return y_true, ops.where(item_valid, weights, 0.0)
        count = ops.sum(ops.cast(item_valid, weights.dtype), axis=-1)
        total = ops.sum(ops.where(item_valid, weights, 0.0), axis=-1)
        return y_true, total / ops.maximum(count, 1.0)

    # -- values -----------------------------------------------------------

    def __call__(self, y_true, y_pred, sample_weight=None):
        """As ``keras.losses.Loss.__call__``, with per-item weights.

        ``sample_weight`` of the shape of ``y_pred`` (one weight per item;
        along ``axis=0`` also ``(B,)`` for a ``(B, C)`` output) pads: an
        item of weight <= 0 takes no part in any rank, as if masked. Lists
        along ``axis=-1`` then weigh the mean of their items' positive
        weights (1 for a 0/1 mask). Other shapes weigh samples as usual.
        """
        labels, mask = unpack_y_true(y_true)
        for x, name in ((labels, "y_true"), (mask, "mask"), (y_pred, "y_pred")):
            reject_ragged(x, name)
        if sample_weight is not None:
            y_true, sample_weight = self.standardize_weights(
                y_true, y_pred, sample_weight
            )
        y_pred_tensor = as_tensor(y_pred)
        if _is_empty(y_pred_tensor):
            # Nothing to rank: every reduction gives 0.
            if self.reduction in (None, "none"):
                shape = tuple(y_pred_tensor.shape)
                if self.axis == -1 and len(shape) > 1:
                    shape = shape[:-1]
                return ops.zeros(shape, dtype=self.dtype)
            return ops.zeros((), dtype=self.dtype)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        return self.loss_values(self.standardize(y_true, y_pred))

    def loss_values(self, lists):
        """Per-sample values of standardized `Lists`, scaled for Keras's
        reduction (the documented formula under the default reduction)."""
        terms, list_valid = self.compute_terms(
            lists.labels, lists.scores, lists.valid
        )
        dtype = lists.scores.dtype
        # A list with a non-finite score or a NaN label counts, and is NaN.
        poisoned = lists.poisoned
        list_valid = ops.logical_or(list_valid, poisoned)
        nan = ops.cast(float("nan"), dtype)
        valid_f = ops.cast(list_valid, dtype)
        num_lists = ops.sum(ops.ones_like(valid_f))
        factor = num_lists / ops.maximum(ops.sum(valid_f), 1.0)
        if not lists.per_item:
            list_loss = ops.sum(terms, axis=-1)
            list_loss = ops.where(list_valid, list_loss, 0.0) * factor
            return ops.where(poisoned, nan, list_loss)
        if terms.shape[-1] == 1 and lists.scores.shape[-1] != 1:
            raise ValueError(
                f"{type(self).__name__} does not split over items: it "
                f"supports axis=-1 only. Received: axis={self.axis}"
            )
        length = ops.cast(ops.shape(lists.scores)[-1], dtype)
        terms = ops.where(ops.expand_dims(list_valid, -1), terms, 0.0)
        terms = terms * (length * factor)
        terms = ops.where(ops.expand_dims(poisoned, -1), nan, terms)
        if lists.moved is not None:
            terms = ops.moveaxis(terms, -1, lists.moved)
        return terms

    @classmethod
    def from_config(cls, config):
        if "ranker" in config and config["ranker"] is None:
            # Written by an earlier version, where every loss took one.
            config = {k: v for k, v in config.items() if k != "ranker"}
        return super().from_config(config)

    def __repr__(self):
        hidden = ("name", "reduction", "dtype")
        return config_repr(self, self.get_config(), hidden, attributes=True)


@keras.saving.register_keras_serializable(package="keras_sodeep")
class RankingLoss(ListwiseLoss):
    """Base class of the losses that rank with a ranker: write one method.

    A `ListwiseLoss` with a ranker (``ranker=``, any form
    ``keras_sodeep.ranking.get`` accepts). ``ranker=None`` takes the
    class's `default_ranker`, an object: ``repr(loss)`` and ``get_config``
    show the ranker in use, and a saved model keeps it (a preset by name
    and the sha256 of its weights; a file saved by an earlier version
    with its default ranker, whose meaning has changed since, is
    refused with a message saying how to load it). A sorter is wrapped in
    a frozen ``SorterRanker`` to rank. Helpers for
    `compute_terms`: ``self.rank(scores, mask)`` (the ranker's ranks in
    the loss dtype) and ``self.positive_ranks(labels, scores, valid)``.

    Args:
        ranker: keyword-only; a ranker, a sorter, a string specification
            (``"sigmoid:0.1"``, a preset name, ...) or ``None`` for
            `default_ranker`. Defaults to ``None``.
        axis: ``0`` (the batch is the list) or ``-1`` (each row is a list).
            Defaults to ``-1``.
        reduction, name, dtype: as for ``keras.losses.Loss``.

    Example: the mean rank of the relevant items, normalized.

    >>> import numpy as np
    >>> from keras import ops
    >>> from keras_sodeep.losses import RankingLoss
    >>> class MeanPositiveRank(RankingLoss):
    ...     def compute_terms(self, labels, scores, valid):
    ...         positive = ops.logical_and(valid, labels > 0)
    ...         ranks = self.rank(scores, valid)
    ...         num_pos = ops.sum(ops.cast(positive, scores.dtype), -1)
    ...         n = ops.sum(ops.cast(valid, scores.dtype), -1)
    ...         scale = ops.expand_dims(ops.maximum(num_pos * n, 1.0), -1)
    ...         terms = ops.where(positive, ranks, 0.0) / scale
    ...         return terms, num_pos > 0
    >>> loss = MeanPositiveRank(ranker="sigmoid:0.001")
    >>> float(loss(np.array([[0.0, 1.0, 0.0, 0.0]]),
    ...            np.array([[0.1, 0.9, 0.3, 0.2]])))
    0.25
    """

    def __init__(
        self,
        *,
        ranker=None,
        axis=-1,
        reduction="sum_over_batch_size",
        name=None,
        dtype=None,
    ):
        super().__init__(axis=axis, reduction=reduction, name=name, dtype=dtype)
        if isinstance(ranker, dict):
            ranker = keras.saving.deserialize_keras_object(ranker)
        if ranker is None:
            ranker = self.default_ranker()
        elif not isinstance(ranker, keras.layers.Layer):
            # A specification (string, path, serialized dict): the object.
            ranker = ranking.get(ranker)
        # `ranker` as given (a sorter stays a sorter, so that its weights
        # are saved where earlier versions saved them); `_ranker` ranks.
        self.ranker = ranker
        self._ranker = ranking.get(ranker)

    @classmethod
    def default_ranker(cls):
        """The ranker of ``ranker=None``: SoDeep's learned sorter.

        ``PresetRanker("histogram")``: the shipped ``histogram`` preset, a
        ``keras_sodeep.sorters.HistogramSorter`` trained on synthetic lists
        of 2 to 1,000 items: length-generic, ``O(n)`` per list, invariant
        to scale and shift, near-exact ranks (L1 about 5e-5 of a rank on
        lists of 100) with the smooth gradient of
        ``Sorter(gradient_temperature=0.1)``. Losses override it.
        """
        return PresetRanker("histogram")

    def rank(self, scores, mask):
        """The ranker's ranks of ``scores`` (last axis), in the loss dtype."""
        # A ranker with a half-precision dtype policy returns half-precision
        # ranks; the loss computes in its own dtype.
        ranks = self._ranker(scores, mask=mask)
        return ops.cast(ranks, scores.dtype)

    def positive_ranks(self, labels, scores, valid):
        """``(positive, ranks, positive_ranks, num_pos)`` of relevance lists.

        ``ranks`` among all valid items, ``positive_ranks`` among the
        positives (labels > 0) only, ``num_pos`` per list.
        """
        positive = ops.logical_and(valid, labels > 0)
        ranks = self.rank(scores, valid)
        positive_ranks = self.rank(scores, positive)
        num_pos = ops.sum(ops.cast(positive, scores.dtype), axis=-1)
        return positive, ranks, positive_ranks, num_pos

    def get_config(self):
        config = super().get_config()
        config["ranker"] = keras.saving.serialize_keras_object(self.ranker)
        return config

    @classmethod
    def from_config(cls, config):
        # `ranker: None` is the default of an earlier version: refused.
        return super().from_config(
            ranking.check_saved_ranker(cls.__name__, config)
        )
