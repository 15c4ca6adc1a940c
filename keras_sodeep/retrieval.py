"""Whole-gallery evaluation for retrieval and metric learning.

Every query is compared with every gallery item; gallery items that share the
query's label are its positives. Three figures summarise the rankings:

- `recall_at_k`: the hit rate, the fraction of queries with a positive in
  their top ``k``;
- `median_rank`: the median, over queries, of the rank of the first positive;
- `mean_average_precision`: the mean, over queries, of the average precision
  of the gallery ranking (as ``sklearn.metrics.average_precision_score``).

`evaluate_retrieval` computes them in one pass, and the `RetrievalEvaluation`
callback runs it on held-out data at the end of training epochs.

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

import numbers

import keras
import numpy as np
from keras import ops

_METRICS = ("cosine", "dot", "euclidean")


def _check_positive_int(value, name):
    if (
        not isinstance(value, numbers.Integral)
        or isinstance(value, bool)
        or value < 1
    ):
        raise ValueError(
            f"`{name}` should be a positive int. Received: {name}={value!r}"
        )
    return int(value)


def _standardize_k(k):
    """Returns ``(tuple_of_ks, is_sequence)``."""
    if isinstance(k, (list, tuple)):
        if not k or not all(
            isinstance(v, numbers.Integral)
            and not isinstance(v, bool)
            and v >= 1
            for v in k
        ):
            raise ValueError(
                "`k` should be a positive int or a non-empty sequence of "
                f"positive ints. Received: k={k!r}"
            )
        return tuple(int(v) for v in k), True
    return (_check_positive_int(k, "k"),), False


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
    _check_positive_int(bs, "batch_size")
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
        stats["ap"] = _average_precision(sim, positive)
    return {key: ops.convert_to_numpy(value) for key, value in stats.items()}


def _average_precision(sim, positive):
    """Per-row AP, a tie group counted as a whole (scikit-learn's rule).

    ```
    AP = (1 / |P|) * sum_{i in P} #{j in P : s_j >= s_i} / #{j : s_j >= s_i}
    ```
    """
    n = ops.shape(sim)[-1]
    order = ops.cast(ops.argsort(-sim, axis=-1), "int32")
    values = ops.take_along_axis(sim, order, axis=-1)
    pos_sorted = ops.cast(
        ops.take_along_axis(positive, order, axis=-1), "int32"
    )
    positions = ops.broadcast_to(ops.arange(n, dtype="int32"), ops.shape(sim))
    changed = ops.not_equal(values[..., 1:], values[..., :-1])
    ones = ops.ones_like(values[..., :1], dtype="bool")
    starts_group = ops.concatenate([ones, changed], axis=-1)
    ends_group = ops.concatenate([changed, ones], axis=-1)
    group = ops.cumsum(ops.cast(starts_group, "int32"), axis=-1) - 1
    # The g-th smallest group end is the last position of group g.
    group_ends = ops.sort(
        ops.where(ends_group, positions, positions + n), axis=-1
    )
    last = ops.take_along_axis(group_ends, group, axis=-1)
    cum_pos = ops.cumsum(pos_sorted, axis=-1)
    dtype = sim.dtype
    hits = ops.take_along_axis(cum_pos, last, axis=-1)
    precision = ops.cast(hits, dtype) / ops.cast(last + 1, dtype)
    precision = ops.where(pos_sorted > 0, precision, ops.zeros_like(precision))
    num_pos = ops.cast(ops.maximum(cum_pos[..., -1], 1), dtype)
    return ops.sum(precision, axis=-1) / num_pos


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
        A float for an int ``k``; a dict ``{k: float}`` for a sequence.

    Example:

    >>> import numpy as np
    >>> from keras_sodeep.retrieval import recall_at_k
    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]])
    >>> labels = np.array([0, 1, 1, 0])
    >>> recall_at_k(x, query_labels=labels, k=(1, 2))
    {1: 0.0, 2: 0.5}
    """
    ks, is_sequence = _standardize_k(k)
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
    rates = _hit_rates(stats, ks)
    return rates if is_sequence else rates[ks[0]]


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
    ks, _ = _standardize_k(k)
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


class RetrievalEvaluation(keras.callbacks.Callback):
    """Writes whole-gallery retrieval figures into the logs at epoch end.

    At the end of every ``every_n_epochs``-th epoch, embeds ``x`` (and
    ``gallery``) with the model or ``embedding_model``, runs
    `evaluate_retrieval`, and adds to ``logs``:

    ```
    {prefix}recall_at_{k} for each k, {prefix}median_rank, {prefix}map
    ```

    so that `keras.callbacks.History`, `EarlyStopping` and `ModelCheckpoint`
    see them. Place it before the callbacks that read them. These callbacks
    cannot infer the direction of these names: pass ``mode="max"`` to monitor
    Recall@k or mAP and ``mode="min"`` for the median rank. Epochs that are
    skipped have no such keys.

    The callback holds data, so it has no config and is not serializable.

    Args:
        x: inputs of the queries: an array, or a list / dict of arrays, as
            `Model.predict` takes them (not a dataset: labels must align).
        labels: class ids of the queries, shape ``(num_queries,)``.
        gallery: inputs of the gallery, or ``None`` (the default) to use the
            queries as their own gallery, self pairs left out.
        gallery_labels: class ids of the gallery; ``None`` with ``gallery``.
        k: a positive int or a sequence of them. Defaults to ``(1, 5, 10)``.
        metric: ``"cosine"`` (default), ``"dot"`` or ``"euclidean"``.
        embedding_model: what maps inputs to embeddings: ``None`` (the
            default) for the trained model itself; the name of one of its
            layers (the model must be functional), whose output is used; or
            a `keras.Model` / callable, e.g. a sub-model sharing the trained
            layers.
        every_n_epochs: evaluate every this many epochs. Defaults to ``1``.
        prefix: prefix of the log keys. Defaults to ``"val_"``.
        batch_size: batch size for embedding and for the similarity chunks.
            Defaults to ``256``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_sodeep.retrieval import RetrievalEvaluation
    >>> x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    >>> labels = np.arange(32) % 4
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> callback = RetrievalEvaluation(x, labels, k=(1, 5))
    >>> history = model.fit(x, x[:, :4], epochs=1, verbose=0,
    ...                     callbacks=[callback])
    >>> sorted(k for k in history.history if k.startswith("val_"))
    ['val_map', 'val_median_rank', 'val_recall_at_1', 'val_recall_at_5']
    """

    def __init__(
        self,
        x,
        labels,
        gallery=None,
        gallery_labels=None,
        k=(1, 5, 10),
        metric="cosine",
        embedding_model=None,
        every_n_epochs=1,
        prefix="val_",
        batch_size=256,
    ):
        super().__init__()
        self.k, _ = _standardize_k(k)
        if metric not in _METRICS:
            raise ValueError(
                f"`metric` should be one of {_METRICS}. "
                f"Received: metric={metric!r}"
            )
        self.every_n_epochs = _check_positive_int(
            every_n_epochs, "every_n_epochs"
        )
        self.batch_size = _check_positive_int(batch_size, "batch_size")
        if not isinstance(prefix, str):
            raise TypeError(
                f"`prefix` should be a str. Received: prefix={prefix!r}"
            )
        if (gallery is None) != (gallery_labels is None):
            raise ValueError(
                "`gallery` and `gallery_labels` should be given together. "
                f"Received: gallery is {'None' if gallery is None else 'set'}"
                ", gallery_labels is "
                f"{'None' if gallery_labels is None else 'set'}"
            )
        if not (
            embedding_model is None
            or isinstance(embedding_model, str)
            or callable(embedding_model)
        ):
            raise TypeError(
                "`embedding_model` should be None, a layer name or a "
                f"callable. Received: embedding_model={embedding_model!r}"
            )
        self.x = x
        self.labels = _standardize_labels(
            labels, "labels", _num_samples(x), "x"
        )
        self.gallery = gallery
        self.gallery_labels = (
            None
            if gallery is None
            else _standardize_labels(
                gallery_labels,
                "gallery_labels",
                _num_samples(gallery),
                "gallery",
            )
        )
        self.metric = metric
        self.embedding_model = embedding_model
        self.prefix = prefix
        self._embedder = None

    def set_model(self, model):
        super().set_model(model)
        self._embedder = None

    def _get_embedder(self):
        if self.embedding_model is None:
            return self.model
        if not isinstance(self.embedding_model, str):
            return self.embedding_model
        if self._embedder is None:
            model = self.model
            try:
                inputs = model.inputs
            except AttributeError:
                inputs = None
            if not inputs:
                raise ValueError(
                    "`embedding_model` given as a layer name needs a "
                    "functional model (with `inputs`); pass a sub-model or "
                    "a callable instead. Received: "
                    f"embedding_model={self.embedding_model!r}"
                )
            layer = model.get_layer(self.embedding_model)
            self._embedder = keras.Model(inputs, layer.output)
        return self._embedder

    def _embed(self, inputs):
        embedder = self._get_embedder()
        if isinstance(embedder, keras.Model):
            return embedder.predict(
                inputs, batch_size=self.batch_size, verbose=0
            )
        n = _num_samples(inputs)
        outputs = []
        for start in range(0, n, self.batch_size):
            batch = keras.tree.map_structure(
                lambda a: a[start : start + self.batch_size], inputs
            )
            outputs.append(ops.convert_to_numpy(embedder(batch)))
        return np.concatenate(outputs, axis=0)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        query = self._embed(self.x)
        gallery = None if self.gallery is None else self._embed(self.gallery)
        results = evaluate_retrieval(
            query,
            gallery,
            self.labels,
            self.gallery_labels,
            k=self.k,
            metric=self.metric,
            batch_size=self.batch_size,
        )
        results.pop("num_queries")
        if logs is not None:
            for name, value in results.items():
                logs[self.prefix + name] = value


def _num_samples(inputs):
    leaves = keras.tree.flatten(inputs)
    if not leaves:
        raise ValueError(f"Expected array inputs. Received: {inputs!r}")
    return int(np.shape(leaves[0])[0])
