"""Embedding losses that rank the global batch under ``tf.distribute``."""

import keras
from keras import ops

from keras_sodeep._checks import unpack_y_true
from keras_sodeep.losses.base import ListwiseLoss
from keras_sodeep.losses.embeddings import embedding_labels


def _replica_context():
    """The ``tf.distribute`` replica context with more than one replica.

    ``None`` on other backends, outside a strategy and with one replica:
    the wrapped loss then runs as it is.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync < 2:
        return None
    return context


@keras.saving.register_keras_serializable(package="keras_sodeep")
class GlobalBatchLoss(keras.losses.Loss):
    """An embedding loss that ranks the global batch across replicas.

    Under a ``tf.distribute`` strategy each replica holds a shard of the
    global batch, and a `ListwiseLoss` on embeddings ranks the shard only.
    ``GlobalBatchLoss(loss)`` all-gathers the embeddings and labels of
    every replica: each replica's samples are queries against the whole
    global batch (themselves excluded), and the values are scaled so that
    the sum of the replicas' losses (what Keras optimizes) is the wrapped
    loss on the global batch, as one device computes it:

    ```
    loss = mean over the global batch's queries with a positive of
           the wrapped loss of the query against the global batch
    ```

    Gradients reach each replica's own embeddings, both as queries and,
    through the all-gather (whose gradient is an all-reduce), as gallery
    items of the other replicas' queries: the weight gradient is the
    one-device gradient on the global batch. Outside a strategy, with one
    replica, or on another backend, the wrapped loss runs unchanged. Needs
    embeddings ``(B, D)`` with integer labels ``(B,)`` (or a
    ``{"labels", "mask"}`` dict); SiMix is not supported here. Cost per
    replica: its ``B / R`` queries against ``B`` items.

    Args:
        loss: a `ListwiseLoss` that accepts embeddings (or its serialized
            form).
        name: the loss's name. Defaults to ``"global_" + loss.name``.
        **kwargs: ``reduction`` and ``dtype``, as for ``keras.losses.Loss``.

    Example:

    >>> import keras
    >>> from keras_sodeep.losses import GlobalBatchLoss, RankedListLoss
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    >>> model.compile(optimizer="adam",
    ...               loss=GlobalBatchLoss(RankedListLoss()))
    """

    def __init__(self, loss, name=None, **kwargs):
        if isinstance(loss, dict):
            loss = keras.saving.deserialize_keras_object(loss)
        if not isinstance(loss, ListwiseLoss) or not loss.accepts_embeddings:
            raise ValueError(
                "`loss` should be a keras_sodeep ListwiseLoss that accepts "
                f"embeddings. Received: loss={loss!r}"
            )
        if getattr(loss, "simix", False):
            raise ValueError(
                "GlobalBatchLoss does not support `simix=True`. Received: "
                f"loss={loss.name} with simix=True"
            )
        super().__init__(name=name or f"global_{loss.name}", **kwargs)
        self.loss = loss

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            # Per-item weights pad, as for the wrapped loss.
            y_true, sample_weight = self.loss.standardize_weights(
                y_true, y_pred, sample_weight
            )
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        context = _replica_context()
        if context is None:
            return self.loss.call(y_true, y_pred)
        labels, mask = unpack_y_true(y_true)
        labels = ops.convert_to_tensor(labels, dtype=self.loss.dtype)
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.loss.dtype)
        if not self.loss.is_embeddings(labels, y_pred):
            raise ValueError(
                "GlobalBatchLoss ranks embeddings: `y_pred` should have "
                "shape (B, D) and `y_true` shape (B,) or (B, 1). Received: "
                f"y_true.shape={tuple(labels.shape)}, "
                f"y_pred.shape={tuple(y_pred.shape)}"
            )
        labels, valid = embedding_labels(labels, mask)
        norm = ops.sqrt(ops.sum(ops.square(y_pred), axis=-1, keepdims=True))
        units = y_pred / ops.maximum(norm, 1e-12)
        size = ops.shape(units)[0]
        # One gather, so that every gathered tensor has the same length.
        dtype = units.dtype
        packed = ops.concatenate(
            [
                units,
                ops.expand_dims(ops.cast(labels, dtype), 1),
                ops.expand_dims(ops.cast(valid, dtype), 1),
            ],
            axis=1,
        )
        gathered = context.all_gather(packed, axis=0)
        all_units = gathered[:, :-2]
        all_labels = ops.cast(gathered[:, -2], labels.dtype)
        all_valid = gathered[:, -1] > 0
        sizes = context.all_gather(ops.reshape(size, (1,)), axis=0)
        replica = context.replica_id_in_sync_group
        before = ops.arange(ops.shape(sizes)[0]) < replica
        offset = ops.sum(ops.where(before, sizes, 0))

        scores = ops.matmul(units, ops.transpose(all_units))  # (b, B)
        relevance = ops.cast(
            ops.equal(
                ops.expand_dims(labels, 1), ops.expand_dims(all_labels, 0)
            ),
            scores.dtype,
        )
        rows = ops.arange(size) + offset
        columns = ops.arange(ops.shape(all_units)[0])
        not_self = ops.not_equal(
            ops.expand_dims(rows, 1), ops.expand_dims(columns, 0)
        )
        pair_valid = ops.logical_and(
            ops.logical_and(
                ops.expand_dims(valid, 1), ops.expand_dims(all_valid, 0)
            ),
            not_self,
        )
        terms, list_valid = self.loss.compute_terms(
            relevance, scores, pair_valid
        )
        row_loss = ops.where(list_valid, ops.sum(terms, axis=-1), 0.0)
        num_valid = ops.maximum(
            context.all_reduce("sum", ops.sum(ops.cast(list_valid, dtype))),
            1.0,
        )
        # Keras divides by the shard size and by the number of replicas,
        # then sums the replicas' gradients: this replica's share.
        scale = ops.cast(size * context.num_replicas_in_sync, dtype)
        share = row_loss * scale / num_valid
        # Keras logs the replicas' values weighted by their shard sizes,
        # which differ when the global batch does not split evenly: every
        # replica's value is the global loss, its gradient its own share.
        total = context.all_reduce("sum", ops.sum(ops.stop_gradient(row_loss)))
        value = ops.stop_gradient(total / num_valid)
        return share - ops.stop_gradient(share) + value

    def get_config(self):
        config = super().get_config()
        config.update({"loss": keras.saving.serialize_keras_object(self.loss)})
        return config
