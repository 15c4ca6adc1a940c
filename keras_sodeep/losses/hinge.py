"""Hinge and listwise rank losses on a query's ranks (paper eq. 10)."""

import keras
from keras import ops

from keras_sodeep._checks import check_float
from keras_sodeep.losses.base import RankingLoss


@keras.saving.register_keras_serializable(package="keras_sodeep")
class RankTripletLoss(RankingLoss):
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
        name: the loss's name.
        **kwargs: ``reduction`` and ``dtype``, as for ``keras.losses.Loss``.

    Example:

    >>> import keras
    >>> from keras_sodeep.losses import RankTripletLoss
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    >>> model.compile(optimizer="adam", loss=RankTripletLoss(margin=1.0))
    """

    def __init__(
        self,
        margin=1.0,
        *,
        ranker=None,
        name="rank_triplet_loss",
        **kwargs,
    ):
        super().__init__(ranker=ranker, axis=-1, name=name, **kwargs)
        self.margin = check_float(margin, "margin", positive=False)

    def compute_terms(self, labels, scores, valid):
        dtype = scores.dtype
        positive, ranks, _, num_pos = self.positive_ranks(labels, scores, valid)
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
class RankLoss(RankingLoss):
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
        name: the loss's name.
        **kwargs: ``reduction`` and ``dtype``, as for ``keras.losses.Loss``.

    Example:

    >>> import keras
    >>> from keras_sodeep.losses import RankLoss
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    >>> model.compile(optimizer="adam", loss=RankLoss())
    """

    def __init__(
        self,
        *,
        ranker=None,
        name="rank_loss",
        **kwargs,
    ):
        super().__init__(ranker=ranker, axis=-1, name=name, **kwargs)

    def compute_terms(self, labels, scores, valid):
        positive, ranks, _, num_pos = self.positive_ranks(labels, scores, valid)
        m = ops.sum(ops.cast(valid, scores.dtype), axis=-1, keepdims=True)
        terms = ops.where(positive, ranks, 0.0) / ops.maximum(m, 1.0)
        return terms, num_pos > 0
