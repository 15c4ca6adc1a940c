"""`RankingLoss`, the base of the rank losses: inputs, ranker and reduction.

The base turns ``(y_true, y_pred)`` once into lists along the last axis,
``labels``, ``scores`` and ``valid`` (the items that take part), and asks
the concrete loss for one thing, `RankingLoss.compute_terms`. It then masks
the lists that cannot be scored and scales the values for Keras's
reduction (see ``keras_sodeep.losses`` for the conventions).
"""

import collections

import keras
from keras import ops

from keras_sodeep import ranking
from keras_sodeep._checks import (
    as_tensor,
    check_list_axis,
    same_shape,
    unpack_y_true,
)

# Lists along the last axis, and how to turn per-item values back into the
# layout of `y_pred` (`per_item`: one value per item; `moved`: the axis the
# lists ran along before they were moved last, or None; `poisoned`: bool per
# list, the lists with a non-finite score or a NaN label among the items
# that take part, whose loss is NaN).
_Lists = collections.namedtuple(
    "_Lists", ["labels", "scores", "valid", "per_item", "moved", "poisoned"]
)


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


def _get_eagerly(spec):
    """``ranking.get(spec)`` outside any traced function.

    A preset loaded while a ``tf.function`` (``fit``, ``evaluate``, a
    user's function) is being traced would build its sorter inside the
    graph and never hold the preset's weights; ``tf.init_scope`` lifts the
    loading out to eager execution.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.init_scope():
            return ranking.get(spec)
    return ranking.get(spec)


def unit_embeddings(embeddings):
    """Embeddings scaled to unit L2 norm (a zero row stays zero)."""
    norm = ops.sqrt(ops.sum(ops.square(embeddings), axis=-1, keepdims=True))
    return embeddings / ops.maximum(norm, 1e-12)


def embedding_labels(labels, mask=None):
    """Flat integer labels of a batch of embeddings, and which ones count.

    An embedding counts when its label is >= 0 (negative labels pad) and
    its ``mask`` entry, if given, is true.
    """
    labels = ops.reshape(labels, (-1,))
    valid = labels >= 0
    if mask is not None:
        mask = ops.reshape(as_tensor(mask), (-1,))
        valid = ops.logical_and(valid, ops.not_equal(mask, 0))
    return labels, valid


def embedding_lists(labels, embeddings, mask=None, reference=None):
    """Cosine-similarity lists of a batch of embeddings, self-pairs out.

    Returns ``(relevance, scores, valid)`` of shape ``(B, B)``: row ``q``
    ranks the other samples by cosine similarity to sample ``q``; the
    samples with its label are relevant; labels < 0 and ``False`` mask
    entries mark padding. A padded sample reaches no value and no gradient,
    whatever its embedding holds.

    ``reference``, optional: ``(unit, labels, valid)`` of ``R`` more
    gallery items (unit-norm embeddings ``(R, D)``, labels ``(R,)``, bool
    ``(R,)``), such as a cross-batch memory; they become ``R`` more columns,
    ``(B, B + R)`` in all. They are gallery items only, never queries.
    """
    labels, valid = embedding_labels(labels, mask)
    # Padded embeddings are replaced before any arithmetic: a NaN there
    # would otherwise reach every gradient through the matmul below.
    embeddings = ops.where(ops.expand_dims(valid, -1), embeddings, 1.0)
    unit = unit_embeddings(embeddings)
    size = ops.shape(unit)[0]
    not_self = ops.logical_not(ops.cast(ops.eye(size), "bool"))
    gallery, gallery_labels, gallery_valid = unit, labels, valid
    if reference is not None:
        ref_unit, ref_labels, ref_valid = reference
        ref_labels = ops.cast(ops.reshape(ref_labels, (-1,)), labels.dtype)
        gallery = ops.concatenate([unit, ops.cast(ref_unit, unit.dtype)], 0)
        gallery_labels = ops.concatenate([labels, ref_labels], 0)
        gallery_valid = ops.concatenate([valid, ref_valid], 0)
        not_self = ops.concatenate(
            [not_self, ops.ones((size, ops.shape(ref_unit)[0]), "bool")], 1
        )
    scores = ops.matmul(unit, ops.transpose(gallery))
    relevance = ops.cast(
        ops.equal(
            ops.expand_dims(labels, 1), ops.expand_dims(gallery_labels, 0)
        ),
        scores.dtype,
    )
    pair_valid = ops.logical_and(
        ops.expand_dims(valid, 1), ops.expand_dims(gallery_valid, 0)
    )
    return relevance, scores, ops.logical_and(pair_valid, not_self)


@keras.saving.register_keras_serializable(package="keras_sodeep")
class RankingLoss(keras.losses.Loss):
    """Base class of the rank losses: write one method, get the rest.

    A subclass implements `compute_terms` on lists along the last axis; the
    base class does everything else: the ``{"labels", "mask"}`` dict of
    ``y_true``, shape checks, ``axis``, embeddings, masks, the ranker
    (``ranker=``, any form ``keras_sodeep.ranking.get`` accepts, resolved
    on first use) and the per-sample values that Keras reduces (see
    ``keras_sodeep.losses``). The loss of a list is the sum of its terms,
    averaged over the lists that can be scored:

    ```
    loss = mean over lists with list_valid of sum_i terms_i
    ```

    Helpers for `compute_terms`: ``self.rank(scores, mask)`` (the ranker's
    ranks in the loss dtype) and ``self.positive_ranks(labels, scores,
    valid)``.

    Class attributes: ``relevance_labels`` (labels < 0 are padding;
    default ``True``), ``accepts_embeddings`` (``y_pred`` of shape
    ``(B, D)`` with integer labels ``(B,)`` is a batch of embeddings;
    default ``True``) and ``default_ranker`` (the ranker of ``ranker=None``
    in a form ``keras_sodeep.ranking.get`` accepts; default ``None``:
    ``keras_sodeep.ranking.DEFAULT_RANKER``).

    Args:
        ranker: keyword-only; a ranker, a sorter, a string specification
            (``"sigmoid:0.1"``, a preset name, ...) or ``None`` for the
            class's ``default_ranker``. Defaults to ``None``.
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

    relevance_labels = True
    accepts_embeddings = True
    default_ranker = None

    def __init__(
        self,
        *,
        ranker=None,
        axis=-1,
        reduction="sum_over_batch_size",
        name=None,
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if isinstance(ranker, dict):
            ranker = keras.saving.deserialize_keras_object(ranker)
        self.ranker = ranker
        self.axis = check_list_axis(axis)
        # A string is resolved on first use (see `_get_ranker`); get_config
        # keeps the string, so a saved model loads the preset again.
        spec = self._ranker_spec()
        self._ranker = None if isinstance(spec, str) else ranking.get(spec)

    def _ranker_spec(self):
        return self.default_ranker if self.ranker is None else self.ranker

    def _get_ranker(self):
        if self._ranker is None:
            self._ranker = _get_eagerly(self._ranker_spec())
        return self._ranker

    def rank(self, scores, mask):
        """The ranker's ranks of ``scores`` (last axis), in the loss dtype."""
        # A ranker with a half-precision dtype policy returns half-precision
        # ranks; the loss computes in its own dtype.
        ranks = self._get_ranker()(scores, mask=mask)
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

    def _is_embeddings(self, labels, y_pred):
        if not self.accepts_embeddings or len(y_pred.shape) != 2:
            return False
        if y_pred.shape[-1] == 1 or same_shape(labels.shape, y_pred.shape):
            return False
        label_shape = tuple(labels.shape)
        return len(label_shape) == 1 or (
            len(label_shape) == 2 and label_shape[-1] == 1
        )

    def _standardize(self, y_true, y_pred, reference=None):
        """Checks the inputs; returns `_Lists` along the last axis.

        ``reference``: more gallery items for embeddings (see
        `embedding_lists`); used by ``CrossBatchMemory``.
        """
        labels, mask = unpack_y_true(y_true)
        labels = as_tensor(labels, dtype=self.dtype)
        y_pred = as_tensor(y_pred, dtype=self.dtype)
        if len(y_pred.shape) == 0:
            raise ValueError(
                "`y_pred` should have at least one dimension. Received: "
                f"y_pred.shape={tuple(y_pred.shape)}"
            )
        if self._is_embeddings(labels, y_pred):
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
                return _Lists(labels, y_pred, valid, True, None, ops.any(bad))
            # A single list along the last axis: one sample.
            lists = [ops.expand_dims(x, 0) for x in (labels, y_pred, valid)]
            poisoned = ops.any(ops.expand_dims(bad, 0), axis=-1)
            return _Lists(*lists, False, None, poisoned)
        if self.axis == 0:
            lists = [ops.moveaxis(x, 0, -1) for x in (labels, y_pred, valid)]
            poisoned = ops.any(ops.moveaxis(bad, 0, -1), axis=-1)
            return _Lists(*lists, True, 0, poisoned)
        poisoned = ops.any(bad, axis=-1)
        return _Lists(labels, y_pred, valid, False, None, poisoned)

    def _embedding_lists(self, labels, embeddings, mask, reference=None):
        """`_Lists` of a batch of embeddings (see `embedding_lists`)."""
        flat = ops.reshape(labels, (-1,))
        sample_valid = ops.logical_not(flat < 0)
        if mask is not None:
            mask = ops.reshape(as_tensor(mask), (-1,))
            sample_valid = ops.logical_and(sample_valid, ops.not_equal(mask, 0))
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
        return _Lists(relevance, scores, valid, False, None, poisoned)

    # -- values -----------------------------------------------------------

    def call(self, y_true, y_pred):
        return self._values(self._standardize(y_true, y_pred))

    def _values(self, lists):
        """Per-sample values of standardized lists, scaled for reduction."""
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

    def get_config(self):
        config = super().get_config()
        ranker = self.ranker
        if ranker is not None and not isinstance(ranker, str):
            ranker = keras.saving.serialize_keras_object(ranker)
        config.update({"ranker": ranker})
        return config
