"""TensorFlow Datasets builder of the standard sorter evaluation lists.

Importing this module registers ``sodeep_synthetic`` with TFDS. The dataset
is generated offline and deterministically on the first
``tfds.load("sodeep_synthetic")`` (nothing is downloaded), from
`keras_sodeep.synthetic.evaluation_lists`: the evaluation lists of the
paper's Table 1 protocol, the same as
`keras_sodeep.training.evaluate_ranker` uses.

Configs:

```
standard   10,000 lists of 100 items (the default)
small      100 lists of 16 items (for tests and examples)
```

Each example is ``{"scores": (n,) float32, "ranks": (n,) float32}``, where
``ranks`` are the exact normalized ranks ``rank / n`` (descending,
tie-averaged); ``as_supervised=True`` gives ``(scores, ranks)`` pairs. The
single split is ``"test"``.

Example:

```python
import tensorflow_datasets as tfds
import keras_sodeep.datasets  # registers the builder

ds = tfds.load("sodeep_synthetic", split="test", as_supervised=True)
```
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from keras_sodeep.synthetic import EVALUATION_SEED, evaluation_lists


@dataclasses.dataclass
class SodeepSyntheticConfig(tfds.core.BuilderConfig):
    """A configuration of `SodeepSynthetic`.

    Args:
        seq_len: int, items per list.
        num_lists: int, number of lists.
        seed: int, the seed of `keras_sodeep.synthetic.evaluation_lists`.
    """

    seq_len: int = 100
    num_lists: int = 10000
    seed: int = EVALUATION_SEED


class SodeepSynthetic(tfds.core.GeneratorBasedBuilder):
    """Synthetic score lists and their exact normalized ranks (SoDeep)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "The standard sorter evaluation lists."}
    BUILDER_CONFIGS = [
        SodeepSyntheticConfig(
            name="standard",
            description="10,000 lists of 100 items, the paper mix.",
            seq_len=100,
            num_lists=10000,
        ),
        SodeepSyntheticConfig(
            name="small",
            description="100 lists of 16 items, the paper mix.",
            seq_len=16,
            num_lists=100,
        ),
    ]

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        # TFDS's own lookup of this file needs the `importlib_resources`
        # package, which TFDS does not declare; the file is simply here.
        return epath.Path(__file__)

    def _info(self):
        n = self.builder_config.seq_len
        return self.dataset_info_from_configs(
            description=(
                "Lists of scores from the ten generators of the SoDeep "
                "reference code, with their exact normalized ranks "
                "(rank / n, descending, tie-averaged)."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "scores": tfds.features.Tensor(
                        shape=(n,), dtype=np.float32
                    ),
                    "ranks": tfds.features.Tensor(shape=(n,), dtype=np.float32),
                }
            ),
            supervised_keys=("scores", "ranks"),
            disable_shuffling=True,
            homepage="https://github.com/technicolor-research/sodeep",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        return {"test": self._generate_examples()}

    def _generate_examples(self):
        config = self.builder_config
        scores, ranks = evaluation_lists(
            config.num_lists, config.seq_len, config.seed
        )
        for index in range(config.num_lists):
            yield index, {"scores": scores[index], "ranks": ranks[index]}
