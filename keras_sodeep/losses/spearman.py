"""The SoDeep Spearman loss (paper eq. 4)."""

import keras
from keras import ops

from keras_sodeep._checks import check_float
from keras_sodeep.losses.base import RankingLoss
from keras_sodeep.presets import PresetRanker
from keras_sodeep.ranking import exact_rank


@keras.saving.register_keras_serializable(package="keras_sodeep")
class SpearmanLoss(RankingLoss):
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

    The default ranker is ``"histogram-small-smooth:0.6"``: the learned,
    length-generic ``histogram-small`` sorter (three counting passes of 16
    anchors) with ``smooth_outputs=True`` and ``gradient_temperature=0.6``
    (see ``keras_sodeep.presets.smooth_histogram``). The sorter sorts
    each list into 32 quantile groups; the loss sees each item ranked by a
    sigmoid against the groups' mean scores, 0.6 times the list's
    interquartile spread wide. Scale-free (any scale of ``y_pred``
    trains), ``O(n)`` per list (any batch size), and soft: the loss keeps
    asking for a margin between items once their order is right, where an
    exact-valued ranker lets a regression network overfit the order of
    its training batches (the surrogate-quality and downstream benchmarks
    give the figures). ``ranker="histogram"`` gives the 4-pass sorter's
    own near-exact ranks with the smooth gradient only.

    Args:
        ranker: a ranker, a sorter, a preset name or ``None`` (see the module
            docstring). Defaults to ``None``.
        axis: ``0`` (the batch is the list; each column of a ``(B, C)``
            output is one list) or ``-1`` (each row is a list). Defaults to
            ``0``.
        l1_weight: non-negative float, weight of the L1 term. Defaults to
            ``0.0``.
        name: the loss's name.
        **kwargs: ``reduction`` and ``dtype``, as for ``keras.losses.Loss``.

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
        axis=0,
        l1_weight=0.0,
        *,
        ranker=None,
        name="spearman_loss",
        **kwargs,
    ):
        super().__init__(ranker=ranker, axis=axis, name=name, **kwargs)
        self.l1_weight = check_float(l1_weight, "l1_weight", positive=False)

    @classmethod
    def default_ranker(cls):
        """The ranker of ``ranker=None`` (see the class docstring)."""
        return PresetRanker("histogram-small", smooth_width=0.6)

    def compute_terms(self, labels, scores, valid):
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
