"""keras_sodeep: SoDeep learned sorters and rank losses for Keras 3.

The public surface, in one screen:

- ``keras_sodeep.ranking``: ``exact_rank`` and the differentiable rankers.
- ``keras_sodeep.sorters``: the learned sorters (``keras.Model`` subclasses).
- ``keras_sodeep.losses``: the SoDeep losses (also exported here).
- ``keras_sodeep.metrics``: exact, streaming, tie-correct ranking metrics.
- ``keras_sodeep.retrieval``: whole-gallery retrieval evaluation.
- ``keras_sodeep.synthetic`` / ``keras_sodeep.training``: sorter training.
- ``keras_sodeep.pretrained`` / ``keras_sodeep.presets``: pretrained sorters.
"""

__version__ = "0.1.0"

from keras_sodeep import callbacks, losses, metrics, ranking, retrieval, sorters
from keras_sodeep.callbacks import SorterFinetuning
from keras_sodeep.losses import (
    MeanAveragePrecisionLoss,
    RankLoss,
    RankTripletLoss,
    RecallAtKLoss,
    SpearmanLoss,
)
from keras_sodeep.pretrained import presets, pretrained
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

__all__ = [
    "__version__",
    "callbacks",
    "losses",
    "metrics",
    "ranking",
    "retrieval",
    "sorters",
    "CNNSorter",
    "ExactRanker",
    "GRUSorter",
    "HistogramSorter",
    "LSTMSorter",
    "MeanAveragePrecisionLoss",
    "NeuralSortRanker",
    "RankLoss",
    "RankTripletLoss",
    "Ranker",
    "RecallAtKLoss",
    "SigmoidRanker",
    "Sorter",
    "SorterFinetuning",
    "SorterRanker",
    "SpearmanLoss",
    "exact_rank",
    "pretrained",
    "presets",
]
