"""Exact, streaming, tie-correct ranking metrics.

Every metric ranks items along ``axis``:

- ``axis=-1``: each row of ``y_pred`` is a list (one query per row). The
  metric keeps a running, weighted sum of per-list values, so its result is
  the weighted mean over every list seen since ``reset_state``.
- ``axis=0``: the batch is the list (one list per column of a ``(B, C)``
  output, or a single list for ``(B,)`` / ``(B, 1)``). Ranking metrics over
  the batch axis do not decompose over batches, so the metric stores every
  sample it sees in fixed-capacity buffers and computes the exact value over
  all of them in ``result()``. The buffers hold ``capacity`` samples,
  by default `default_capacity` (100,000 samples, fewer for wide outputs so
  that they stay near 16 MB). When more than ``capacity`` samples arrive
  before ``reset_state``, ``result()`` returns NaN: it is never silently
  wrong. ``result()`` sorts only the filled part of the buffers, rounded up
  to 4096 x 8^j rows (or to ``capacity``), so its cost follows the number of
  samples seen, not ``capacity``. Keras calls ``result()`` after every
  training step, inside the compiled step, for the progress bar; there a
  batch-axis metric sorts again only once its samples have doubled since
  its last sort, and shows that sort's value in between (about two sorts
  of an epoch's samples in all, rather than one per step). Called eagerly,
  as Keras does for the epoch's logs, ``History``, callbacks' epoch logs
  and ``evaluate``'s return value, it is always exact.

Shared conventions: ranks are descending (see ``keras_sodeep.ranking``); a
metric never depends on the order of tied scores (the top-k and
discounted metrics take the expected value under uniformly random
tie-breaking); ``y_true`` may be a dict ``{"labels": ..., "mask": ...}``
whose ``False`` mask entries take no part in anything; for relevance
grades (every metric but Spearman's), labels < 0 are padding too. A NaN
score or label among the items of a list makes that list's value NaN, and
so the result: a NaN label is not padding. So does a NaN
``sample_weight`` (a weight <= 0 leaves its item, sample or list out; NaN
is not such a weight).

Padded lists in ``fit`` / ``evaluate``: Keras rejects a dict ``y_true``
for a model with one output, so there lists are padded through
``sample_weight``, as Keras users pad sequences ("temporal" sample
weights). With ``axis=-1``, a ``sample_weight`` of the
shape of ``y_pred``, ``(B, n)``, holds one weight per item: an item whose
weight is 0 (or less) is padding and takes no part in any rank or metric,
and the list's weight is the mean weight of its items that take part (a
0/1 mask gives every list the weight 1). A weight of shape ``(B,)`` or
``(B, 1)`` is one weight per list. With ``axis=0``, a weight of shape
``(B,)`` or ``(B, 1)`` is one per sample, shared by the columns of a
``(B, C)`` output, and one of shape ``(B, C)`` is one per sample and
column; a weight <= 0 leaves its sample out. Keras passes
``sample_weight`` only to the metrics given in
``compile(weighted_metrics=...)``, not to those in ``metrics=``:

```python
model.compile(optimizer="adam", loss=loss,
              weighted_metrics=[keras_sodeep.metrics.NDCG(k=10)])
model.fit(x, labels, sample_weight=item_mask.astype("float32"))
```

Distribution: under a ``tf.distribute`` strategy with several replicas
(``MirroredStrategy``, ...), each replica sees its shard of the global
batch. ``update_state`` then combines the replicas inside the step: the
running sums (``axis=-1``) are summed over the replicas and the samples
(``axis=0``) are gathered from all of them, so every replica holds the
state that one device would hold after the same global batches, and
``result()`` is the single-device value (up to float rounding), inside the
step and after it (inside the step, as of its last sort; see above). The
state variables aggregate as ``"only_first_replica"``: they are read from
one replica, never summed. The cost: each replica stores
and sorts every sample (``axis=0``).

The metrics, one module per family: `spearman` (``SpearmanCorrelation``),
`average_precision` (``MeanAveragePrecision``), `recall` (``RecallAtK``, the
share of relevant items in the top k; ``PrecisionAtK``, the share of the
top k that is relevant; ``HitRateAtK``, whether some relevant item is in
the top k; ``MeanReciprocalRank``, one over the rank of the first
relevant item), `ndcg` (``DCG`` and ``NDCG`` of graded labels), over the
base class in `base`.
"""

from keras_sodeep.metrics.average_precision import MeanAveragePrecision
from keras_sodeep.metrics.base import RankingMetric, default_capacity
from keras_sodeep.metrics.ndcg import DCG, NDCG
from keras_sodeep.metrics.recall import (
    HitRateAtK,
    MeanReciprocalRank,
    PrecisionAtK,
    RecallAtK,
)
from keras_sodeep.metrics.spearman import SpearmanCorrelation

__all__ = [
    "DCG",
    "HitRateAtK",
    "MeanAveragePrecision",
    "MeanReciprocalRank",
    "NDCG",
    "PrecisionAtK",
    "RankingMetric",
    "RecallAtK",
    "SpearmanCorrelation",
    "default_capacity",
]
