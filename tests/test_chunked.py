"""``ChunkedEmbeddingModel``: the two-pass step gives the one-pass gradient."""

import keras
import numpy as np
import pytest

from keras_sodeep.losses import RankedListLoss, RecallAtKSurrogateLoss
from keras_sodeep.training import ChunkedEmbeddingModel

tensorflow_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the two-pass step is written for the TensorFlow backend",
)


def make_net(regularizer=None):
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(
                16, activation="tanh", kernel_regularizer=regularizer
            ),
            keras.layers.LayerNormalization(),
            keras.layers.Dense(8),
        ]
    )


def data(size=40):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(size, 6)).astype("float32")
    y = rng.integers(0, 5, size=size).astype("int32")
    w = rng.uniform(0.5, 2.0, size=size).astype("float32")
    return x, y, w


def one_pass_gradient(net, loss, x, y, w=None):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        value = loss(y, net(x, training=True), sample_weight=w)
        value = value + sum(net.losses)
    return [g.numpy() for g in tape.gradient(value, net.trainable_variables)]


def chunked_update(net, loss, x, y, w, chunk_size):
    """Minus the weight gradient of one chunked step (SGD, rate 1)."""
    before = [v.numpy().copy() for v in net.trainable_variables]
    model = ChunkedEmbeddingModel(net, chunk_size=chunk_size)
    model.compile(keras.optimizers.SGD(1.0), loss=loss)
    model.fit(
        x,
        y,
        sample_weight=w,
        batch_size=len(x),
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    return [b - v.numpy() for b, v in zip(before, net.trainable_variables)]


@tensorflow_only
@pytest.mark.parametrize("chunk_size", [8, 15, 64])
@pytest.mark.parametrize(
    "make_loss",
    [
        lambda: RankedListLoss(),
        lambda: RecallAtKSurrogateLoss(k=(1, 4), ranker="sigmoid:0.05"),
    ],
    ids=["ranked_list", "rs_at_k"],
)
def test_chunked_gradient_equals_one_pass(make_loss, chunk_size):
    x, y, w = data()
    expected = one_pass_gradient(make_net(), make_loss(), x, y, w)
    got = chunked_update(make_net(), make_loss(), x, y, w, chunk_size)
    for g, e in zip(got, expected):
        assert np.abs(e).max() > 1e-4
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


@tensorflow_only
def test_regularizers_are_differentiated():
    x, y, _ = data()
    l2 = keras.regularizers.L2(0.1)
    expected = one_pass_gradient(make_net(l2), RankedListLoss(), x, y)
    got = chunked_update(make_net(l2), RankedListLoss(), x, y, None, 16)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


@tensorflow_only
def test_fit_logs_the_loss_and_evaluate_matches(tmp_path):
    x, y, _ = data()
    model = ChunkedEmbeddingModel(make_net(), chunk_size=16)
    model.compile("adam", loss=RecallAtKSurrogateLoss(k=(1, 2)))
    history = model.fit(x, y, batch_size=40, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    # The logged loss is the loss of the batch before the update.
    first = float(
        RecallAtKSurrogateLoss(k=(1, 2))(y, make_net()(x, training=True))
    )
    np.testing.assert_allclose(history.history["loss"][0], first, rtol=1e-5)
    before = model.evaluate(x, y, batch_size=40, verbose=0)
    path = str(tmp_path / "chunked.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, ChunkedEmbeddingModel)
    assert restored.chunk_size == 16
    np.testing.assert_allclose(
        restored.evaluate(x, y, batch_size=40, verbose=0), before, rtol=1e-5
    )
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5
    )


def test_bad_chunk_size():
    with pytest.raises(ValueError, match="`chunk_size` should be a positive"):
        ChunkedEmbeddingModel(make_net(), chunk_size=0)


@tensorflow_only
def test_save_and_load_keep_the_optimizer_state(tmp_path):
    x, y, _ = data()
    model = ChunkedEmbeddingModel(make_net(), chunk_size=16)
    model.compile(keras.optimizers.Adam(0.01), loss=RankedListLoss())
    model.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations) == 4
    path = str(tmp_path / "chunked.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    saved = [v.numpy() for v in model.optimizer.variables]
    loaded = [v.numpy() for v in restored.optimizer.variables]
    assert int(restored.optimizer.iterations) == 4
    # iterations, the learning rate, then two moments per variable.
    assert len(loaded) == len(saved) == 2 + 2 * len(model.trainable_variables)
    for s, r in zip(saved, loaded):
        np.testing.assert_array_equal(r, s)
    assert max(np.abs(s).max() for s in saved[2:]) > 0
    # Both resume the same: the next epoch gives the same weights.
    for m in (model, restored):
        m.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


@tensorflow_only
def test_an_unbuilt_wrapped_model_is_built_by_fit_and_saves(tmp_path):
    class Net(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(8)

        def call(self, x):
            return self.dense(x)

    x, y, _ = data()
    model = ChunkedEmbeddingModel(Net(), chunk_size=16)
    model.compile(keras.optimizers.Adam(0.01), loss=RankedListLoss())
    model.fit(x, y, batch_size=20, epochs=1, verbose=0)
    assert model.built
    path = str(tmp_path / "chunked.keras")
    model.save(path)
    restored = keras.saving.load_model(path, custom_objects={"Net": Net})
    assert int(restored.optimizer.iterations) == 2
    for s, r in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(r.numpy(), s.numpy())
    np.testing.assert_array_equal(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )


@pytest.mark.backend
def test_other_backends_refuse_fit_and_run_evaluate_and_predict():
    x, y, _ = data()
    net = make_net()
    model = ChunkedEmbeddingModel(net, chunk_size=16)
    model.compile("adam", loss=RankedListLoss())
    expected = keras.ops.convert_to_numpy(net(x))
    np.testing.assert_allclose(
        model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        model.evaluate(x, y, batch_size=40, verbose=0),
        float(RankedListLoss()(y, expected)),
        rtol=1e-5,
    )
    if keras.backend.backend() == "tensorflow":
        return
    message = "ChunkedEmbeddingModel trains on the TensorFlow backend only"
    with pytest.raises(NotImplementedError, match=message):
        model.fit(x, y, batch_size=40, epochs=1, verbose=0)
    with pytest.raises(NotImplementedError, match=message):
        model.train_on_batch(x, y)
