"""A differentiable mean Average Precision loss (paper eqs. 5-7)."""

import keras
from keras import ops

from keras_sodeep.losses.base import RankingLoss
from keras_sodeep.presets import PresetRanker


@keras.saving.register_keras_serializable(package="keras_sodeep")
class MeanAveragePrecisionLoss(RankingLoss):
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

    The default ranker is ``PresetRanker("histogram", smooth_width=0.15)``
    (``"histogram-smooth:0.15"``): the learned,
    length-generic ``histogram`` sorter with soft outputs (see
    ``keras_sodeep.presets.smooth_histogram``), each item ranked by a
    sigmoid against the means of 64 quantile groups of its list, 0.15
    times the list's interquartile spread wide. Scale-free and ``O(n)``
    per list; on the downstream mosaics it trained better than the
    sorter's near-exact ranks (the docs' downstream benchmarks).

    Args:
        ranker: a ranker, a sorter, a preset name or ``None`` (see the module
            docstring). Defaults to ``None``.
        axis: ``0`` (one list per column: multi-label classification) or
            ``-1`` (one query per row). Defaults to ``0``.
        name: the loss's name.
        **kwargs: ``reduction`` and ``dtype``, as for ``keras.losses.Loss``.

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
        axis=0,
        *,
        ranker=None,
        name="mean_average_precision_loss",
        **kwargs,
    ):
        super().__init__(ranker=ranker, axis=axis, name=name, **kwargs)

    @classmethod
    def default_ranker(cls):
        """The ranker of ``ranker=None`` (see the class docstring)."""
        return PresetRanker("histogram", smooth_width=0.15)

    def compute_terms(self, labels, scores, valid):
        positive, ranks, pos_ranks, num_pos = self.positive_ranks(
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
