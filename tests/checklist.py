"""The per-class checklist: one row per loss or metric.

`tests/test_checklist.py` runs every check on every row: unbatched and
batched input, both axes (where the row has them), masks, sample weights,
ties (a list's value does not depend on the order of its items, tied
ones included), bad input, ``fit`` / ``evaluate``, padded lists of
different lengths in ``fit`` / ``evaluate`` (per-item ``sample_weight``;
also run on JAX), the ``.keras`` round trip and the ``get_config`` round
trip. A new loss or metric gets all of
them by adding a row to `CASES`:

```python
Case("my_loss", lambda axis: MyLoss(axis=axis, ranker=SHARP), axes=(0, -1),
     labels="relevance")
```

Fields:
- ``name``: the test id.
- ``make``: ``make(axis)`` returns a fresh loss or metric ranking along
  ``axis`` (a row with ``axes=(-1,)`` may ignore it).
- ``axes``: the axes the class supports, among ``(0, -1)``.
- ``labels``: ``"real"`` (real-valued targets, as for Spearman) or
  ``"relevance"`` (0/1 relevance; every list gets a positive and a
  negative).
- ``pools``: optional, ``True`` for a loss whose value pools the pairs of
  the whole batch (one mean over all pairs, as ROADMAP's calibration
  term), so that a batch is not the mean of its lists; that one check is
  left out for it. Defaults to ``False``.
"""

import collections

import keras

from keras_sodeep import losses, metrics
from keras_sodeep.ranking import SigmoidRanker

Case = collections.namedtuple(
    "Case", ["name", "make", "axes", "labels", "pools"], defaults=(False,)
)


def sharp():
    """A sharp analytic ranker: fast, deterministic, near-exact ranks."""
    return SigmoidRanker(0.01)


CASES = [
    # Losses.
    Case(
        "spearman_loss",
        lambda axis: losses.SpearmanLoss(axis=axis, ranker=sharp()),
        (0, -1),
        "real",
    ),
    Case(
        "map_loss",
        lambda axis: losses.MeanAveragePrecisionLoss(axis=axis, ranker=sharp()),
        (0, -1),
        "relevance",
    ),
    Case(
        "recall_at_k_loss",
        lambda axis: losses.RecallAtKLoss(k=(1, 2), ranker=sharp()),
        (-1,),
        "relevance",
    ),
    Case(
        "rank_triplet_loss",
        lambda axis: losses.RankTripletLoss(margin=1.0, ranker=sharp()),
        (-1,),
        "relevance",
    ),
    Case(
        "rank_loss",
        lambda axis: losses.RankLoss(ranker=sharp()),
        (-1,),
        "relevance",
    ),
    Case(
        "ranked_list_loss",
        lambda axis: losses.RankedListLoss(),
        (-1,),
        "relevance",
    ),
    Case(
        "recall_at_k_surrogate_loss",
        lambda axis: losses.RecallAtKSurrogateLoss(k=(1, 2), ranker=sharp()),
        (-1,),
        "relevance",
    ),
    Case(
        "ndcg_loss",
        lambda axis: losses.NDCGLoss(ranker=sharp()),
        (-1,),
        "relevance",
    ),
    Case(
        "ndcg_at_k_loss",
        lambda axis: losses.NDCGLoss(k=3, gain="linear", ranker=sharp()),
        (-1,),
        "relevance",
    ),
    Case(
        "mrr_loss",
        lambda axis: losses.MeanReciprocalRankLoss(ranker=sharp()),
        (-1,),
        "relevance",
    ),
    Case(
        "global_batch_loss",
        lambda axis: losses.GlobalBatchLoss(
            losses.RecallAtKSurrogateLoss(k=(1, 2), ranker=sharp())
        ),
        (-1,),
        "relevance",
    ),
    Case(
        "sup_ap_loss",
        lambda axis: losses.SupAPLoss(),
        (-1,),
        "relevance",
    ),
    Case(
        "sup_recall_at_k_loss",
        lambda axis: losses.SupRecallAtKLoss(k=(1, 2)),
        (-1,),
        "relevance",
    ),
    Case(
        "roadmap_loss",
        lambda axis: losses.ROADMAPLoss(),
        (-1,),
        "relevance",
        pools=True,
    ),
    Case(
        "calibration_loss",
        lambda axis: losses.CalibrationLoss(),
        (-1,),
        "relevance",
        pools=True,
    ),
    # Metrics.
    Case(
        "spearman_correlation",
        lambda axis: metrics.SpearmanCorrelation(axis=axis, capacity=256),
        (0, -1),
        "real",
    ),
    Case(
        "mean_average_precision",
        lambda axis: metrics.MeanAveragePrecision(axis=axis, capacity=256),
        (0, -1),
        "relevance",
    ),
    Case(
        "recall_at_k",
        lambda axis: metrics.RecallAtK(k=2, axis=axis, capacity=256),
        (0, -1),
        "relevance",
    ),
    Case(
        "hit_rate_at_k",
        lambda axis: metrics.HitRateAtK(k=2, axis=axis, capacity=256),
        (0, -1),
        "relevance",
    ),
    Case(
        "ndcg",
        lambda axis: metrics.NDCG(axis=axis, capacity=256),
        (0, -1),
        "relevance",
    ),
    Case(
        "ndcg_at_k_linear",
        lambda axis: metrics.NDCG(3, "linear", axis=axis, capacity=256),
        (0, -1),
        "relevance",
    ),
    Case(
        "dcg_at_k",
        lambda axis: metrics.DCG(k=3, axis=axis, capacity=256),
        (0, -1),
        "relevance",
    ),
    Case(
        "mean_reciprocal_rank",
        lambda axis: metrics.MeanReciprocalRank(axis=axis, capacity=256),
        (0, -1),
        "relevance",
    ),
    Case(
        "precision_at_k",
        lambda axis: metrics.PrecisionAtK(k=2, axis=axis, capacity=256),
        (0, -1),
        "relevance",
    ),
]


def is_loss(obj):
    return isinstance(obj, keras.losses.Loss)
