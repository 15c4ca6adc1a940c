"""A smooth Recall@k (hit rate) loss."""

import keras
from keras import ops

from keras_sodeep._checks import check_float, check_ks
from keras_sodeep.losses.base import RankingLoss


@keras.saving.register_keras_serializable(package="keras_sodeep")
class RecallAtKLoss(RankingLoss):
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
        name: the loss's name.
        **kwargs: ``reduction`` and ``dtype``, as for ``keras.losses.Loss``.

    Example:

    >>> import keras
    >>> from keras_sodeep.losses import RecallAtKLoss
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    >>> model.compile(optimizer="adam", loss=RecallAtKLoss(k=(1, 4)))
    """

    def __init__(
        self,
        k=(1, 2, 4, 8, 16),
        temperature=1.0,
        *,
        ranker=None,
        name="recall_at_k_loss",
        **kwargs,
    ):
        super().__init__(ranker=ranker, axis=-1, name=name, **kwargs)
        self.k = check_ks(k)
        self.temperature = check_float(
            temperature, "temperature", positive=True
        )

    def compute_terms(self, labels, scores, valid):
        positive, ranks, pos_ranks, num_pos = self.positive_ranks(
            labels, scores, valid
        )
        among_negatives = ranks - pos_ranks + 1.0
        ks = ops.cast(ops.convert_to_tensor(self.k), scores.dtype)
        soft_hits = ops.sigmoid(
            (ks + 0.5 - ops.expand_dims(among_negatives, -1)) / self.temperature
        )  # (..., n, K)
        soft_hits = ops.where(ops.expand_dims(positive, -1), soft_hits, 0.0)
        recall = ops.minimum(ops.sum(soft_hits, axis=-2), 1.0)
        # One term per list: recall does not split over items.
        loss = 1.0 - ops.mean(recall, axis=-1, keepdims=True)
        return loss, num_pos > 0

    def get_config(self):
        config = super().get_config()
        config.update({"k": list(self.k), "temperature": self.temperature})
        return config
