"""`keras_sodeep.query_lists` on an SVMlight file written in the test."""

import keras
import numpy as np
import pytest
from sklearn.datasets import dump_svmlight_file, load_svmlight_file
from sklearn.metrics import ndcg_score

from keras_sodeep.metrics import NDCG
from keras_sodeep.query_lists import ranking_lists, ranking_lists_dataset


@pytest.fixture
def svmlight(tmp_path, rng):
    """Rows of 4 features, grades 0-4, queries of 1-9 rows (one query's
    rows split in two runs), written and read back as LETOR files are."""
    sizes = [3, 9, 1, 5, 2]
    qid = np.repeat([11, 4, 7, 30, 11], sizes)  # query 11 comes back
    features = rng.normal(size=(len(qid), 4)).round(3)
    grades = rng.integers(0, 5, size=len(qid)).astype(float)
    path = str(tmp_path / "train.txt")
    dump_svmlight_file(features, grades, path, query_id=qid)
    return load_svmlight_file(path, query_id=True), (features, grades)


def test_lists_hold_each_querys_rows_in_order(svmlight):
    (x_sparse, y_rows, qid), (features, grades) = svmlight
    x, labels, weights = ranking_lists(x_sparse, y_rows, qid)
    assert x.shape == (4, 9, 4) and labels.shape == weights.shape == (4, 9)
    for q, query in enumerate([11, 4, 7, 30]):  # order of first rows
        rows = np.flatnonzero(qid == query)
        m = len(rows)
        np.testing.assert_allclose(x[q, :m], features[rows], rtol=1e-6)
        np.testing.assert_array_equal(labels[q, :m], grades[rows])
        np.testing.assert_array_equal(labels[q, m:], -1.0)
        np.testing.assert_array_equal(x[q, m:], 0.0)
        np.testing.assert_array_equal(weights[q], np.arange(9) < m)


def test_max_list_length_pads_or_keeps_the_first_rows(svmlight):
    (x_sparse, y_rows, qid), (features, _) = svmlight
    x, labels, weights = ranking_lists(x_sparse, y_rows, qid, 4)
    assert x.shape == (4, 4, 4)
    rows = np.flatnonzero(qid == 4)[:4]
    np.testing.assert_allclose(x[1], features[rows], rtol=1e-6)
    assert weights.sum(-1).tolist() == [4.0, 4.0, 1.0, 4.0]
    x, _, weights = ranking_lists(x_sparse, y_rows, qid, 12)
    assert x.shape == (4, 12, 4) and weights.sum() == len(qid)


def test_bad_arguments(svmlight):
    (x_sparse, y_rows, qid), _ = svmlight
    with pytest.raises(ValueError, match="`query_ids` should have shape"):
        ranking_lists(x_sparse, y_rows, qid[:-1])
    with pytest.raises(ValueError, match="`features` should have shape"):
        ranking_lists(np.zeros(3), [0, 1, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="`max_list_length` should be"):
        ranking_lists(x_sparse, y_rows, qid, max_list_length=0)


def test_dataset_feeds_fit_and_evaluate(svmlight):
    (x_sparse, y_rows, qid), _ = svmlight
    x, labels, weights = ranking_lists(x_sparse, y_rows, qid)
    dataset = ranking_lists_dataset(x_sparse, y_rows, qid, batch_size=3)
    got = [np.concatenate(parts) for parts in zip(*dataset.as_numpy_iterator())]
    for a, b in zip(got, (x, labels, weights)):
        np.testing.assert_array_equal(a, b)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((9, 4)),
            keras.layers.Dense(1),
            keras.layers.Reshape((9,)),
        ]
    )
    model.compile(
        "sgd",
        # Per item, so that Keras can weight it by a weight per item.
        loss=lambda y, p: keras.ops.square(y - p),
        weighted_metrics=[NDCG(k=3)],
    )
    logs = model.evaluate(dataset, verbose=0, return_dict=True)
    scores = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
    expected = [
        ndcg_score([2.0 ** y[w > 0] - 1], [s[w > 0]], k=3)
        for y, s, w in zip(labels, scores, weights)
        if (w > 0).sum() > 1 and (y[w > 0] > 0).any()
    ]
    # The one-item query has NDCG 1 when its item is relevant.
    single = labels[2, 0] > 0
    expected = np.mean(expected + [1.0] * int(single))
    np.testing.assert_allclose(logs["ndcg_at_3"], expected, rtol=1e-5)
