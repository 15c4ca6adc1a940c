"""NDCGLoss and MeanReciprocalRankLoss against scikit-learn and NumPy."""

import keras
import numpy as np
import pytest
from scipy.special import expit
from sklearn.metrics import ndcg_score

from keras_sodeep.losses import MeanReciprocalRankLoss, NDCGLoss
from keras_sodeep.ranking import SigmoidRanker


def graded(rng, lists=5, n=20):
    """Grades 0-4 (each list with a positive) and distinct scores."""
    y = rng.choice(5, size=(lists, n), p=[0.5, 0.2, 0.15, 0.1, 0.05])
    y[:, 0] = 3
    p = rng.normal(size=(lists, n))
    return y.astype("float32"), p.astype("float32")


@pytest.mark.parametrize("gain", ["exponential", "linear"])
@pytest.mark.parametrize("k", [None, 1, 5])
def test_exact_ranks_give_one_minus_sklearn_ndcg(rng, gain, k):
    y, p = graded(rng)
    # A sharp cut-off: with exact ranks, c_k is the indicator of r <= k.
    loss = NDCGLoss(k=k, gain=gain, temperature=1e-3, ranker="exact")
    relevance = 2.0**y - 1.0 if gain == "exponential" else y
    expected = 1.0 - ndcg_score(relevance, p, k=k)
    np.testing.assert_allclose(float(loss(y, p)), expected, rtol=1e-5)


def _approx_ndcg(y, p, temperature, k=None, cutoff_temperature=1.0):
    """ApproxNDCG (Qin, Liu, Li 2010), one list at a time, in NumPy."""
    values = []
    for g, s in zip(y.astype("float64"), p.astype("float64")):
        ranks = 1.0 + np.array(
            [
                sum(
                    expit((s[j] - s[i]) / temperature)
                    for j in range(len(s))
                    if j != i
                )
                for i in range(len(s))
            ]
        )
        gain = 2.0**g - 1.0
        weight = 1.0 / np.log2(1.0 + ranks)
        if k is not None:
            weight = weight * expit((k + 0.5 - ranks) / cutoff_temperature)
        ideal = np.sort(gain)[::-1]
        positions = np.arange(1, len(g) + 1)
        keep = positions <= (k or len(g))
        idcg = np.sum(ideal[keep] / np.log2(1.0 + positions[keep]))
        values.append(1.0 - np.sum(gain * weight) / idcg)
    return float(np.mean(values))


@pytest.mark.parametrize("k", [None, 4])
def test_sigmoid_ranker_gives_approx_ndcg(rng, k):
    y, p = graded(rng, lists=3, n=12)
    loss = NDCGLoss(k=k, ranker=SigmoidRanker(0.5))
    expected = _approx_ndcg(y, p, 0.5, k)
    np.testing.assert_allclose(float(loss(y, p)), expected, rtol=1e-5)


def test_lists_without_gain_contribute_nothing(rng):
    y, p = graded(rng, lists=4)
    y[1] = 0.0
    loss = NDCGLoss(ranker="exact")
    kept = [0, 2, 3]
    np.testing.assert_allclose(
        float(loss(y, p)), float(loss(y[kept], p[kept])), rtol=1e-6
    )
    assert float(loss(np.zeros_like(y), p)) == 0.0


def test_gradient_moves_relevant_items_up(rng):
    y, p = graded(rng, lists=2, n=30)
    loss = NDCGLoss(k=10)
    scores = keras.Variable(p)
    optimizer = keras.optimizers.Adam(0.05)
    before = 1.0 - ndcg_score(2.0**y - 1.0, p, k=10)
    import tensorflow as tf

    for _ in range(60):
        with tf.GradientTape() as tape:
            value = loss(y, scores)
        optimizer.apply_gradients([(tape.gradient(value, scores), scores)])
    after = 1.0 - ndcg_score(2.0**y - 1.0, np.asarray(scores), k=10)
    assert after < before - 0.1


def test_mrr_loss_against_numpy(rng):
    y, p = graded(rng, lists=6, n=15)
    y[2] = 0.0  # no relevant item: left out
    loss = MeanReciprocalRankLoss(ranker="exact")
    rr = []
    for g, s in zip(y, p):
        if (g > 0).any():
            order = np.argsort(-s)
            rr.append(1.0 / (1 + np.flatnonzero(g[order] > 0)[0]))
    np.testing.assert_allclose(float(loss(y, p)), 1.0 - np.mean(rr), rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="`k` should be a positive int"):
        NDCGLoss(k=0)
    with pytest.raises(ValueError, match="`gain` should be one of"):
        NDCGLoss(gain="quadratic")
    with pytest.raises(ValueError, match="temperature"):
        NDCGLoss(k=3, temperature=0.0)


def test_repr_and_config_show_the_ranker():
    loss = NDCGLoss(k=10, ranker="sigmoid:0.1")
    assert "SigmoidRanker(temperature=0.1" in repr(loss)
    restored = NDCGLoss.from_config(loss.get_config())
    assert restored.k == 10 and restored.ranker.temperature == 0.1


def test_the_default_ranker_is_the_small_sorter(rng):
    # The default ranks as the `histogram-small` preset does, not with
    # the soft ranks of the mAP loss's default.
    labels = rng.integers(0, 5, size=(3, 30)).astype("float32")
    scores = rng.normal(size=(3, 30)).astype("float32")
    assert repr(NDCGLoss().ranker) == "PresetRanker('histogram-small')"
    default = float(NDCGLoss()(labels, scores))
    named = float(NDCGLoss(ranker="histogram-small")(labels, scores))
    soft = float(NDCGLoss(ranker="histogram-smooth:0.15")(labels, scores))
    np.testing.assert_allclose(default, named, rtol=1e-6)
    assert abs(default - soft) > 1e-4
    assert repr(MeanReciprocalRankLoss().ranker) == repr(NDCGLoss().ranker)
