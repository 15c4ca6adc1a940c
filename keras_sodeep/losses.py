"""Rank-based losses: Spearman, mean Average Precision, Recall@k, rank hinge.

Every loss ranks ``y_pred`` with a differentiable ranker (``ranker=``) and
compares the ranks with the exact ranks of ``y_true`` or with the relevance
labels in ``y_true``. ``ranker`` accepts a ranker from
``keras_sodeep.ranking``, a ``keras_sodeep.sorters.Sorter`` (wrapped in a
frozen ``SorterRanker``), a preset name (resolved with
``keras_sodeep.pretrained.pretrained`` on first use) or ``None`` for
``DEFAULT_RANKER``.

Conventions shared by the losses:

- ``axis``: the axis along which items are ranked. ``axis=0``: the batch is
  the list (a regression output of shape ``(B,)`` or ``(B, 1)``, or one list
  per column of ``(B, C)``); ``axis=-1``: each row is a list.
- ``call()`` returns per-sample values: per item when the lists run along
  axis 0, per list otherwise. They are scaled so that Keras's default
  reduction (``"sum_over_batch_size"``) gives the documented formula, and
  ``sample_weight`` weights items (``axis=0``) or lists (``axis=-1``).
- Masks: ``y_true`` may be a dict ``{"labels": ..., "mask": ...}`` (the
  keras-rs convention; in ``model.fit`` Keras only accepts such a dict for a
  model whose outputs are a matching dict, so use it in direct calls and
  custom loops). For relevance labels (all losses but ``SpearmanLoss``),
  ``labels < 0`` also marks padding, which works everywhere.
- A list that cannot be scored (no positive, no item) contributes nothing;
  if no list of the batch can be scored the loss is 0.
- Finite scores give a finite loss. Non-finite scores raise a
  ``ValueError`` when the loss runs eagerly; inside a compiled function they
  give a NaN loss (``keras.callbacks.TerminateOnNaN`` stops on it).
- Distribution: under a ``tf.distribute`` strategy (``MirroredStrategy``,
  ...) each replica computes the loss on its own shard of the global batch,
  and Keras averages the replicas' losses and gradients. With ``axis=0`` a
  replica's list is therefore its shard (``global_batch_size /
  num_replicas`` items, ranked among themselves), not the global batch: the
  loss is the mean over replicas of the per-shard losses, and differs from
  the one-device loss on the same global batch. Choose the batch size for
  the list length each replica should rank. Lists along ``axis=-1`` (rows,
  or embeddings of a replica's shard) are split the same way. The metrics
  of ``keras_sodeep.metrics``, unlike the losses, gather the replicas and
  are exact.
- Mixed precision: the losses compute in their own dtype (float32 unless
  ``dtype=`` says otherwise) and the rankers in float32, also under the
  ``mixed_float16`` and ``mixed_bfloat16`` policies; half-precision
  predictions are cast up first.
"""

import keras
from keras import ops

from keras_sodeep.ranking import Ranker, SorterRanker, exact_rank

# The ranker of `ranker=None`, in any form `ranker=` accepts. It must be
# length-generic so that a loss built with no argument takes lists of any
# length: the paper's handcrafted sorter, lambda = 1 / temperature = 10.
DEFAULT_RANKER = {
    "class_name": "keras_sodeep>SigmoidRanker",
    "config": {"temperature": 0.1},
}


def _resolve_ranker(ranker):
    """Turns any accepted `ranker=` value into a `Ranker` layer."""
    if ranker is None:
        ranker = DEFAULT_RANKER
    if isinstance(ranker, dict):
        ranker = keras.saving.deserialize_keras_object(ranker)
    if isinstance(ranker, str):
        # Imported here: `pretrained` stands above this module's other
        # imports and is only needed for preset names.
        from keras_sodeep.pretrained import pretrained

        ranker = pretrained(ranker)
    if isinstance(ranker, Ranker):
        return ranker
    if isinstance(ranker, keras.layers.Layer):
        return SorterRanker(ranker)
    raise TypeError(
        "`ranker` should be a `keras_sodeep.ranking.Ranker`, a "
        "`keras_sodeep.sorters.Sorter`, a preset name or None. "
        f"Received: ranker={ranker!r}"
    )


def _unpack_y_true(y_true):
    if isinstance(y_true, dict):
        unknown = set(y_true) - {"labels", "mask"}
        if "labels" not in y_true or unknown:
            raise ValueError(
                '`y_true` should be a tensor or a dict with keys "labels" '
                f'and, optionally, "mask". Received keys: {sorted(y_true)}'
            )
        return y_true["labels"], y_true.get("mask")
    return y_true, None


def _check_finite(y_pred):
    """Raises on non-finite scores when running eagerly; a no-op in graphs."""
    try:
        finite = bool(ops.all(ops.isfinite(y_pred)))
    except Exception:  # a symbolic tensor inside a compiled function
        return
    if not finite:
        raise ValueError(
            "`y_pred` should hold finite scores. Received NaN or infinite "
            "values."
        )


def _same_shape(a, b):
    if len(a) != len(b):
        return False
    return all(x is None or y is None or x == y for x, y in zip(a, b))


def _match_rank(x, target):
    """Squeezes a trailing size-1 axis so that `x` has the rank of target."""
    if len(x.shape) == len(target.shape) + 1 and x.shape[-1] == 1:
        return ops.squeeze(x, -1)
    if len(target.shape) == len(x.shape) + 1 and target.shape[-1] == 1:
        return ops.expand_dims(x, -1)
    return x


def _check_axis(axis):
    if isinstance(axis, bool) or axis not in (0, -1):
        raise ValueError(f"`axis` should be 0 or -1. Received: axis={axis!r}")
    return axis


class _RankingLoss(keras.losses.Loss):
    """Shared machinery: inputs, masks, ranker and per-sample values.

    A concrete loss implements ``item_terms(labels, scores, valid)`` on lists
    along the last axis and returns ``(terms, list_valid)``: the loss of a
    list is the sum of its item terms, and only lists where ``list_valid``
    is true count. A loss that does not split over items overrides
    ``list_terms`` instead and supports ``axis=-1`` only.
    """

    relevance_labels = True
    accepts_embeddings = True

    def __init__(
        self,
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
        self.axis = _check_axis(axis)
        # A preset name is resolved on first use.
        self._ranker = (
            None if isinstance(ranker, str) else _resolve_ranker(ranker)
        )

    def _get_ranker(self):
        if self._ranker is None:
            self._ranker = _resolve_ranker(self.ranker)
        return self._ranker

    def rank(self, scores, mask):
        # A ranker with a half-precision dtype policy returns half-precision
        # ranks; the loss computes in its own dtype.
        ranks = self._get_ranker()(scores, mask=mask)
        return ops.cast(ranks, scores.dtype)

    # -- inputs -----------------------------------------------------------

    def _embedding_lists(self, labels, y_pred, mask):
        labels = ops.reshape(labels, (-1,))
        valid = labels >= 0
        if mask is not None:
            mask = ops.reshape(ops.convert_to_tensor(mask), (-1,))
            valid = ops.logical_and(valid, ops.not_equal(mask, 0))
        norm = ops.sqrt(ops.sum(ops.square(y_pred), axis=-1, keepdims=True))
        unit = y_pred / ops.maximum(norm, 1e-12)
        scores = ops.matmul(unit, ops.transpose(unit))
        relevance = ops.cast(
            ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(labels, 0)),
            scores.dtype,
        )
        size = ops.shape(scores)[0]
        not_self = ops.logical_not(ops.cast(ops.eye(size), "bool"))
        pair_valid = ops.logical_and(
            ops.expand_dims(valid, 1), ops.expand_dims(valid, 0)
        )
        return relevance, scores, ops.logical_and(pair_valid, not_self)

    def _is_embeddings(self, labels, y_pred):
        if not self.accepts_embeddings or len(y_pred.shape) != 2:
            return False
        if y_pred.shape[-1] == 1 or _same_shape(labels.shape, y_pred.shape):
            return False
        label_shape = tuple(labels.shape)
        return len(label_shape) == 1 or (
            len(label_shape) == 2 and label_shape[-1] == 1
        )

    def call(self, y_true, y_pred):
        labels, mask = _unpack_y_true(y_true)
        labels = ops.convert_to_tensor(labels, dtype=self.dtype)
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        _check_finite(y_pred)
        if len(y_pred.shape) == 0:
            raise ValueError(
                "`y_pred` should have at least one dimension. Received: "
                f"y_pred.shape={tuple(y_pred.shape)}"
            )
        if self._is_embeddings(labels, y_pred):
            labels, scores, valid = self._embedding_lists(labels, y_pred, mask)
            axis = -1
        else:
            scores, labels, valid, axis = self._score_lists(
                labels, y_pred, mask
            )
        per_item = axis != -1 or len(scores.shape) == 1
        if axis != -1:
            scores = ops.moveaxis(scores, axis, -1)
            labels = ops.moveaxis(labels, axis, -1)
            valid = ops.moveaxis(valid, axis, -1)
        return self._per_sample(labels, scores, valid, axis, per_item)

    def _score_lists(self, labels, y_pred, mask):
        original = tuple(labels.shape)
        labels = _match_rank(labels, y_pred)
        if not _same_shape(tuple(labels.shape), tuple(y_pred.shape)):
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
        axis = self.axis
        if len(y_pred.shape) == 1 and axis == -1:
            # A single list: one sample.
            y_pred = ops.expand_dims(y_pred, 0)
            labels = ops.expand_dims(labels, 0)
            if mask is not None:
                mask = ops.reshape(ops.convert_to_tensor(mask), (1, -1))
        if mask is None:
            valid = ops.ones_like(y_pred, dtype="bool")
        else:
            mask = ops.convert_to_tensor(mask)
            mask = _match_rank(mask, y_pred)
            if not _same_shape(tuple(mask.shape), tuple(y_pred.shape)):
                raise ValueError(
                    "`mask` should have the shape of the labels. Received: "
                    f"mask.shape={tuple(mask.shape)}, "
                    f"y_pred.shape={tuple(y_pred.shape)}"
                )
            valid = ops.not_equal(mask, 0)
        if self.relevance_labels:
            valid = ops.logical_and(valid, labels >= 0)
        if len(y_pred.shape) == 1:
            axis = -1  # axis 0 of a single list is its last axis
            return y_pred, labels, valid, axis
        return y_pred, labels, valid, 0 if axis == 0 else -1

    def _per_sample(self, labels, scores, valid, axis, per_item):
        dtype = scores.dtype
        if per_item:
            terms, list_valid = self.item_terms(labels, scores, valid)
            list_loss = None
        else:
            list_loss, list_valid = self.list_terms(labels, scores, valid)
        valid_f = ops.cast(list_valid, dtype)
        num_lists = ops.sum(ops.ones_like(valid_f))
        factor = num_lists / ops.maximum(ops.sum(valid_f), 1.0)
        if not per_item:
            return ops.where(list_valid, list_loss, 0.0) * factor
        length = ops.cast(ops.shape(scores)[-1], dtype)
        terms = ops.where(ops.expand_dims(list_valid, -1), terms, 0.0)
        terms = terms * (length * factor)
        if axis != -1:
            terms = ops.moveaxis(terms, -1, axis)
        return terms

    def list_terms(self, labels, scores, valid):
        terms, list_valid = self.item_terms(labels, scores, valid)
        return ops.sum(terms, axis=-1), list_valid

    def item_terms(self, labels, scores, valid):
        raise NotImplementedError

    # -- relevance helpers ----------------------------------------------

    def _positive_ranks(self, labels, scores, valid):
        positive = ops.logical_and(valid, labels > 0)
        ranks = self.rank(scores, valid)
        positive_ranks = self.rank(scores, positive)
        num_pos = ops.sum(ops.cast(positive, scores.dtype), axis=-1)
        return positive, ranks, positive_ranks, num_pos

    def get_config(self):
        config = super().get_config()
        ranker = self.ranker
        if ranker is not None and not isinstance(ranker, str):
            ranker = keras.saving.serialize_keras_object(ranker)
        config.update({"ranker": ranker})
        return config


@keras.saving.register_keras_serializable(package="keras_sodeep")
class SpearmanLoss(_RankingLoss):
    """Squared rank error: the SoDeep Spearman loss (paper eq. 4).

    With ``r_hat`` the ranker's ranks of ``y_pred`` and ``r`` the exact
    tie-averaged ranks of ``y_true`` over the ``n`` items of a list:

    ```
    loss = mean_i ((r_hat_i - r_i) / n)^2
           + l1_weight * mean_i |y_pred_i - y_true_i|
    ```

    averaged over lists. For distinct values and exact ranks the first term
    is ``(1 - rho) (n^2 - 1) / (6 n^2)``, with ``rho`` the Spearman
    correlation, since ``1 - rho = 6 sum_i d_i^2 / (n (n^2 - 1))``. The L1
    term is the reference code's warm-up help for a model whose outputs are
    still far from the targets.

    The default ranker is ``DEFAULT_RANKER``, length-generic
    (``SigmoidRanker(temperature=0.1)``: sharp for scores spread over a few
    units, smoother for tightly packed ones), so any batch size works.

    Args:
        ranker: a ranker, a sorter, a preset name or ``None`` (see the module
            docstring). Defaults to ``None``.
        axis: ``0`` (the batch is the list; each column of a ``(B, C)``
            output is one list) or ``-1`` (each row is a list). Defaults to
            ``0``.
        l1_weight: non-negative float, weight of the L1 term. Defaults to
            ``0.0``.
        reduction, name, dtype: as for ``keras.losses.Loss``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_sodeep.losses import SpearmanLoss
    >>> from keras_sodeep.ranking import SigmoidRanker
    >>> loss = SpearmanLoss(ranker=SigmoidRanker(0.001))
    >>> float(loss(np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.3, 0.2])))
    0.074...
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="adam", loss=SpearmanLoss())
    """

    relevance_labels = False
    accepts_embeddings = False

    def __init__(
        self,
        ranker=None,
        axis=0,
        l1_weight=0.0,
        reduction="sum_over_batch_size",
        name="spearman_loss",
        dtype=None,
    ):
        super().__init__(
            ranker=ranker,
            axis=axis,
            reduction=reduction,
            name=name,
            dtype=dtype,
        )
        if (
            isinstance(l1_weight, bool)
            or not isinstance(l1_weight, (int, float))
            or not l1_weight >= 0
        ):
            raise ValueError(
                "`l1_weight` should be a non-negative float. "
                f"Received: l1_weight={l1_weight}"
            )
        self.l1_weight = float(l1_weight)

    def item_terms(self, labels, scores, valid):
        dtype = scores.dtype
        ranks = self.rank(scores, valid)
        targets = exact_rank(labels, mask=valid, axis=-1)
        m = ops.sum(ops.cast(valid, dtype), axis=-1, keepdims=True)
        safe_m = ops.maximum(m, 1.0)
        terms = ops.square((ranks - targets) / safe_m)
        if self.l1_weight:
            terms = terms + self.l1_weight * ops.abs(scores - labels)
        terms = ops.where(valid, terms, 0.0) / safe_m
        return terms, ops.squeeze(m, -1) > 0

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "l1_weight": self.l1_weight})
        return config


@keras.saving.register_keras_serializable(package="keras_sodeep")
class MeanAveragePrecisionLoss(_RankingLoss):
    """One minus a differentiable mean Average Precision (paper eqs. 5-7).

    Items with a label > 0 are positives ``P``. With ``r_hat`` the ranks
    among all items of the list and ``r_hat_plus`` the ranks among the
    positives only:

    ```
    AP_hat = (1 / |P|) sum_{i in P} r_hat_plus_i / r_hat_i
    loss = 1 - mean over lists with at least one positive of AP_hat
    ```

    With exact ranks and distinct scores ``AP_hat`` is the Average
    Precision; with ``SigmoidRanker(0.01)`` the loss is Smooth-AP (Brown et
    al., 2020). Lists without a positive contribute nothing (loss 0 if no
    list has one). Accepts scores with 0/1 relevance of the same shape, or
    embeddings ``(B, D)`` with integer labels ``(B,)`` or ``(B, 1)``: each
    sample is then a query ranking the others by cosine similarity (itself
    excluded), positives being the samples of its label; ``axis`` does not
    apply.

    Args:
        ranker: a ranker, a sorter, a preset name or ``None`` (see the module
            docstring). Defaults to ``None``.
        axis: ``0`` (one list per column: multi-label classification) or
            ``-1`` (one query per row). Defaults to ``0``.
        reduction, name, dtype: as for ``keras.losses.Loss``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_sodeep.losses import MeanAveragePrecisionLoss
    >>> from keras_sodeep.ranking import SigmoidRanker
    >>> loss = MeanAveragePrecisionLoss(ranker=SigmoidRanker(0.001))
    >>> float(loss(np.array([1.0, 0.0, 1.0]), np.array([0.9, 0.5, 0.1])))
    0.1666...
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> model.compile(optimizer="adam", loss=MeanAveragePrecisionLoss())
    """

    def __init__(
        self,
        ranker=None,
        axis=0,
        reduction="sum_over_batch_size",
        name="mean_average_precision_loss",
        dtype=None,
    ):
        super().__init__(
            ranker=ranker,
            axis=axis,
            reduction=reduction,
            name=name,
            dtype=dtype,
        )

    def item_terms(self, labels, scores, valid):
        positive, ranks, pos_ranks, num_pos = self._positive_ranks(
            labels, scores, valid
        )
        ratio = pos_ranks / ops.maximum(ops.where(positive, ranks, 1.0), 0.5)
        per_pos = ops.where(positive, 1.0 - ratio, 0.0)
        terms = per_pos / ops.expand_dims(ops.maximum(num_pos, 1.0), -1)
        return terms, num_pos > 0

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis})
        return config


def _check_k(k):
    ks = (k,) if isinstance(k, int) and not isinstance(k, bool) else k
    try:
        ks = tuple(ks)
    except TypeError:
        ks = None
    if not ks or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in ks
    ):
        raise ValueError(
            "`k` should be a positive int or a non-empty sequence of "
            f"positive ints. Received: k={k!r}"
        )
    return ks


@keras.saving.register_keras_serializable(package="keras_sodeep")
class RecallAtKLoss(_RankingLoss):
    """One minus a smooth Recall@k (hit rate) over several ``k``.

    For each query (a row, or an embedding against the others), with
    ``r_hat_minus_p = r_hat_p - r_hat_plus_p + 1`` the rank of positive
    ``p`` among the negatives (plus itself):

    ```
    recall_k = min(1, sum_{p in P} sigmoid((k + 0.5 - r_hat_minus_p) / t))
    loss = 1 - mean over k and over queries with a positive of recall_k
    ```

    With exact ranks and a small temperature, ``recall_k`` is 1 when some
    positive has fewer than ``k`` negatives above it (the hit rate of
    retrieval), else 0. Inputs: scores ``(B, M)`` with 0/1 relevance of the
    same shape, or embeddings as for ``MeanAveragePrecisionLoss``.

    Args:
        k: positive int or sequence of positive ints. Defaults to
            ``(1, 2, 4, 8, 16)``.
        ranker: a ranker, a sorter, a preset name or ``None``. Defaults to
            ``None``.
        temperature: positive float, the width of the sigmoid on rank
            positions (``t`` above). Defaults to ``1.0``.
        reduction, name, dtype: as for ``keras.losses.Loss``.

    Example:

    >>> import keras
    >>> from keras_sodeep.losses import RecallAtKLoss
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    >>> model.compile(optimizer="adam", loss=RecallAtKLoss(k=(1, 4)))
    """

    def __init__(
        self,
        k=(1, 2, 4, 8, 16),
        ranker=None,
        temperature=1.0,
        reduction="sum_over_batch_size",
        name="recall_at_k_loss",
        dtype=None,
    ):
        super().__init__(
            ranker=ranker,
            axis=-1,
            reduction=reduction,
            name=name,
            dtype=dtype,
        )
        self.k = _check_k(k)
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not temperature > 0
        ):
            raise ValueError(
                "`temperature` should be a positive float. "
                f"Received: temperature={temperature}"
            )
        self.temperature = float(temperature)

    def list_terms(self, labels, scores, valid):
        positive, ranks, pos_ranks, num_pos = self._positive_ranks(
            labels, scores, valid
        )
        among_negatives = ranks - pos_ranks + 1.0
        ks = ops.cast(ops.convert_to_tensor(self.k), scores.dtype)
        soft_hits = ops.sigmoid(
            (ks + 0.5 - ops.expand_dims(among_negatives, -1)) / self.temperature
        )  # (..., n, K)
        soft_hits = ops.where(ops.expand_dims(positive, -1), soft_hits, 0.0)
        recall = ops.minimum(ops.sum(soft_hits, axis=-2), 1.0)
        return 1.0 - ops.mean(recall, axis=-1), num_pos > 0

    def get_config(self):
        config = super().get_config()
        config.update({"k": list(self.k), "temperature": self.temperature})
        return config


@keras.saving.register_keras_serializable(package="keras_sodeep")
class RankTripletLoss(_RankingLoss):
    """Hinge on ranks against the hardest negative (paper eq. 10).

    For a query with positives ``P``, negatives ``N`` and ``m`` items, each
    positive should rank at least ``margin`` positions above the best-ranked
    negative:

    ```
    hardest = min_{n in N} r_hat_n
    loss = (1 / |P|) sum_{p in P} max(0, margin + r_hat_p - hardest) / m
    ```

    averaged over queries with a positive and a negative. Dividing by ``m``
    puts the loss in the units of the reference code, which ranks on
    normalized ranks with a margin of one position (``1 / m``). With
    several positives the positives above a given one count in its rank,
    so a margin above 1 cannot be met by all of them. For cross-modal
    retrieval apply it to the score matrix and to its transpose.

    Inputs: scores ``(B, M)`` with 0/1 relevance of the same shape, or
    embeddings as for ``MeanAveragePrecisionLoss``.

    Args:
        margin: non-negative float, in rank positions. Defaults to ``1.0``.
        ranker: a ranker, a sorter, a preset name or ``None``. Defaults to
            ``None``.
        reduction, name, dtype: as for ``keras.losses.Loss``.

    Example:

    >>> import keras
    >>> from keras_sodeep.losses import RankTripletLoss
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    >>> model.compile(optimizer="adam", loss=RankTripletLoss(margin=1.0))
    """

    def __init__(
        self,
        margin=1.0,
        ranker=None,
        reduction="sum_over_batch_size",
        name="rank_triplet_loss",
        dtype=None,
    ):
        super().__init__(
            ranker=ranker,
            axis=-1,
            reduction=reduction,
            name=name,
            dtype=dtype,
        )
        if (
            isinstance(margin, bool)
            or not isinstance(margin, (int, float))
            or not margin >= 0
        ):
            raise ValueError(
                "`margin` should be a non-negative float. "
                f"Received: margin={margin}"
            )
        self.margin = float(margin)

    def item_terms(self, labels, scores, valid):
        dtype = scores.dtype
        positive, ranks, _, num_pos = self._positive_ranks(
            labels, scores, valid
        )
        negative = ops.logical_and(valid, ops.logical_not(positive))
        num_neg = ops.sum(ops.cast(negative, dtype), axis=-1)
        big = ops.cast(float("inf"), dtype)
        hardest = ops.min(ops.where(negative, ranks, big), -1, keepdims=True)
        hardest = ops.where(ops.isfinite(hardest), hardest, 0.0)
        hinge = ops.relu(self.margin + ranks - hardest)
        m = ops.expand_dims(ops.maximum(num_pos + num_neg, 1.0), -1)
        denom = ops.expand_dims(ops.maximum(num_pos, 1.0), -1) * m
        terms = ops.where(positive, hinge, 0.0) / denom
        return terms, ops.logical_and(num_pos > 0, num_neg > 0)

    def get_config(self):
        config = super().get_config()
        config.update({"margin": self.margin})
        return config


@keras.saving.register_keras_serializable(package="keras_sodeep")
class RankLoss(_RankingLoss):
    """Sum of the positives' normalized ranks (the reference cross-modal loss).

    For a query with positives ``P`` among ``m`` items:

    ```
    loss = sum_{p in P} r_hat_p / m
    ```

    averaged over queries with a positive. Its minimum,
    ``|P| (|P| + 1) / (2 m)``, is reached when the positives rank first.
    For cross-modal retrieval apply it to the score matrix and to its
    transpose. Inputs: scores ``(B, M)`` with 0/1 relevance of the same
    shape, or embeddings as for ``MeanAveragePrecisionLoss``.

    Args:
        ranker: a ranker, a sorter, a preset name or ``None``. Defaults to
            ``None``.
        reduction, name, dtype: as for ``keras.losses.Loss``.

    Example:

    >>> import keras
    >>> from keras_sodeep.losses import RankLoss
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    >>> model.compile(optimizer="adam", loss=RankLoss())
    """

    def __init__(
        self,
        ranker=None,
        reduction="sum_over_batch_size",
        name="rank_loss",
        dtype=None,
    ):
        super().__init__(
            ranker=ranker,
            axis=-1,
            reduction=reduction,
            name=name,
            dtype=dtype,
        )

    def item_terms(self, labels, scores, valid):
        positive, ranks, _, num_pos = self._positive_ranks(
            labels, scores, valid
        )
        m = ops.sum(ops.cast(valid, scores.dtype), axis=-1, keepdims=True)
        terms = ops.where(positive, ranks, 0.0) / ops.maximum(m, 1.0)
        return terms, num_pos > 0
