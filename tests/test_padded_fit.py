"""Padded lists through ``model.fit`` / ``evaluate``, for every metric.

Lists of different lengths share a batch, padded with junk scores and
junk labels; ``sample_weight`` of the shape of ``y_pred`` (one weight per
item, 0 for padding) leaves the padding out, and the metric equals the
one computed on the same lists unpadded by scipy / scikit-learn. Over the
batch axis (``axis=0``), a zero weight per sample (or per sample and
column) leaves it out. The learning rate is 0, so the scores the metrics
see in ``fit`` are those of ``predict``. Marked ``backend``: CI runs it
under JAX as well as TensorFlow.
"""

import keras
import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, dcg_score, ndcg_score

from keras_sodeep import metrics

pytestmark = pytest.mark.backend


def _top(y, s, k):
    return y[np.argsort(-s, kind="stable")][:k]


def _spearman(y, s):
    if np.ptp(y) == 0 or np.ptp(s) == 0:
        return None
    return spearmanr(y, s).statistic


def _relevant(value):
    """A per-list oracle defined on lists with a relevant item."""

    def oracle(y, s):
        return value(y, s) if (y > 0).any() else None

    return oracle


def _ndcg(k, gain):
    def oracle(y, s):
        g = y if gain == "linear" else 2.0**y - 1.0
        return ndcg_score([g], [s], k=k) if g.sum() > 0 else None

    return oracle


# name: (make(axis), per-list oracle of (labels, scores), real labels?)
def _axis(axis):
    # A small buffer for the batch axis: the 40 samples fit, and result()
    # sorts 64 rows instead of the default capacity's 100,000.
    return {"axis": axis, "capacity": 64} if axis == 0 else {"axis": axis}


METRICS = {
    "spearman": (
        lambda axis: metrics.SpearmanCorrelation(**_axis(axis)),
        _spearman,
        True,
    ),
    "map": (
        lambda axis: metrics.MeanAveragePrecision(**_axis(axis)),
        _relevant(lambda y, s: average_precision_score(y > 0, s)),
        False,
    ),
    "recall_at_2": (
        lambda axis: metrics.RecallAtK(2, **_axis(axis)),
        _relevant(lambda y, s: (_top(y, s, 2) > 0).sum() / (y > 0).sum()),
        False,
    ),
    "hit_rate_at_2": (
        lambda axis: metrics.HitRateAtK(2, **_axis(axis)),
        _relevant(lambda y, s: float((_top(y, s, 2) > 0).any())),
        False,
    ),
    "ndcg": (
        lambda axis: metrics.NDCG(**_axis(axis)),
        _ndcg(None, "exp"),
        False,
    ),
    "ndcg_at_3_linear": (
        lambda axis: metrics.NDCG(3, "linear", **_axis(axis)),
        _ndcg(3, "linear"),
        False,
    ),
    "dcg_at_3": (
        lambda axis: metrics.DCG(3, **_axis(axis)),
        lambda y, s: dcg_score([2.0**y - 1.0], [s], k=3),
        False,
    ),
    "mrr": (
        lambda axis: metrics.MeanReciprocalRank(**_axis(axis)),
        _relevant(lambda y, s: 1.0 / (np.argmax(_top(y, s, len(y)) > 0) + 1)),
        False,
    ),
    "precision_at_3": (
        lambda axis: metrics.PrecisionAtK(3, **_axis(axis)),
        lambda y, s: (_top(y, s, 3) > 0).sum() / min(3, len(y)),
        False,
    ),
}


def _weighted_mean(oracle, lists, weights):
    values, kept = [], []
    for (y, s), w in zip(lists, weights):
        value = oracle(y, s)
        if value is not None and w > 0:
            values.append(value)
            kept.append(w)
    return np.average(values, weights=kept)


def squared_error(y_true, y_pred):
    """Per item, so that Keras can weight it by a weight per item."""
    return keras.ops.square(y_true - y_pred)


def _fit_and_evaluate(model, metric, x, y, sample_weight, batch_size):
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.0),
        loss=squared_error if sample_weight.ndim == 2 else "mse",
        weighted_metrics=[metric],
    )
    history = model.fit(
        x,
        y,
        sample_weight=sample_weight,
        batch_size=batch_size,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    logs = model.evaluate(
        x,
        y,
        sample_weight=sample_weight,
        batch_size=batch_size,
        verbose=0,
        return_dict=True,
    )
    scores = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
    return history.history[metric.name][-1], logs[metric.name], scores


@pytest.mark.parametrize("name", list(METRICS))
def test_padded_lists_in_fit_equal_the_unpadded_lists(name):
    make, oracle, real = METRICS[name]
    rng = np.random.default_rng(0)
    num_lists, n = 12, 8
    lengths = rng.integers(2, n + 1, size=num_lists)
    lengths[:4] = [2, 8, 5, 3]  # one batch of four lengths
    valid = np.arange(n)[None, :] < lengths[:, None]
    # Padding holds junk: features, hence scores, and labels (relevant ones
    # too); only the weights leave it out.
    x = rng.normal(size=(num_lists, n, 3)).astype("float32")
    x[~valid] *= 100.0
    if real:
        y = rng.normal(size=(num_lists, n)).astype("float32")
    else:
        y = rng.integers(0, 4, size=(num_lists, n)).astype("float32")
        y[~valid] = 3.0
    list_weight = rng.choice([1.0, 2.0], size=num_lists).astype("float32")
    item_weight = np.where(valid, list_weight[:, None], 0.0).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((n, 3)),
            keras.layers.Dense(1, use_bias=False),
            keras.layers.Reshape((n,)),
        ]
    )
    fitted, evaluated, scores = _fit_and_evaluate(
        model, make(-1), x, y, item_weight, batch_size=4
    )
    lists = [(y[q][valid[q]], scores[q][valid[q]]) for q in range(num_lists)]
    expected = _weighted_mean(oracle, lists, list_weight)
    np.testing.assert_allclose(fitted, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(evaluated, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("per_column", [False, True], ids=["B", "BxC"])
@pytest.mark.parametrize("name", list(METRICS))
def test_zero_weights_leave_samples_out_over_the_batch_axis(name, per_column):
    make, oracle, real = METRICS[name]
    rng = np.random.default_rng(1)
    num_samples, num_columns = 40, 2
    x = rng.normal(size=(num_samples, 3)).astype("float32")
    keep = rng.random((num_samples, num_columns if per_column else 1)) < 0.7
    if real:
        y = rng.normal(size=(num_samples, num_columns)).astype("float32")
    else:
        y = rng.integers(0, 3, size=(num_samples, num_columns))
        y = y.astype("float32")
    y = np.where(keep, y, 2.0).astype("float32")  # junk where left out
    weight = keep.astype("float32")
    if not per_column:
        weight = weight[:, 0]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(num_columns)]
    )
    fitted, evaluated, scores = _fit_and_evaluate(
        model, make(0), x, y, weight, batch_size=8
    )
    keep = np.broadcast_to(keep, y.shape)
    values = [
        oracle(y[keep[:, c], c], scores[keep[:, c], c])
        for c in range(num_columns)
    ]
    expected = np.mean([v for v in values if v is not None])
    np.testing.assert_allclose(fitted, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(evaluated, expected, rtol=1e-5, atol=1e-6)
