"""Tests for keras_sodeep.retrieval against NumPy / SciPy / sklearn oracles."""

import itertools
import warnings

import keras
import numpy as np
import pytest
from scipy.stats import hypergeom
from sklearn.datasets import load_digits
from sklearn.metrics import average_precision_score

from keras_sodeep.callbacks import RetrievalEvaluation
from keras_sodeep.retrieval import (
    evaluate_retrieval,
    mean_average_precision,
    median_rank,
    recall_at_k,
)

# Backends without float64 (JAX by default) compute in float32.
FLOAT64 = keras.ops.convert_to_tensor(np.zeros(1)).dtype == "float64"
ATOL = 1e-9 if FLOAT64 else 1e-5

# --------------------------------------------------------------------------
# Oracles: the full similarity matrix in float64, one query at a time.


def oracle_similarity(query, gallery, metric):
    q = np.asarray(query, dtype="float64")
    g = np.asarray(gallery, dtype="float64")
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        g = g / np.linalg.norm(g, axis=1, keepdims=True)
    if metric == "euclidean":
        return -np.sum((q[:, None, :] - g[None, :, :]) ** 2, axis=-1)
    return q @ g.T


def oracle_rows(query, gallery, query_labels, gallery_labels, metric, self_ex):
    """Yields (similarities, positive flags) of the queries with a positive."""
    sim = oracle_similarity(query, gallery, metric)
    for i in range(len(query)):
        keep = np.ones(len(gallery), dtype=bool)
        if self_ex:
            keep[i] = False
        s, pos = (
            sim[i, keep],
            np.asarray(gallery_labels)[keep] == query_labels[i],
        )
        if pos.any():
            yield s, pos


def oracle_no_ties(
    query, gallery, query_labels, gallery_labels, ks, metric, self_ex
):
    """Argsort and sklearn; valid only for rows without tied similarities."""
    hits, firsts, aps = {k: [] for k in ks}, [], []
    for s, pos in oracle_rows(
        query, gallery, query_labels, gallery_labels, metric, self_ex
    ):
        assert len(np.unique(s)) == len(s), "the oracle needs distinct scores"
        order = np.argsort(-s)
        first = int(np.flatnonzero(pos[order])[0]) + 1
        firsts.append(first)
        for k in ks:
            hits[k].append(first <= k)
        aps.append(average_precision_score(pos, s))
    out = {f"recall_at_{k}": float(np.mean(hits[k])) for k in ks}
    out["median_rank"] = float(np.median(firsts))
    out["map"] = float(np.mean(aps))
    out["num_queries"] = float(len(aps))
    return out


def oracle_enumerate(
    query, gallery, query_labels, gallery_labels, ks, metric, self_ex
):
    """Averages over every tie-breaking permutation (small galleries only)."""
    hits, firsts, aps = {k: [] for k in ks}, [], []
    for s, pos in oracle_rows(
        query, gallery, query_labels, gallery_labels, metric, self_ex
    ):
        n = len(s)
        row_hits, row_firsts = {k: [] for k in ks}, []
        for perm in itertools.permutations(range(n)):
            order = sorted(range(n), key=lambda j: (-s[j], perm[j]))
            first = 1 + next(r for r, j in enumerate(order) if pos[j])
            row_firsts.append(first)
            for k in ks:
                row_hits[k].append(first <= k)
        firsts.append(np.mean(row_firsts))
        for k in ks:
            hits[k].append(np.mean(row_hits[k]))
        aps.append(average_precision_score(pos, s))
    out = {f"recall_at_{k}": float(np.mean(hits[k])) for k in ks}
    out["median_rank"] = float(np.median(firsts))
    out["map"] = float(np.mean(aps))
    return out


def oracle_hypergeom(
    query, gallery, query_labels, gallery_labels, ks, metric, self_ex
):
    """Random tie-breaking through the hypergeometric law (any size)."""
    hits, firsts, aps = {k: [] for k in ks}, [], []
    for s, pos in oracle_rows(
        query, gallery, query_labels, gallery_labels, metric, self_ex
    ):
        best = s[pos].max()
        above = int(np.sum(s > best))
        tied = int(np.sum(s == best))
        tied_pos = int(np.sum(pos & (s == best)))

        # P(the first j drawn tied items hold no positive).
        def no_pos(j):
            return hypergeom.pmf(0, tied, tied_pos, j)

        for k in ks:
            m = min(max(k - above, 0), tied)
            hits[k].append(1.0 - no_pos(m))
        firsts.append(above + sum(no_pos(j) for j in range(tied)))
        aps.append(average_precision_score(pos, s))
    out = {f"recall_at_{k}": float(np.mean(hits[k])) for k in ks}
    out["median_rank"] = float(np.median(firsts))
    out["map"] = float(np.mean(aps))
    return out


def assert_results(actual, expected, atol=ATOL):
    for key, value in expected.items():
        if key in actual:
            np.testing.assert_allclose(
                actual[key], value, atol=atol, err_msg=key
            )
    missing = {k for k in expected if k != "num_queries"} - set(actual)
    assert not missing, missing


def clustered(rng, n, dim, num_classes, dtype="float64"):
    labels = rng.integers(0, num_classes, size=n)
    centers = rng.normal(size=(num_classes, dim))
    x = centers[labels] + 0.8 * rng.normal(size=(n, dim))
    return x.astype(dtype), labels


# --------------------------------------------------------------------------
# Hand-computed cases.


def test_hand_computed_tie_case():
    # One query; similarities (dot in 1D) 3, 2, 2, 2, 1; positives (label 0)
    # are one of the three tied at 2 and the last item.
    query = np.array([[1.0]])
    gallery = np.array([[3.0], [2.0], [2.0], [2.0], [1.0]])
    q_labels = np.array([0])
    g_labels = np.array([1, 1, 0, 1, 0])
    args = (query, gallery, q_labels, g_labels)
    # One item above; the first positive is at 1 + J with J uniform-ish:
    # P(J = 1) = 1/3, P(J <= 2) = 1 - (2/3)(1/2) = 2/3, P(J <= 3) = 1.
    rec = recall_at_k(*args, k=(1, 2, 3, 4, 100), metric="dot")
    assert rec == pytest.approx({1: 0.0, 2: 1 / 3, 3: 2 / 3, 4: 1.0, 100: 1.0})
    # E[J] = (1 + 2 + 3) / 3 = 2, so the expected first rank is 3.
    assert median_rank(*args, metric="dot") == pytest.approx(3.0)
    # AP: the tied positive sees 1 positive among 4 items at or above it, the
    # last one 2 among 5: (1/4 + 2/5) / 2.
    assert mean_average_precision(*args, metric="dot") == pytest.approx(0.325)
    assert mean_average_precision(*args, metric="dot") == pytest.approx(
        average_precision_score(g_labels == 0, gallery[:, 0])
    )
    assert recall_at_k(*args, k=2, metric="dot")[2] == pytest.approx(1 / 3)


def test_hand_computed_self_exclusion():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]])
    labels = np.array([0, 1, 1, 0])
    # Cosine rankings of the others (worked out by hand): query 0 -> 1, 3, 2
    # (first positive at 2); 1 -> 0, 3, 2 (3); 2 -> 3, 1, 0 (2); 3 -> 2, 1, 0
    # (3).
    out = evaluate_retrieval(x, query_labels=labels, k=(1, 2, 3))
    assert out["recall_at_1"] == 0.0
    assert out["recall_at_2"] == pytest.approx(0.5)
    assert out["recall_at_3"] == pytest.approx(1.0)
    assert out["median_rank"] == pytest.approx(2.5)
    assert out["map"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 2 + 1 / 3) / 4)
    # Without self-exclusion every query finds itself first.
    kept = evaluate_retrieval(x, query_labels=labels, k=1, exclude_self=False)
    assert kept["recall_at_1"] == 1.0
    assert kept["median_rank"] == 1.0


# --------------------------------------------------------------------------
# Against the oracles.


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
def test_self_retrieval_matches_oracle(rng, metric):
    x, labels = clustered(rng, 120, 8, 6)
    ks = (1, 2, 5, 10)
    out = evaluate_retrieval(x, query_labels=labels, k=ks, metric=metric)
    expected = oracle_no_ties(x, x, labels, labels, ks, metric, True)
    assert_results(out, expected)
    assert out["num_queries"] == expected["num_queries"]
    rec = recall_at_k(x, query_labels=labels, k=ks, metric=metric)
    assert rec == pytest.approx({k: expected[f"recall_at_{k}"] for k in ks})
    assert median_rank(x, query_labels=labels, metric=metric) == (
        pytest.approx(expected["median_rank"])
    )
    assert mean_average_precision(x, query_labels=labels, metric=metric) == (
        pytest.approx(expected["map"], abs=ATOL)
    )


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_separate_gallery_matches_oracle(rng, metric):
    q, q_labels = clustered(rng, 50, 6, 5)
    g, g_labels = clustered(rng, 90, 6, 7)
    out = evaluate_retrieval(q, g, q_labels, g_labels, k=(1, 3), metric=metric)
    expected = oracle_no_ties(q, g, q_labels, g_labels, (1, 3), metric, False)
    assert_results(out, expected)
    # Pairs (i, i) are left out on request when the sizes agree.
    out = evaluate_retrieval(
        q, g[:50], q_labels, g_labels[:50], k=1, exclude_self=True
    )
    expected = oracle_no_ties(
        q, g[:50], q_labels, g_labels[:50], (1,), "cosine", True
    )
    assert_results(out, expected)


def test_gallery_none_equals_gallery_is_query_with_exclusion(rng):
    x, labels = clustered(rng, 60, 5, 4)
    a = evaluate_retrieval(x, query_labels=labels)
    b = evaluate_retrieval(x, x, labels, labels, exclude_self=True)
    c = evaluate_retrieval(x, x, labels, labels)
    assert a == b
    assert c["recall_at_1"] == 1.0 and a["recall_at_1"] < 1.0


def test_ties_against_enumeration(rng):
    # Small integer embeddings with the dot product: many exact ties.
    q = rng.integers(0, 3, size=(5, 2))
    g = rng.integers(0, 3, size=(6, 2))
    q_labels = rng.integers(0, 2, size=5)
    g_labels = rng.integers(0, 2, size=6)
    ks = (1, 2, 3, 5)
    for metric in ("dot", "euclidean"):
        s = oracle_similarity(q, g, metric)
        assert any(len(np.unique(row)) < len(row) for row in s)
        out = evaluate_retrieval(q, g, q_labels, g_labels, k=ks, metric=metric)
        expected = oracle_enumerate(q, g, q_labels, g_labels, ks, metric, False)
        assert_results(out, expected, atol=1e-6)


@pytest.mark.parametrize("metric", ["dot", "euclidean"])
def test_ties_against_hypergeometric_oracle(rng, metric):
    x = rng.integers(0, 2, size=(80, 3))
    labels = rng.integers(0, 3, size=80)
    ks = (1, 2, 4, 8, 16, 100)
    out = evaluate_retrieval(x, query_labels=labels, k=ks, metric=metric)
    expected = oracle_hypergeom(x, x, labels, labels, ks, metric, True)
    assert_results(out, expected)
    # Ties matter here: the optimistic and pessimistic readings differ.
    assert 0.0 < out["recall_at_1"] < 1.0


def test_queries_without_positive_are_left_out(rng):
    x, labels = clustered(rng, 40, 4, 5)
    labels = labels.copy()
    labels[:3] = [10, 11, 12]  # unique classes: no positive once self is out
    out = evaluate_retrieval(x, query_labels=labels, k=(1, 5))
    expected = oracle_no_ties(x, x, labels, labels, (1, 5), "cosine", True)
    assert expected["num_queries"] == 37.0
    assert_results(out, expected)
    assert out["num_queries"] == 37.0
    # No positive anywhere: NaN, not an error.
    distinct = np.arange(40)
    assert np.isnan(recall_at_k(x, query_labels=distinct, k=1)[1])
    assert np.isnan(median_rank(x, query_labels=distinct))
    assert np.isnan(mean_average_precision(x, query_labels=distinct))


def test_chunking_gives_the_same_figures(rng):
    x, labels = clustered(rng, 150, 6, 5)
    results = [
        evaluate_retrieval(x, query_labels=labels, batch_size=b)
        for b in (1, 7, 64, 1000)
    ]
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for key in other:
            assert other[key] == pytest.approx(results[0][key], abs=ATOL)
    # Exact ties survive chunking unchanged.
    xi = rng.integers(0, 2, size=(50, 3))
    li = rng.integers(0, 3, size=50)
    tied = [
        evaluate_retrieval(xi, query_labels=li, metric="dot", batch_size=b)
        for b in (1, 16, 50)
    ]
    assert tied[0] == tied[1] == tied[2]


def test_input_forms(rng):
    x, labels = clustered(rng, 30, 4, 3)
    base = evaluate_retrieval(x, query_labels=labels)
    # Column labels, float32 and int embeddings, list inputs.
    assert evaluate_retrieval(x, query_labels=labels[:, None]) == base
    out32 = evaluate_retrieval(x.astype("float32"), query_labels=labels)
    assert_results(out32, base, atol=1e-6)
    xi = rng.integers(-3, 4, size=(30, 4))
    assert_results(
        evaluate_retrieval(
            xi.tolist(), query_labels=list(labels), metric="dot"
        ),
        evaluate_retrieval(
            xi.astype("float64"), query_labels=labels, metric="dot"
        ),
    )
    # Label dtypes may differ between query and gallery; big ids stay exact.
    big = labels.astype("int64") + 2**40
    out = evaluate_retrieval(x, x, big, big.astype("uint64"), exclude_self=True)
    assert out == base
    float_labels = labels.astype("float32")
    assert evaluate_retrieval(x, query_labels=float_labels) == base
    with pytest.raises(ValueError, match="`query_labels` should hold finite"):
        recall_at_k(x, query_labels=np.where(labels == 0, np.nan, labels))
    # Results are Python floats; an int k gives a dict too (one type).
    assert all(type(v) is float for v in base.values())
    assert type(recall_at_k(x, query_labels=labels, k=1)) is dict
    assert type(recall_at_k(x, query_labels=labels, k=1)[1]) is float
    assert list(recall_at_k(x, query_labels=labels, k=[5, 1])) == [5, 1]


# --------------------------------------------------------------------------
# Bad input.


def test_bad_k():
    x, labels = np.eye(3), np.array([0, 0, 1])
    with pytest.raises(
        ValueError,
        match=r"`k` should be a positive int\. "
        r"Received: k=0",
    ):
        recall_at_k(x, query_labels=labels, k=0)
    for k in (-1, 1.5, True, (1, 0), (), "1"):
        with pytest.raises(ValueError, match="`k` should be a positive int"):
            recall_at_k(x, query_labels=labels, k=k)
    with pytest.raises(ValueError, match="`k`"):
        RetrievalEvaluation(x, labels, k=0)


def test_bad_shapes_and_labels():
    x, labels = np.eye(4), np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="`query` should be a 2D tensor"):
        recall_at_k(np.ones(4), query_labels=labels)
    with pytest.raises(
        ValueError, match=r"`query` should be a 2D.*\(2, 2, 1\)"
    ):
        median_rank(np.ones((2, 2, 1)), query_labels=labels[:2])
    with pytest.raises(
        ValueError, match="`query_labels` should have one label"
    ):
        recall_at_k(x, query_labels=labels[:3])
    with pytest.raises(ValueError, match="`query_labels` should be a 1D"):
        recall_at_k(x, query_labels=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="`query_labels` should hold numeric"):
        recall_at_k(x, query_labels=np.array(["a", "a", "b", "b"]))
    with pytest.raises(ValueError, match="`query_labels` should be given"):
        recall_at_k(x)
    with pytest.raises(ValueError, match="`gallery_labels` should have one"):
        recall_at_k(x, x, labels, labels[:2])
    with pytest.raises(ValueError, match="same embedding dimension"):
        mean_average_precision(x, np.ones((5, 3)), labels, np.zeros(5))
    with pytest.raises(ValueError, match="`gallery_labels` should be given"):
        recall_at_k(x, x, labels)
    with pytest.raises(ValueError, match="`gallery_labels` should be None"):
        recall_at_k(x, None, labels, labels)
    with pytest.raises(ValueError, match="`exclude_self=True`"):
        recall_at_k(x, np.ones((5, 4)), labels, np.zeros(5), exclude_self=True)
    with pytest.raises(ValueError, match="`metric` should be one of"):
        recall_at_k(x, query_labels=labels, metric="manhattan")
    with pytest.raises(ValueError, match="`batch_size` should be a positive"):
        recall_at_k(x, query_labels=labels, batch_size=0)
    with pytest.raises(ValueError, match="`query` should hold finite"):
        recall_at_k(np.full((4, 4), np.nan), query_labels=labels)
    with pytest.raises(ValueError, match="`gallery` should hold at least one"):
        recall_at_k(x, np.ones((0, 4)), labels, np.zeros(0))
    with pytest.raises(ValueError, match="`labels` should have one label"):
        RetrievalEvaluation(x, labels[:3])
    with pytest.raises(ValueError, match="given together"):
        RetrievalEvaluation(x, labels, gallery=x)
    with pytest.raises(ValueError, match="`every_n_epochs`"):
        RetrievalEvaluation(x, labels, every_n_epochs=0)


# --------------------------------------------------------------------------
# The callback inside fit.


def open_set_digits():
    """load_digits, train on classes 0-4, retrieve among classes 5-9."""
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target
    train = np.flatnonzero(y < 5)[:300]
    held = np.flatnonzero(y >= 5)[:150]
    return x[train], y[train], x[held], y[held]


def embedding_classifier():
    inputs = keras.Input((64,))
    emb = keras.layers.Dense(16, name="embedding")(inputs)
    out = keras.layers.Dense(5, activation="softmax")(
        keras.layers.Activation("relu")(emb)
    )
    model = keras.Model(inputs, out)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
    )
    return model, keras.Model(inputs, emb)


def test_callback_logs_match_oracle_in_fit():
    keras.utils.set_random_seed(0)
    x_tr, y_tr, x_val, y_val = open_set_digits()
    model, embedder = embedding_classifier()
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(
            (embedder.predict(x_val, verbose=0), dict(logs))
        )
    )
    ks = (1, 5)
    callback = RetrievalEvaluation(
        x_val, y_val, k=ks, embedding_model="embedding", batch_size=64
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # EarlyStopping warns on missing keys
        stop = keras.callbacks.EarlyStopping(
            monitor="val_recall_at_1", mode="max", patience=10
        )
        history = model.fit(
            x_tr,
            y_tr,
            epochs=3,
            batch_size=32,
            verbose=0,
            callbacks=[callback, record, stop],
        )
    keys = ["val_recall_at_1", "val_recall_at_5", "val_median_rank", "val_map"]
    for key in keys:
        assert len(history.history[key]) == 3
    for epoch, (emb, logs) in enumerate(seen):
        expected = oracle_no_ties(emb, emb, y_val, y_val, ks, "cosine", True)
        for key in keys:
            assert logs[key] == history.history[key][epoch]
            assert logs[key] == pytest.approx(
                expected[key.removeprefix("val_")], abs=1e-6
            ), (epoch, key)
    # Training moves the embeddings, so the figures are not constant.
    assert len(set(history.history["val_map"])) > 1


def test_callback_gallery_callable_every_n_epochs():
    keras.utils.set_random_seed(1)
    x_tr, y_tr, x_val, y_val = open_set_digits()
    model, embedder = embedding_classifier()
    q, q_labels, g, g_labels = x_val[:40], y_val[:40], x_val[40:], y_val[40:]
    seen = []
    callback = RetrievalEvaluation(
        q,
        q_labels,
        gallery=g,
        gallery_labels=g_labels,
        k=3,
        metric="euclidean",
        embedding_model=lambda batch: embedder(batch),
        every_n_epochs=2,
        prefix="ret_",
        batch_size=16,
    )
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(
            (embedder.predict(q, verbose=0), embedder.predict(g, verbose=0))
        )
    )
    history = model.fit(
        x_tr,
        y_tr,
        epochs=4,
        batch_size=64,
        verbose=0,
        callbacks=[callback, record],
    )
    assert len(history.history["ret_recall_at_3"]) == 2  # epochs 2 and 4
    assert "ret_recall_at_1" not in history.history
    for i, epoch in enumerate((1, 3)):
        eq, eg = seen[epoch]
        expected = oracle_no_ties(
            eq, eg, q_labels, g_labels, (3,), "euclidean", False
        )
        for name in ("recall_at_3", "median_rank", "map"):
            assert history.history["ret_" + name][i] == pytest.approx(
                expected[name], abs=1e-6
            ), (epoch, name)


def test_callback_default_embeds_with_the_model(rng):
    x, labels = clustered(rng, 40, 6, 4, dtype="float32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
    callback = RetrievalEvaluation(x, labels, k=(1,))
    history = model.fit(x, x[:, :3], epochs=1, verbose=0, callbacks=[callback])
    emb = model.predict(x, verbose=0)
    expected = oracle_no_ties(emb, emb, labels, labels, (1,), "cosine", True)
    assert history.history["val_recall_at_1"][0] == pytest.approx(
        expected["recall_at_1"], abs=1e-6
    )
    assert history.history["val_map"][0] == pytest.approx(
        expected["map"], abs=1e-6
    )
