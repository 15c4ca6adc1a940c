"""RankedListLoss, RecallAtKSurrogateLoss and SiMix against NumPy.

The oracles below are independent transcriptions of the papers' formulas, one
query at a time, with Python loops.
"""

import json

import keras
import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import rankdata

from keras_sodeep.losses import (
    RankedListLoss,
    RecallAtKSurrogateLoss,
    similarity_mixup,
)
from keras_sodeep.ranking import SigmoidRanker

# -- oracles ------------------------------------------------------------------


def cosine(e):
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    return u @ u.T


def embedding_queries(labels, s, valid=None):
    """Per query: (relevance, scores) over the other valid samples."""
    n = len(labels)
    valid = np.ones(n, bool) if valid is None else valid
    out = []
    for q in range(n):
        if not valid[q]:
            continue
        items = [j for j in range(n) if j != q and valid[j]]
        out.append(
            (
                np.array([labels[j] == labels[q] for j in items], float),
                np.array([s[q, j] for j in items]),
            )
        )
    return out


def rll_query(rel, s, margin=0.4, boundary=1.2, tn=10.0, tp=0.0, lam=0.5):
    d = np.sqrt(np.maximum(2 - 2 * s, 1e-12))
    lp = ln = 0.0
    pos = [i for i in range(len(s)) if rel[i] > 0 and d[i] > boundary - margin]
    neg = [i for i in range(len(s)) if rel[i] == 0 and d[i] < boundary]
    if pos:
        w = np.array([np.exp(tp * (d[i] - boundary + margin)) for i in pos])
        lp = sum(w * [d[i] - boundary + margin for i in pos]) / w.sum()
    if neg:
        w = np.array([np.exp(tn * (boundary - d[i])) for i in neg])
        ln = sum(w * [boundary - d[i] for i in neg]) / w.sum()
    return (1 - lam) * lp + lam * ln


def sigmoid_ranks(s, tau):
    return np.array(
        [
            1 + sum(expit((s[j] - s[i]) / tau) for j in range(len(s)) if j != i)
            for i in range(len(s))
        ]
    )


def rsk_query(rel, s, ks, temperature=1.0, tau=0.01, exact=False):
    r = rankdata(-s, method="average") if exact else sigmoid_ranks(s, tau)
    num_pos = rel.sum()
    values = []
    for k in ks:
        hits = sum(expit((k - r[p]) / temperature) for p in np.flatnonzero(rel))
        values.append(min(hits, k) / min(k, num_pos))
    return 1 - np.mean(values)


def mean_over_queries(queries, fn):
    values = [fn(rel, s) for rel, s in queries if rel.sum() > 0]
    return np.mean(values) if values else 0.0


# -- inputs -------------------------------------------------------------------


def batch(seed=0, size=14, classes=4):
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(size, 5)).astype("float32")
    labels = rng.integers(0, classes, size=size)
    labels[-1] = 99  # a query without a positive
    return e, labels


LOSSES = {
    "ranked_list": (
        lambda: RankedListLoss(),
        lambda rel, s: rll_query(rel, s),
    ),
    "ranked_list_weighted": (
        lambda: RankedListLoss(
            margin=0.2,
            boundary=1.0,
            negative_temperature=3.0,
            positive_temperature=2.0,
            imbalance=0.3,
        ),
        lambda rel, s: rll_query(rel, s, 0.2, 1.0, 3.0, 2.0, 0.3),
    ),
    "rs_at_k": (
        lambda: RecallAtKSurrogateLoss(k=(1, 2, 4), temperature=0.5),
        lambda rel, s: rsk_query(rel, s, (1, 2, 4), 0.5),
    ),
    "rs_at_k_exact": (
        lambda: RecallAtKSurrogateLoss(k=(1, 3), ranker="exact"),
        lambda rel, s: rsk_query(rel, s, (1, 3), exact=True),
    ),
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_embeddings_match_numpy(name):
    make, oracle = LOSSES[name]
    e, labels = batch()
    expected = mean_over_queries(
        embedding_queries(labels, cosine(e.astype("float64"))), oracle
    )
    np.testing.assert_allclose(float(make()(labels, e)), expected, rtol=1e-4)


@pytest.mark.parametrize("name", list(LOSSES))
def test_score_matrix_matches_numpy(name):
    make, oracle = LOSSES[name]
    rng = np.random.default_rng(1)
    s = np.round(rng.uniform(-1, 1, size=(5, 9)), 1).astype("float32")  # ties
    rel = (rng.random((5, 9)) < 0.4).astype("float32")
    rel[:, 0] = 1.0
    rel[4] = 0.0  # a list without a positive
    expected = mean_over_queries(list(zip(rel, s.astype("float64"))), oracle)
    np.testing.assert_allclose(float(make()(rel, s)), expected, rtol=1e-4)


@pytest.mark.parametrize("name", list(LOSSES))
def test_one_class_and_no_positive_batches(name):
    make, oracle = LOSSES[name]
    e, _ = batch()
    one_class = np.zeros(len(e), int)
    expected = mean_over_queries(
        embedding_queries(one_class, cosine(e.astype("float64"))), oracle
    )
    np.testing.assert_allclose(
        float(make()(one_class, e)), expected, rtol=1e-4, atol=1e-7
    )
    assert float(make()(np.arange(len(e)), e)) == 0.0


@pytest.mark.parametrize("name", list(LOSSES))
def test_masks_and_padding_labels_drop_samples(name):
    make, _ = LOSSES[name]
    e, labels = batch()
    keep = np.ones(len(e), bool)
    keep[[2, 5]] = False
    dropped = float(make()(labels[keep], e[keep]))
    masked = float(make()({"labels": labels, "mask": keep}, e))
    padded = float(make()(np.where(keep, labels, -1), e))
    np.testing.assert_allclose(masked, dropped, rtol=1e-5)
    np.testing.assert_allclose(padded, dropped, rtol=1e-5)


@pytest.mark.parametrize("name", list(LOSSES))
def test_sample_weight_weights_queries(name):
    make, oracle = LOSSES[name]
    e, labels = batch()
    w = np.random.default_rng(2).uniform(0, 2, size=len(e)).astype("float32")
    queries = embedding_queries(labels, cosine(e.astype("float64")))
    has_pos = np.array([rel.sum() > 0 for rel, _ in queries])
    per_query = np.array(
        [oracle(rel, s) if p else 0.0 for (rel, s), p in zip(queries, has_pos)]
    )
    expected = np.sum(w * per_query) / has_pos.sum()
    np.testing.assert_allclose(
        float(make()(labels, e, sample_weight=w)), expected, rtol=1e-4
    )


def test_ranked_list_gradient_has_constant_weights():
    """d loss / d s: weights w held constant, d = sqrt(2 - 2 s)."""
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        pytest.skip("uses tf.GradientTape")
    s = np.array([[0.9, 0.1, 0.5, -0.2, 0.45]], "float32")
    rel = np.array([[1.0, 1.0, 0.0, 0.0, 0.0]], "float32")
    loss = RankedListLoss(positive_temperature=1.0)
    x = tf.constant(s)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(rel, x)
    grad = tape.gradient(value, x).numpy()[0]
    d = np.sqrt(2 - 2 * s[0].astype("float64"))
    expected = np.zeros(5)
    pos = [i for i in (0, 1) if d[i] > 0.8]
    neg = [i for i in (2, 3, 4) if d[i] < 1.2]
    wp = np.exp(1.0 * (d[pos] - 0.8))
    wn = np.exp(10.0 * (1.2 - d[neg]))
    dd = -1.0 / d  # d d / d s
    expected[pos] = 0.5 * wp / wp.sum() * dd[pos]
    expected[neg] = -0.5 * wn / wn.sum() * dd[neg]
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-7)


def test_rs_at_k_takes_any_ranker():
    e, labels = batch()
    default = RecallAtKSurrogateLoss()
    assert repr(default.ranker) == (
        "SigmoidRanker(temperature=0.01, relative=False)"
    )
    np.testing.assert_allclose(
        float(default(labels, e)),
        float(RecallAtKSurrogateLoss(ranker=SigmoidRanker(0.01))(labels, e)),
        rtol=1e-6,
    )
    for ranker in [None, "neuralsort:0.1", "histogram"]:
        value = float(RecallAtKSurrogateLoss(ranker=ranker)(labels, e))
        assert 0.0 <= value <= 1.0, ranker


# -- SiMix --------------------------------------------------------------------


def test_similarity_mixup_mixes_every_same_class_pair():
    e, labels = batch()
    valid = np.ones(len(e), bool)
    valid[3] = False
    units, mixed_labels, mixed_valid = (
        np.asarray(t)
        for t in similarity_mixup(
            labels, e, valid, 64, keras.random.SeedGenerator(0)
        )
    )
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    np.testing.assert_allclose(units[: len(e)], u, rtol=1e-6)
    pairs = {
        (a, b)
        for a in range(len(e))
        for b in range(a + 1, len(e))
        if labels[a] == labels[b] and valid[a] and valid[b]
    }
    mixed = units[len(e) :][mixed_valid[len(e) :]]
    assert len(mixed) == len(pairs)
    found = set()
    for m in mixed:
        for a, b in pairs:
            # m = alpha u_a + (1 - alpha) u_b for some alpha in [0, 1]?
            direction = u[a] - u[b]
            alpha = (m - u[b]) @ direction / (direction @ direction)
            if 0 <= alpha <= 1 and np.allclose(
                alpha * u[a] + (1 - alpha) * u[b], m, atol=1e-5
            ):
                found.add((a, b))
                assert (
                    mixed_labels[len(e) :][mixed_valid[len(e) :]][
                        list(map(tuple, mixed)).index(tuple(m))
                    ]
                    == labels[a]
                )
    assert found == pairs
    assert not np.allclose(np.linalg.norm(mixed, axis=1), 1.0)  # not renormed


def test_similarity_mixup_caps_the_number_of_mixed():
    e, labels = batch()
    _, _, valid = similarity_mixup(
        labels, e, np.ones(len(e), bool), 3, keras.random.SeedGenerator(0)
    )
    assert np.asarray(valid)[len(e) :].sum() == 3


@pytest.mark.parametrize(
    "make, oracle",
    [
        (
            lambda: RecallAtKSurrogateLoss(k=(1, 4), simix=True, seed=7),
            lambda rel, s: rsk_query(rel, s, (1, 4)),
        ),
        (
            lambda: RankedListLoss(simix=True, seed=7),
            lambda rel, s: rll_query(rel, s),
        ),
    ],
    ids=["rs_at_k", "ranked_list"],
)
def test_simix_loss_matches_numpy_on_the_mixed_batch(make, oracle):
    e, labels = batch()
    w = np.random.default_rng(3).uniform(0, 2, size=len(e)).astype("float32")
    # The loss draws from SeedGenerator(7): the same draws, replayed.
    units, all_labels, valid = (
        np.asarray(t).astype("float64")
        for t in similarity_mixup(
            labels, e, np.ones(len(e), bool), 256, keras.random.SeedGenerator(7)
        )
    )
    valid = valid > 0
    queries = embedding_queries(all_labels, units @ units.T, valid)
    per_query = np.array(
        [oracle(rel, s) if rel.sum() > 0 else 0.0 for rel, s in queries]
    )
    num_valid = sum(rel.sum() > 0 for rel, _ in queries)
    loss = make()
    np.testing.assert_allclose(
        float(loss(labels, e)), per_query.sum() / num_valid, rtol=1e-4
    )
    # Sample weights: each sample's own query plus an equal share of the
    # mixed ones.
    n = len(e)
    share = per_query[n:].sum() / n
    expected = np.sum(w * (per_query[:n] + share)) / num_valid
    np.testing.assert_allclose(
        float(make()(labels, e, sample_weight=w)), expected, rtol=1e-4
    )


def test_simix_is_seeded():
    e, labels = batch()
    first = RecallAtKSurrogateLoss(simix=True, seed=1)
    again = RecallAtKSurrogateLoss(simix=True, seed=1)
    a, b = float(first(labels, e)), float(first(labels, e))
    assert a != b  # the generator moves on
    assert float(again(labels, e)) == a
    assert float(RecallAtKSurrogateLoss()(labels, e)) != a


def test_simix_needs_embeddings():
    rel = np.array([[1.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="simix"):
        RecallAtKSurrogateLoss(simix=True)(rel, np.array([[0.2, 0.1, 0.3]]))


# -- errors, XLA, saving ---------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: RankedListLoss(margin=0.0), "`margin` should be a positive"),
        (lambda: RankedListLoss(margin=1.3), "`margin` should be smaller"),
        (lambda: RankedListLoss(imbalance=1.5), "`imbalance` should be in"),
        (
            lambda: RankedListLoss(negative_temperature=-1.0),
            "`negative_temperature` should be a non-negative",
        ),
        (lambda: RecallAtKSurrogateLoss(k=0), "`k` should be a positive"),
        (
            lambda: RecallAtKSurrogateLoss(temperature=0.0),
            "`temperature` should be a positive",
        ),
        (
            lambda: RecallAtKSurrogateLoss(max_mixed=0),
            "`max_mixed` should be a positive int. Received: max_mixed=0",
        ),
        (lambda: RecallAtKSurrogateLoss(simix="yes"), "`simix` should be"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def _embedding_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16, "relu"),
            keras.layers.Dense(4),
        ]
    )


FIT_LOSSES = {
    "ranked_list": lambda: RankedListLoss(),
    "ranked_list_simix": lambda: RankedListLoss(simix=True, seed=0),
    "rs_at_k": lambda: RecallAtKSurrogateLoss(k=(1, 2)),
    "rs_at_k_simix": lambda: RecallAtKSurrogateLoss(
        k=(1, 2), simix=True, max_mixed=32, seed=0
    ),
}


@pytest.mark.parametrize("name", list(FIT_LOSSES))
def test_fit_under_xla_and_keras_round_trip(name, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 6)).astype("float32")
    y = rng.integers(0, 4, size=48)
    model = _embedding_model()
    model.compile("adam", loss=FIT_LOSSES[name](), jit_compile=True)
    history = model.fit(x, y, batch_size=24, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    before = model.evaluate(x, y, batch_size=48, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    # As saved (JSON: a built ranker's input shape is a list after loading).
    assert json.loads(json.dumps(restored.loss.get_config())) == json.loads(
        json.dumps(model.loss.get_config())
    )
    if "simix" not in name:  # SiMix draws again
        after = restored.evaluate(x, y, batch_size=48, verbose=0)
        np.testing.assert_allclose(after, before, rtol=1e-5)


@pytest.mark.parametrize("name", list(LOSSES))
def test_xla_value_equals_eager(name):
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.function(jit_compile=True)")
    make, _ = LOSSES[name]
    e, labels = batch()
    loss = make()
    compiled = tf.function(lambda y, p: loss(y, p), jit_compile=True)
    np.testing.assert_allclose(
        float(compiled(labels, e)), float(make()(labels, e)), rtol=1e-5
    )
