"""Soft ranks against quantile groups: `smooth_ranks` and `QuantileRanker`.

`smooth_ranks` ranks each item of a list by a sigmoid against the mean
scores of a few quantile groups of the list, its width a fraction of the
list's interquartile spread: scale-free, ``O(n * groups)`` per list, with
a gradient that moves every score toward its target rank. The groups come
from rank estimates: a learned sorter's (``Sorter(gradient_temperature=
...)``, the losses' default rankers) or the exact ranks of one sort
(`QuantileRanker`).
"""

import keras
from keras import ops

from keras_sodeep._checks import check_float, check_int
from keras_sodeep.ranking.exact import exact_rank
from keras_sodeep.ranking.rankers import Ranker


def smooth_ranks(scores, normalized_ranks, mask, bins, temperature):
    """A smooth stand-in for the ranks of a list, ``O(n * bins)``.

    The items are grouped by their estimated quantile (from
    ``normalized_ranks``, a sorter's own output, without gradient) into at
    most ``bins`` groups of about equal size, and each item is ranked
    against the groups' mean scores ``a_k`` (``n_k`` items each) with a
    sigmoid whose width is ``temperature`` times the list's interquartile
    spread: the mean score around the estimated quantile 3/4 minus that
    around 1/4, each weighted by ``max(0, 1 - |q_i - f| K)`` (``q_i`` the
    item's estimated quantile, ``K`` the number of groups); the list's
    standard deviation when that is 0, else 1:

    ```
    r~_i = sum_k n_k sigmoid((a_k - x_i) / (temperature * spread))
    ```

    As a function of the scores this behaves like a `SigmoidRanker` whose
    temperature follows the list's scale: every item is coupled with the
    items of nearby scores, whatever the scale, so its gradient moves each
    score toward its target rank. Masked items take no part, and nothing
    at a masked position reaches a value or a gradient.

    Args:
        scores: float tensor ``(batch, n)``.
        normalized_ranks: float tensor ``(batch, n)``, rank / m estimates.
        mask: boolean tensor ``(batch, n)``.
        bins: int, the largest number of groups.
        temperature: float, the sigmoid's width as a fraction of the
            spread.

    Returns:
        A float tensor ``(batch, n)``; its value is near the ranks, only its
        gradient is meant to be used.
    """
    maskf = ops.cast(mask, "float32")
    count = ops.maximum(ops.sum(maskf, axis=-1, keepdims=True), 1.0)
    x = ops.where(mask, scores, 0.0)
    num_bins = ops.minimum(count, float(bins))
    quantile = ops.stop_gradient(1.0 - normalized_ranks + 0.5 / count)
    quantile = ops.where(mask, quantile, 0.0)
    index = ops.clip(ops.floor(quantile * num_bins), 0.0, num_bins - 1.0)
    member = ops.one_hot(ops.cast(index, "int32"), bins) * maskf[..., None]
    size = ops.sum(member, axis=-2)
    means = ops.einsum("bjk,bj->bk", member, x) / ops.maximum(size, 1.0)
    # The quartiles: triangular-kernel means of the scores around the
    # estimated quantiles 1/4 and 3/4, one group wide on each side:
    # continuous in the estimated quantiles, so an item a sorter misplaces
    # by a little moves the spread by a little.
    half_width = 1.0 / num_bins
    xs = ops.stop_gradient(x)

    def mean_at(fraction):
        w = ops.relu(1.0 - ops.abs(quantile - fraction) / half_width) * maskf
        total = ops.sum(w, axis=-1, keepdims=True)
        value = ops.sum(w * xs, axis=-1, keepdims=True)
        return value / ops.maximum(total, 1e-6), total > 0

    upper, has_upper = mean_at(0.75)
    lower, has_lower = mean_at(0.25)
    spread = ops.where(
        ops.logical_and(has_upper, has_lower), upper - lower, 0.0
    )
    mean = ops.sum(xs, axis=-1, keepdims=True) / count
    var = ops.sum(ops.square(xs - mean) * maskf, axis=-1, keepdims=True)
    std = ops.sqrt(var / count)
    spread = ops.where(spread > 0, spread, std)
    spread = ops.where(spread > 0, spread, 1.0)
    width = (temperature * spread)[..., None]
    above = ops.sigmoid((means[..., None, :] - x[..., None]) / width)
    return ops.einsum("bjk,bk->bj", above, size)


@keras.saving.register_keras_serializable(package="keras_sodeep")
class QuantileRanker(Ranker):
    """Soft ranks against quantile groups found by one exact sort.

    The items of each list are grouped by their exact rank into ``groups``
    quantile groups of about equal size; each item is then ranked by a
    sigmoid against the groups' mean scores (`smooth_ranks`), ``temperature``
    times the list's interquartile spread wide:

    ```
    r_i = 1/2 + sum_k n_k sigmoid((a_k - x_i) / (temperature * spread))
    ```

    The same soft ranks as the losses' default learned rankers
    (``PresetRanker("histogram-small", smooth_width=0.6)`` groups with the
    learned sorter's estimates), without the sorter: one sort, then
    ``O(n * groups)``. Scale-free, and smooth by design: its values are
    near the ranks, not equal to them.

    Args:
        temperature: positive float, the sigmoid's width as a fraction of
            each list's spread. Defaults to ``0.6``.
        groups: positive int, the largest number of quantile groups.
            Defaults to ``32``.

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.ranking import QuantileRanker
    >>> ranks = QuantileRanker(0.05)(np.array([0.0, 3.0, 1.0, 2.0]))
    >>> np.round(np.asarray(ranks), 1).tolist()
    [4.0, 1.0, 3.0, 2.0]
    """

    def __init__(self, temperature=0.6, groups=32, **kwargs):
        super().__init__(**kwargs)
        self.temperature = check_float(temperature, "temperature")
        self.groups = check_int(groups, "groups")

    def rank(self, scores, mask):
        shape = ops.shape(scores)
        flat = ops.reshape(scores, (-1, shape[-1]))
        valid = (
            ops.ones_like(flat, dtype="bool")
            if mask is None
            else ops.reshape(mask, (-1, shape[-1]))
        )
        count = ops.maximum(
            ops.sum(ops.cast(valid, flat.dtype), axis=-1, keepdims=True), 1.0
        )
        estimates = exact_rank(ops.stop_gradient(flat), mask=valid) / count
        ranks = 0.5 + smooth_ranks(
            flat, estimates, valid, self.groups, self.temperature
        )
        return ops.reshape(ranks, shape)

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": self.temperature, "groups": self.groups})
        return config
