"""Rank-based losses: Spearman, mean Average Precision, Recall@k, rank hinge.

Two bases: `ListwiseLoss` reads the inputs (lists, masks, padding,
embeddings) and reduces; `RankingLoss`, above it, ranks ``y_pred`` with a
differentiable ranker (``ranker=``, keyword-only) and compares the ranks
with the exact ranks of ``y_true`` or with the relevance labels in
``y_true``. ``ranker`` accepts whatever ``keras_sodeep.ranking.get``
accepts: a ranker, a ``keras_sodeep.sorters.Sorter`` (wrapped in a frozen
``SorterRanker``), a string specification (``"sigmoid:0.1"``,
``"neuralsort:1.0"``, ``"exact"``, ``"untrained:ARCH"``, a preset name or
folder) or ``None`` for the loss's default, its `RankingLoss.default_ranker`:
an object, shown by ``repr(loss)`` and stored by ``get_config``, so that a
saved model keeps the ranker it was trained with. The losses that compute
their own ranks (`SupAPLoss`, `SupRecallAtKLoss`, `ROADMAPLoss`,
`CalibrationLoss`, `RankedListLoss`) derive from `ListwiseLoss` and take
no ranker.

One module per family: `spearman`, `average_precision`, `recall`,
`ndcg` (NDCG and reciprocal rank, graded relevance), `hinge`
(rank triplet and rank-sum losses), `ranked_list` (Ranked List Loss),
`recall_surrogate` (RS@k), `suprank` (SupAP, SupRecall@k and ROADMAP, on
their own upper-bound rank) and `calibration`, over the bases (`base`),
with which a user writes a rank loss as one method. `embeddings` turns a
batch of embeddings into lists; `simix` holds similarity mixup
(`similarity_mixup`, and `SiMixOption`, the base of the losses that offer
``simix=True``); `global_batch` holds `GlobalBatchLoss`, which ranks the
global batch across ``tf.distribute`` replicas; `memory` holds
`CrossBatchMemory`, which lets any embedding loss rank each query against
the batch and the last embeddings seen.

Conventions shared by the losses:

- ``axis``: the axis along which items are ranked. ``axis=0``: the batch is
  the list (a regression output of shape ``(B,)`` or ``(B, 1)``, or one list
  per column of ``(B, C)``); ``axis=-1``: each row is a list.
- ``call()`` returns per-sample values: per item when the lists run along
  axis 0, per list otherwise. They are scaled so that Keras's default
  reduction (``"sum_over_batch_size"``) gives the documented formula, and
  ``sample_weight`` weights items (``axis=0``) or lists (``axis=-1``).
- Padding in ``fit``: pass ``sample_weight`` with one weight per item (the
  shape of ``y_pred``; along ``axis=0`` a ``(B,)`` weight also serves a
  ``(B, C)`` output). An item of weight 0 (or less) is padding: it takes no
  part in any rank, as Keras's per-timestep sample weights pad sequences.
  A list along ``axis=-1`` then weighs the mean of its items' positive
  weights (1 for a 0/1 mask); along ``axis=0`` the weights stay per item.
  In direct calls ``y_true`` may also be a dict ``{"labels": ..., "mask":
  ...}`` (Keras's ``fit`` accepts such a dict only for a model with
  matching dict outputs). For relevance labels (all losses but
  ``SpearmanLoss``), ``labels < 0`` also marks padding.
- A list that cannot be scored (no positive, no item) contributes nothing;
  if no list of the batch can be scored the loss is 0.
- Finite scores give a finite loss. A non-finite score or a NaN label
  among the items that take part raises a ``ValueError`` when the loss runs
  eagerly; inside a compiled function it makes the loss of its list NaN,
  whatever the ranker returns for it, so the batch loss is NaN
  (``keras.callbacks.TerminateOnNaN`` stops on it). A NaN label is not
  padding, as in ``keras_sodeep.metrics``.
- Masked and padded items may hold anything (NaN, inf): they reach neither
  the loss nor its gradients.
- Distribution: under a ``tf.distribute`` strategy (``MirroredStrategy``,
  ...) each replica computes the loss on its own shard of the global batch,
  and Keras averages the replicas' losses and gradients. With ``axis=0`` a
  replica's list is therefore its shard (``global_batch_size /
  num_replicas`` items, ranked among themselves), not the global batch: the
  loss is the mean over replicas of the per-shard losses, and differs from
  the one-device loss on the same global batch. Choose the batch size for
  the list length each replica should rank. Lists along ``axis=-1`` (rows,
  or embeddings of a replica's shard) are split the same way. The metrics
  of ``keras_sodeep.metrics``, unlike the losses, gather the replicas and
  are exact. To rank the global batch of embeddings instead, wrap the loss
  in ``GlobalBatchLoss``.
- Mixed precision: the losses compute in their own dtype (float32 unless
  ``dtype=`` says otherwise) and the rankers in float32, also under the
  ``mixed_float16`` and ``mixed_bfloat16`` policies; half-precision
  predictions are cast up first.
"""

from keras_sodeep.losses.average_precision import MeanAveragePrecisionLoss
from keras_sodeep.losses.base import Lists, ListwiseLoss, RankingLoss
from keras_sodeep.losses.calibration import CalibrationLoss
from keras_sodeep.losses.global_batch import GlobalBatchLoss
from keras_sodeep.losses.hinge import RankLoss, RankTripletLoss
from keras_sodeep.losses.memory import CrossBatchMemory
from keras_sodeep.losses.ndcg import MeanReciprocalRankLoss, NDCGLoss
from keras_sodeep.losses.ranked_list import RankedListLoss
from keras_sodeep.losses.recall import RecallAtKLoss
from keras_sodeep.losses.recall_surrogate import RecallAtKSurrogateLoss
from keras_sodeep.losses.simix import SiMixOption, similarity_mixup
from keras_sodeep.losses.spearman import SpearmanLoss
from keras_sodeep.losses.suprank import (
    ROADMAPLoss,
    SupAPLoss,
    SupRecallAtKLoss,
)

__all__ = [
    "CalibrationLoss",
    "CrossBatchMemory",
    "GlobalBatchLoss",
    "ListwiseLoss",
    "Lists",
    "MeanAveragePrecisionLoss",
    "MeanReciprocalRankLoss",
    "NDCGLoss",
    "ROADMAPLoss",
    "RankLoss",
    "RankTripletLoss",
    "RankedListLoss",
    "RankingLoss",
    "RecallAtKLoss",
    "RecallAtKSurrogateLoss",
    "SiMixOption",
    "SpearmanLoss",
    "SupAPLoss",
    "SupRecallAtKLoss",
    "similarity_mixup",
]
