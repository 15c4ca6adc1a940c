"""Whole-gallery evaluation for retrieval and metric learning.

Every query is compared with every gallery item; gallery items that share the
query's label are its positives. Three figures summarise the rankings:

- `recall_at_k`: the hit rate, the fraction of queries with a positive in
  their top ``k``;
- `median_rank`: the median, over queries, of the rank of the first positive;
- `mean_average_precision`: the mean, over queries, of the average precision
  of the gallery ranking (as ``sklearn.metrics.average_precision_score``).

`evaluate_retrieval` computes them in one pass, and the
``keras_sodeep.callbacks.RetrievalEvaluation`` callback runs it on held-out
data at the end of training epochs. The per-query AP is the one of
``keras_sodeep.metrics`` (tie-correct, scikit-learn's rule).

Conventions shared by the functions of this module:

- ``gallery=None`` evaluates the query set against itself with self-pairs
  left out (the usual metric-learning protocol).
- Queries without any positive in the gallery are left out of every figure;
  when no query has a positive, the figures are NaN.
- Ties (items of exactly equal similarity) are broken uniformly at random and
  the figures are the expected values; average precision follows scikit-learn,
  which counts a tie group as a whole at one threshold.
- The similarity matrix is computed with `keras.ops` in chunks of
  ``batch_size`` queries, so memory grows as ``batch_size * num_gallery``.
"""

import keras
import numpy as np
from keras import ops

from keras_sodeep._checks import check_int, check_ks
from keras_sodeep.metrics.average_precision import average_precision

_METRICS = ("cosine", "dot", "euclidean")


def _standardize_embeddings(x, name):
    x = ops.convert_to_tensor(x)
    if len(x.shape) != 2:
        raise ValueError(
            f"`{name}` should be a 2D tensor of shape (num_items, dim). "
            f"Received: {name}.shape={tuple(x.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError(
            f"`{name}` should hold at least one item. "
            f"Received: {name}.shape={tuple(x.shape)}"
        )
    if not keras.backend.is_float_dtype(x.dtype):
        if x.dtype == "bool" or not keras.backend.is_int_dtype(x.dtype):
            raise ValueError(
                f"`{name}` should be numeric. Received: dtype={x.dtype}"
            )
        x = ops.cast(x, keras.config.floatx())
    if not bool(ops.convert_to_numpy(ops.all(ops.isfinite(x)))):
        raise ValueError(
            f"`{name}` should hold finite values only. Received NaN or inf."
        )
    return x


def _standardize_labels(labels, name, num_items, embeddings_name):
    if labels is None:
        raise ValueError(
            f"`{name}` should be given: one class id per row of "
            f"`{embeddings_name}`. Received: {name}=None"
        )
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            f"`{name}` should be a 1D array of class ids, one per row of "
            f"`{embeddings_name}`. Received: {name}.shape={labels.shape}"
        )
    if labels.dtype.kind not in "biuf":
        raise ValueError(
            f"`{name}` should hold numeric class ids (ints or floats). "
            f"Received: {name}.dtype={labels.dtype}"
        )
    if labels.shape[0] != num_items:
        raise ValueError(
            f"`{name}` should have one label per row of `{embeddings_name}`. "
            f"Received: {name}.shape={labels.shape}, "
            f"{embeddings_name} has {num_items} rows"
        )
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise ValueError(
            f"`{name}` should hold finite class ids. Received NaN or inf."
        )
    return labels


def _standardize_inputs(
    query, gallery, query_labels, gallery_labels, metric, exclude_self, bs
):
    if metric not in _METRICS:
        raise ValueError(
            f"`metric` should be one of {_METRICS}. Received: metric={metric!r}"
        )
    check_int(bs, "batch_size")
    query = _standardize_embeddings(query, "query")
    query_labels = _standardize_labels(
        query_labels, "query_labels", query.shape[0], "query"
    )
    if gallery is None:
        if gallery_labels is not None:
            raise ValueError(
                "`gallery_labels` should be None when `gallery` is None (the "
                "query set is its own gallery). Received: gallery_labels of "
                f"shape {np.shape(gallery_labels)}"
            )
        gallery, gallery_labels = query, query_labels
        if exclude_self is None:
            exclude_self = True
    else:
        if gallery_labels is None:
            raise ValueError(
                "`gallery_labels` should be given with `gallery`. "
                "Received: gallery_labels=None"
            )
        gallery = _standardize_embeddings(gallery, "gallery")
        gallery_labels = _standardize_labels(
            gallery_labels, "gallery_labels", gallery.shape[0], "gallery"
        )
        if exclude_self is None:
            exclude_self = False
    if gallery.shape[1] != query.shape[1]:
        raise ValueError(
            "`query` and `gallery` should have the same embedding dimension. "
            f"Received: query.shape={tuple(query.shape)}, "
            f"gallery.shape={tuple(gallery.shape)}"
        )
    if exclude_self and gallery.shape[0] != query.shape[0]:
        raise ValueError(
            "`exclude_self=True` pairs query i with gallery item i, so "
            "`query` and `gallery` should have the same number of rows. "
            f"Received: query.shape={tuple(query.shape)}, "
            f"gallery.shape={tuple(gallery.shape)}"
        )
    dtype = keras.backend.result_type(query.dtype, gallery.dtype)
    query = ops.cast(query, dtype)
    gallery = ops.cast(gallery, dtype)
    # Class ids as int32 codes: NumPy compares mixed dtypes exactly.
    _, codes = np.unique(
        np.concatenate([query_labels, gallery_labels]), return_inverse=True
    )
    codes = codes.reshape(-1).astype("int32")
    query_labels, gallery_labels = (
        codes[: query.shape[0]],
        codes[query.shape[0] :],
    )
    return query, gallery, query_labels, gallery_labels, bool(exclude_self)


def _similarity(query, gallery, metric):
    """The (num_queries, num_gallery) similarity matrix; higher is closer."""
    dot = ops.matmul(query, ops.transpose(gallery))
    if metric == "euclidean":
        q2 = ops.sum(ops.square(query), axis=-1, keepdims=True)
        g2 = ops.sum(ops.square(gallery), axis=-1)
        return 2.0 * dot - q2 - g2[None, :]
    return dot


def _normalize(x):
    norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True))
    return x / ops.maximum(norm, ops.cast(1e-12, x.dtype))


def _chunk_statistics(sim, positive, with_ap):
    """Per-query counts of one chunk of rows of the similarity matrix.

    ``sim`` holds ``-inf`` where an item is excluded; ``positive`` is False
    there. Returns NumPy arrays: ``has_positive``; ``above``, the number of
    items more similar than the best positive; ``tied`` and ``tied_pos``, the
    number of items (of positives) exactly as similar as the best positive;
    and the average precision (or None).
    """
    neg_inf = ops.cast(float("-inf"), sim.dtype)
    best = ops.max(ops.where(positive, sim, neg_inf), axis=-1, keepdims=True)
    at_best = ops.equal(sim, best)
    stats = {
        "has_positive": ops.any(positive, axis=-1),
        "above": ops.sum(ops.cast(sim > best, "int32"), axis=-1),
        "tied": ops.sum(ops.cast(at_best, "int32"), axis=-1),
        "tied_pos": ops.sum(
            ops.cast(ops.logical_and(at_best, positive), "int32"), axis=-1
        ),
    }
    if with_ap:
        # Excluded items (similarity -inf) get zero weight.
        weights = ops.cast(sim > neg_inf, sim.dtype)
        ap, _ = average_precision(ops.cast(positive, sim.dtype), sim, weights)
        stats["ap"] = ap
    return {key: ops.convert_to_numpy(value) for key, value in stats.items()}


def _statistics(
    query, gallery, query_labels, gallery_labels, metric, exclude_self, bs, ap
):
    """Checks the inputs; per-query statistics of those with a positive."""
    query, gallery, query_labels, gallery_labels, exclude_self = (
        _standardize_inputs(
            query,
            gallery,
            query_labels,
            gallery_labels,
            metric,
            exclude_self,
            bs,
        )
    )
    if metric == "cosine":
        query, gallery = _normalize(query), _normalize(gallery)
    gallery_t = ops.convert_to_tensor(gallery_labels)
    num_queries, num_gallery = query.shape[0], gallery.shape[0]
    chunks = []
    for start in range(0, num_queries, bs):
        stop = min(start + bs, num_queries)
        sim = _similarity(query[start:stop], gallery, metric)
        labels = ops.convert_to_tensor(query_labels[start:stop])
        positive = ops.equal(labels[:, None], gallery_t[None, :])
        if exclude_self:
            rows = ops.arange(start, stop, dtype="int32")
            cols = ops.arange(num_gallery, dtype="int32")
            keep = ops.not_equal(rows[:, None], cols[None, :])
            positive = ops.logical_and(positive, keep)
            sim = ops.where(keep, sim, ops.cast(float("-inf"), sim.dtype))
        chunks.append(_chunk_statistics(sim, positive, ap))
    stats = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
    has_positive = stats.pop("has_positive")
    return {key: value[has_positive] for key, value in stats.items()}


def _hit_rates(stats, ks):
    """Expected hit rate at each k under uniformly random tie-breaking.

    With ``a`` items above the best positive and ``t`` items tied with it,
    ``p`` of them positives, the first positive lands at ``a + J`` where ``J``
    is the position of the first positive in a random order of the tie:

    ```
    P(J > m) = C(t - p, m) / C(t, m) = prod_{i < m} (t - p - i) / (t - i)
    ```
    """
    above, tied, tied_pos = stats["above"], stats["tied"], stats["tied_pos"]
    if above.size == 0:
        return {k: float("nan") for k in ks}
    tied_neg = (tied - tied_pos).astype("float64")
    # P(J > m) is zero for m > t - p; only m <= max(t - p) needs the product.
    length = int(min(max(ks), tied_neg.max()))
    i = np.arange(length, dtype="float64")
    ratio = np.clip(tied_neg[:, None] - i, 0.0, None) / np.maximum(
        tied[:, None] - i, 1.0
    )
    miss = np.concatenate(
        [np.ones((above.size, 1)), np.cumprod(ratio, axis=1)], axis=1
    )
    rates = {}
    for k in ks:
        m = np.clip(k - above, 0, None)
        p_miss = np.where(
            m > length,
            0.0,
            np.take_along_axis(miss, np.minimum(m, length)[:, None], axis=1)[
                :, 0
            ],
        )
        rates[k] = float(np.mean(1.0 - p_miss))
    return rates


def _median_rank(stats):
    if stats["above"].size == 0:
        return float("nan")
    # E[J] = (t + 1) / (p + 1) for the first of p positives among t items.
    first = stats["above"] + (stats["tied"] + 1.0) / (stats["tied_pos"] + 1.0)
    return float(np.median(first))


def _mean(values):
    return float(np.mean(values)) if values.size else float("nan")


def recall_at_k(
    query,
    gallery=None,
    query_labels=None,
    gallery_labels=None,
    k=(1, 5, 10),
    metric="cosine",
    exclude_self=None,
    batch_size=256,
):
    """Recall@k as hit rate: the fraction of queries with a positive in top k.

    ```
    recall@k = mean_q P(rank of the first positive of q <= k)
    ```

    Ranks are by decreasing similarity; ties are broken uniformly at random
    and the probability is exact. Queries without a positive are left out.

    Args:
        query: embeddings of the queries, shape ``(num_queries, dim)``.
        gallery: embeddings of the gallery, shape ``(num_gallery, dim)``, or
            ``None`` (the default) to use the queries as the gallery, self
            pairs left out.
        query_labels: class ids of the queries, shape ``(num_queries,)``.
        gallery_labels: class ids of the gallery; ``None`` when ``gallery``
            is ``None``.
        k: a positive int or a sequence of them. Defaults to
            ``(1, 5, 10)``.
        metric: ``"cosine"`` (default), ``"dot"``, or ``"euclidean"``
            (similarity ``-||q - g||^2``).
        exclude_self: whether to leave out the pairs (query i, gallery item
            i). Defaults to ``None``: ``True`` when ``gallery`` is ``None``,
            ``False`` otherwise.
        batch_size: number of queries per chunk of the similarity matrix.
            Defaults to ``256``.

    Returns:
        A dict ``{k: float}``, one entry per ``k`` (an int ``k`` too).

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.retrieval import recall_at_k
    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]])
    >>> labels = np.array([0, 1, 1, 0])
    >>> recall_at_k(x, query_labels=labels, k=(1, 2))
    {1: 0.0, 2: 0.5}
    >>> recall_at_k(x, query_labels=labels, k=2)
    {2: 0.5}
    """
    ks = check_ks(k)
    stats = _statistics(
        query,
        gallery,
        query_labels,
        gallery_labels,
        metric,
        exclude_self,
        batch_size,
        False,
    )
    return _hit_rates(stats, ks)


def median_rank(
    query,
    gallery=None,
    query_labels=None,
    gallery_labels=None,
    metric="cosine",
    exclude_self=None,
    batch_size=256,
):
    """Median over queries of the rank of the first positive (1-based).

    ```
    rank_q = a_q + (t_q + 1) / (p_q + 1)
    ```

    where ``a_q`` items are strictly more similar than the best positive and
    ``t_q`` items, ``p_q`` of them positives, tie with it: the expected rank of
    the first positive under uniformly random tie-breaking (the exact rank
    without ties). Lower is better; queries without a positive are left out;
    an even count takes the mean of the two middle values (``np.median``).

    Args:
        query: embeddings of the queries, shape ``(num_queries, dim)``.
        gallery: embeddings of the gallery, shape ``(num_gallery, dim)``, or
            ``None`` (the default) to use the queries as the gallery, self
            pairs left out.
        query_labels: class ids of the queries, shape ``(num_queries,)``.
        gallery_labels: class ids of the gallery; ``None`` when ``gallery``
            is ``None``.
        metric: ``"cosine"`` (default), ``"dot"``, or ``"euclidean"``
            (similarity ``-||q - g||^2``).
        exclude_self: whether to leave out the pairs (query i, gallery item
            i). Defaults to ``None``: ``True`` when ``gallery`` is ``None``,
            ``False`` otherwise.
        batch_size: number of queries per chunk of the similarity matrix.
            Defaults to ``256``.
    Returns:
        A float, at least 1.

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.retrieval import median_rank
    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]])
    >>> labels = np.array([0, 1, 1, 0])
    >>> median_rank(x, query_labels=labels)
    2.5
    """
    stats = _statistics(
        query,
        gallery,
        query_labels,
        gallery_labels,
        metric,
        exclude_self,
        batch_size,
        False,
    )
    return _median_rank(stats)


def mean_average_precision(
    query,
    gallery=None,
    query_labels=None,
    gallery_labels=None,
    metric="cosine",
    exclude_self=None,
    batch_size=256,
):
    """Mean over queries of the average precision of the gallery ranking.

    ```
    AP_q = (1 / |P_q|) sum_{i in P_q} #{j in P_q : s_j >= s_i}
                                      / #{j : s_j >= s_i}
    ```

    which equals ``sklearn.metrics.average_precision_score`` on the query's
    row of similarities (a tie group counts as a whole at one threshold).
    Queries without a positive are left out.

    Args:
        query: embeddings of the queries, shape ``(num_queries, dim)``.
        gallery: embeddings of the gallery, shape ``(num_gallery, dim)``, or
            ``None`` (the default) to use the queries as the gallery, self
            pairs left out.
        query_labels: class ids of the queries, shape ``(num_queries,)``.
        gallery_labels: class ids of the gallery; ``None`` when ``gallery``
            is ``None``.
        metric: ``"cosine"`` (default), ``"dot"``, or ``"euclidean"``
            (similarity ``-||q - g||^2``).
        exclude_self: whether to leave out the pairs (query i, gallery item
            i). Defaults to ``None``: ``True`` when ``gallery`` is ``None``,
            ``False`` otherwise.
        batch_size: number of queries per chunk of the similarity matrix.
            Defaults to ``256``.
    Returns:
        A float in ``(0, 1]``.

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.retrieval import mean_average_precision
    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]])
    >>> labels = np.array([0, 1, 1, 0])
    >>> round(mean_average_precision(x, query_labels=labels), 4)
    0.4167
    """
    stats = _statistics(
        query,
        gallery,
        query_labels,
        gallery_labels,
        metric,
        exclude_self,
        batch_size,
        True,
    )
    return _mean(stats["ap"])


def evaluate_retrieval(
    query,
    gallery=None,
    query_labels=None,
    gallery_labels=None,
    k=(1, 5, 10),
    metric="cosine",
    exclude_self=None,
    batch_size=256,
):
    """Recall@k, median rank and mAP in one pass over the gallery.

    See `recall_at_k`, `median_rank` and `mean_average_precision` for the
    definitions.

    Args:
        query: embeddings of the queries, shape ``(num_queries, dim)``.
        gallery: embeddings of the gallery, shape ``(num_gallery, dim)``, or
            ``None`` (the default) to use the queries as the gallery, self
            pairs left out.
        query_labels: class ids of the queries, shape ``(num_queries,)``.
        gallery_labels: class ids of the gallery; ``None`` when ``gallery``
            is ``None``.
        k: a positive int or a sequence of them, for Recall@k.
            Defaults to ``(1, 5, 10)``.
        metric: ``"cosine"`` (default), ``"dot"``, or ``"euclidean"``
            (similarity ``-||q - g||^2``).
        exclude_self: whether to leave out the pairs (query i, gallery item
            i). Defaults to ``None``: ``True`` when ``gallery`` is ``None``,
            ``False`` otherwise.
        batch_size: number of queries per chunk of the similarity matrix.
            Defaults to ``256``.

    Returns:
        A dict of floats with keys ``"recall_at_{k}"`` for each ``k``,
        ``"median_rank"``, ``"map"`` and ``"num_queries"`` (the number of
        queries with a positive, those the figures average over).

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.retrieval import evaluate_retrieval
    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]])
    >>> labels = np.array([0, 1, 1, 0])
    >>> results = evaluate_retrieval(x, query_labels=labels, k=1)
    >>> sorted(results)
    ['map', 'median_rank', 'num_queries', 'recall_at_1']
    """
    ks = check_ks(k)
    stats = _statistics(
        query,
        gallery,
        query_labels,
        gallery_labels,
        metric,
        exclude_self,
        batch_size,
        True,
    )
    results = {f"recall_at_{k}": v for k, v in _hit_rates(stats, ks).items()}
    results["median_rank"] = _median_rank(stats)
    results["map"] = _mean(stats["ap"])
    results["num_queries"] = float(stats["ap"].size)
    return results
