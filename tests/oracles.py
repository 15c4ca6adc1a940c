"""NumPy transcriptions shared by several test modules."""

import numpy as np
from scipy.special import expit
from scipy.stats import rankdata


def smooth_ranks_oracle(x, groups, temperature):
    """`counting.smooth_ranks` of one list, from its docstring.

    The items are grouped by their exact quantile ``(p + 1/2) / n`` (``p``
    the 0-based ascending position) into ``min(n, groups)`` groups of about
    equal size; each item is ranked with a sigmoid against the groups' mean
    scores, ``temperature`` times the spread between the groups at 25 % and
    75 % of the group index wide (the list's std if that spread is 0).
    """
    n = len(x)
    k = min(groups, n)
    quantile = 1.0 - rankdata(-x) / n + 0.5 / n
    index = np.clip(np.floor(quantile * k), 0, k - 1)
    means = np.array([x[index == g].mean() for g in range(k)])
    sizes = np.array([(index == g).sum() for g in range(k)], dtype=float)

    def mean_at(fraction):
        return means[int(np.floor(fraction * (k - 1) + 0.5))]

    spread = mean_at(0.75) - mean_at(0.25)
    width = temperature * (spread if spread > 0 else x.std() or 1.0)
    return (sizes * expit((means[None, :] - x[:, None]) / width)).sum(-1)
