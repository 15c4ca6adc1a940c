"""Similarity mixup (SiMix, Patel et al. CVPR 2022) for embedding losses.

`similarity_mixup` adds to a batch of embeddings one mixed embedding per
pair of same-class samples; `SiMixOption` is the base of the losses that
offer it as ``simix=True``.
"""

import keras
from keras import ops

from keras_sodeep._checks import check_int, unpack_y_true
from keras_sodeep.losses.base import ListwiseLoss
from keras_sodeep.losses.embeddings import (
    embedding_labels,
    similarity_lists,
    unit_embeddings,
)


def similarity_mixup(labels, embeddings, valid, max_mixed, seed=None):
    """A batch and its mixed embeddings: ``(units, labels, valid)``.

    For every pair ``a < b`` of valid samples with the same label, the
    mixed embedding ``alpha u_a + (1 - alpha) u_b`` of the L2-normalized
    embeddings ``u``, ``alpha ~ U(0, 1)`` per pair; it is not renormalized,
    so its dot product with any ``u_j`` is the mixed similarity
    ``alpha s_aj + (1 - alpha) s_bj``. It has the pair's label. When the
    batch has more than ``max_mixed`` such pairs, a uniformly random
    subset of ``max_mixed`` of them is mixed (shapes stay static, so this
    runs under XLA); the unused slots are padding (label -1, not valid).

    Args:
        labels: int or float tensor ``(B,)``.
        embeddings: float tensor ``(B, D)``.
        valid: bool tensor ``(B,)``, the samples that take part.
        max_mixed: positive int, the number of mixed slots.
        seed: a ``keras.random.SeedGenerator``, an int or ``None``.

    Returns:
        ``(units, labels, valid)`` of ``B + max_mixed`` rows: the
        normalized embeddings followed by the mixed ones.
    """
    dtype = embeddings.dtype
    labels = ops.cast(ops.reshape(labels, (-1,)), dtype)
    units = unit_embeddings(embeddings)
    size = ops.shape(units)[0]
    same = ops.logical_and(
        ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(labels, 0)),
        ops.logical_and(ops.expand_dims(valid, 1), ops.expand_dims(valid, 0)),
    )
    index = ops.arange(size)
    upper = ops.expand_dims(index, 1) < ops.expand_dims(index, 0)
    pairs = ops.reshape(ops.logical_and(same, upper), (-1,))
    # Random priorities pick the pairs; padding slots come last.
    priority = keras.random.uniform(ops.shape(pairs), seed=seed, dtype=dtype)
    priority = ops.where(pairs, priority, -1.0)
    priority = ops.concatenate(
        [priority, -2.0 * ops.ones((max_mixed,), dtype=dtype)]
    )
    top, picked = ops.top_k(priority, k=max_mixed, sorted=False)
    mixed_valid = top >= 0.0
    picked = ops.where(mixed_valid, picked, 0)
    first, second = picked // size, picked % size
    alpha = keras.random.uniform((max_mixed, 1), seed=seed, dtype=dtype)
    mixed = alpha * ops.take(units, first, axis=0) + (1.0 - alpha) * ops.take(
        units, second, axis=0
    )
    mixed_labels = ops.where(mixed_valid, ops.take(labels, first), -1.0)
    return (
        ops.concatenate([units, mixed], axis=0),
        ops.concatenate([labels, mixed_labels], axis=0),
        ops.concatenate([valid, mixed_valid], axis=0),
    )


@keras.saving.register_keras_serializable(package="keras_sodeep")
class SiMixOption(ListwiseLoss):
    """A `ListwiseLoss` with the similarity mixup option (``simix=True``).

    With ``simix=True`` and embeddings ``(B, D)`` with labels ``(B,)``, the
    batch gains the mixed embeddings of `similarity_mixup` (one per
    same-class pair, at most ``max_mixed``), which take part both as
    queries and as gallery items, with their pair's label. The loss is the
    mean over all queries with a positive, original and mixed. ``call``
    returns ``B`` values: each sample's own term plus an equal share of the
    mixed queries' terms, so ``sample_weight`` of shape ``(B,)`` applies.
    Mixing draws from a ``keras.random.SeedGenerator(seed)`` held by the
    loss, so a seeded loss repeats its draws. Score-matrix inputs have no
    embeddings to mix and raise a ``ValueError`` when ``simix=True``.

    Args:
        simix: bool, whether to mix. Defaults to ``False``.
        max_mixed: positive int, the number of mixed slots (the cost of
            the loss grows with ``B + max_mixed``). Defaults to ``256``.
        seed: int or ``None``. Defaults to ``None``.
        **kwargs: as for `ListwiseLoss` (or `RankingLoss`, for a loss
            that derives from both).
    """

    def __init__(self, *, simix=False, max_mixed=256, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(simix, bool):
            raise ValueError(f"`simix` should be a bool. Received: {simix=}")
        self.simix = simix
        self.max_mixed = check_int(max_mixed, "max_mixed")
        if seed is not None:
            seed = check_int(seed, "seed", minimum=0)
        self.seed = seed
        self._seed_generator = (
            keras.random.SeedGenerator(seed) if simix else None
        )

    def call(self, y_true, y_pred):
        if not self.simix:
            return super().call(y_true, y_pred)
        labels, mask = unpack_y_true(y_true)
        labels = ops.convert_to_tensor(labels, dtype=self.dtype)
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        if not self.is_embeddings(labels, y_pred):
            raise ValueError(
                "`simix=True` mixes embeddings: `y_pred` should have shape "
                "(B, D) and `y_true` shape (B,) or (B, 1). Received: "
                f"y_true.shape={tuple(labels.shape)}, "
                f"y_pred.shape={tuple(y_pred.shape)}"
            )
        labels, valid = embedding_labels(labels, mask)
        units, all_labels, all_valid = similarity_mixup(
            labels, y_pred, valid, self.max_mixed, self._seed_generator
        )
        mixed = (units, all_labels, all_valid)
        relevance, scores, pair_valid = similarity_lists(mixed, mixed)
        terms, list_valid = self.compute_terms(relevance, scores, pair_valid)
        row_loss = ops.where(list_valid, ops.sum(terms, axis=-1), 0.0)
        dtype = row_loss.dtype
        size = ops.shape(y_pred)[0]
        num_valid = ops.maximum(ops.sum(ops.cast(list_valid, dtype)), 1.0)
        share = ops.sum(row_loss[size:]) / ops.cast(size, dtype)
        return (row_loss[:size] + share) * (ops.cast(size, dtype) / num_valid)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "simix": self.simix,
                "max_mixed": self.max_mixed,
                "seed": self.seed,
            }
        )
        return config
