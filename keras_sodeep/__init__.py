"""keras_sodeep: SoDeep learned sorters and rank losses for Keras 3.

The public surface, in one screen:

- ``keras_sodeep.ranking``: ``exact_rank``, the differentiable rankers and
  the ranker registry ``ranking.get``.
- ``keras_sodeep.sorters``: the learned sorters (``keras.Model`` subclasses).
- ``keras_sodeep.losses``: the SoDeep losses (also exported here) and their
  base class ``RankingLoss``.
- ``keras_sodeep.metrics``: exact, streaming, tie-correct ranking metrics.
- ``keras_sodeep.retrieval``: whole-gallery retrieval evaluation.
- ``keras_sodeep.callbacks``: sorter fine-tuning, retrieval evaluation.
- ``keras_sodeep.synthetic`` / ``keras_sodeep.training``: sorter training.
- ``keras_sodeep.presets``: pretrained sorters; ``keras_sodeep.pretrained
  (name)``, ``keras_sodeep.list_presets()`` and ``keras_sodeep.PresetRanker``
  (a preset as a ranker).

Importing the package registers the ranker specifications of the modules
above ``ranking`` (``"untrained:ARCH"``, preset names and folders) with
``keras_sodeep.ranking.get``.
"""

__version__ = "0.1.0"

from keras_sodeep import (
    callbacks,
    losses,
    metrics,
    presets,
    ranking,
    retrieval,
    sorters,
    training,
)
from keras_sodeep.callbacks import RetrievalEvaluation, SorterFinetuning
from keras_sodeep.losses import (
    CalibrationLoss,
    CrossBatchMemory,
    GlobalBatchLoss,
    ListwiseLoss,
    MeanAveragePrecisionLoss,
    MeanReciprocalRankLoss,
    NDCGLoss,
    RankedListLoss,
    RankingLoss,
    RankLoss,
    RankTripletLoss,
    RecallAtKLoss,
    RecallAtKSurrogateLoss,
    ROADMAPLoss,
    SpearmanLoss,
    SupAPLoss,
    SupRecallAtKLoss,
)
from keras_sodeep.presets import PresetRanker, list_presets, pretrained
from keras_sodeep.ranking import (
    ExactRanker,
    NeuralSortRanker,
    Ranker,
    SigmoidRanker,
    SorterRanker,
    exact_rank,
)
from keras_sodeep.sorters import (
    CNNSorter,
    GRUSorter,
    HistogramSorter,
    LSTMSorter,
    Sorter,
)
from keras_sodeep.training import ChunkedEmbeddingModel

__all__ = [
    "__version__",
    "callbacks",
    "losses",
    "metrics",
    "presets",
    "ranking",
    "retrieval",
    "sorters",
    "training",
    "CNNSorter",
    "CalibrationLoss",
    "CrossBatchMemory",
    "ChunkedEmbeddingModel",
    "ExactRanker",
    "GRUSorter",
    "GlobalBatchLoss",
    "ListwiseLoss",
    "HistogramSorter",
    "LSTMSorter",
    "MeanAveragePrecisionLoss",
    "MeanReciprocalRankLoss",
    "NDCGLoss",
    "NeuralSortRanker",
    "PresetRanker",
    "RankLoss",
    "RankedListLoss",
    "RankingLoss",
    "RankTripletLoss",
    "ROADMAPLoss",
    "Ranker",
    "RetrievalEvaluation",
    "RecallAtKLoss",
    "RecallAtKSurrogateLoss",
    "SigmoidRanker",
    "Sorter",
    "SorterFinetuning",
    "SorterRanker",
    "SpearmanLoss",
    "SupAPLoss",
    "SupRecallAtKLoss",
    "exact_rank",
    "list_presets",
    "pretrained",
]
