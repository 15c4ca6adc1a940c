"""SupAP, SupRecall@k, ROADMAP and the calibration loss against NumPy.

The oracles below transcribe the papers' formulas with loops over
queries and items; they share no code with the package.
"""

import keras
import numpy as np
import pytest
from keras import ops
from scipy.special import expit as sigmoid

from keras_sodeep.losses import (
    CalibrationLoss,
    ROADMAPLoss,
    SupAPLoss,
    SupRecallAtKLoss,
)

DEFAULTS = dict(tau=0.01, margin=0.05, slope=100.0, offset=1.44, jump=0.5)


# ---------------------------------------------------------------------------
# Oracles.
# ---------------------------------------------------------------------------


def h_plus(t, tau, margin, slope, offset, jump):
    if t <= 0:
        return sigmoid(t / tau)
    if t <= margin:
        return jump + sigmoid(t / tau)
    return slope * (t - margin) + offset


def np_sup_ranks(rel, s, **params):
    """{positive i: (rank(i), rank_plus(i))} of one query's list."""
    ranks = {}
    for i in np.flatnonzero(rel > 0):
        above_pos = sum(
            1.0 for j in np.flatnonzero(rel > 0) if j != i and s[j] >= s[i]
        )
        above_neg = sum(
            h_plus(s[j] - s[i], **params) for j in np.flatnonzero(rel <= 0)
        )
        ranks[i] = (1.0 + above_pos + above_neg, 1.0 + above_pos)
    return ranks


def np_sup_ap(rel, s, **params):
    """Per-query 1 - AP, or None for a query without a positive."""
    ranks = np_sup_ranks(rel, s, **params)
    if not ranks:
        return None
    return 1.0 - np.mean([plus / full for full, plus in ranks.values()])


def np_sup_recall(rel, s, ks, temperature, **params):
    ranks = np_sup_ranks(rel, s, **params)
    if not ranks:
        return None
    recalls = [
        sum(sigmoid((k - full) / temperature) for full, _ in ranks.values())
        / min(len(ranks), k)
        for k in ks
    ]
    return 1.0 - np.mean(recalls)


def np_calibration(pairs, pm, nm):
    """``pairs``: (relevant, similarity) of every (query, item) pair."""
    pos = [pm - s for r, s in pairs if r and pm - s > 0]
    neg = [s - nm for r, s in pairs if not r and s - nm > 0]
    return (np.mean(pos) if pos else 0.0) + (np.mean(neg) if neg else 0.0)


def np_lists(labels, emb):
    """Each query's (relevance, cosine) over the other samples."""
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = unit @ unit.T
    out = []
    for q in range(len(labels)):
        others = [j for j in range(len(labels)) if j != q]
        out.append(
            ((labels[others] == labels[q]).astype(float), sim[q, others])
        )
    return out


def np_mean_over_queries(fn, lists):
    values = [fn(rel, s) for rel, s in lists]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else 0.0


def rows(rel, s):
    return [(rel[i], s[i]) for i in range(len(rel))]


def pairs_of(lists):
    return [(r > 0, x) for rel, s in lists for r, x in zip(rel, s)]


# ---------------------------------------------------------------------------
# Data.
# ---------------------------------------------------------------------------


def score_rows(rng, num_lists=5, n=9):
    """Similarity-like scores with ties; row 3 has no positive."""
    s = np.round(rng.uniform(-0.2, 1.0, size=(num_lists, n)), 2)
    s[:, 4] = s[:, 5]  # ties
    rel = (rng.random((num_lists, n)) < 0.4).astype("float32")
    rel[:, 0], rel[:, 1] = 1.0, 0.0
    rel[3] = 0.0
    return rel, s.astype("float32")


def embeddings(rng, n=14, dim=6, classes=4):
    labels = rng.integers(0, classes, size=n)
    labels[-1] = classes + 7  # a sample alone in its class: no positive
    return labels, rng.normal(size=(n, dim)).astype("float32")


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


# ---------------------------------------------------------------------------
# Values against the oracles.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [DEFAULTS, dict(tau=0.1, margin=0.2, slope=10.0, offset=2.0, jump=0.3)],
)
def test_sup_ap_matches_numpy(rng, params):
    rel, s = score_rows(rng)
    loss = SupAPLoss(
        params["tau"],
        params["margin"],
        params["slope"],
        params["offset"],
        params["jump"],
    )
    expected = np_mean_over_queries(
        lambda r, x: np_sup_ap(r, x, **params), rows(rel, s)
    )
    close(float(loss(rel, s)), expected)
    labels, emb = embeddings(rng)
    expected = np_mean_over_queries(
        lambda r, x: np_sup_ap(r, x, **params), np_lists(labels, emb)
    )
    close(float(loss(labels, emb)), expected)


def test_sup_recall_matches_numpy(rng):
    rel, s = score_rows(rng)
    ks = (1, 2, 4)
    loss = SupRecallAtKLoss(k=ks, temperature=0.5)

    def oracle(r, x):
        return np_sup_recall(r, x, ks, 0.5, **DEFAULTS)

    close(float(loss(rel, s)), np_mean_over_queries(oracle, rows(rel, s)))
    labels, emb = embeddings(rng)
    expected = np_mean_over_queries(oracle, np_lists(labels, emb))
    close(float(loss(labels, emb)), expected)


def test_calibration_matches_numpy(rng):
    rel, s = score_rows(rng)
    loss = CalibrationLoss(0.8, 0.3)
    expected = np_calibration(pairs_of(rows(rel, s)), 0.8, 0.3)
    close(float(loss(rel, s)), expected)
    labels, emb = embeddings(rng)
    expected = np_calibration(pairs_of(np_lists(labels, emb)), 0.8, 0.3)
    close(float(loss(labels, emb)), expected)


def test_roadmap_is_sup_ap_plus_weighted_calibration(rng):
    labels, emb = embeddings(rng)
    lists = np_lists(labels, emb)
    ap = np_mean_over_queries(lambda r, x: np_sup_ap(r, x, **DEFAULTS), lists)
    cal = np_calibration(pairs_of(lists), 0.9, 0.6)
    close(float(ROADMAPLoss(calibration_weight=0.5)(labels, emb)), ap + cal / 2)
    rel, s = score_rows(rng)
    ap = np_mean_over_queries(
        lambda r, x: np_sup_ap(r, x, **DEFAULTS), rows(rel, s)
    )
    cal = np_calibration(pairs_of(rows(rel, s)), 0.9, 0.6)
    close(float(ROADMAPLoss()(rel, s)), ap + cal)


def test_h_plus_pieces(rng):
    """One positive, one negative at each piece of H+: rank = 1 + H+(t)."""
    loss = SupAPLoss()
    for t in (-0.3, -0.004, 0.0, 0.02, 0.05, 0.3):
        s = np.array([[0.5, 0.5 + t]], "float32")
        rank = 1.0 + h_plus(np.float32(0.5 + t) - np.float32(0.5), **DEFAULTS)
        close(float(loss(np.array([[1.0, 0.0]]), s)), 1.0 - 1.0 / rank)


# ---------------------------------------------------------------------------
# Edge cases.
# ---------------------------------------------------------------------------

ALL = {
    "sup_ap": lambda: SupAPLoss(),
    "sup_recall": lambda: SupRecallAtKLoss(k=(1, 2)),
    "roadmap": lambda: ROADMAPLoss(),
    "calibration": lambda: CalibrationLoss(),
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_no_query_with_a_positive(rng, name):
    """A batch of distinct labels: the rank losses are 0 and finite."""
    emb = rng.normal(size=(6, 4)).astype("float32")
    value = float(ALL[name]()(np.arange(6), emb))
    assert np.isfinite(value)
    if name in ("sup_ap", "sup_recall"):
        assert value == 0.0


@pytest.mark.parametrize("name", sorted(ALL))
def test_one_class_batch(rng, name):
    """Every other sample is positive: AP and recall are perfect."""
    emb = rng.normal(size=(6, 4)).astype("float32")
    labels = np.zeros(6)
    value = float(ALL[name]()(labels, emb))
    lists = np_lists(labels, emb)
    if name == "sup_ap":
        close(value, 0.0)
    elif name == "sup_recall":
        oracle = np_mean_over_queries(
            lambda r, x: np_sup_recall(r, x, (1, 2), 1.0, **DEFAULTS), lists
        )
        close(value, oracle)
    else:
        close(value, np_calibration(pairs_of(lists), 0.9, 0.6))


@pytest.mark.parametrize("name", sorted(ALL))
def test_padding_labels_and_masks_drop_samples(rng, name):
    labels, emb = embeddings(rng)
    keep = np.ones(len(labels), bool)
    keep[[2, 5]] = False
    loss = ALL[name]()
    expected = float(loss(labels[keep], emb[keep]))
    padded = np.where(keep, labels, -1)
    close(float(loss(padded, emb)), expected)
    masked = float(loss({"labels": labels, "mask": keep}, emb))
    close(masked, expected)


@pytest.mark.parametrize("name", sorted(ALL))
def test_sample_weight_weights_queries(rng, name):
    labels, emb = embeddings(rng)
    loss = ALL[name]()
    w = rng.uniform(0.0, 2.0, size=len(labels)).astype("float32")
    per_query = ops.convert_to_numpy(loss.call(labels, emb))
    close(
        float(loss(labels, emb, sample_weight=w)),
        np.sum(w * per_query) / len(w),
    )


@pytest.mark.parametrize("name", sorted(ALL))
def test_gradient_is_finite_and_flows(rng, name):
    import tensorflow as tf

    labels, emb = embeddings(rng)
    x = tf.constant(emb)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = ALL[name]()(labels, x)
    grad = tape.gradient(value, x).numpy()
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)


def test_sup_ap_keeps_a_gradient_for_a_far_negative():
    """Where a sigmoid saturates, H+ keeps the slope ``slope``."""
    import tensorflow as tf

    x = tf.constant([[0.0, 0.9]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = SupAPLoss()(np.array([[1.0, 0.0]]), x)
    grad = tape.gradient(value, x).numpy()
    # loss = 1 - 1 / rank, rank = 1 + slope * (0.9 - margin) + offset.
    rank = 1.0 + 100.0 * 0.85 + 1.44
    close(grad[0, 1], 100.0 / rank**2)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SupAPLoss(temperature=0.0), "`temperature` should be"),
        (lambda: SupAPLoss(margin=-1.0), "`margin` should be"),
        (lambda: SupAPLoss(ranker="exact"), "takes no `ranker`"),
        (lambda: SupRecallAtKLoss(k=0), "`k` should be"),
        (
            lambda: SupRecallAtKLoss(rank_temperature=-1),
            "`rank_temperature`",
        ),
        (lambda: CalibrationLoss(positive_margin="a"), "`positive_margin`"),
        (lambda: ROADMAPLoss(calibration_weight=-1), "`calibration_weight`"),
    ],
)
def test_bad_arguments_raise(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_bad_shapes_raise(rng):
    with pytest.raises(ValueError, match="shape"):
        SupAPLoss()(np.zeros((3, 4)), np.zeros((3, 5)))


# ---------------------------------------------------------------------------
# Compiled: XLA, fit, evaluate, .keras.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALL))
def test_xla_matches_eager(rng, name):
    import tensorflow as tf

    labels, emb = embeddings(rng)
    loss = ALL[name]()
    eager = float(loss(labels, emb))
    compiled = tf.function(loss, jit_compile=True)
    close(float(compiled(labels, emb)), eager)


@pytest.mark.parametrize("name", sorted(ALL))
def test_fit_with_xla_and_keras_round_trip(rng, name, tmp_path):
    labels, emb = embeddings(rng, n=32)
    x = emb
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8)])
    model.compile("adam", loss=ALL[name](), jit_compile=True)
    history = model.fit(x, labels, batch_size=16, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    before = model.evaluate(x, labels, batch_size=32, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored.loss) is type(model.loss)
    assert restored.loss.get_config() == model.loss.get_config()
    after = restored.evaluate(x, labels, batch_size=32, verbose=0)
    close(after, before)
