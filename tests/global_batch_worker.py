"""``GlobalBatchLoss`` on two logical CPUs, in a fresh process.

``python tests/global_batch_worker.py OUTPUT.json``: TensorFlow with two
logical CPU devices (configured before TensorFlow initializes them, hence
the fresh process), ``MirroredStrategy``; writes the losses and the weight
updates of `tests/test_global_batch.py`'s cases, on one device and on two
replicas. Importing this module imports neither Keras nor TensorFlow.
"""

import json
import os
import sys

import numpy as np


def inputs(size=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(size, 5)).astype("float32")
    labels = rng.integers(0, 4, size=size).astype("int32")
    labels[-1] = 9  # a query without a positive
    return x, labels


def losses():
    from keras_sodeep.losses import (
        MeanAveragePrecisionLoss,
        RankedListLoss,
        RecallAtKLoss,
        RecallAtKSurrogateLoss,
    )

    return {
        "ranked_list": lambda: RankedListLoss(),
        "rs_at_k": lambda: RecallAtKSurrogateLoss(
            k=(1, 4), ranker="sigmoid:0.05"
        ),
        "recall_at_k": lambda: RecallAtKLoss(k=(1, 2), ranker="sigmoid:0.05"),
        "map": lambda: MeanAveragePrecisionLoss(ranker="sigmoid:0.05"),
    }


# The losses whose fit and evaluate logs are checked on uneven shards.
ODD_LOSSES = ("ranked_list", "map")


def make_model(keras):
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.Dense(6),
        ]
    )


def main(output_path):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras

    from keras_sodeep.losses import GlobalBatchLoss

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report = {"num_replicas": strategy.num_replicas_in_sync}
    x, labels = inputs()
    odd_x, odd_labels = inputs(size=47, seed=1)
    weights0 = make_model(keras).get_weights()
    embeddings = make_model(keras)(x).numpy()

    def shards(values, split):
        def fn(context):
            i = context.replica_id_in_sync_group
            bounds = [0, split, len(values)]
            return tf.constant(values[bounds[i] : bounds[i + 1]])

        return strategy.experimental_distribute_values_from_function(fn)

    for name, make in losses().items():
        one = float(make()(labels, embeddings))
        entry = {"one": one}
        for split in (12, 13):  # even, and 13 / 11
            wrapped = GlobalBatchLoss(make())
            plain = make()

            def step(y, e, wrapped=wrapped, plain=plain):
                return wrapped(y, e), plain(y, e)

            g, p = strategy.run(
                step, args=(shards(labels, split), shards(embeddings, split))
            )
            entry[f"global_{split}"] = float(
                strategy.reduce("SUM", g, axis=None)
            )
            entry[f"plain_{split}"] = float(
                strategy.reduce("SUM", p, axis=None)
            )
        # One SGD step (learning rate 1) on the global batch: the update is
        # minus the weight gradient.
        model = make_model(keras)
        model.compile(keras.optimizers.SGD(1.0), loss=make())
        model.fit(
            x, labels, batch_size=len(x), epochs=1, shuffle=False, verbose=0
        )
        entry["one_update"] = [
            (w1 - w0).tolist() for w0, w1 in zip(weights0, model.get_weights())
        ]
        with strategy.scope():
            model = make_model(keras)
            model.compile(
                keras.optimizers.SGD(1.0), loss=GlobalBatchLoss(make())
            )
        model.fit(
            x, labels, batch_size=len(x), epochs=1, shuffle=False, verbose=0
        )
        entry["two_update"] = [
            (w1 - w0).tolist() for w0, w1 in zip(weights0, model.get_weights())
        ]
        entry["two_evaluate"] = float(
            model.evaluate(x, labels, batch_size=len(x), verbose=0)
        )
        entry["one_after"] = float(make()(labels, model(x)))
        if name in ODD_LOSSES:
            # What fit and evaluate log over 47 samples in global batches of
            # 24: the second batch splits unevenly over the replicas (12 / 11).
            # (Keras builds the model on the first batch, which must split
            # evenly.)
            for where, scope in (("one", None), ("two", strategy.scope())):
                with scope or tf.distribute.get_strategy().scope():
                    model = make_model(keras)
                    model.compile(
                        keras.optimizers.SGD(0.1), loss=GlobalBatchLoss(make())
                    )
                history = model.fit(
                    odd_x, odd_labels, batch_size=24, shuffle=False, verbose=0
                )
                entry[f"{where}_odd_fit"] = history.history["loss"][0]
                entry[f"{where}_odd_evaluate"] = float(
                    model.evaluate(odd_x, odd_labels, batch_size=24, verbose=0)
                )
            # The same, batch by batch, on one device with the weights after
            # fit on two replicas.
            entry["odd_batches"] = [
                float(make()(odd_labels[i : i + 24], model(odd_x[i : i + 24])))
                for i in (0, 24)
            ]
        report[name] = entry
    with open(output_path, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    sys.path.insert(
        0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    )
    main(sys.argv[1])
