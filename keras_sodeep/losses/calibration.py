"""The calibration loss of ROADMAP (Ramzi et al., NeurIPS 2021)."""

import math

import keras
from keras import ops

from keras_sodeep.losses.base import ListwiseLoss


def calibration_terms(labels, scores, valid, positive_margin, negative_margin):
    """Per-pair hinges of the calibration loss, scaled for `ListwiseLoss`.

    Returns ``(terms, list_valid)``: ``terms`` sum, over the pairs of the
    lists that count, to the mean of the non-zero positive hinges plus the
    mean of the non-zero negative hinges, times the number of lists that
    count (so that the base's mean over those lists gives the formula);
    ``list_valid``: the lists with at least one valid item.
    """
    dtype = scores.dtype
    positive = ops.logical_and(valid, labels > 0)
    negative = ops.logical_and(valid, ops.logical_not(positive))
    pos_hinge = ops.where(positive, ops.relu(positive_margin - scores), 0.0)
    neg_hinge = ops.where(negative, ops.relu(scores - negative_margin), 0.0)
    # The means run over the non-zero hinges of the whole batch.
    num_pos = ops.sum(ops.cast(pos_hinge > 0, dtype))
    num_neg = ops.sum(ops.cast(neg_hinge > 0, dtype))
    list_valid = ops.any(valid, axis=-1)
    num_lists = ops.sum(ops.cast(list_valid, dtype))
    terms = pos_hinge / ops.maximum(num_pos, 1.0)
    terms = terms + neg_hinge / ops.maximum(num_neg, 1.0)
    return terms * num_lists, list_valid


@keras.saving.register_keras_serializable(package="keras_sodeep")
class CalibrationLoss(ListwiseLoss):
    """Hinges on the similarities themselves (ROADMAP's calibration term).

    A contrastive loss with two margins on similarities ``s``: positive
    pairs should score above ``positive_margin``, negative pairs below
    ``negative_margin``:

    ```
    loss = mean of the non-zero [positive_margin - s]_+ over positive pairs
         + mean of the non-zero [s - negative_margin]_+ over negative pairs
    ```

    The means run over the pairs of the whole batch (not per query), as in
    the reference code; a sum with no non-zero term is 0. Ranking losses
    are invariant to a shift of a query's scores; this term ties them to
    one absolute scale, so that the batch losses add up to a loss of the
    whole training set (ROADMAP's "decomposability gap"). Inputs: scores
    ``(B, M)`` (similarities, for the margins to make sense) with 0/1
    relevance of the same shape, or embeddings ``(B, D)`` with integer
    labels ``(B,)``: cosine similarities between samples, self-pairs out.
    ``sample_weight`` weights each query's share of the sums.

    Args:
        positive_margin: float, the similarity positives should reach.
            Defaults to ``0.9``.
        negative_margin: float, the similarity negatives should stay
            below. Defaults to ``0.6``.
        name: the loss's name.
        **kwargs: ``reduction`` and ``dtype``, as for ``keras.losses.Loss``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_sodeep.losses import CalibrationLoss
    >>> loss = CalibrationLoss()
    >>> y_true = np.array([[1.0, 0.0, 0.0]])
    >>> y_pred = np.array([[0.7, 0.8, 0.5]])
    >>> round(float(loss(y_true, y_pred)), 4)  # 0.2 + 0.2
    0.4
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    >>> model.compile(optimizer="adam", loss=CalibrationLoss())
    """

    def __init__(
        self,
        positive_margin=0.9,
        negative_margin=0.6,
        *,
        name="calibration_loss",
        **kwargs,
    ):
        super().__init__(axis=-1, name=name, **kwargs)
        self.positive_margin = _check_number(positive_margin, "positive_margin")
        self.negative_margin = _check_number(negative_margin, "negative_margin")

    def compute_terms(self, labels, scores, valid):
        return calibration_terms(
            labels, scores, valid, self.positive_margin, self.negative_margin
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "positive_margin": self.positive_margin,
                "negative_margin": self.negative_margin,
            }
        )
        return config


def _check_number(value, name):
    """``float(value)`` for a real number (margins may be negative)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value):
        raise ValueError(
            f"`{name}` should be a finite float. Received: {name}={value}"
        )
    return float(value)
