import keras
import numpy as np
import pytest
from scipy.stats import rankdata

from keras_sodeep.callbacks import SorterFinetuning
from keras_sodeep.losses import SpearmanLoss


class DenseSorter(keras.Model):
    """A small fixed-length sorter: one dense map over the list, sigmoid.

    Has the `Sorter` interface (`seq_len`, `call(scores, mask=None)` ->
    normalized ranks) and starts untrained, so fine-tuning has work to do.
    """

    def __init__(self, seq_len=16, **kwargs):
        super().__init__(**kwargs)
        self.seq_len = seq_len
        self.dense = keras.layers.Dense(seq_len, activation="sigmoid")

    def call(self, scores, mask=None):
        return self.dense(scores)

    def get_config(self):
        return {"seq_len": self.seq_len}


keras.saving.register_keras_serializable(package="keras_sodeep_tests")(
    DenseSorter
)


def make_model(sorter, learning_rate):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(
        keras.optimizers.SGD(learning_rate), loss=SpearmanLoss(ranker=sorter)
    )
    return model


def test_records_the_lists_the_sorter_ranks(rng):
    sorter = DenseSorter(seq_len=16)
    model = make_model(sorter, learning_rate=0.0)  # predictions stay fixed
    x = rng.normal(size=(24, 3)).astype("float32")
    y = rng.normal(size=(24,)).astype("float32")
    callback = SorterFinetuning(sorter, every_n_batches=1000)
    model.fit(
        x,
        y,
        batch_size=12,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=[callback],
    )
    recorded = np.asarray(callback._recorder.filled())
    assert recorded.shape == (2, 16)  # one list per batch, at seq_len
    pred = model.predict(x, verbose=0)[:, 0]
    for row, batch in zip(recorded, (pred[:12], pred[12:])):
        np.testing.assert_allclose(row[:12], batch, rtol=1e-5)
        assert np.all(row[12:] < batch.min())  # padding below the list
    # The recorder is removed when training ends.
    assert sorter._score_recorder is None


def test_finetuning_improves_the_sorter_on_model_scores(rng):
    sorter = DenseSorter(seq_len=16)
    model = make_model(sorter, learning_rate=0.01)
    model_weights = [w.numpy().copy() for w in model.trainable_weights]
    x = rng.normal(size=(256, 3)).astype("float32")
    y = (x @ np.array([1.0, -1.0, 0.5])).astype("float32")
    callback = SorterFinetuning(
        sorter, every_n_batches=4, steps=50, learning_rate=0.05
    )
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[callback])
    assert len(callback.history) == 12
    assert callback.history[-1] < 0.5 * callback.history[0]
    # Independent check on fresh lists of model scores: exact targets.
    lists = model.predict(x, verbose=0)[:, 0].reshape(16, 16)
    targets = rankdata(-lists, axis=-1) / 16
    error = np.mean(np.abs(np.asarray(sorter(lists)) - targets))
    assert error < callback.history[0]
    # The sorter stayed out of the model's training; the model trained.
    assert len(model.trainable_weights) == 2
    assert any(
        not np.allclose(a, b.numpy())
        for a, b in zip(model_weights, model.trainable_weights)
    )


def test_arguments_and_config():
    sorter = DenseSorter(seq_len=8)
    with pytest.raises(ValueError, match="every_n_batches"):
        SorterFinetuning(sorter, every_n_batches=0)
    with pytest.raises(ValueError, match="learning_rate"):
        SorterFinetuning(sorter, learning_rate=0)
    with pytest.raises(TypeError, match="sorter"):
        SorterFinetuning("lstm-100")
    generic = DenseSorter(seq_len=8)
    generic.seq_len = None
    with pytest.raises(ValueError, match="seq_len"):
        SorterFinetuning(generic)
    assert SorterFinetuning(generic, seq_len=8)._width == 8
    callback = SorterFinetuning(sorter, steps=3, buffer_size=32)
    restored = SorterFinetuning.from_config(callback.get_config())
    assert restored.get_config() == callback.get_config()
    assert SorterFinetuning(sorter).update_sorter() is None
