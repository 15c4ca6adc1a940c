"""The length-generic sorter from learned soft histograms."""

import keras
from keras import ops

from keras_sodeep._checks import check_int
from keras_sodeep.sorters.base import Sorter
from keras_sodeep.sorters.counting import histogram_pass


@keras.saving.register_keras_serializable(package="keras_sodeep")
class HistogramSorter(Sorter):
    """Length-generic sorter from learned soft histograms, O(n K) per list.

    Each pass counts, for ``K`` anchors ``a_k`` spread evenly over the
    range of a coordinate ``t``, the fraction of the list above each
    anchor with a learned temperature, and reads each item's rank off
    those counts by interpolating inside the item's bin:

    ```
    s_jk   = sigmoid((t_j - a_k) / (tau * delta)),   c_k = sum_j s_jk
    above_i = c_hi - s_i,hi,   m_i = (c_lo - c_hi) - (s_i,lo - s_i,hi)
    rank_i ~= 1 + above_i + m_i (1 - f_i)
    ```

    where ``[a_lo, a_hi]`` is the bin of item ``i``, ``f_i`` its place in
    the bin, ``above_i`` the other items above the bin and ``m_i`` the
    other items in it. The estimate is exact when an item has its bin to
    itself; when items share a bin it is their expected rank if they are
    spread evenly in it. Leaving each item out of its own counts keeps the
    sign of its gradient right: raising a score never raises its rank.

    The first pass runs on the min-max feature ``2 u - 1``; each later
    pass runs on the previous pass's estimate of the quantile,
    ``1 - (rank - 1/2) / n``, where items are spread nearly evenly, so
    that with ``K`` anchors a bin holds about ``n / K`` items whatever the
    distribution of the list. A small MLP head, zero at initialization,
    adds a learned correction (in ranks) from ``f``, ``m`` and ``n``:

    ```
    rank_i / n ~= (rank_i + MLP([f_i, log(1 + m_i), 1 / n, log n])) / n
    ```

    The counting and interpolation are built in, so an untrained sorter
    already ranks closely (see the Example); training on synthetic lists
    fits the temperatures and the correction head to the exact ranks.

    The output is the estimate itself, not squashed into ``(0, 1)``: it
    stays within about half a rank of ``[1 / n, 1]``.

    The cost is ``O(n * sum(anchors))`` per list, below the ``O(n^2)`` of
    `keras_sodeep.ranking.SigmoidRanker` once ``n`` exceeds the total
    number of anchors, and every step is parallel (no recurrence). Masked
    items take no part in the counts. Its own gradient reaches every
    item's score through its position in its bin (the local density of the
    list) and, through the soft counts, from the items near its bin's
    anchors; it is sparse when bins hold few items, and a loss trains
    poorly on it. The shipped preset (``keras_sodeep.pretrained
    ("histogram")``, the losses' default ranker) therefore sets
    ``gradient_temperature=0.1`` (see `Sorter`): its outputs are this
    sorter's, its gradient a smooth scale-free sigmoid ranking. A smaller
    preset, ``histogram-small`` (``anchors=(16, 16, 16)``, L1 0.0054 at
    n = 100), sorts each list into the quantile groups of the soft
    default of `SpearmanLoss`; `MeanAveragePrecisionLoss`'s soft default
    groups with ``histogram`` (see
    ``keras_sodeep.presets.PresetRanker``).

    Args:
        anchors: tuple of ints >= 3, the number of anchors of each pass.
            Four passes resolve lists of a few tight clusters far apart,
            which two leave squeezed. Defaults to ``(64, 256, 256, 256)``.
        hidden_units: int, width of the correction head. Defaults to 16.
        **kwargs: passed to `Sorter` (``gradient_temperature``,
            ``gradient_bins``) and ``keras.Model`` (``seq_len`` is accepted only
            as ``None``).

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.ranking import exact_rank
    >>> from keras_sodeep.sorters import HistogramSorter
    >>> sorter = HistogramSorter()
    >>> x = np.random.default_rng(0).normal(size=(4, 500)).astype("float32")
    >>> exact = np.asarray(exact_rank(x)) / 500
    >>> bool(np.mean(np.abs(np.asarray(sorter(x)) - exact)) < 0.01)
    True
    >>> tuple(sorter(np.zeros((3, 7))).shape)
    (3, 7)
    """

    _generic_only = True
    # It spreads each list itself: no `spread_inputs`.
    _has_spread_option = False

    def __init__(
        self,
        anchors=(64, 256, 256, 256),
        hidden_units=16,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(anchors, int):
            anchors = (anchors,)
        anchors = tuple(anchors) if isinstance(anchors, (list, tuple)) else ()
        if not anchors or any(
            not isinstance(a, int) or isinstance(a, bool) or a < 3
            for a in anchors
        ):
            raise ValueError(
                "`anchors` should be a non-empty tuple of ints >= 3, the "
                f"anchors of each pass. Received: anchors={anchors!r}"
            )
        check_int(hidden_units, "hidden_units")
        self.anchors = anchors
        self.hidden_units = hidden_units
        self.hidden = keras.layers.Dense(
            hidden_units, activation="relu", dtype="float32", name="hidden"
        )
        self.head = keras.layers.Dense(
            1, kernel_initializer="zeros", dtype="float32", name="head"
        )

    def _feature_kind(self):
        # The passes start from the min-max coordinate alone.
        return "min_max"

    def _build_layers(self, features_shape):
        self.log_temperature = self.add_weight(
            shape=(len(self.anchors),),
            initializer=keras.initializers.Constant(-1.0),
            name="log_temperature",
            dtype="float32",
        )
        batch, n, _ = features_shape
        self.hidden.build((batch, n, 4))
        self.head.build((batch, n, self.hidden_units))

    def _rank(self, features, mask, training):
        v = ops.cast(features[..., 0], "float32")
        t = v
        if mask is None:
            weights = ops.ones_like(t)
        else:
            weights = ops.cast(mask, "float32")
        count = ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1.0)
        # float32 also under a mixed-precision policy (no autocast).
        log_temperature = ops.cast(self.log_temperature, "float32")
        lo, hi = -1.0, 1.0
        for p, num_anchors in enumerate(self.anchors):
            rank, f, m = histogram_pass(
                t, weights, count, lo, hi, num_anchors, log_temperature[p]
            )
            t = 1.0 - (rank - 0.5) / count
            lo, hi = 0.0, 1.0
        n = count + ops.zeros_like(t)
        head_features = ops.stack(
            [f, ops.log1p(ops.relu(m)), 1.0 / n, ops.log(n)], axis=-1
        )
        correction = ops.squeeze(self.head(self.hidden(head_features)), -1)
        ranks = (rank + correction) / count
        return ranks

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "anchors": list(self.anchors),
                "hidden_units": self.hidden_units,
            }
        )
        return config
