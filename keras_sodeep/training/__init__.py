"""Training sorters on synthetic lists, and measuring their fidelity.

`train_sorter` fits a sorter to the exact normalized ranks of the lists of
`keras_sodeep.synthetic.synthetic_dataset`, with checkpoints it can resume
from after a crash, and exports the result as a preset folder (see
`keras_sodeep.presets`). `evaluate_ranker` measures how close a sorter or
a ranker comes to the exact ranks, with the protocol of the paper's Table 1
and on held-out distributions (`held_out_figures`).
`ChunkedEmbeddingModel` trains an embedding model on large batches in
chunks, with the one-pass gradient.
"""

from keras_sodeep.training.chunked import ChunkedEmbeddingModel
from keras_sodeep.training.fidelity import (
    LENGTHS,
    evaluate_ranker,
    fidelity_figures,
    fidelity_table,
    held_out_figures,
    held_out_table,
)
from keras_sodeep.training.train import (
    RUN_MARKER,
    RunFolderError,
    cpu_model,
    hardware_description,
    train_sorter,
)

__all__ = [
    "ChunkedEmbeddingModel",
    "LENGTHS",
    "RUN_MARKER",
    "RunFolderError",
    "cpu_model",
    "evaluate_ranker",
    "fidelity_figures",
    "fidelity_table",
    "hardware_description",
    "held_out_figures",
    "held_out_table",
    "train_sorter",
]
