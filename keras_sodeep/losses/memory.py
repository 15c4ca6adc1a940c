"""Cross-batch memory (XBM, Wang et al. CVPR 2020) for embedding losses."""

import contextlib

import keras
from keras import ops

from keras_sodeep._checks import check_int, is_traced, unpack_y_true
from keras_sodeep.losses.base import ListwiseLoss
from keras_sodeep.losses.embeddings import unit_embeddings


def _eager_scope():
    """``tf.init_scope`` on TensorFlow (variables made outside graphs)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.init_scope()
    return contextlib.nullcontext()


def _is_shape_inference(x):
    """Whether ``x`` is a PyTorch tensor on the "meta" device: Keras infers
    the loss's output shape with such tensors, which hold no data."""
    if keras.backend.backend() != "torch":
        return False
    return getattr(getattr(x, "device", None), "type", None) == "meta"


@keras.saving.register_keras_serializable(package="keras_sodeep")
class CrossBatchMemory(keras.losses.Loss):
    """Ranks each query against the batch and the last ``size`` embeddings.

    Wraps an embedding loss of the package (``SupAPLoss``, ``ROADMAPLoss``,
    ``RecallAtKLoss``, ``MeanAveragePrecisionLoss``, ``RankedListLoss``,
    ``RecallAtKSurrogateLoss``, ...; any ``ListwiseLoss`` on embeddings
    ``(B, D)`` with integer labels ``(B,)``, without ``simix=True``).
    The memory keeps the unit-norm embeddings and the labels of the last
    ``size`` samples, detached, in non-trainable variables (a ring
    buffer). Each query of the batch is then ranked against the other
    samples of the batch and the memory: the wrapped loss sees a score
    matrix ``(B, B + size)`` instead of ``(B, B)``, with relevance from the
    labels, and the memory's columns carry no gradient:

    ```
    loss(batch) = wrapped loss of the queries of the batch
                  against gallery = (batch minus the query) + memory
    ```

    The batch is enqueued after the loss is computed, so a query never
    meets its own copy from the same step; once the memory is larger than
    what an epoch leaves between two visits of a sample, a sample can meet
    an older copy of itself (keep ``size`` below the training set size).
    The memory takes part only from call ``warmup_steps`` on (it is filled
    during the warm-up), since early embeddings drift fast.

    Every call of the loss counts as a step and fills the memory, so use
    it in training only: ``evaluate`` and ``validation_data`` would push
    their embeddings into the memory too. The buffers are saved with the
    model (``.keras``) and restored by ``load_model``. Works eagerly, in
    ``tf.function``, in compiled ``fit`` (also with ``jit_compile=True``)
    on TensorFlow, and eagerly on JAX; jitted JAX steps cannot update a
    loss's state and raise. Under a distribution strategy each replica
    would keep its own memory: not supported.

    Args:
        loss: the embedding loss to wrap (an object or its serialized
            config).
        size: positive int, the number of embeddings kept. Defaults to
            ``1024``.
        warmup_steps: non-negative int, the calls before the memory takes
            part. Defaults to ``0``.
        name: the loss's name. Defaults to the wrapped loss's name plus
            ``"_xbm"``.
        **kwargs: ``reduction`` (defaults to the wrapped loss's) and
            ``dtype``, as for ``keras.losses.Loss``.

    Example:

    >>> import keras
    >>> from keras_sodeep.losses import CrossBatchMemory, SupAPLoss
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    >>> loss = CrossBatchMemory(SupAPLoss(), size=256, warmup_steps=100)
    >>> model.compile(optimizer="adam", loss=loss)
    """

    def __init__(self, loss, size=1024, warmup_steps=0, *, name=None, **kwargs):
        if isinstance(loss, dict):
            loss = keras.saving.deserialize_keras_object(loss)
        if not (isinstance(loss, ListwiseLoss) and loss.accepts_embeddings):
            raise ValueError(
                "`loss` should be an embedding loss of keras_sodeep (a "
                "`ListwiseLoss` that accepts embeddings, such as SupAPLoss "
                f"or RecallAtKLoss). Received: loss={loss!r}"
            )
        if getattr(loss, "simix", False):
            raise ValueError(
                "CrossBatchMemory does not combine with similarity mixup: "
                "the mixed embeddings would not meet the memory. Wrap the "
                "loss with `simix=False`. Received: loss.simix=True"
            )
        kwargs.setdefault("reduction", loss.reduction)
        kwargs.setdefault("dtype", loss.dtype)
        super().__init__(name=name or f"{loss.name}_xbm", **kwargs)
        self.loss = loss
        self.size = check_int(size, "size")
        self.warmup_steps = check_int(warmup_steps, "warmup_steps", 0)
        self.embeddings = None  # (size, D), made on first use
        self.labels = None  # (size,), -1 marks an empty slot
        self.cursor = None  # where the next sample goes
        self.iterations = None  # calls so far

    # -- state ------------------------------------------------------------

    @property
    def variables(self):
        """The memory's variables (empty before the first call)."""
        if self.embeddings is None:
            return []
        return [self.embeddings, self.labels, self.cursor, self.iterations]

    def _build(self, dim):
        if self.embeddings is not None:
            if self.embeddings.shape[-1] != dim:
                raise ValueError(
                    "The embeddings should keep their size: the memory "
                    f"holds {self.embeddings.shape[-1]}-dim embeddings. "
                    f"Received: y_pred.shape[-1]={dim}"
                )
            return
        with _eager_scope():
            self.embeddings = keras.Variable(
                initializer="zeros",
                shape=(self.size, dim),
                dtype=self.dtype,
                trainable=False,
                name="memory_embeddings",
            )
            self.labels = keras.Variable(
                initializer=keras.initializers.Constant(-1.0),
                shape=(self.size,),
                dtype=self.dtype,
                trainable=False,
                name="memory_labels",
            )
            self.cursor = keras.Variable(
                0, dtype="int32", trainable=False, name="cursor"
            )
            self.iterations = keras.Variable(
                0, dtype="int64", trainable=False, name="iterations"
            )

    def reset_state(self):
        """Empties the memory and restarts the warm-up."""
        if self.embeddings is not None:
            self.embeddings.assign(ops.zeros_like(self.embeddings))
            self.labels.assign(-ops.ones_like(self.labels))
            self.cursor.assign(0)
            self.iterations.assign(0)

    def save_own_variables(self, store):
        for i, variable in enumerate(self.variables):
            store[str(i)] = ops.convert_to_numpy(variable)

    def load_own_variables(self, store):
        if not len(store.keys()):
            return
        self._build(store["0"].shape[-1])
        for i, variable in enumerate(self.variables):
            variable.assign(store[str(i)][...])

    # -- values -----------------------------------------------------------

    def call(self, y_true, y_pred):
        if keras.backend.backend() == "jax" and is_traced(y_pred):
            raise NotImplementedError(
                "CrossBatchMemory keeps state across steps, which a jitted "
                "JAX step cannot update. Use the TensorFlow backend for "
                "`fit`, or call the loss eagerly."
            )
        labels, mask = unpack_y_true(y_true)
        labels = ops.convert_to_tensor(labels, dtype=self.dtype)
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        if not self.loss.is_embeddings(labels, y_pred):
            raise ValueError(
                "CrossBatchMemory needs embeddings: `y_pred` of shape "
                "(B, D) with integer labels `y_true` of shape (B,) or "
                f"(B, 1). Received: y_true.shape={tuple(labels.shape)}, "
                f"y_pred.shape={tuple(y_pred.shape)}"
            )
        if _is_shape_inference(y_pred):
            # Neither build nor touch the memory for a shape: the batch
            # alone has the loss's output shape.
            return self.loss.call(y_true, y_pred)
        self._build(y_pred.shape[-1])
        # Read the memory, compute the loss, then enqueue the batch.
        memory = ops.convert_to_tensor(self.embeddings)
        memory_labels = ops.convert_to_tensor(self.labels)
        active = ops.greater_equal(self.iterations, self.warmup_steps)
        memory_valid = ops.logical_and(memory_labels >= 0, active)
        lists = self.loss.standardize(
            y_true, y_pred, reference=(memory, memory_labels, memory_valid)
        )
        values = self.loss.loss_values(lists)
        self._enqueue(y_pred, labels, mask, memory, memory_labels)
        return values

    def _enqueue(self, y_pred, labels, mask, memory, memory_labels):
        unit = ops.stop_gradient(unit_embeddings(y_pred))
        labels = ops.reshape(labels, (-1,))
        keep = labels >= 0
        if mask is not None:
            mask = ops.reshape(ops.convert_to_tensor(mask), (-1,))
            keep = ops.logical_and(keep, ops.not_equal(mask, 0))
        labels = ops.where(keep, labels, -1.0)
        # Padded samples may hold anything (NaN): they enter as zeros.
        unit = ops.where(ops.expand_dims(keep, -1), unit, 0.0)
        # A batch larger than the memory leaves its last `size` samples.
        unit, labels = unit[-self.size :], labels[-self.size :]
        count = ops.shape(unit)[0]
        cursor = ops.convert_to_tensor(self.cursor)
        slots = (cursor + ops.arange(count, dtype="int32")) % self.size
        slots = ops.expand_dims(slots, -1)
        self.embeddings.assign(ops.scatter_update(memory, slots, unit))
        self.labels.assign(ops.scatter_update(memory_labels, slots, labels))
        self.cursor.assign((cursor + count) % self.size)
        self.iterations.assign_add(1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "loss": keras.saving.serialize_keras_object(self.loss),
                "size": self.size,
                "warmup_steps": self.warmup_steps,
            }
        )
        return config
