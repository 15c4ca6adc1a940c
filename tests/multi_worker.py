"""Training across processes: the worker side of ``test_multi_worker.py``.

``python tests/multi_worker.py tf OUTPUT.json``: one worker of a
``tf.distribute.MultiWorkerMirroredStrategy`` cluster described by the
``TF_CONFIG`` environment variable (the test starts two on localhost).

``python tests/multi_worker.py jax OUTPUT.json``: ``KERAS_BACKEND=jax`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=2``, the same fit under
``keras.distribution.DataParallel`` over the two host devices.

Each writes the weights after ``fit``, the logs of ``fit`` and
``evaluate``, and, for the TensorFlow workers, the global-batch loss of the
first global batch. ``fit_and_evaluate`` is also what the test runs in one
process. Importing this module imports neither Keras nor TensorFlow.
"""

import json
import os
import sys

import numpy as np

GLOBAL_BATCH = 32


def inputs(seed=0):
    """64 samples: two global batches of 32."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 5)).astype("float32")
    classes = rng.integers(0, 4, size=64).astype("int32")
    classes[0] = 9  # a query without a positive
    grades = rng.choice([0.0, 0.0, 1.0, 2.0], size=(64, 3)).astype("float32")
    grades[:, 0] = np.round(x[:, 0] > 0) + grades[:, 0]
    return x, {"embed": classes, "score": grades}


def make_model(keras):
    keras.utils.set_random_seed(4)
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(16, activation="tanh", name="hidden")(inputs)
    return keras.Model(
        inputs,
        {
            "embed": keras.layers.Dense(6, name="embed")(hidden),
            "score": keras.layers.Dense(3, name="score")(hidden),
        },
    )


def compile_model(model, keras, global_batch):
    from keras_sodeep.losses import (
        GlobalBatchLoss,
        MeanAveragePrecisionLoss,
        SpearmanLoss,
    )
    from keras_sodeep.metrics import (
        MeanAveragePrecision,
        RecallAtK,
        SpearmanCorrelation,
    )

    embed_loss = MeanAveragePrecisionLoss(ranker="sigmoid:0.05")
    if global_batch:
        embed_loss = GlobalBatchLoss(embed_loss)
    model.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss={
            "embed": embed_loss,
            "score": SpearmanLoss(ranker="sigmoid:0.1", axis=-1),
        },
        metrics={
            "score": [
                SpearmanCorrelation(capacity=128, name="spearman_axis0"),
                SpearmanCorrelation(axis=-1, name="spearman_rows"),
                MeanAveragePrecision(capacity=128, name="map_axis0"),
                RecallAtK(1, name="recall_rows"),
            ]
        },
    )


def _work_around_keras(model, batch):
    """Two workarounds for Keras 3's ``fit`` under
    ``MultiWorkerMirroredStrategy`` (Keras 3.15).

    - Before the first step Keras reduces the first distributed batch with
      ``strategy.reduce`` to build the model's loss and metrics, which the
      strategy refuses for a nested batch: build them on a local batch.
    - Keras averages the replicas' logs with ``reduce("MEAN", axis=0)``,
      which fails on scalars: the steps return logs of shape ``(1,)``.
      (Every replica holds the global value of the loss tracker and of the
      package's metrics: their mean is that value.)
    """
    import keras

    def build(iterator=None, data_batch=None):
        with model.distribute_strategy.scope():
            model._symbolic_build(data_batch=batch)

    def as_vectors(step):
        def wrapped(data):
            logs = step(data)
            return {k: keras.ops.reshape(v, (1,)) for k, v in logs.items()}

        return wrapped

    model._maybe_symbolic_build = build
    model.train_step = as_vectors(model.train_step)
    model.test_step = as_vectors(model.test_step)


def fit_and_evaluate(keras, scope=None, global_batch=False):
    """Two epochs of two global batches, then ``evaluate``; plain values."""
    import contextlib

    x, y = inputs()
    with scope or contextlib.nullcontext():
        model = make_model(keras)
        compile_model(model, keras, global_batch)
    if scope is not None and keras.backend.backend() == "tensorflow":
        _work_around_keras(model, (x[:2], {k: v[:2] for k, v in y.items()}))
    history = model.fit(
        x, y, batch_size=GLOBAL_BATCH, epochs=2, shuffle=False, verbose=0
    )
    logs = model.evaluate(
        x, y, batch_size=GLOBAL_BATCH, verbose=0, return_dict=True
    )
    sharding = getattr(model.weights[0].value, "sharding", None)
    return {
        # The devices that hold a variable (JAX), else 0.
        "variable_devices": len(sharding.device_set) if sharding else 0,
        "weights": [
            keras.ops.convert_to_numpy(w).tolist() for w in model.weights
        ],
        "history": {
            k: [float(v) for v in vs] for k, vs in history.history.items()
        },
        "evaluate": {k: float(v) for k, v in logs.items()},
    }


def tf_worker():
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import keras

    from keras_sodeep.losses import GlobalBatchLoss, MeanAveragePrecisionLoss

    report = {
        "backend": keras.backend.backend(),
        "num_replicas": strategy.num_replicas_in_sync,
        "task": strategy.cluster_resolver.task_id,
    }
    # The first global batch's embeddings, split between the workers:
    # the wrapped loss on each worker's half, summed over the replicas.
    x, y = inputs()
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(GLOBAL_BATCH, 6)).astype("float32")
    half = GLOBAL_BATCH // 2
    task = report["task"]
    mine = slice(task * half, (task + 1) * half)

    def step(labels, e):
        wrapped = GlobalBatchLoss(
            MeanAveragePrecisionLoss(ranker="sigmoid:0.05")
        )
        return wrapped(labels, e)

    value = strategy.run(
        step,
        args=(
            tf.constant(y["embed"][:GLOBAL_BATCH][mine]),
            tf.constant(embeddings[mine]),
        ),
    )
    report["global_batch_loss"] = float(strategy.reduce("SUM", value, None))
    report.update(fit_and_evaluate(keras, strategy.scope(), global_batch=True))
    return report


def jax_worker():
    import jax
    import keras

    report = {"backend": keras.backend.backend()}
    report["devices"] = [str(d) for d in jax.devices()]
    report["one"] = fit_and_evaluate(keras)
    distribution = keras.distribution.DataParallel(devices=jax.devices())
    keras.distribution.set_distribution(distribution)
    report["two"] = fit_and_evaluate(keras)
    return report


if __name__ == "__main__":
    sys.path.insert(
        0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    )
    kind, output_path = sys.argv[1:]
    report = {"tf": tf_worker, "jax": jax_worker}[kind]()
    with open(output_path, "w") as f:
        json.dump(report, f)
