"""Input forms of the losses: per-sample weights along axis 0, empty
batches, ragged tensors (reliability items 4, 11 and 12)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import average_precision_score

from keras_sodeep.losses import (
    MeanAveragePrecisionLoss,
    NDCGLoss,
    RecallAtKLoss,
    SpearmanLoss,
)
from keras_sodeep.ranking import SigmoidRanker


def sharp():
    return SigmoidRanker(0.001)


def test_per_sample_weight_spreads_over_the_columns_at_axis_0(rng):
    y = (rng.random((40, 3)) < 0.3).astype("float32")
    y[0], y[1] = 1.0, 0.0
    p = rng.normal(size=(40, 3)).astype("float32")
    w = rng.integers(1, 4, size=40).astype("float32")
    loss = MeanAveragePrecisionLoss(axis=0, ranker="exact")
    weighted = float(loss(y, p, sample_weight=w))
    # The same weights given per item, one per column.
    per_item = float(loss(y, p, sample_weight=np.repeat(w[:, None], 3, 1)))
    np.testing.assert_allclose(weighted, per_item, rtol=1e-6)
    # A weight of 0 leaves the sample out of every column's list.
    w[5:9] = 0.0
    keep = w > 0
    ones = float(loss(y, p, sample_weight=keep.astype("float32")))
    ap = [average_precision_score(y[keep, c], p[keep, c]) for c in range(3)]
    np.testing.assert_allclose(ones, 1 - np.mean(ap), rtol=1e-4)


def test_class_weight_in_fit_with_multilabel_outputs(rng):
    x = rng.normal(size=(40, 4)).astype("float32")
    y = (rng.random((40, 3)) < 0.3).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("sgd", loss=MeanAveragePrecisionLoss(ranker=sharp()))
    history = model.fit(
        x, y, class_weight={0: 1.0, 1: 2.0, 2: 1.0}, batch_size=40, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize(
    "loss, shape",
    [
        (SpearmanLoss(ranker=sharp()), (0,)),
        (SpearmanLoss(ranker=sharp(), axis=-1), (0, 5)),
        (SpearmanLoss(ranker=sharp(), axis=-1), (3, 0)),
        (MeanAveragePrecisionLoss(), (0, 3)),
        (NDCGLoss(), (0, 20)),
        (RecallAtKLoss(ranker=sharp()), (0, 8)),
    ],
)
def test_empty_batch_gives_zero(loss, shape):
    empty = np.zeros(shape, dtype="float32")
    assert float(loss(empty, empty)) == 0.0


def test_ragged_input_names_the_padded_forms():
    y = tf.ragged.constant([[1.0, 0.0, 1.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="ragged tensors are not supported"):
        MeanAveragePrecisionLoss(axis=-1, ranker=sharp())(y, y)
    with pytest.raises(ValueError, match="sample_weight of 0"):
        SpearmanLoss(axis=-1, ranker=sharp())(y.to_tensor(), y)
