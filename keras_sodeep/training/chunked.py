"""Large batches of embeddings in chunks: a two-pass training step.

Rank losses on embeddings want long lists (RS@k trains with 4,000
embeddings), but back-propagating through a whole batch keeps every
activation of the network at once. `ChunkedEmbeddingModel` trains with the
two-pass step of Patel et al. (CVPR 2022, after the gradient caching of
Gao et al. 2021): embed the batch chunk by chunk without recording,
differentiate the loss with respect to the embeddings only, then re-run
each chunk under a tape and back-propagate that gradient. Peak memory is
one chunk's activations plus the embeddings and the loss; the weight
gradient is the one-pass gradient.
"""

import keras

from keras_sodeep._checks import check_int


def _first_tensor(structure):
    return next(t for t in keras.tree.flatten(structure) if t is not None)


def _check_backend():
    if keras.backend.backend() != "tensorflow":
        raise NotImplementedError(
            "ChunkedEmbeddingModel trains on the TensorFlow backend only "
            "(`evaluate` and `predict` run on every backend). Received: "
            f"backend={keras.backend.backend()!r}"
        )


def _zeros_for_none(gradients, variables):
    return [
        keras.ops.zeros(v.shape, v.dtype) if g is None else g
        for g, v in zip(gradients, variables)
    ]


@keras.saving.register_keras_serializable(package="keras_sodeep")
class ChunkedEmbeddingModel(keras.Model):
    """Wraps an embedding model to train on large batches, in chunks.

    ``fit`` runs a two-pass step (TensorFlow backend): pass 1 embeds the
    batch ``chunk_size`` samples at a time without keeping activations;
    the loss and its gradient ``g = dloss / dembeddings`` are computed on
    all the embeddings at once; pass 2 re-runs each chunk under a tape and
    back-propagates its slice of ``g``:

    ```
    dloss / dw = sum over chunks c of (d embeddings_c / dw)^T g_c
    ```

    The accumulated gradient is applied once per batch: it equals the
    one-pass gradient (to float tolerance) when the model is a
    deterministic function of each sample, which excludes dropout
    (re-drawn in pass 2) and batch statistics (``BatchNormalization`` in
    training mode sees one chunk, and its moving averages move twice per
    step): freeze them or use ``LayerNormalization``. Weight regularizers
    (``model.losses``) are differentiated directly. ``evaluate`` and
    ``predict`` run the wrapped model in one pass, on every backend; on
    JAX and PyTorch ``fit`` and ``train_on_batch`` raise
    ``NotImplementedError``. The step is not XLA-compiled (the model
    reports ``supports_jit = False``, so ``compile(jit_compile="auto")``,
    the default, turns XLA off). A ``.keras`` file keeps the optimizer
    state: a loaded model resumes training where the saved one stopped.

    Args:
        model: a ``keras.Model`` mapping inputs to embeddings ``(B, D)``.
        chunk_size: positive int, the samples embedded at a time.
        **kwargs: as for ``keras.Model`` (``name``, ...).

    Example:

    >>> import keras, numpy as np
    >>> from keras_sodeep.losses import RankedListLoss
    >>> from keras_sodeep.training import ChunkedEmbeddingModel
    >>> net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    >>> model = ChunkedEmbeddingModel(net, chunk_size=16)
    >>> model.compile(optimizer="sgd", loss=RankedListLoss())
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> y = np.arange(64) % 4
    >>> history = model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    """

    def __init__(self, model, chunk_size, **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, dict):
            model = keras.saving.deserialize_keras_object(model)
        self.model = model
        self.chunk_size = check_int(chunk_size, "chunk_size")
        self.supports_jit = False
        # The wrapper has no variables of its own: it is built when the
        # wrapped model is. A built model builds its optimizer when it is
        # compiled on loading, so that the saved optimizer state loads.
        if self.model.built:
            self.built = True

    def build(self, input_shape):
        if not self.model.built:
            self.model.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def fit(self, *args, **kwargs):
        _check_backend()
        return super().fit(*args, **kwargs)

    def train_step(self, *args):
        # JAX's trainer passes (state, data), hence *args.
        _check_backend()
        (data,) = args
        import tensorflow as tf

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        size = tf.shape(_first_tensor(x))[0]
        step = self.chunk_size
        num_chunks = (size + step - 1) // step

        def chunk(structure, i):
            return keras.tree.map_structure(
                lambda t: t[i * step : (i + 1) * step], structure
            )

        # Pass 1: embeddings, chunk by chunk, nothing recorded.
        def embed(i, pieces):
            return i + 1, pieces.write(
                i, self.model(chunk(x, i), training=True)
            )

        pieces = tf.TensorArray(
            self.model.compute_dtype, size=num_chunks, infer_shape=False
        )
        _, pieces = tf.while_loop(
            lambda i, _: i < num_chunks, embed, (tf.constant(0), pieces)
        )
        embeddings = tf.stop_gradient(pieces.concat())
        # Without a strategy Keras builds nothing before it traces this
        # step, which calls the wrapped model only: the wrapper is built
        # with it (and saves as built).
        self.built = True
        spec = self.model.compute_output_spec(
            keras.tree.map_structure(
                lambda t: keras.KerasTensor(t.shape, t.dtype), x
            )
        )
        static_size = _first_tensor(x).shape[0]
        embeddings = tf.ensure_shape(
            embeddings, [static_size] + list(spec.shape[1:])
        )

        # The loss and its gradient with respect to the embeddings (and to
        # the weights directly, through regularizers).
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            tape.watch(embeddings)
            loss = self.compute_loss(
                x=x,
                y=y,
                y_pred=embeddings,
                sample_weight=sample_weight,
                training=True,
            )
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, [embeddings] + list(variables))
        upstream, direct = grads[0], _zeros_for_none(grads[1:], variables)

        # Pass 2: each chunk again, under a tape, with its slice of the
        # upstream gradient.
        def backward(i, accumulated):
            with tf.GradientTape() as chunk_tape:
                out = self.model(chunk(x, i), training=True)
                weight = tf.cast(chunk(upstream, i), out.dtype)
                surrogate = tf.reduce_sum(out * weight)
            chunk_grads = _zeros_for_none(
                chunk_tape.gradient(surrogate, variables), variables
            )
            return i + 1, [a + g for a, g in zip(accumulated, chunk_grads)]

        _, gradients = tf.while_loop(
            lambda i, _: i < num_chunks,
            backward,
            (tf.constant(0), list(direct)),
        )
        self.optimizer.apply_gradients(zip(gradients, variables))
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss * replicas, sample_weight=size)
        return self.compute_metrics(x, y, embeddings, sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "model": keras.saving.serialize_keras_object(self.model),
                "chunk_size": self.chunk_size,
            }
        )
        return config
