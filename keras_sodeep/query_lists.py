"""Learning-to-rank data: grouped rows as padded lists, one per query.

LTR data sets (LETOR, MSLR-WEB, Yahoo! LTR, Istella) come as rows of
features with a relevance grade and a query id, in SVMlight files that
``sklearn.datasets.load_svmlight_file(path, query_id=True)`` reads.
`ranking_lists` groups the rows by query into padded lists of a fixed
length, the layout of the listwise losses and metrics (``axis=-1``):
features ``(Q, n, d)``, labels ``(Q, n)`` with -1 at the padding, and one
weight per item, 1 for an item and 0 for padding, to pass as
``sample_weight`` to ``fit`` / ``evaluate`` (see ``keras_sodeep.metrics``).
`ranking_lists_dataset` gives the same lists as a ``tf.data.Dataset``.

Example:

```python
from sklearn.datasets import load_svmlight_file
from keras_sodeep.query_lists import ranking_lists

features, grades, qid = load_svmlight_file("train.txt", query_id=True)
x, labels, weights = ranking_lists(features, grades, qid)
model.compile(optimizer="adam", loss=loss,
              weighted_metrics=[keras_sodeep.metrics.NDCG(k=10)])
model.fit(x, labels, sample_weight=weights)
```
"""

import numpy as np

from keras_sodeep._checks import check_int


def ranking_lists(features, labels, query_ids, max_list_length=None):
    """Groups rows by query into padded lists.

    The queries come in the order of their first row and the items of a
    query in the order of its rows (the rows of a query need not be
    adjacent). Lists are padded to the longest one, or to
    ``max_list_length``; a longer list keeps its first
    ``max_list_length`` rows and drops the others.

    Args:
        features: array-like or SciPy sparse matrix ``(N, d)``, one row per
            item (a sparse matrix, as ``load_svmlight_file`` returns, is
            made dense).
        labels: array-like ``(N,)``, the relevance grades (>= 0).
        query_ids: array-like ``(N,)``, the query of each row.
        max_list_length: int or ``None``, the length of the lists.
            Defaults to ``None`` (the longest list's).

    Returns:
        ``(x, labels, weights)``: float32 NumPy arrays of shapes
        ``(Q, n, d)`` (zeros at the padding), ``(Q, n)`` (-1 at the
        padding) and ``(Q, n)`` (1 for an item, 0 for padding).

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.query_lists import ranking_lists
    >>> x, y, w = ranking_lists(
    ...     np.arange(5.0)[:, None], [2, 0, 1, 0, 3], [7, 7, 9, 7, 9])
    >>> x.shape
    (2, 3, 1)
    >>> y.tolist()
    [[2.0, 0.0, 0.0], [1.0, 3.0, -1.0]]
    >>> w.tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]
    """
    if hasattr(features, "toarray"):
        features = features.toarray()
    features = np.asarray(features, dtype="float32")
    labels = np.asarray(labels, dtype="float32")
    query_ids = np.asarray(query_ids)
    if features.ndim != 2:
        raise ValueError(
            "`features` should have shape (N, d). Received: "
            f"features.shape={features.shape}"
        )
    num_rows = features.shape[0]
    for name, array in (("labels", labels), ("query_ids", query_ids)):
        if array.shape != (num_rows,):
            raise ValueError(
                f"`{name}` should have shape (N,) with N = {num_rows}, the "
                f"rows of `features`. Received: {name}.shape={array.shape}"
            )
    if max_list_length is not None:
        max_list_length = check_int(max_list_length, "max_list_length")
    # Queries in the order of their first row.
    _, first_row, inverse = np.unique(
        query_ids, return_index=True, return_inverse=True
    )
    query_order = np.argsort(first_row, kind="stable")
    query_index = np.empty_like(query_order)
    query_index[query_order] = np.arange(len(query_order))
    query = query_index[inverse.reshape(-1)]
    # Rows grouped by query, each query's rows in file order.
    rows = np.argsort(query, kind="stable")
    sizes = np.bincount(query, minlength=len(query_order))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    position = np.arange(num_rows) - np.repeat(starts, sizes)
    length = int(sizes.max(initial=0))
    if max_list_length is not None:
        length = max_list_length
    kept = position < length
    rows, position = rows[kept], position[kept]
    where = (query[rows], position)
    num_queries = len(query_order)
    x = np.zeros((num_queries, length, features.shape[1]), dtype="float32")
    y = np.full((num_queries, length), -1.0, dtype="float32")
    weights = np.zeros((num_queries, length), dtype="float32")
    x[where] = features[rows]
    y[where] = labels[rows]
    weights[where] = 1.0
    return x, y, weights


def ranking_lists_dataset(
    features, labels, query_ids, max_list_length=None, batch_size=None
):
    """`ranking_lists` as a ``tf.data.Dataset`` of ``(x, labels, weights)``.

    The elements are the ``(x, labels, sample_weight)`` triples that
    ``fit`` / ``evaluate`` take, one list each, or batches of
    ``batch_size`` lists. Needs TensorFlow (``tf.data``), whatever the
    Keras backend.

    Args:
        features: array-like or SciPy sparse matrix ``(N, d)``.
        labels: array-like ``(N,)``, the relevance grades (>= 0).
        query_ids: array-like ``(N,)``, the query of each row.
        max_list_length: int or ``None``, the length of the lists.
            Defaults to ``None`` (the longest list's).
        batch_size: int or ``None``, lists per element. Defaults to
            ``None`` (one list per element).

    Returns:
        A ``tf.data.Dataset``.
    """
    # Imported here: the rest of the module needs NumPy only.
    import tensorflow as tf

    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size")
    arrays = ranking_lists(features, labels, query_ids, max_list_length)
    dataset = tf.data.Dataset.from_tensor_slices(arrays)
    return dataset if batch_size is None else dataset.batch(batch_size)
