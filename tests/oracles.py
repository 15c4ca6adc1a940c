"""NumPy transcriptions shared by several test modules."""

import numpy as np
from scipy.special import expit
from scipy.stats import rankdata


def smooth_ranks_oracle(x, groups, temperature, ranks=None):
    """`counting.smooth_ranks` of one list, from its docstring.

    The items are grouped by their quantile ``q = 1 - r / n + 1/2n`` (``r``
    the exact tie-averaged descending rank, or ``ranks * n`` when given:
    normalized rank estimates, such as a sorter's) into ``k = min(n,
    groups)`` groups of about equal size; each item is ranked with a
    sigmoid against the groups' mean scores, ``temperature`` times the
    spread wide: the mean of the scores weighted by ``max(0, 1 - |q - 3/4|
    k)`` minus the one weighted by ``max(0, 1 - |q - 1/4| k)`` (the list's
    std if that is 0 or a weight sum is 0).
    """
    n = len(x)
    k = min(groups, n)
    r = rankdata(-x) if ranks is None else np.asarray(ranks, float) * n
    quantile = 1.0 - r / n + 0.5 / n
    index = np.clip(np.floor(quantile * k), 0, k - 1)
    sizes = np.array([(index == g).sum() for g in range(k)], dtype=float)
    means = np.array(
        [x[index == g].mean() if sizes[g] else 0.0 for g in range(k)]
    )

    def mean_at(fraction):
        w = np.maximum(0.0, 1.0 - np.abs(quantile - fraction) * k)
        return (w * x).sum() / w.sum() if w.sum() > 0 else np.nan

    spread = mean_at(0.75) - mean_at(0.25)
    if not spread > 0:
        spread = x.std() or 1.0
    width = temperature * spread
    return (sizes * expit((means[None, :] - x[:, None]) / width)).sum(-1)
