"""Fine-tuning of a frozen sorter on the scores it ranks during training."""

import keras
from keras import ops

from keras_sodeep.ranking import exact_rank


def _fit_width(rows, width):
    """Crops or pads lists to `width` items; padding sits below the minimum.

    The padding values continue the list downwards at its mean gap, the
    convention of `keras_sodeep.ranking.SorterRanker`.
    """
    n = rows.shape[-1]
    if n is not None and n >= width:
        return rows[:, :width]
    low = ops.min(rows, axis=-1, keepdims=True)
    high = ops.max(rows, axis=-1, keepdims=True)
    count = ops.cast(ops.shape(rows)[-1], rows.dtype)
    spread = high - low
    gap = ops.where(
        spread > 0,
        spread / ops.maximum(count - 1.0, 1.0),
        ops.ones_like(spread),
    )
    extra = low - gap * ops.cast(ops.arange(1, width + 1), rows.dtype)
    padded = ops.concatenate([rows, extra], axis=-1)[:, :width]
    return ops.reshape(padded, (-1, width))


class _ScoreRecorder:
    """A ring buffer of the lists a sorter is called on, in Keras variables.

    `SorterRanker` calls `record(rows)` with the (batch, length) lists it
    hands to the sorter; the writes are graph operations, so they happen
    inside compiled train functions too.
    """

    def __init__(self, capacity, width, dtype="float32"):
        self.capacity = capacity
        self.width = width
        self.buffer = keras.Variable(
            ops.zeros((capacity, width), dtype=dtype),
            trainable=False,
            name="sorter_finetuning_buffer",
        )
        self.count = keras.Variable(
            0, dtype="int32", trainable=False, name="sorter_finetuning_count"
        )

    def record(self, rows):
        rows = ops.cast(_fit_width(rows, self.width), self.buffer.dtype)
        num = ops.shape(rows)[0]
        start = ops.convert_to_tensor(self.count)
        index = (start + ops.arange(num, dtype="int32")) % self.capacity
        index = ops.expand_dims(index, -1)
        self.buffer.assign(ops.scatter_update(self.buffer, index, rows))
        self.count.assign(start + ops.cast(num, "int32"))

    def filled(self):
        size = min(int(ops.convert_to_numpy(self.count)), self.capacity)
        return ops.convert_to_tensor(self.buffer)[:size]

    def reset(self):
        self.count.assign(0)


@keras.saving.register_keras_serializable(package="keras_sodeep")
class SorterFinetuning(keras.callbacks.Callback):
    """Fine-tunes a sorter on the score lists it ranks while a model trains.

    The paper's optional step (the reference code's ``UpdatingWrapper``): a
    sorter trained on synthetic lists is frozen inside the loss; this
    callback records the lists the loss hands to the sorter (the model's
    own score distributions), and every ``every_n_batches`` batches trains
    the sorter for ``steps`` Adam steps to rank them, with exact targets:

    ```
    targets = exact_rank(lists) / length
    sorter_loss = mean |sorter(lists) - targets|      (L1, as the reference)
    ```

    Between updates the sorter stays frozen for the model being trained.
    Lists are recorded at the sorter's ``seq_len`` (padded as
    ``SorterRanker`` pads them); for a length-generic sorter give
    ``seq_len``, and recorded lists are cropped or padded to it. The last
    ``buffer_size`` lists are kept; each update trains on all of them and
    then empties the buffer.

    The sorter must be the one inside the loss (``SpearmanLoss(sorter)`` or
    ``SpearmanLoss(SorterRanker(sorter))``). The callback installs its
    recorder when training begins and rebuilds the model's train function
    so that the recording is compiled in. It runs on the TensorFlow
    backend only: the recorder writes Keras variables from inside the
    compiled train step, and the fine-tuning step differentiates with a
    ``tf.GradientTape``, the sorter being frozen for Keras (other backends
    raise ``NotImplementedError`` at the first update). Lists also get
    recorded during the validation runs of ``fit``, which only adds
    training lists for the sorter.

    Args:
        sorter: the ``keras_sodeep.sorters.Sorter`` used by the loss.
        every_n_batches: positive int, batches between two updates.
            Defaults to ``100``.
        steps: positive int, optimizer steps per update. Defaults to ``10``.
        learning_rate: positive float, the Adam learning rate. Defaults to
            ``1e-5`` (the reference code's).
        buffer_size: positive int, number of recorded lists kept. Defaults
            to ``256``.
        seq_len: the recording length for a length-generic sorter; defaults
            to ``None`` (the sorter's ``seq_len``, required then).

    Attributes:
        history: the mean L1 error of the sorter on the recorded lists
            before each update (its fidelity on the model's scores).

    Example:

    >>> import keras
    >>> from keras_sodeep.callbacks import SorterFinetuning
    >>> class TinySorter(keras.Model):
    ...     seq_len = 16
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.dense = keras.layers.Dense(16, activation="sigmoid")
    ...     def call(self, scores, mask=None):
    ...         return self.dense(scores)
    >>> callback = SorterFinetuning(TinySorter(), every_n_batches=50)
    >>> # model.fit(x, y, callbacks=[callback])
    """

    def __init__(
        self,
        sorter,
        every_n_batches=100,
        steps=10,
        learning_rate=1e-5,
        buffer_size=256,
        seq_len=None,
    ):
        super().__init__()
        if not isinstance(sorter, keras.Model):
            raise TypeError(
                "`sorter` should be a Keras model (a "
                f"`keras_sodeep.sorters.Sorter`). Received: sorter={sorter!r}"
            )
        for name, value in (
            ("every_n_batches", every_n_batches),
            ("steps", steps),
            ("buffer_size", buffer_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                value_ok = False
            else:
                value_ok = value > 0
            if not value_ok:
                raise ValueError(
                    f"`{name}` should be a positive int. Received: "
                    f"{name}={value!r}"
                )
        if (
            isinstance(learning_rate, bool)
            or not isinstance(learning_rate, (int, float))
            or not learning_rate > 0
        ):
            raise ValueError(
                "`learning_rate` should be a positive float. "
                f"Received: learning_rate={learning_rate!r}"
            )
        width = seq_len if seq_len is not None else sorter.seq_len
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(
                "`seq_len` should be a positive int when the sorter is "
                f"length-generic. Received: seq_len={seq_len!r} for a sorter "
                f"with seq_len={getattr(sorter, 'seq_len', None)!r}"
            )
        self.sorter = sorter
        self.every_n_batches = every_n_batches
        self.steps = steps
        self.learning_rate = float(learning_rate)
        self.buffer_size = buffer_size
        self.seq_len = seq_len
        self._width = width
        self._recorder = None
        self._step = None
        self.history = []

    def on_train_begin(self, logs=None):
        if self._recorder is None:
            self._recorder = _ScoreRecorder(self.buffer_size, self._width)
        self.sorter._score_recorder = self._recorder
        # Trace the train and test steps again, with the recording in them.
        self.model.make_train_function(force=True)
        self.model.make_test_function(force=True)

    def on_train_end(self, logs=None):
        self.sorter._score_recorder = None

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.every_n_batches == 0:
            self.update_sorter()

    def update_sorter(self):
        """Trains the sorter on the recorded lists and empties the buffer.

        Returns the sorter's mean L1 error on them before the update, or
        ``None`` when nothing was recorded.
        """
        if self._recorder is None:
            return None
        lists = self._recorder.filled()
        if lists.shape[0] == 0:
            return None
        targets = exact_rank(lists) / float(self._width)
        before = float(
            ops.mean(ops.abs(self.sorter(lists, training=False) - targets))
        )
        step = self._get_step()
        for _ in range(self.steps):
            step(lists, targets)
        self._recorder.reset()
        self.history.append(before)
        return before

    def _get_step(self):
        if self._step is not None:
            return self._step
        if keras.backend.backend() != "tensorflow":
            raise NotImplementedError(
                "`SorterFinetuning` runs on the TensorFlow backend only. "
                f"Received backend: {keras.backend.backend()}"
            )
        # The sorter is frozen (its variables may even have been created
        # non-trainable), so the step differentiates with an explicit
        # GradientTape on the sorter's weights rather than `train_on_batch`.
        import tensorflow as tf

        sorter = self.sorter
        optimizer = keras.optimizers.Adam(self.learning_rate)
        was_trainable = sorter.trainable
        sorter.trainable = True  # lists the weights a trainable sorter has
        variables = list(sorter.trainable_variables)
        sorter.trainable = was_trainable
        optimizer.build(variables)
        self._optimizer = optimizer

        @tf.function(reduce_retracing=True)
        def step(lists, targets):
            with tf.GradientTape() as tape:
                for v in variables:
                    tape.watch(v.value)
                pred = sorter(lists, training=True)
                loss = ops.mean(ops.abs(pred - targets))
            grads = tape.gradient(loss, [v.value for v in variables])
            optimizer.apply(grads, variables)
            return loss

        self._step = step
        return step

    def get_config(self):
        return {
            "sorter": keras.saving.serialize_keras_object(self.sorter),
            "every_n_batches": self.every_n_batches,
            "steps": self.steps,
            "learning_rate": self.learning_rate,
            "buffer_size": self.buffer_size,
            "seq_len": self.seq_len,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["sorter"] = keras.saving.deserialize_keras_object(
            config["sorter"]
        )
        return cls(**config)
