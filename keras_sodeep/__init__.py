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
- ``keras_sodeep.pretrained(name)`` / ``keras_sodeep.presets()``: pretrained
  sorters (module ``keras_sodeep.preset_store``).

Importing the package registers the ranker specifications of the modules
above ``ranking`` (``"untrained:ARCH"``, preset names and folders) with
``keras_sodeep.ranking.get``.
"""

__version__ = "0.1.0"

import sys as _sys
import types as _types

from keras_sodeep import (
    callbacks,
    losses,
    metrics,
    preset_store,
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
from keras_sodeep.preset_store import presets, pretrained
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
    "preset_store",
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
    "pretrained",
    "presets",
]


class _Package(_types.ModuleType):
    """Keeps ``keras_sodeep.presets`` the function.

    ``keras_sodeep/presets/`` is the data folder of the shipped presets;
    ``import keras_sodeep.presets`` would import it as a namespace package
    and bind it over the `presets` function.
    """

    def __setattr__(self, name, value):
        if name == "presets" and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
