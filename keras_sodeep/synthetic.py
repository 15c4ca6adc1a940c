"""Synthetic score lists and their exact ranks, to train and test sorters.

A sorter learns the rank function from lists drawn from a mix of simple
distributions. The ``"paper"`` mix follows the ten generators of the
reference SoDeep code (``dataset.py``, ``get_rand_seq``), one drawn uniformly
at random for each list of ``n`` items:

```
uniform            i.i.d. uniform on [-1, 1)
uniform_2          the same (drawn twice in the reference: weight 2/10)
normal             i.i.d. standard normal
spaced             a + (b - a) k / n, k = 0..n-1, a, b ~ U[0, 1): evenly
                   spaced in a random sub-range, sorted (up or down)
spaced_shuffled    spaced, randomly permuted
uniform_normal     s ~ U{1..n}: s uniform scores, then n - s normal ones
uniform_normal_2   the same (drawn twice in the reference too)
uniform_uniform    s uniform scores, then n - s uniform ones
spaced_uniform     s shuffled evenly spaced scores in [a, b) (step
                   (b - a) / s), then n - s uniform ones
spaced_full        -1 + 2 k / n: evenly spaced over [-1, 1), sorted
```

Generation is vectorized (a whole batch at once) and uses stateless
``tf.random`` ops: batch ``i`` of a dataset with seed ``s`` is a pure
function of ``(s, i)``, so a dataset is reproducible, and its map runs in
parallel inside ``tf.data``.

`held_out_lists` draws evaluation lists from distributions outside the mix
(`HELD_OUT`: wide, heavy-tailed, skewed, clustered, near-tied, cosine
similarities), to measure how a sorter copes with scores unlike those it
was trained on.

Targets are exact normalized ranks, ``rank / n`` in ``(0, 1]``, descending
and tie-averaged as in ``keras_sodeep.ranking.exact_rank`` (computed here
with TensorFlow sort and search ops, so that the pipeline runs in graph mode
whatever the Keras backend).
"""

import math

import numpy as np
import tensorflow as tf

from keras_sodeep._checks import check_int, check_seq_len

GENERATORS = (
    "uniform",
    "uniform_2",
    "normal",
    "spaced",
    "spaced_shuffled",
    "uniform_normal",
    "uniform_normal_2",
    "uniform_uniform",
    "spaced_uniform",
    "spaced_full",
)
"""Names of the generators of the ``"paper"`` mix, in the reference order."""

EVALUATION_SEED = 2019
"""Seed of the standard evaluation lists (the paper's Table 1 protocol)."""

_EVALUATION_BLOCK = 1000  # Lists generated per block of the evaluation set.
_NUM_DRAWS = 12  # Independent random streams used per batch.


def _check_distributions(distributions):
    if isinstance(distributions, str):
        if distributions == "paper":
            return GENERATORS
        distributions = [distributions]
    if isinstance(distributions, (list, tuple)) and distributions:
        unknown = [d for d in distributions if d not in GENERATORS]
        if not unknown:
            return tuple(distributions)
    raise ValueError(
        '`distributions` should be "paper" or a non-empty list of generator '
        f"names among {', '.join(GENERATORS)}. "
        f"Received: distributions={distributions!r}"
    )


def _check_seed(seed):
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError(f"`seed` should be an int. Received: seed={seed!r}")
    return int(seed)


def _shuffle_prefix(x, length, key):
    """Permutes, in each row, the first ``length`` items at random."""
    n = tf.shape(x)[-1]
    positions = tf.cast(tf.range(n), x.dtype)
    inside = positions[None, :] < length
    # Keys in [0, 1) inside the prefix, increasing keys >= 2 after it.
    keys = tf.where(inside, key, 2.0 + positions[None, :])
    order = tf.argsort(keys, axis=-1, stable=True)
    return tf.gather(x, order, batch_dims=1)


def _generate(index, draws, length, n):
    """Generator `index`'s scores, shape (batch, n), for lists of `length`.

    `draws` holds independent random tensors; `length` (batch, 1) is the
    number of items of each list, the positions after it are padding.
    """
    name = GENERATORS[index]
    k = tf.cast(tf.range(n), tf.float32)[None, :]
    uniform = draws["uniform"] * 2.0 - 1.0
    uniform_b = draws["uniform_b"] * 2.0 - 1.0
    normal = draws["normal"]
    a, b = draws["a"], draws["b"]
    # Split point s ~ U{1, ..., length}: the first s items form part one.
    split = 1.0 + tf.floor(draws["split"] * length)
    if name in ("uniform", "uniform_2"):
        return uniform
    if name == "normal":
        return normal
    if name in ("spaced", "spaced_shuffled"):
        x = a + (b - a) * k / length
        if name == "spaced_shuffled":
            x = _shuffle_prefix(x, length, draws["keys"])
        return x
    if name in ("uniform_normal", "uniform_normal_2"):
        return tf.where(k < split, uniform, normal)
    if name == "uniform_uniform":
        return tf.where(k < split, uniform, uniform_b)
    if name == "spaced_uniform":
        spaced = _shuffle_prefix(a + (b - a) * k / split, split, draws["keys"])
        return tf.where(k < split, spaced, uniform)
    if name == "spaced_full":
        return -1.0 + 2.0 * k / length + tf.zeros_like(uniform)
    raise AssertionError(name)  # Unreachable: names are checked.


def _normalized_ranks(x, mask):
    """Exact tie-averaged descending ranks / m; 0 at masked items.

    ``rank_i = 1 + #{j : x_j > x_i} + (#{j != i : x_j == x_i}) / 2`` over
    the ``m`` unmasked items, as ``keras_sodeep.ranking.exact_rank``.
    """
    n = tf.shape(x)[-1]
    low = tf.fill(tf.shape(x), tf.constant(-np.inf, x.dtype))
    filled = tf.where(mask, x, low)
    ascending = tf.sort(filled, axis=-1)
    left = tf.searchsorted(ascending, filled, side="left")
    right = tf.searchsorted(ascending, filled, side="right")
    greater = tf.cast(n - right, x.dtype)
    equal = tf.cast(right - left, x.dtype)
    ranks = 1.0 + greater + (equal - 1.0) / 2.0
    count = tf.reduce_sum(tf.cast(mask, x.dtype), axis=-1, keepdims=True)
    return tf.where(mask, ranks / count, tf.zeros_like(ranks))


def _make_batch_fn(min_len, max_len, batch_size, generators, base_seed):
    indices = [GENERATORS.index(name) for name in generators]
    ranged = min_len != max_len

    def make_batch(step):
        seed = tf.stack([tf.constant(base_seed, tf.int64), step])
        seeds = tf.random.experimental.stateless_split(seed, _NUM_DRAWS)
        shape = (batch_size, max_len)
        column = (batch_size, 1)

        def uniform(i, s):
            return tf.random.stateless_uniform(s, seeds[i], dtype=tf.float32)

        draws = {
            "uniform": uniform(0, shape),
            "uniform_b": uniform(1, shape),
            "normal": tf.random.stateless_normal(shape, seeds[2]),
            "keys": uniform(3, shape),
            "a": uniform(4, column),
            "b": uniform(5, column),
            "split": uniform(6, column),
        }
        if ranged:
            span = float(max_len - min_len + 1)
            length = min_len + tf.floor(uniform(7, column) * span)
        else:
            length = tf.fill(column, float(max_len))
        choice = tf.floor(uniform(8, column) * len(indices))
        choice = tf.cast(tf.minimum(choice, len(indices) - 1), tf.int32)
        scores = tf.zeros(shape, tf.float32)
        for slot, index in enumerate(indices):
            scores = tf.where(
                choice == slot,
                _generate(index, draws, length, max_len),
                scores,
            )
        if not ranged:
            mask = tf.ones(shape, tf.bool)
            return scores, _normalized_ranks(scores, mask)
        positions = tf.cast(tf.range(max_len), tf.float32)[None, :]
        mask = positions < length
        scores = tf.where(mask, scores, tf.zeros_like(scores))
        targets = _normalized_ranks(scores, mask)
        weights = float(max_len) / length[:, 0]
        return {"scores": scores, "mask": mask}, targets, weights

    return make_batch


def _batches(seq_len, batch_size, distributions, seed, start, stop):
    min_len, max_len = check_seq_len(seq_len)
    generators = _check_distributions(distributions)
    make_batch = _make_batch_fn(
        min_len, max_len, batch_size, generators, int(seed)
    )
    if stop is None:
        steps = tf.data.Dataset.counter(start=start, dtype=tf.int64)
    else:
        steps = tf.data.Dataset.range(start, stop, output_type=tf.int64)
    return steps.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE)


def synthetic_dataset(
    seq_len=100,
    batch_size=256,
    distributions="paper",
    seed=None,
    num_batches=None,
    start=0,
):
    """A `tf.data.Dataset` of synthetic score lists and their ranks.

    Each list comes from one generator drawn uniformly at random from
    ``distributions`` (see the module docstring); its target is its exact
    normalized rank:

    ```
    y_i = rank_i / n
    rank_i = 1 + #{j : x_j > x_i} + #{j != i : x_j == x_i} / 2
    ```

    With a fixed ``seq_len`` the elements are ``(scores, targets)``, two
    float32 tensors of shape ``(batch_size, seq_len)``, ready for
    ``sorter.fit(dataset)``.

    With a range ``seq_len=(min, max)`` each list has its own length ``m``,
    uniform in ``[min, max]``, and is padded to ``max``. The elements are
    then ``({"scores": scores, "mask": mask}, targets, sample_weight)``:
    ``mask`` (bool) is ``False`` at padding, where ``scores`` and ``targets``
    are 0, ``targets`` are ``rank / m``, and the per-list
    ``sample_weight = max / m`` turns a loss averaged over the ``max``
    positions into the average over the ``m`` items, since a
    ``keras_sodeep.sorters.Sorter`` outputs 0 at masked items. ``fit``
    passes the dict to the sorter as ``sorter(scores, mask=mask)``.

    Args:
        seq_len: int, the list length, or a ``(min, max)`` pair of ints for
            lists of random lengths. Defaults to 100.
        batch_size: int, lists per batch. Defaults to 256.
        distributions: ``"paper"`` (the ten generators of the reference
            code), a generator name, or a list of generator names (repeat
            a name to weigh it more). Defaults to ``"paper"``.
        seed: int, the seed. The same seed gives the same batches. Defaults
            to ``None``, a random seed.
        num_batches: int or ``None``, the number of batches; ``None`` for an
            endless dataset. Defaults to ``None``.
        start: int, the index of the first batch: ``start=k`` skips the
            first ``k`` batches at no cost (to resume training on new
            data). Defaults to 0.

    Returns:
        A `tf.data.Dataset`, prefetched.

    Example:

    >>> from keras_sodeep.synthetic import synthetic_dataset
    >>> ds = synthetic_dataset(seq_len=5, batch_size=2, seed=0, num_batches=1)
    >>> scores, targets = next(iter(ds))
    >>> tuple(scores.shape), sorted((5 * targets.numpy()[0]).round(3).tolist())
    ((2, 5), [1.0, 2.0, 3.0, 4.0, 5.0])
    """
    batch_size = check_int(batch_size, "batch_size")
    if num_batches is not None:
        num_batches = check_int(num_batches, "num_batches")
    start = check_int(start, "start", minimum=0)
    if seed is None:
        seed = np.random.SeedSequence().generate_state(1)[0] >> 1
    seed = _check_seed(seed)
    stop = None if num_batches is None else start + num_batches
    ds = _batches(seq_len, batch_size, distributions, seed, start, stop)
    return ds.prefetch(tf.data.AUTOTUNE)


def evaluation_lists(num_lists=10000, seq_len=100, seed=EVALUATION_SEED):
    """The standard evaluation lists of the fidelity protocol, as NumPy arrays.

    ``num_lists`` lists of ``seq_len`` items from the ``"paper"`` mix. The
    lists are drawn in blocks of 1,000 from `synthetic_dataset` with
    ``seed``, so the first ``k`` lists do not depend on ``num_lists``.

    Args:
        num_lists: int, the number of lists. Defaults to 10,000.
        seq_len: int, the list length. Defaults to 100.
        seed: int, the seed. Defaults to `EVALUATION_SEED`.

    Returns:
        A pair ``(scores, normalized_ranks)`` of float32 arrays of shape
        ``(num_lists, seq_len)``.

    Example:

    >>> from keras_sodeep.synthetic import evaluation_lists
    >>> scores, ranks = evaluation_lists(num_lists=3, seq_len=4)
    >>> scores.shape, float(ranks.max())
    ((3, 4), 1.0)
    """
    num_lists = check_int(num_lists, "num_lists")
    seq_len = check_int(seq_len, "seq_len")
    blocks = math.ceil(num_lists / _EVALUATION_BLOCK)
    ds = synthetic_dataset(
        seq_len, _EVALUATION_BLOCK, seed=seed, num_batches=blocks
    )
    scores, ranks = [], []
    for x, y in ds:
        scores.append(x.numpy())
        ranks.append(y.numpy())
    scores = np.concatenate(scores)[:num_lists]
    ranks = np.concatenate(ranks)[:num_lists]
    return scores, ranks


# ---------------------------------------------------------------------------
# Held-out distributions: never part of the training mix.
# ---------------------------------------------------------------------------

HELD_OUT = (
    "wide",
    "cauchy",
    "exponential",
    "clusters",
    "near_ties",
    "cosine",
)
"""Names of the held-out distributions of `held_out_lists`.

None of them is a generator of the ``"paper"`` mix: `synthetic_dataset`
does not accept them, so no sorter trains on them."""

_MAX_CLUSTERS = 5


def _held_out_scores(name, key, shape):
    """Scores of the held-out distribution `name`, float32 of `shape`.

    `key` is a stateless seed, shape (2,); the scores are a pure function
    of it.
    """
    keys = tf.random.experimental.stateless_split(key, 4)
    column = (shape[0], 1)

    def normal(i, s, stddev=1.0):
        return tf.random.stateless_normal(s, keys[i], stddev=stddev)

    def uniform(i, s):
        return tf.random.stateless_uniform(s, keys[i], dtype=tf.float32)

    if name == "wide":
        return normal(0, shape, stddev=8.0)
    if name == "cauchy":
        # Inverse CDF; u in (0, 1) keeps the tangent finite.
        u = tf.random.stateless_uniform(
            shape, keys[0], minval=1e-7, maxval=1.0 - 1e-7
        )
        return tf.tan(np.pi * (u - 0.5))
    if name == "exponential":
        return 1000.0 - tf.math.log1p(-uniform(0, shape))
    if name == "clusters":
        count = 2 + tf.floor(uniform(0, column) * (_MAX_CLUSTERS - 1))
        centres = normal(1, (shape[0], _MAX_CLUSTERS), stddev=100.0)
        member = tf.cast(tf.floor(uniform(2, shape) * count), tf.int32)
        centre = tf.gather(centres, member, batch_dims=1)
        return centre + normal(3, shape, stddev=1e-2)
    if name == "near_ties":
        return normal(0, column) + normal(1, shape, stddev=1e-3)
    if name == "cosine":
        return tf.tanh(0.3 + normal(0, shape, stddev=0.2))
    raise AssertionError(name)  # Unreachable: names are checked.


def held_out_lists(
    distribution, num_lists=1000, seq_len=100, seed=EVALUATION_SEED
):
    """Lists from a held-out distribution and their ranks, as NumPy arrays.

    The distributions that no sorter trains on: real model
    outputs have wide ranges, outliers, skew, clusters and near-ties. Per
    list of ``n`` items (``N(m, s)`` has standard deviation ``s``):

    ```
    wide         x_i ~ N(0, 8): wide logits
    cauchy       x_i ~ standard Cauchy, tan(pi (u_i - 1/2)): heavy tails
    exponential  x_i = 1000 + e_i, e_i ~ Exp(1): skewed, far from 0
    clusters     k ~ U{2..5} centres c_1..c_k ~ N(0, 100) per list;
                 x_i = c_{z_i} + N(0, 0.01), z_i ~ U{1..k}: tight
                 clusters far apart
    near_ties    x_i = c + N(0, 0.001), c ~ N(0, 1) per list
    cosine       x_i = tanh(y_i), y_i ~ N(0.3, 0.2): cosine similarities
    ```

    The targets are exact normalized ranks ``rank / n`` of the float32
    scores (descending, tie-averaged). Like `evaluation_lists`, the lists
    are drawn in blocks of 1,000 with stateless random ops, so they are a
    pure function of ``(distribution, seed)`` and the first ``k`` lists do
    not depend on ``num_lists``; each distribution has its own streams.

    Args:
        distribution: str, a name from `HELD_OUT`.
        num_lists: int, the number of lists. Defaults to 1,000.
        seq_len: int, the list length. Defaults to 100.
        seed: int, the seed. Defaults to `EVALUATION_SEED`.

    Returns:
        A pair ``(scores, normalized_ranks)`` of float32 arrays of shape
        ``(num_lists, seq_len)``.

    Example:

    >>> from keras_sodeep.synthetic import held_out_lists
    >>> scores, ranks = held_out_lists("exponential", num_lists=3, seq_len=4)
    >>> scores.shape, bool(scores.min() > 999), float(ranks.max())
    ((3, 4), True, 1.0)
    """
    if distribution not in HELD_OUT:
        raise ValueError(
            f"`distribution` should be one of {', '.join(HELD_OUT)}. "
            f"Received: distribution={distribution!r}"
        )
    num_lists = check_int(num_lists, "num_lists")
    seq_len = check_int(seq_len, "seq_len")
    seed = _check_seed(seed)
    index = HELD_OUT.index(distribution)
    base = tf.constant([int(seed), index], tf.int64)
    shape = (_EVALUATION_BLOCK, seq_len)
    mask = tf.ones(shape, tf.bool)
    scores, ranks = [], []
    for block in range(math.ceil(num_lists / _EVALUATION_BLOCK)):
        key = tf.random.experimental.stateless_fold_in(base, block)
        x = _held_out_scores(distribution, key, shape)
        scores.append(x.numpy())
        ranks.append(_normalized_ranks(x, mask).numpy())
    scores = np.concatenate(scores)[:num_lists]
    ranks = np.concatenate(ranks)[:num_lists]
    return scores, ranks
