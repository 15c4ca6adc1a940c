"""CrossBatchMemory against a direct computation on the concatenated lists.

The direct computation builds the ``(B, B + M)`` score matrix of the batch
queries against the batch and the memory's contents with NumPy (cosine
similarities, self-pairs masked, relevance from the labels) and hands it
to the wrapped loss as a score matrix.
"""

import keras
import numpy as np
import pytest

from keras_sodeep.losses import (
    CalibrationLoss,
    CrossBatchMemory,
    MeanAveragePrecisionLoss,
    RankedListLoss,
    RecallAtKLoss,
    RecallAtKSurrogateLoss,
    ROADMAPLoss,
    SupAPLoss,
    SupRecallAtKLoss,
)
from keras_sodeep.ranking import SigmoidRanker

WRAPPED = {
    "sup_ap": lambda: SupAPLoss(),
    "sup_recall": lambda: SupRecallAtKLoss(k=(1, 4)),
    "roadmap": lambda: ROADMAPLoss(),
    "calibration": lambda: CalibrationLoss(),
    "recall_sodeep": lambda: RecallAtKLoss(
        k=(1, 4), ranker=SigmoidRanker(0.05)
    ),
    "ranked_list": lambda: RankedListLoss(),
    "rs_at_k": lambda: RecallAtKSurrogateLoss(k=(1, 4)),
    "map": lambda: MeanAveragePrecisionLoss(
        axis=-1, ranker=SigmoidRanker(0.05)
    ),
}


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def direct(loss, labels, emb, mem_labels, mem_emb):
    """The wrapped loss on the (B, B + M) matrix, built with NumPy."""
    keep = labels >= 0
    gallery = np.concatenate([unit(emb), unit(mem_emb)])
    gallery_labels = np.concatenate([labels, mem_labels])
    scores = unit(emb) @ gallery.T
    relevance = (labels[:, None] == gallery_labels[None, :]).astype("float32")
    mask = keep[:, None] & (gallery_labels >= 0)[None, :]
    b = len(labels)
    mask[np.arange(b), np.arange(b)] = False
    # A query that is itself padding is a list of padding.
    return float(
        loss({"labels": relevance, "mask": mask}, scores.astype("float32"))
    )


def batches(rng, steps, b=8, dim=5, classes=4):
    return [
        (
            rng.integers(0, classes, size=b).astype("float32"),
            rng.normal(size=(b, dim)).astype("float32"),
        )
        for _ in range(steps)
    ]


@pytest.mark.parametrize("name", sorted(WRAPPED))
def test_memory_equals_the_direct_computation(rng, name):
    size, warmup = 12, 2
    memory = CrossBatchMemory(WRAPPED[name](), size=size, warmup_steps=warmup)
    reference = WRAPPED[name]()
    seen_labels, seen_emb = [], []
    for step, (labels, emb) in enumerate(batches(rng, 5)):
        value = float(memory(labels, emb))
        if step < warmup:
            expected = float(reference(labels, emb))
        else:
            mem_labels = np.concatenate(seen_labels)[-size:]
            mem_emb = np.concatenate(seen_emb)[-size:]
            expected = direct(reference, labels, emb, mem_labels, mem_emb)
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
        seen_labels.append(labels)
        seen_emb.append(emb)
    assert int(memory.iterations.numpy()) == 5


def test_the_memory_is_a_ring_of_the_last_samples(rng):
    memory = CrossBatchMemory(SupAPLoss(), size=10)
    data = batches(rng, 3, b=4)
    for labels, emb in data:
        memory(labels, emb)
    # 12 samples through 10 slots: slots 0, 1 hold the last two.
    all_labels = np.concatenate([lab for lab, _ in data])
    all_emb = np.concatenate([e for _, e in data])
    expected = np.roll(all_labels[-10:], 2)
    np.testing.assert_array_equal(memory.labels.numpy(), expected)
    np.testing.assert_allclose(
        memory.embeddings.numpy(),
        np.roll(unit(all_emb[-10:]), 2, axis=0),
        rtol=1e-6,
    )
    assert int(memory.cursor.numpy()) == 2


def test_a_batch_larger_than_the_memory_keeps_its_last_samples(rng):
    memory = CrossBatchMemory(SupAPLoss(), size=3)
    ((labels, emb),) = batches(rng, 1, b=8)
    memory(labels, emb)
    np.testing.assert_array_equal(memory.labels.numpy(), labels[-3:])


def test_a_query_never_meets_its_own_copy(rng):
    """The batch is enqueued after its loss: the first call is the plain
    loss, and calling again on the same batch meets the earlier copies
    only (the direct computation with the batch as memory)."""
    ((labels, emb),) = batches(rng, 1)
    memory = CrossBatchMemory(SupAPLoss(), size=8)
    first = float(memory(labels, emb))
    np.testing.assert_allclose(first, float(SupAPLoss()(labels, emb)))
    second = float(memory(labels, emb))
    expected = direct(SupAPLoss(), labels, emb, labels, emb)
    np.testing.assert_allclose(second, expected, rtol=1e-5)


def test_padding_is_not_enqueued_and_masks_apply(rng):
    (labels, emb), (labels2, emb2) = batches(rng, 2)
    memory = CrossBatchMemory(SupAPLoss(), size=16)
    padded = labels.copy()
    padded[[1, 4]] = -1
    memory({"labels": labels, "mask": padded >= 0}, emb)
    stored = memory.labels.numpy()
    np.testing.assert_array_equal(stored[:8], padded)
    np.testing.assert_array_equal(stored[8:], -1)
    value = float(memory(labels2, emb2))
    keep = padded >= 0
    expected = direct(SupAPLoss(), labels2, emb2, labels[keep], emb[keep])
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_sample_weight_weights_queries(rng):
    data = batches(rng, 2)
    memory = CrossBatchMemory(SupAPLoss(), size=16)
    memory(*data[0])
    w = rng.uniform(0, 2, size=8).astype("float32")
    twin = CrossBatchMemory(SupAPLoss(), size=16)
    twin(*data[0])
    per_query = np.asarray(twin.call(*data[1]))
    np.testing.assert_allclose(
        float(memory(*data[1], sample_weight=w)),
        np.sum(w * per_query) / 8,
        rtol=1e-5,
    )


def test_no_gradient_through_the_memory(rng):
    import tensorflow as tf

    data = batches(rng, 2)
    memory = CrossBatchMemory(SupAPLoss(), size=16)
    memory(*data[0])
    x = tf.constant(data[1][1])
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = memory(data[1][0], x)
    grad = tape.gradient(value, x).numpy()
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)
    assert memory.embeddings.trainable is False


def test_bad_input_raises(rng):
    with pytest.raises(ValueError, match="`loss` should be an embedding"):
        CrossBatchMemory(keras.losses.MeanSquaredError())
    with pytest.raises(ValueError, match="similarity mixup"):
        CrossBatchMemory(RecallAtKSurrogateLoss(simix=True))
    with pytest.raises(ValueError, match="`size` should be"):
        CrossBatchMemory(SupAPLoss(), size=0)
    with pytest.raises(ValueError, match="`warmup_steps` should be"):
        CrossBatchMemory(SupAPLoss(), warmup_steps=-1)
    memory = CrossBatchMemory(SupAPLoss())
    with pytest.raises(ValueError, match="needs embeddings"):
        memory(np.zeros((3, 4)), np.zeros((3, 4)))
    memory(np.zeros(3), np.ones((3, 4)))
    with pytest.raises(ValueError, match="keep their size"):
        memory(np.zeros(3), np.ones((3, 5)))


def test_config_round_trip():
    memory = CrossBatchMemory(
        RecallAtKLoss(k=(1, 2), ranker="sigmoid:0.05"), size=32, warmup_steps=3
    )
    config = memory.get_config()
    again = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(memory)
    )
    assert type(again) is CrossBatchMemory
    assert again.get_config() == config
    assert type(again.loss) is RecallAtKLoss and again.loss.k == (1, 2)


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(5)])


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_fills_the_memory_and_round_trips(rng, tmp_path, jit_compile):
    x = rng.normal(size=(40, 6)).astype("float32")
    y = rng.integers(0, 4, size=40).astype("float32")
    model = _model()
    memory = CrossBatchMemory(SupAPLoss(), size=24, warmup_steps=2)
    model.compile("adam", loss=memory, jit_compile=jit_compile)
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert int(memory.iterations.numpy()) == 10
    # The memory holds the last 24 samples, as the model embedded them.
    np.testing.assert_array_equal(
        np.sort(memory.labels.numpy()), np.sort(y[16:])
    )
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    loaded = restored.loss
    assert type(loaded) is CrossBatchMemory
    for a, b in zip(memory.variables, loaded.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The next step of both models gives the same loss.
    before = float(memory(y[:8], model.predict(x[:8], verbose=0)))
    after = float(loaded(y[:8], restored.predict(x[:8], verbose=0)))
    np.testing.assert_allclose(after, before, rtol=1e-5)


def test_fit_step_matches_the_direct_computation(rng):
    """Inside compiled fit the loss sees the memory as filled before."""
    x = rng.normal(size=(16, 6)).astype("float32")
    y = rng.integers(0, 3, size=16).astype("float32")
    model = _model()
    memory = CrossBatchMemory(SupAPLoss(), size=8)
    model.compile(keras.optimizers.SGD(0.0), loss=memory, jit_compile=True)
    model.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0)
    emb = model.predict(x, verbose=0)
    logs = model.train_on_batch(x[8:], y[8:], return_dict=True)
    expected = direct(SupAPLoss(), y[8:], emb[8:], y[:8], emb[:8])
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)


@pytest.mark.backend
def test_fit_builds_the_memory_on_every_stateful_backend(rng):
    """The memory is first built inside ``fit`` (on PyTorch, Keras infers
    the loss's shape on data-less tensors first)."""
    if keras.backend.backend() == "jax":
        pytest.skip("a jitted JAX step cannot update the memory")
    x = rng.normal(size=(24, 6)).astype("float32")
    y = rng.integers(0, 4, size=24).astype("float32")
    model = _model()
    memory = CrossBatchMemory(SupAPLoss(), size=16)
    model.compile("adam", loss=memory)
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert int(keras.ops.convert_to_numpy(memory.iterations)) == 3
    np.testing.assert_array_equal(
        np.sort(keras.ops.convert_to_numpy(memory.labels)), np.sort(y[8:])
    )
