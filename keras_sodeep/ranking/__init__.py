"""Exact ranks and differentiable rankers.

Conventions (shared by every loss and metric of the package): ranks are
descending and 1-based, the highest score has rank 1, and tied scores share the
average of the positions they span, as ``scipy.stats.rankdata(-x,
method="average")`` does. Masked items take no part in any rank.

This subpackage is the ground floor of the package: it imports no other
module of ``keras_sodeep`` but the private argument checks,
``keras_sodeep._checks``.
It holds the one ranker registry, `get`: modules above it add their own
specifications (`register_spec`, `register_presets`) when the package is
imported.
"""

from keras_sodeep.ranking.exact import (
    check_mask,
    exact_rank,
    pad_below_minimum,
    sorted_tie_groups,
)
from keras_sodeep.ranking.rankers import (
    ExactRanker,
    NeuralSortRanker,
    Ranker,
    SigmoidRanker,
    SorterRanker,
)
from keras_sodeep.ranking.registry import (
    DEFAULT_SMOOTH_WIDTH,
    SMOOTH_SUFFIX,
    check_saved_ranker,
    get,
    looks_like_path,
    register_presets,
    register_spec,
)
from keras_sodeep.ranking.smooth import QuantileRanker, smooth_ranks

__all__ = [
    "DEFAULT_SMOOTH_WIDTH",
    "ExactRanker",
    "NeuralSortRanker",
    "QuantileRanker",
    "Ranker",
    "SMOOTH_SUFFIX",
    "SigmoidRanker",
    "SorterRanker",
    "check_mask",
    "check_saved_ranker",
    "exact_rank",
    "get",
    "looks_like_path",
    "pad_below_minimum",
    "register_presets",
    "register_spec",
    "smooth_ranks",
    "sorted_tie_groups",
]
