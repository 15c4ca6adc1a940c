"""Ranked List Loss (Wang et al., CVPR 2019)."""

import keras
from keras import ops

from keras_sodeep._checks import check_float
from keras_sodeep.losses.simix import SiMixOption


def _weighted_mean(values, weights_exponent, members):
    """``sum w x / sum w`` over ``members`` (last axis), ``w = exp(e)``.

    The weights carry no gradient; the largest exponent of the list is
    subtracted first (the ratio does not change), so they cannot overflow.
    An empty set gives 0.
    """
    exponent = ops.where(members, weights_exponent, -1e9)
    exponent = exponent - ops.max(exponent, axis=-1, keepdims=True)
    weights = ops.stop_gradient(ops.where(members, ops.exp(exponent), 0.0))
    total = ops.sum(weights, axis=-1, keepdims=True)
    return ops.where(members, weights * values, 0.0) / ops.maximum(total, 1e-12)


@keras.saving.register_keras_serializable(package="keras_sodeep")
class RankedListLoss(SiMixOption):
    """Ranked List Loss: positives inside a sphere, negatives beyond a boundary.

    Wang et al., "Ranked List Loss for Deep Metric Learning", CVPR 2019. For
    each query, ``d`` is the Euclidean distance of L2-normalized
    embeddings, ``d = sqrt(2 - 2 s)`` with ``s`` the cosine similarity, and
    with ``a = boundary`` and ``m = margin``:

    ```
    positives violate when d_p > a - m,   negatives when d_n < a
    L_P = sum w_p (d_p - a + m) / sum w_p     over violating positives
    w_p = exp(positive_temperature * (d_p - a + m))
    L_N = sum w_n (a - d_n) / sum w_n         over violating negatives
    w_n = exp(negative_temperature * (a - d_n))
    loss = mean over queries with a positive of
           (1 - imbalance) L_P + imbalance L_N
    ```

    The weights carry no gradient; an empty set contributes 0. Inputs:
    embeddings ``(B, D)`` with integer labels ``(B,)`` (each sample is a
    query against the others; the query is not in its own gallery, where
    the authors' code keeps it as a positive at distance 0; queries
    without a positive contribute nothing), or a matrix of cosine
    similarities ``(B, M)`` with 0/1 relevance of the same shape. No
    ranker: the loss is written on distances.

    Args:
        margin: positive float, ``m``: positives are pulled within
            ``boundary - margin``. Defaults to ``0.4``.
        boundary: positive float, ``a``: negatives are pushed beyond it.
            Defaults to ``1.2``.
        negative_temperature: non-negative float, the weighting of the
            violating negatives (0: uniform). Defaults to ``10.0``.
        positive_temperature: non-negative float, the weighting of the
            violating positives (0: uniform). Defaults to ``0.0``.
        imbalance: float in ``[0, 1]``, the weight of ``L_N``. Defaults to
            ``0.5``.
        simix: bool, similarity mixup of the embeddings (see
            ``keras_sodeep.losses.SiMixOption``). Defaults to ``False``.
        max_mixed: positive int, the most mixed embeddings per batch.
            Defaults to ``256``.
        seed: int or ``None``, the seed of the mixup. Defaults to ``None``.
        name: the loss's name.
        **kwargs: ``reduction`` and ``dtype``, as for ``keras.losses.Loss``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_sodeep.losses import RankedListLoss
    >>> loss = RankedListLoss()
    >>> labels = np.array([0, 0, 1, 1])
    >>> embeddings = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0],
    ...                        [0.1, 1.0]])
    >>> float(loss(labels, embeddings))  # well separated: no violation
    0.0
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    >>> model.compile(optimizer="adam", loss=RankedListLoss())
    """

    def __init__(
        self,
        margin=0.4,
        boundary=1.2,
        negative_temperature=10.0,
        positive_temperature=0.0,
        imbalance=0.5,
        *,
        simix=False,
        max_mixed=256,
        seed=None,
        name="ranked_list_loss",
        **kwargs,
    ):
        super().__init__(
            simix=simix,
            max_mixed=max_mixed,
            seed=seed,
            name=name,
            **kwargs,
        )
        self.margin = check_float(margin, "margin")
        self.boundary = check_float(boundary, "boundary")
        if self.margin >= self.boundary:
            raise ValueError(
                "`margin` should be smaller than `boundary`. Received: "
                f"margin={margin}, boundary={boundary}"
            )
        self.negative_temperature = check_float(
            negative_temperature, "negative_temperature", positive=False
        )
        self.positive_temperature = check_float(
            positive_temperature, "positive_temperature", positive=False
        )
        imbalance = check_float(imbalance, "imbalance", positive=False)
        if imbalance > 1.0:
            raise ValueError(
                "`imbalance` should be in [0, 1]. Received: "
                f"imbalance={imbalance}"
            )
        self.imbalance = imbalance

    def compute_terms(self, labels, scores, valid):
        positive = ops.logical_and(valid, labels > 0)
        negative = ops.logical_and(valid, labels <= 0)
        # Distances of unit vectors; the floor keeps sqrt differentiable.
        d = ops.sqrt(ops.maximum(2.0 - 2.0 * scores, 1e-12))
        pos_excess = d - (self.boundary - self.margin)
        neg_excess = self.boundary - d
        pos_terms = _weighted_mean(
            pos_excess,
            self.positive_temperature * pos_excess,
            ops.logical_and(positive, pos_excess > 0),
        )
        neg_terms = _weighted_mean(
            neg_excess,
            self.negative_temperature * neg_excess,
            ops.logical_and(negative, neg_excess > 0),
        )
        terms = (1.0 - self.imbalance) * pos_terms + self.imbalance * neg_terms
        num_pos = ops.sum(ops.cast(positive, scores.dtype), axis=-1)
        return terms, num_pos > 0

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "margin": self.margin,
                "boundary": self.boundary,
                "negative_temperature": self.negative_temperature,
                "positive_temperature": self.positive_temperature,
                "imbalance": self.imbalance,
            }
        )
        return config
