"""The Recall@k surrogate, RS@k (Patel, Tolias, Matas, CVPR 2022)."""

import keras
from keras import ops

from keras_sodeep import ranking
from keras_sodeep._checks import check_float, check_ks
from keras_sodeep.losses.base import RankingLoss
from keras_sodeep.losses.simix import SiMixOption


@keras.saving.register_keras_serializable(package="keras_sodeep")
class RecallAtKSurrogateLoss(SiMixOption, RankingLoss):
    """One minus the Recall@k surrogate RS@k, over several ``k``.

    Patel, Tolias, Matas, "Recall@k Surrogate Loss with Large Batches and
    Similarity Mixup", CVPR 2022. For each query, with ``r_p`` the ranker's
    rank of positive ``p`` among all the query's items:

    ```
    RS@k = min(sum_{p in P} sigmoid((k - r_p) / temperature), k)
           / min(k, |P|)
    loss = 1 - mean over k and over queries with a positive of RS@k
    ```

    With sigmoid ranks this is the paper's loss; any ranker of
    ``keras_sodeep.ranking.get`` can drive it, a learned sorter too.
    Inputs: embeddings ``(B, D)`` with integer labels ``(B,)`` (each sample
    is a query ranking the others by cosine similarity; the query is not
    in its own gallery, where the authors' code keeps it as a positive;
    queries without a positive contribute nothing), or scores ``(B, M)``
    with 0/1 relevance of the same shape. The pairwise rankers cost
    ``O(n^2)`` per query, ``O(B^3)`` for a batch of embeddings. As in the
    paper, a positive at rank exactly ``k`` counts ``sigmoid(0) = 1/2``.

    Args:
        k: positive int or sequence of positive ints. Defaults to
            ``(1, 2, 4, 8, 16)``.
        temperature: positive float, the width of the sigmoid on rank
            positions. Defaults to ``1.0``.
        ranker: keyword-only; a ranker, a sorter, a string specification or
            ``None`` for `default_ranker`, ``SigmoidRanker(0.01)`` (the
            paper's). Defaults to ``None``.
        simix: bool, similarity mixup of the embeddings (see
            ``keras_sodeep.losses.SiMixOption``). Defaults to ``False``.
        max_mixed: positive int, the most mixed embeddings per batch.
            Defaults to ``256``.
        seed: int or ``None``, the seed of the mixup. Defaults to ``None``.
        name: the loss's name.
        **kwargs: ``reduction`` and ``dtype``, as for ``keras.losses.Loss``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_sodeep.losses import RecallAtKSurrogateLoss
    >>> loss = RecallAtKSurrogateLoss(k=2, temperature=0.01)
    >>> scores = np.array([[0.9, 0.5, 0.1], [0.1, 0.5, 0.9]])
    >>> relevance = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    >>> round(float(loss(relevance, scores)), 3)  # first hit, second miss
    0.5
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    >>> model.compile(optimizer="adam",
    ...               loss=RecallAtKSurrogateLoss(simix=True, seed=0))
    """

    def __init__(
        self,
        k=(1, 2, 4, 8, 16),
        temperature=1.0,
        *,
        ranker=None,
        simix=False,
        max_mixed=256,
        seed=None,
        name="recall_at_k_surrogate_loss",
        **kwargs,
    ):
        super().__init__(
            ranker=ranker,
            simix=simix,
            max_mixed=max_mixed,
            seed=seed,
            name=name,
            **kwargs,
        )
        self.k = check_ks(k)
        self.temperature = check_float(temperature, "temperature")

    @classmethod
    def default_ranker(cls):
        """``SigmoidRanker(0.01)``: the paper's sigmoid ranks, on cosine
        similarities."""
        return ranking.SigmoidRanker(0.01)

    def compute_terms(self, labels, scores, valid):
        positive = ops.logical_and(valid, labels > 0)
        ranks = self.rank(scores, valid)
        num_pos = ops.sum(ops.cast(positive, scores.dtype), axis=-1)
        ks = ops.cast(ops.convert_to_tensor(self.k), scores.dtype)
        soft_hits = ops.sigmoid(
            (ks - ops.expand_dims(ranks, -1)) / self.temperature
        )  # (..., n, K)
        soft_hits = ops.where(ops.expand_dims(positive, -1), soft_hits, 0.0)
        hits = ops.minimum(ops.sum(soft_hits, axis=-2), ks)
        recall = hits / ops.maximum(
            ops.minimum(ks, ops.expand_dims(num_pos, -1)), 1.0
        )
        # One term per list: RS@k does not split over items.
        loss = 1.0 - ops.mean(recall, axis=-1, keepdims=True)
        return loss, num_pos > 0

    def get_config(self):
        config = super().get_config()
        config.update({"k": list(self.k), "temperature": self.temperature})
        return config
