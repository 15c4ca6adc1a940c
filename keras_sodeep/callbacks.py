"""Training callbacks: sorter fine-tuning and retrieval evaluation.

- `SorterFinetuning`: fine-tunes a frozen sorter on the lists it ranks
  while a model trains (the paper's optional step).
- `RetrievalEvaluation`: whole-gallery retrieval figures
  (``keras_sodeep.retrieval``) in the logs at the end of epochs.
"""

import keras
import numpy as np
from keras import ops

from keras_sodeep import retrieval
from keras_sodeep._checks import check_float, check_int, check_ks
from keras_sodeep.ranking import exact_rank, pad_below_minimum


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
        rows = pad_below_minimum(rows, length=self.width)
        rows = ops.cast(rows, self.buffer.dtype)
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

    The sorter must be the one inside the loss
    (``SpearmanLoss(ranker=sorter)`` or
    ``SpearmanLoss(ranker=SorterRanker(sorter))``). The callback installs its
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
        every_n_batches = check_int(every_n_batches, "every_n_batches")
        steps = check_int(steps, "steps")
        buffer_size = check_int(buffer_size, "buffer_size")
        learning_rate = check_float(learning_rate, "learning_rate")
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
    >>> from keras_sodeep.callbacks import RetrievalEvaluation
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
        self.k = check_ks(k)
        if metric not in retrieval._METRICS:
            raise ValueError(
                f"`metric` should be one of {retrieval._METRICS}. "
                f"Received: metric={metric!r}"
            )
        self.every_n_epochs = check_int(every_n_epochs, "every_n_epochs")
        self.batch_size = check_int(batch_size, "batch_size")
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
        self.labels = retrieval._standardize_labels(
            labels, "labels", _num_samples(x), "x"
        )
        self.gallery = gallery
        self.gallery_labels = (
            None
            if gallery is None
            else retrieval._standardize_labels(
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
        results = retrieval.evaluate_retrieval(
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
