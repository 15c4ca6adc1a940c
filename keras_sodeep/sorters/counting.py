"""Soft counting over anchors: the arithmetic the sorters share.

Three uses of one idea, counting how many items of a list lie above some
anchor values:

- `histogram_pass`: one pass of `HistogramSorter`, an item's rank read off
  soft counts at evenly spaced anchors by interpolation inside its bin;
- `spread_evenly`: a few such passes with fixed temperatures, which map a
  list to estimates of its items' quantiles, evenly spread in ``(0, 1)``
  whatever the list's distribution (the third input feature of the
  sorters);
- `smooth_ranks`: a smooth stand-in for the ranks, whose gradient a sorter
  may use in place of its own (``Sorter(gradient_temperature=...)``).

All are ``O(n * anchors)`` per list and parallel.
"""

from keras import ops

SPREAD_ANCHORS = (32, 64, 64, 64, 64)
"""Anchors of the passes of `spread_evenly`, one entry per pass."""


def _at_bin_ends(c, low):
    """``c[b, low[b, j]]`` and ``c[b, low[b, j] + 1]``: one flat gather."""
    num_anchors = ops.shape(c)[-1]
    rows = ops.arange(ops.shape(c)[0], dtype="int32")[:, None] * num_anchors
    at = ops.take(
        ops.reshape(c, (-1,)), ops.stack([rows + low, rows + low + 1], -1)
    )
    return at[..., 0], at[..., 1]


def histogram_pass(t, weights, count, lo, hi, num_anchors, log_temperature):
    """Ranks from soft counts at ``num_anchors`` anchors over ``[lo, hi]``.

    Returns the estimated rank of every item (1 + the number of other items
    above it, in ``[1, count]``) and the two head features ``f`` (position
    in its bin) and ``m`` (soft number of other items in its bin). Each
    item is left out of its own counts, so that raising its score never
    raises its estimated rank.
    """
    delta = (hi - lo) / (num_anchors - 2)
    first = lo - delta / 2
    anchors = first + delta * ops.arange(num_anchors, dtype="float32")
    temperature = ops.exp(log_temperature) * delta
    # s[b, j, k]: item j lies above anchor k; c[b, k]: fraction above a_k.
    s = ops.sigmoid((ops.expand_dims(t, -1) - anchors) / temperature)
    c = ops.sum(s * ops.expand_dims(weights, -1), axis=1) / count
    position = (t - first) / delta
    low = ops.clip(ops.floor(position), 0, num_anchors - 2)
    f = position - low
    c_low, c_high = _at_bin_ends(c, ops.cast(low, "int32"))
    # The item's own soft counts at the two anchors of its bin.
    anchor_low = first + delta * low
    own_low = ops.sigmoid((t - anchor_low) / temperature)
    own_high = ops.sigmoid((t - (anchor_low + delta)) / temperature)
    above = count * c_high - own_high
    m = count * (c_low - c_high) - (own_low - own_high)
    rank = 1.0 + above + m * (1.0 - f)
    return rank, f, m


def spread_evenly(v, weights, count):
    """Estimated quantiles of a list's items, spread evenly in ``(0, 1)``.

    Runs `histogram_pass` with the anchors of `SPREAD_ANCHORS` and fixed
    temperatures (``e^-1`` of a bin): the first pass on the min-max
    coordinate ``v`` in ``[-1, 1]``, each later one on the previous
    estimate ``q = 1 - (rank - 1/2) / count``. Each pass zooms into the
    items the previous one left close together, so a heavy-tailed list (a
    few outliers squeeze the rest into one bin) or a clustered one (tight
    groups far apart) comes out about as evenly spread as a uniform one:
    ``q`` is within about 0.003 of the exact quantile on such lists of 100
    items, 0.005 on clustered ones.

    Args:
        v: float tensor ``(batch, n)``, the scores mapped to ``[-1, 1]``.
        weights: float tensor ``(batch, n)``, 1 for items, 0 for padding.
        count: float tensor ``(batch, 1)``, the number of items (>= 1).

    Returns:
        ``q``, float tensor ``(batch, n)``, increasing with the scores.
    """
    t, lo, hi = v, -1.0, 1.0
    for num_anchors in SPREAD_ANCHORS:
        rank, _, _ = histogram_pass(
            t, weights, count, lo, hi, num_anchors, -1.0
        )
        t = 1.0 - (rank - 0.5) / count
        lo, hi = 0.0, 1.0
    return t


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
