"""SupRank and ROADMAP: AP and Recall@k on an upper bound of the rank.

Ramzi et al., "Robust and Decomposable Average Precision for Image
Retrieval" (ROADMAP, NeurIPS 2021) and "Optimization of Rank Losses for
Image Retrieval" (SupRank, TPAMI 2023). The rank of a positive is exact
among the positives and an upper bound among the negatives, whose slope
never vanishes for a negative ranked above it.
"""

import keras
from keras import ops

from keras_sodeep._checks import check_float, check_ks
from keras_sodeep.losses.base import ListwiseLoss
from keras_sodeep.losses.calibration import (
    CalibrationLoss,
    calibration_terms,
)


def sup_ranks(labels, scores, valid, temperature, margin, slope, offset, jump):
    """SupRank ranks of the positives of each list (last axis).

    Returns ``(positive, rank, rank_plus, num_pos)``; ``rank`` and
    ``rank_plus`` are meaningful at the positives only. With ``t = s_j -
    s_i``: ``rank(i) = 1 + sum_{j in P, j != i} H(t) + sum_{j in N} H+(t)``
    and ``rank_plus(i) = 1 + sum_{j in P, j != i} H(t)``.
    """
    dtype = scores.dtype
    positive = ops.logical_and(valid, labels > 0)
    negative = ops.logical_and(valid, ops.logical_not(positive))
    n = ops.shape(scores)[-1]
    # t[..., i, j] = s_j - s_i: item j against the positive i.
    t = ops.expand_dims(scores, -2) - ops.expand_dims(scores, -1)
    step = ops.cast(t >= 0, dtype)  # H: exact, no gradient
    soft = ops.sigmoid(t / temperature)
    upper = ops.where(
        t <= 0,
        soft,
        ops.where(t <= margin, jump + soft, slope * (t - margin) + offset),
    )
    not_self = ops.logical_not(ops.cast(ops.eye(n), "bool"))
    other_pos = ops.logical_and(ops.expand_dims(positive, -2), not_self)
    above_pos = ops.sum(ops.where(other_pos, step, 0.0), axis=-1)
    above_neg = ops.sum(
        ops.where(ops.expand_dims(negative, -2), upper, 0.0), axis=-1
    )
    rank_plus = 1.0 + above_pos
    rank = rank_plus + above_neg
    num_pos = ops.sum(ops.cast(positive, dtype), axis=-1)
    return positive, rank, rank_plus, num_pos


class _SupRankArgs:
    """The parameters of the SupRank rank, checked, and their config."""

    def _set_rank_args(
        self, temperature, margin, slope, offset, jump, name="temperature"
    ):
        self._rank_temperature = check_float(temperature, name)
        self.margin = check_float(margin, "margin", positive=False)
        self.slope = check_float(slope, "slope", positive=False)
        self.offset = check_float(offset, "offset", positive=False)
        self.jump = check_float(jump, "jump", positive=False)

    def _sup_ranks(self, labels, scores, valid):
        return sup_ranks(
            labels,
            scores,
            valid,
            self._rank_temperature,
            self.margin,
            self.slope,
            self.offset,
            self.jump,
        )

    def _rank_config(self):
        return {
            "margin": self.margin,
            "slope": self.slope,
            "offset": self.offset,
            "jump": self.jump,
        }


def _ap_terms(positive, rank, rank_plus, num_pos):
    """Per-positive terms summing to ``1 - AP`` of each list."""
    ratio = rank_plus / ops.where(positive, rank, 1.0)
    per_pos = ops.where(positive, 1.0 - ratio, 0.0)
    return per_pos / ops.expand_dims(ops.maximum(num_pos, 1.0), -1)


@keras.saving.register_keras_serializable(package="keras_sodeep")
class SupAPLoss(_SupRankArgs, ListwiseLoss):
    """One minus Average Precision on the SupRank rank (SupAP, ROADMAP).

    For a query with positives ``P`` and negatives ``N``, ``t = s_j - s_i``
    the score of item ``j`` minus that of the positive ``i``:

    ```
    rank(i)      = 1 + sum_{j in P, j != i} H(t) + sum_{j in N} H+(t)
    rank_plus(i) = 1 + sum_{j in P, j != i} H(t)
    H(t)  = 1 if t >= 0 else 0                      (exact, no gradient)
    H+(t) = sigmoid(t / temperature)                 if t <= 0
          = jump + sigmoid(t / temperature)          if 0 < t <= margin
          = slope * (t - margin) + offset            if t > margin
    loss  = 1 - mean over queries of (1/|P|) sum_{i in P} rank_plus(i) / rank(i)
    ```

    ``H+`` bounds the step of a negative from above and keeps a gradient of
    ``slope`` for a negative scored well above a positive, where a sigmoid
    (Smooth-AP) saturates. The linear part is ``slope * (t - margin) +
    offset``, as in the paper and the reference code (``offset`` is about
    ``jump + sigmoid(margin / temperature)``, so ``H+`` is nearly
    continuous). No ranker is involved: the ranks are the formula's.

    Inputs: scores ``(B, M)`` with 0/1 relevance of the same shape (one
    query per row), or embeddings ``(B, D)`` with integer labels ``(B,)``:
    each sample is a query ranking the others by cosine similarity. The
    query is not in its own gallery (the reference code keeps it there, as
    a positive ranked first). Queries without a positive contribute
    nothing.

    Args:
        temperature: positive float, the sigmoid's temperature ``tau``.
            Defaults to ``0.01``.
        margin: non-negative float, where ``H+`` turns linear (``delta``).
            Defaults to ``0.05``.
        slope: non-negative float, the slope of the linear part (``rho``).
            Defaults to ``100.0``.
        offset: non-negative float, the value of the linear part at
            ``margin``. Defaults to ``1.44``.
        jump: non-negative float, the step of ``H+`` at 0. Defaults to
            ``0.5``.
        name: the loss's name.
        **kwargs: ``reduction`` and ``dtype``, as for ``keras.losses.Loss``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_sodeep.losses import SupAPLoss
    >>> loss = SupAPLoss()

    The negative 0.4 above the second positive counts for
    ``100 * (0.4 - 0.05) + 1.44`` positions: AP = (1/1 + 2/38.44) / 2.

    >>> float(loss(np.array([[1.0, 0.0, 1.0]]), np.array([[0.9, 0.5, 0.1]])))
    0.4739...
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    >>> model.compile(optimizer="adam", loss=SupAPLoss())
    """

    def __init__(
        self,
        temperature=0.01,
        margin=0.05,
        slope=100.0,
        offset=1.44,
        jump=0.5,
        *,
        name="sup_ap_loss",
        **kwargs,
    ):
        super().__init__(axis=-1, name=name, **kwargs)
        self._set_rank_args(temperature, margin, slope, offset, jump)
        self.temperature = self._rank_temperature

    def compute_terms(self, labels, scores, valid):
        positive, rank, rank_plus, num_pos = self._sup_ranks(
            labels, scores, valid
        )
        return _ap_terms(positive, rank, rank_plus, num_pos), num_pos > 0

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": self.temperature, **self._rank_config()})
        return config


@keras.saving.register_keras_serializable(package="keras_sodeep")
class SupRecallAtKLoss(_SupRankArgs, ListwiseLoss):
    """One minus a smooth Recall@k on the SupRank rank (SupRank, TPAMI 2023).

    With ``rank(i)`` the SupRank rank of positive ``i`` (see `SupAPLoss`):

    ```
    recall_k = sum_{i in P} sigmoid((k - rank(i)) / temperature) / min(|P|, k)
    loss = 1 - mean over k and over queries with a positive of recall_k
    ```

    ``recall_k`` is the fraction of the ``min(|P|, k)`` positives that can
    be in the top ``k`` which are there (a recall, not the hit rate of
    `RecallAtKLoss`). Inputs as for `SupAPLoss`; the query is not in its
    own gallery; queries without a positive contribute nothing.

    Args:
        k: positive int or sequence of positive ints. Defaults to
            ``(1, 2, 4, 8, 16)``.
        temperature: positive float, the width of the sigmoid on rank
            positions. Defaults to ``1.0``.
        rank_temperature: positive float, the temperature of ``H+`` (the
            ``temperature`` of `SupAPLoss`). Defaults to ``0.01``.
        margin, slope, offset, jump: the other parameters of ``H+``, as
            for `SupAPLoss`. Default to ``0.05``, ``100.0``, ``1.44`` and
            ``0.5``.
        name: the loss's name.
        **kwargs: ``reduction`` and ``dtype``, as for ``keras.losses.Loss``.

    Example:

    >>> import keras
    >>> from keras_sodeep.losses import SupRecallAtKLoss
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    >>> model.compile(optimizer="adam", loss=SupRecallAtKLoss(k=(1, 4)))
    """

    def __init__(
        self,
        k=(1, 2, 4, 8, 16),
        temperature=1.0,
        rank_temperature=0.01,
        margin=0.05,
        slope=100.0,
        offset=1.44,
        jump=0.5,
        *,
        name="sup_recall_at_k_loss",
        **kwargs,
    ):
        super().__init__(axis=-1, name=name, **kwargs)
        self.k = check_ks(k)
        self.temperature = check_float(temperature, "temperature")
        self._set_rank_args(
            rank_temperature, margin, slope, offset, jump, "rank_temperature"
        )
        self.rank_temperature = self._rank_temperature

    def compute_terms(self, labels, scores, valid):
        positive, rank, _, num_pos = self._sup_ranks(labels, scores, valid)
        dtype = scores.dtype
        ks = ops.cast(ops.convert_to_tensor(self.k), dtype)  # (K,)
        hits = ops.sigmoid(
            (ks - ops.expand_dims(rank, -1)) / self.temperature
        )  # (..., n, K)
        norm = ops.minimum(ops.expand_dims(num_pos, -1), ks)  # (..., K)
        hits = hits / ops.expand_dims(ops.maximum(norm, 1.0), -2)
        # Per positive: its share of 1 minus its share of the recalls.
        share = 1.0 / ops.maximum(num_pos, 1.0)
        terms = ops.expand_dims(share, -1) - ops.mean(hits, axis=-1)
        return ops.where(positive, terms, 0.0), num_pos > 0

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "k": list(self.k),
                "temperature": self.temperature,
                "rank_temperature": self.rank_temperature,
                **self._rank_config(),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_sodeep")
class ROADMAPLoss(SupAPLoss):
    """SupAP plus the calibration loss (ROADMAP, Ramzi et al. NeurIPS 2021).

    ```
    loss = SupAPLoss(...) + calibration_weight * CalibrationLoss(...)
    ```

    See `SupAPLoss` and `CalibrationLoss`: the AP term averages over the
    queries with a positive, the calibration term over the pairs of the
    batch. Inputs as for `SupAPLoss`.

    Args:
        calibration_weight: non-negative float, the calibration term's
            weight. Defaults to ``1.0``.
        positive_margin, negative_margin: the margins of the calibration
            term. Default to ``0.9`` and ``0.6``.
        temperature, margin, slope, offset, jump: as for `SupAPLoss`.
        name: the loss's name.
        **kwargs: ``reduction`` and ``dtype``, as for ``keras.losses.Loss``.

    Example:

    >>> import keras
    >>> from keras_sodeep.losses import ROADMAPLoss
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    >>> model.compile(optimizer="adam", loss=ROADMAPLoss())
    """

    def __init__(
        self,
        calibration_weight=1.0,
        positive_margin=0.9,
        negative_margin=0.6,
        temperature=0.01,
        margin=0.05,
        slope=100.0,
        offset=1.44,
        jump=0.5,
        *,
        name="roadmap_loss",
        **kwargs,
    ):
        super().__init__(
            temperature, margin, slope, offset, jump, name=name, **kwargs
        )
        self.calibration_weight = check_float(
            calibration_weight, "calibration_weight", positive=False
        )
        # Checks the margins as `CalibrationLoss` does.
        calibration = CalibrationLoss(positive_margin, negative_margin)
        self.positive_margin = calibration.positive_margin
        self.negative_margin = calibration.negative_margin

    def compute_terms(self, labels, scores, valid):
        dtype = scores.dtype
        ap_terms, has_pos = super().compute_terms(labels, scores, valid)
        cal_terms, list_valid = calibration_terms(
            labels, scores, valid, self.positive_margin, self.negative_margin
        )
        # The base averages over `list_valid`; the AP term over `has_pos`.
        num_lists = ops.sum(ops.cast(list_valid, dtype))
        num_pos_lists = ops.maximum(ops.sum(ops.cast(has_pos, dtype)), 1.0)
        ap_terms = ap_terms * (num_lists / num_pos_lists)
        terms = ap_terms + self.calibration_weight * cal_terms
        return terms, list_valid

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "calibration_weight": self.calibration_weight,
                "positive_margin": self.positive_margin,
                "negative_margin": self.negative_margin,
            }
        )
        return config
