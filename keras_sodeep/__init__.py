"""keras_sodeep: SoDeep learned sorters and rank losses for Keras 3."""

__version__ = "0.1.0"

from keras_sodeep import ranking
from keras_sodeep.ranking import exact_rank

__all__ = [
    "__version__",
    "exact_rank",
    "ranking",
]
