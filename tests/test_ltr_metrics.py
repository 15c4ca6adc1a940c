"""NDCG, DCG, MeanReciprocalRank and PrecisionAtK against their oracles:
scikit-learn's ``ndcg_score`` / ``dcg_score`` on graded lists with ties,
every tie-breaking order enumerated, and keras-rs on lists without ties.
The checklist (`checklist.py`) covers the rest: batching, both axes,
masks, bad input, ``fit`` and the ``.keras`` round trip."""

import itertools

import numpy as np
import pytest
from sklearn.metrics import dcg_score, ndcg_score

from keras_sodeep.metrics import DCG, NDCG, MeanReciprocalRank, PrecisionAtK

# ---------------------------------------------------------------- oracles


def graded_lists(rng, num_lists=8, n=9, ties=True):
    """Labels 0-4 with padding (-1) and a mask; scores with ties."""
    labels = rng.integers(0, 5, size=(num_lists, n)).astype("float32")
    labels[rng.random((num_lists, n)) < 0.15] = -1.0
    labels[:, :2] = rng.integers(0, 5, size=(num_lists, 2))
    labels[0] = 0.0  # a list without gain
    mask = rng.random((num_lists, n)) < 0.85
    mask[:, :2] = True
    if ties:
        scores = np.round(rng.normal(size=(num_lists, n)) * 2) / 2
    else:
        scores = rng.permutation(num_lists * n).reshape(num_lists, n) / 7.0
    return labels, mask, scores.astype("float32")


def kept(labels, mask, scores):
    """The lists without their padding."""
    for y, m, s in zip(labels, mask, scores):
        keep = m & (y >= 0)
        yield y[keep], s[keep]


def sklearn_mean(labels, mask, scores, k, gain, normalized):
    """sklearn's (N)DCG per list; NDCG averaged over lists with a gain."""
    values = []
    for y, s in kept(labels, mask, scores):
        g = y if gain == "linear" else 2.0**y - 1.0
        if normalized:
            if g.sum() > 0:
                values.append(ndcg_score([g], [s], k=k))
        else:
            values.append(dcg_score([g], [s], k=k))
    return np.mean(values)


def over_tie_breaks(y, s, value):
    """Mean of ``value(labels in rank order)`` over every tie-breaking."""
    results = []
    for priority in itertools.permutations(range(len(s))):
        order = np.lexsort((np.array(priority), -s))
        results.append(value(y[order]))
    return np.mean(results)


def reciprocal_rank(sorted_labels):
    return 1.0 / (np.argmax(sorted_labels > 0) + 1)


def precision(k):
    def value(sorted_labels):
        return (sorted_labels[:k] > 0).sum() / min(k, len(sorted_labels))

    return value


def value_of(metric, y, s, sample_weight=None):
    metric.reset_state()
    metric.update_state(y, s, sample_weight=sample_weight)
    return float(metric.result())


# ------------------------------------------------------------ sklearn


@pytest.mark.backend
@pytest.mark.parametrize("gain", ["exponential", "linear"])
@pytest.mark.parametrize("k", [None, 1, 3, 20])
@pytest.mark.parametrize("cls", [NDCG, DCG], ids=["ndcg", "dcg"])
def test_equals_sklearn_on_graded_lists_with_ties(rng, cls, k, gain):
    labels, mask, scores = graded_lists(rng)
    metric = cls(k=k, gain=gain)
    got = value_of(metric, {"labels": labels, "mask": mask}, scores)
    expected = sklearn_mean(labels, mask, scores, k, gain, cls is NDCG)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_ties_change_the_value_as_sklearn_says(rng):
    """With ties the value is the tie average, not that of one order."""
    y = np.array([[3.0, 0.0, 1.0, 2.0]])
    s = np.array([[0.5, 0.5, 0.5, 0.1]])
    got = value_of(NDCG(gain="linear"), y, s)
    assert abs(got - ndcg_score(y, s, ignore_ties=True)) > 1e-3
    np.testing.assert_allclose(got, ndcg_score(y, s), rtol=1e-6)


# ---------------------------------------------- every tie-breaking order


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_precision_matches_every_tie_breaking(rng, k):
    for _ in range(5):
        n = int(rng.integers(2, 7))
        y = (rng.random(n) < 0.4).astype("float32")
        s = rng.integers(0, 3, size=n).astype("float32")
        expected = over_tie_breaks(y, s, precision(k))
        got = value_of(PrecisionAtK(k), y[None], s[None])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_reciprocal_rank_matches_every_tie_breaking(rng):
    for _ in range(8):
        n = int(rng.integers(2, 7))
        y = (rng.random(n) < 0.4).astype("float32")
        y[rng.integers(n)] = 2.0  # a relevant item, of grade 2
        s = rng.integers(0, 3, size=n).astype("float32")
        expected = over_tie_breaks(y, s, reciprocal_rank)
        got = value_of(MeanReciprocalRank(), y[None], s[None])
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_hand_cases():
    # Relevant items at ranks 2 and 4: RR 1/2, P@2 1/2, P@5 of 4 items 1/2.
    y, s = [[0, 1, 0, 1]], [[0.9, 0.8, 0.7, 0.6]]
    assert value_of(MeanReciprocalRank(), y, s) == pytest.approx(0.5)
    assert value_of(PrecisionAtK(2), y, s) == pytest.approx(0.5)
    assert value_of(PrecisionAtK(5), y, s) == pytest.approx(0.5)
    # DCG by hand: gains 2^2-1 = 3 at rank 1, 1 at rank 3.
    y, s = [[2, 0, 1]], [[0.9, 0.8, 0.7]]
    assert value_of(DCG(), y, s) == pytest.approx(3 + 1 / np.log2(4))
    assert value_of(DCG(k=2), y, s) == pytest.approx(3.0)


# ------------------------------------------------------------ keras-rs


@pytest.mark.parametrize("padded", [False, True])
def test_equals_keras_rs_without_ties(rng, padded):
    keras_rs = pytest.importorskip("keras_rs")
    labels, mask, scores = graded_lists(rng, ties=False)
    labels[0, 0] = 1.0  # keras-rs counts lists without relevance as 0
    labels[:, 0] = np.maximum(labels[:, 0], 1.0)
    if padded:
        y_true = {"labels": labels, "mask": mask}
    else:
        y_true = np.maximum(labels, 0.0)
    pairs = [
        (NDCG(), keras_rs.metrics.NDCG(shuffle_ties=False)),
        (NDCG(k=3), keras_rs.metrics.NDCG(k=3, shuffle_ties=False)),
        (DCG(k=4), keras_rs.metrics.DCG(k=4, shuffle_ties=False)),
        (
            MeanReciprocalRank(),
            keras_rs.metrics.MeanReciprocalRank(shuffle_ties=False),
        ),
        (PrecisionAtK(3), keras_rs.metrics.PrecisionAtK(3, shuffle_ties=False)),
        # Lists shorter than k: divided by their length, as keras-rs does.
        (
            PrecisionAtK(20),
            keras_rs.metrics.PrecisionAtK(20, shuffle_ties=False),
        ),
    ]
    for ours, theirs in pairs:
        theirs.update_state(y_true, scores)
        np.testing.assert_allclose(
            value_of(ours, y_true, scores),
            float(theirs.result()),
            rtol=1e-5,
            err_msg=ours.name,
        )


# -------------------------------------------- which lists count, weights


def test_lists_without_relevance_count_only_where_defined():
    y = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    s = np.array([[0.3, 0.2, 0.1], [0.1, 0.3, 0.2]])
    # NDCG and MRR: only the second list is defined.
    assert value_of(NDCG(), y, s) == pytest.approx(0.5)
    assert value_of(MeanReciprocalRank(), y, s) == pytest.approx(1 / 3)
    # DCG and precision: the first list counts as 0.
    assert value_of(DCG(), y, s) == pytest.approx(0.5 * 0.5)
    assert value_of(PrecisionAtK(1), y, s) == pytest.approx(0.0)
    assert value_of(PrecisionAtK(3), y, s) == pytest.approx(1 / 6)
    # No defined list at all, or only padding: 0.
    assert value_of(NDCG(), y[:1], s[:1]) == 0.0
    assert value_of(DCG(), -np.ones((1, 3)), s[:1]) == 0.0


@pytest.mark.backend
@pytest.mark.parametrize(
    "make",
    [
        lambda: NDCG(k=3),
        lambda: DCG(),
        MeanReciprocalRank,
        lambda: PrecisionAtK(2),
    ],
    ids=["ndcg", "dcg", "mrr", "precision"],
)
def test_item_weights_pad_and_weight_lists(rng, make):
    labels, mask, scores = graded_lists(rng, num_lists=6, n=7)
    labels = np.maximum(labels, 0.0)
    list_weight = rng.choice([0.5, 1.0, 2.0], size=6).astype("float32")
    item_weight = np.where(mask, list_weight[:, None], 0.0)
    junk = np.where(mask, labels, 3.0)  # padding holds relevant junk
    by_items = value_of(make(), junk, scores, sample_weight=item_weight)
    by_mask = value_of(
        make(), {"labels": labels, "mask": mask}, scores, list_weight
    )
    np.testing.assert_allclose(by_items, by_mask, rtol=1e-5)
    each = [
        value_of(make(), y[None], s[None])
        for y, s in kept(labels, mask, scores)
    ]
    defined = [
        make().name.startswith(("dcg", "precision")) or (y > 0).any()
        for y, _ in kept(labels, mask, scores)
    ]
    expected = np.average(np.array(each)[defined], weights=list_weight[defined])
    np.testing.assert_allclose(by_mask, expected, rtol=1e-5)


def test_streaming_equals_one_update(rng):
    labels, mask, scores = graded_lists(rng, num_lists=10)
    y_true = {"labels": labels, "mask": mask}
    for make in [NDCG, DCG, MeanReciprocalRank, lambda: PrecisionAtK(3)]:
        metric = make()
        metric.update_state(
            {key: v[:4] for key, v in y_true.items()}, scores[:4]
        )
        metric.update_state(
            {key: v[4:] for key, v in y_true.items()}, scores[4:]
        )
        np.testing.assert_allclose(
            float(metric.result()), value_of(make(), y_true, scores), 1e-6
        )


# ----------------------------------------------------- arguments, config


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: NDCG(k=0), "`k` should be a positive int"),
        (lambda: DCG(k=2.5), "`k` should be a positive int"),
        (lambda: NDCG(gain="log"), '`gain` should be "exponential"'),
        (lambda: PrecisionAtK(None), "`k` should be a positive int"),
        (lambda: MeanReciprocalRank(axis=1), "`axis` should be 0"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_names_direction_and_config():
    assert NDCG().name == "ndcg" and NDCG(k=10).name == "ndcg_at_10"
    assert DCG(k=5).name == "dcg_at_5"
    assert MeanReciprocalRank().name == "mrr"
    assert PrecisionAtK(5).name == "precision_at_5"
    for metric in [NDCG(), DCG(), MeanReciprocalRank(), PrecisionAtK(1)]:
        assert metric._direction == "up"
    config = NDCG(k=10, gain="linear", name="n").get_config()
    assert {key: config[key] for key in ["k", "gain", "axis", "name"]} == {
        "k": 10,
        "gain": "linear",
        "axis": -1,
        "name": "n",
    }
    assert NDCG.from_config(config).get_config() == config
