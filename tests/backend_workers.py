"""Work that the tests run in a fresh Python process.

``python tests/backend_workers.py COMMAND INPUTS.npz OUTPUT.json``:

- ``values``: on the backend of ``KERAS_BACKEND``, the value and the
  gradient (with respect to ``y_pred``) of every case of ``loss_cases``
  and the value of every case of ``metric_cases``, on the inputs of
  ``INPUTS.npz`` (``sorter.weights.h5`` beside it holds the weights of the
  learned sorter the cases use).
- ``distributed``: TensorFlow with two logical CPU devices, which must be
  configured before TensorFlow initializes its devices, hence the fresh
  process. Metrics evaluated on one and on two replicas, a loss over the
  batch axis on two replicas, a sorter and a model per loss trained under
  ``tf.distribute.MirroredStrategy``.

Importing this module imports neither Keras nor TensorFlow.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_worker(command, inputs_path, output_path, backend):
    """Runs a command of this module in a fresh process; returns its JSON."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), command]
        + [str(inputs_path), str(output_path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"`{command}` on {backend} failed:\n{done.stderr[-3000:]}"
        )
    with open(output_path) as f:
        return json.load(f)


# ---------------------------------------------------------------------------
# Cases shared by the worker and the tests.
# ---------------------------------------------------------------------------


def parity_inputs(seed=0):
    """Fixed inputs of the loss and metric cases (float32 NumPy arrays)."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(4, 12)).astype("float32")
    relevance = (rng.random((4, 12)) < 0.4).astype("float32")
    relevance[:, 0], relevance[:, 1] = 1.0, 0.0
    mask = rng.random((4, 12)) < 0.85
    mask[:, :2] = True
    return {
        "y": rng.normal(size=(16,)).astype("float32"),
        "p": rng.normal(size=(16,)).astype("float32"),
        "targets": rng.normal(size=(4, 12)).astype("float32"),
        "scores": scores,
        "relevance": relevance,
        "mask": mask,
        "list_weight": rng.uniform(0.5, 2.0, size=(4,)).astype("float32"),
        "multilabel": (rng.random((16, 3)) < 0.4).astype("float32"),
        "multiscores": rng.normal(size=(16, 3)).astype("float32"),
        "embeddings": rng.normal(size=(16, 5)).astype("float32"),
        "classes": rng.integers(0, 4, size=(16,)).astype("float32"),
        "grades": rng.choice([0.0, 0.0, 1.0, 2.0], size=(40, 3)).astype(
            "float32"
        ),
        "predictions": np.round(rng.normal(size=(40, 3)), 1).astype("float32"),
        "sample_weight": rng.uniform(0.0, 2.0, size=(40,)).astype("float32"),
    }


def make_sorter():
    """The small learned sorter of the cases (length-generic)."""
    from keras_sodeep.sorters import LSTMSorter

    sorter = LSTMSorter(seq_len=None, units=8, num_layers=1)
    sorter(np.zeros((1, 12), "float32"))
    return sorter


def loss_cases(sorter):
    """``{name: (loss, y_true, y_pred, sample_weight)}``, as input names."""
    from keras_sodeep import losses
    from keras_sodeep.ranking import NeuralSortRanker, SigmoidRanker

    masked = {"labels": "relevance", "mask": "mask"}
    return {
        "spearman_axis0": (losses.SpearmanLoss(), "y", "p", None),
        "spearman_rows_masked": (
            losses.SpearmanLoss(ranker=NeuralSortRanker(0.5), axis=-1),
            {"labels": "targets", "mask": "mask"},
            "scores",
            "list_weight",
        ),
        "spearman_sorter_l1": (
            losses.SpearmanLoss(ranker=sorter, axis=-1, l1_weight=0.1),
            "targets",
            "scores",
            None,
        ),
        "map_columns": (
            losses.MeanAveragePrecisionLoss(),
            "multilabel",
            "multiscores",
            None,
        ),
        "map_rows_neuralsort": (
            losses.MeanAveragePrecisionLoss(
                ranker=NeuralSortRanker(1.0), axis=-1
            ),
            masked,
            "scores",
            None,
        ),
        "map_sorter": (
            losses.MeanAveragePrecisionLoss(ranker=sorter, axis=-1),
            "relevance",
            "scores",
            "list_weight",
        ),
        "map_embeddings": (
            losses.MeanAveragePrecisionLoss(ranker=SigmoidRanker(0.05)),
            "classes",
            "embeddings",
            None,
        ),
        "recall_rows": (
            losses.RecallAtKLoss((1, 2, 4)),
            "relevance",
            "scores",
            None,
        ),
        "recall_embeddings_sorter": (
            losses.RecallAtKLoss((1, 4), ranker=sorter, temperature=0.5),
            "classes",
            "embeddings",
            None,
        ),
        "triplet_rows_masked": (
            losses.RankTripletLoss(2.0, ranker=NeuralSortRanker(0.5)),
            masked,
            "scores",
            "list_weight",
        ),
        "triplet_embeddings": (
            losses.RankTripletLoss(1.0),
            "classes",
            "embeddings",
            None,
        ),
        "rank_rows_sorter": (
            losses.RankLoss(ranker=sorter),
            masked,
            "scores",
            None,
        ),
        "rank_embeddings": (
            losses.RankLoss(ranker=NeuralSortRanker(1.0)),
            "classes",
            "embeddings",
            None,
        ),
        "sup_ap_rows_masked": (
            losses.SupAPLoss(),
            masked,
            "scores",
            "list_weight",
        ),
        "sup_ap_embeddings": (
            losses.SupAPLoss(temperature=0.1),
            "classes",
            "embeddings",
            None,
        ),
        "sup_recall_embeddings": (
            losses.SupRecallAtKLoss((1, 4)),
            "classes",
            "embeddings",
            None,
        ),
        "roadmap_embeddings": (
            losses.ROADMAPLoss(),
            "classes",
            "embeddings",
            None,
        ),
        "calibration_rows_masked": (
            losses.CalibrationLoss(0.5, 0.0),
            masked,
            "scores",
            None,
        ),
    }


def metric_cases():
    """``{name: metric}``; every metric runs on grades and predictions."""
    from keras_sodeep.metrics import (
        DCG,
        NDCG,
        MeanAveragePrecision,
        MeanReciprocalRank,
        PrecisionAtK,
        RecallAtK,
        SpearmanCorrelation,
    )

    return {
        "spearman_axis0": SpearmanCorrelation(capacity=128),
        "spearman_rows": SpearmanCorrelation(axis=-1),
        "map_axis0": MeanAveragePrecision(capacity=128),
        "map_rows": MeanAveragePrecision(axis=-1),
        "recall_axis0": RecallAtK(5, axis=0, capacity=128),
        "recall_rows": RecallAtK(1),
        "ndcg_axis0": NDCG(10, axis=0, capacity=128),
        "ndcg_rows": NDCG(),
        "dcg_rows": DCG(2, gain="linear"),
        "mrr_rows": MeanReciprocalRank(),
        "precision_rows": PrecisionAtK(2),
    }


def resolve(spec, inputs):
    """Replaces the input names of a case by the arrays."""
    if spec is None:
        return None
    if isinstance(spec, dict):
        return {key: inputs[name] for key, name in spec.items()}
    return inputs[spec]


def loss_value_and_grad(loss, y_true, y_pred, sample_weight):
    """The loss and its gradient with respect to ``y_pred``, as NumPy."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def fn(x):
            return loss(y_true, x, sample_weight=sample_weight)

        value_and_grad = jax.jit(jax.value_and_grad(fn))
        value, grad = value_and_grad(jax.numpy.asarray(y_pred))
    elif backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(y_pred)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss(y_true, x, sample_weight=sample_weight)
        grad = tape.gradient(value, x)
    elif backend == "torch":
        import torch

        x = torch.tensor(y_pred, requires_grad=True)
        value = loss(y_true, x, sample_weight=sample_weight)
        value.backward()
        value, grad = value.detach(), x.grad
    else:
        raise ValueError(f"No gradient for the backend {backend!r}.")
    return float(value), np.asarray(grad)


def compute_values(inputs, sorter):
    """Loss values, loss gradients and metric values of every case."""
    result = {"losses": {}, "metrics": {}}
    for name, (loss, *specs) in loss_cases(sorter).items():
        y_true, y_pred, weight = (resolve(s, inputs) for s in specs)
        value, grad = loss_value_and_grad(loss, y_true, y_pred, weight)
        result["losses"][name] = {"value": value, "grad": grad.tolist()}
    for name, metric in metric_cases().items():
        metric.update_state(
            inputs["grades"][:25],
            inputs["predictions"][:25],
            sample_weight=inputs["sample_weight"][:25],
        )
        metric.update_state(
            inputs["grades"][25:],
            inputs["predictions"][25:],
            sample_weight=inputs["sample_weight"][25:],
        )
        result["metrics"][name] = float(metric.result())
    return result


def values(inputs_path, output_path):
    import keras

    inputs = dict(np.load(inputs_path))
    sorter = make_sorter()
    folder = os.path.dirname(inputs_path)
    sorter.load_weights(os.path.join(folder, "sorter.weights.h5"))
    result = compute_values(inputs, sorter)
    result["backend"] = keras.backend.backend()
    with open(output_path, "w") as f:
        json.dump(result, f)


# ---------------------------------------------------------------------------
# Two replicas.
# ---------------------------------------------------------------------------


def distributed_inputs(seed=0):
    """Inputs of the distributed run, for the oracles of the tests."""
    rng = np.random.default_rng(seed)
    return {
        # 45 samples in batches of 16: the last global batch (13) splits
        # unevenly over two replicas.
        "grades": rng.choice([0.0, 0.0, 1.0, 2.0], size=(45, 4)).astype(
            "float32"
        ),
        "predictions": np.round(rng.normal(size=(45, 4)), 1).astype("float32"),
        # Zero weights leave samples (and lists) out.
        "keep": (rng.random(45) < 0.8).astype("float32"),
        "y": rng.normal(size=(20,)).astype("float32"),
        "p": rng.normal(size=(20,)).astype("float32"),
    }


def _compiled_metrics():
    from keras_sodeep.metrics import (
        DCG,
        NDCG,
        MeanAveragePrecision,
        MeanReciprocalRank,
        PrecisionAtK,
        RecallAtK,
        SpearmanCorrelation,
    )

    return [
        SpearmanCorrelation(capacity=256, name="spearman_axis0"),
        SpearmanCorrelation(axis=-1, name="spearman_rows"),
        MeanAveragePrecision(capacity=256, name="map_axis0"),
        MeanAveragePrecision(axis=-1, name="map_rows"),
        RecallAtK(5, axis=0, capacity=256, name="recall_axis0"),
        RecallAtK(2, name="recall_rows"),
        NDCG(axis=0, capacity=256, name="ndcg_axis0"),
        NDCG(name="ndcg_rows"),
        DCG(2, name="dcg_rows"),
        MeanReciprocalRank(name="mrr_rows"),
        PrecisionAtK(2, name="precision_rows"),
    ]


def _evaluate_metrics(strategy, inputs):
    """Metric values after each batch (computed inside the replicated step)
    and at the end of ``evaluate`` (read outside it)."""
    import keras

    class Record(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.batches = []

        def on_test_batch_end(self, batch, logs=None):
            self.batches.append({k: float(v) for k, v in logs.items()})

    num_columns = inputs["predictions"].shape[-1]
    with strategy.scope():
        model = keras.Sequential(
            [keras.Input((num_columns,)), keras.layers.Identity()]
        )
        model.compile(loss="mse", weighted_metrics=_compiled_metrics())
    record = Record()
    logs = model.evaluate(
        inputs["predictions"],
        inputs["grades"],
        sample_weight=inputs["keep"],
        batch_size=16,
        verbose=0,
        return_dict=True,
        callbacks=[record],
    )
    return {
        "batches": [
            {k: v for k, v in batch.items() if k != "loss"}
            for batch in record.batches
        ],
        "end": {k: float(v) for k, v in logs.items() if k != "loss"},
    }


def _shard_loss(strategy, inputs):
    """Loss over the batch axis: evaluate on one global batch."""
    import keras

    from keras_sodeep.losses import SpearmanLoss
    from keras_sodeep.ranking import SigmoidRanker

    with strategy.scope():
        model = keras.Sequential([keras.Input((1,)), keras.layers.Identity()])
        model.compile(loss=SpearmanLoss(ranker=SigmoidRanker(1e-4)))
    y, p = inputs["y"], inputs["p"]
    return float(
        model.evaluate(p[:, None], y[:, None], batch_size=len(y), verbose=0)
    )


def _train_sorter(strategy):
    import keras

    from keras_sodeep.ranking import exact_rank
    from keras_sodeep.sorters import LSTMSorter

    rng = np.random.default_rng(1)
    x = rng.normal(size=(512, 8)).astype("float32")
    target = np.asarray(exact_rank(x)) / 8.0
    keras.utils.set_random_seed(1)
    with strategy.scope():
        # The paper's sorter: with the spread input an untrained sorter
        # already ranks lists of 8 exactly, and there is nothing to learn.
        sorter = LSTMSorter(
            seq_len=8, units=16, num_layers=1, spread_inputs=False
        )
        sorter.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    before = float(sorter.evaluate(x, target, batch_size=128, verbose=0))
    sorter.fit(x, target, epochs=4, batch_size=64, verbose=0)
    after = float(sorter.evaluate(x, target, batch_size=128, verbose=0))
    return {"before": before, "after": after}


def _fit_losses(strategy):
    """A model with one output per loss, trained on two replicas."""
    import keras

    from keras_sodeep import losses
    from keras_sodeep.metrics import (
        MeanAveragePrecision,
        RecallAtK,
        SpearmanCorrelation,
    )
    from keras_sodeep.sorters import GRUSorter

    rng = np.random.default_rng(2)
    x = rng.normal(size=(96, 5)).astype("float32")
    regression = (x @ rng.normal(size=5)).astype("float32")
    multilabel = (x[:, :3] + rng.normal(size=(96, 3)) > 0).astype("float32")
    classes = rng.integers(0, 4, size=(96,)).astype("float32")
    relevance = (rng.random((96, 6)) < 0.3).astype("float32")
    relevance[:, 0] = 1.0
    keras.utils.set_random_seed(2)
    # name: (loss, output units, targets, metrics)
    with strategy.scope():
        sorter = GRUSorter(units=8, num_layers=1, context_units=4)
        sorter(np.zeros((1, 48), "float32"))
        heads = {
            "spearman": (
                losses.SpearmanLoss(),
                1,
                regression,
                [SpearmanCorrelation(capacity=256)],
            ),
            "spearman_sorter": (
                losses.SpearmanLoss(ranker=sorter),
                1,
                regression,
                [SpearmanCorrelation(capacity=256)],
            ),
            "map": (
                losses.MeanAveragePrecisionLoss(),
                3,
                multilabel,
                [
                    MeanAveragePrecision(capacity=256),
                    RecallAtK(8, axis=0, capacity=256),
                ],
            ),
            "recall": (losses.RecallAtKLoss((1, 2)), 4, classes, []),
            "triplet": (losses.RankTripletLoss(), 4, classes, []),
            "rank": (
                losses.RankLoss(),
                6,
                relevance,
                [
                    MeanAveragePrecision(axis=-1),
                    RecallAtK(2),
                    SpearmanCorrelation(axis=-1),
                ],
            ),
        }
        inputs = keras.Input((5,))
        outputs = {
            name: keras.layers.Dense(units, name=name)(inputs)
            for name, (_, units, _, _) in heads.items()
        }
        model = keras.Model(inputs, outputs)
        model.compile(
            optimizer=keras.optimizers.Adam(0.05),
            loss={name: head[0] for name, head in heads.items()},
            metrics={name: head[3] for name, head in heads.items()},
        )
    targets = {name: head[2] for name, head in heads.items()}
    kernels = {
        name: keras.ops.convert_to_numpy(model.get_layer(name).kernel)
        for name in heads
    }
    history = model.fit(x, targets, epochs=2, batch_size=48, verbose=0)
    logs = model.evaluate(
        x, targets, batch_size=48, verbose=0, return_dict=True
    )
    change = {
        name: float(
            np.abs(
                keras.ops.convert_to_numpy(model.get_layer(name).kernel)
                - kernel
            ).max()
        )
        for name, kernel in kernels.items()
    }
    return {
        "history": {
            k: [float(v) for v in vs] for k, vs in history.history.items()
        },
        "evaluate": {k: float(v) for k, v in logs.items()},
        "kernel_change": change,
    }


def distributed(inputs_path, output_path):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras

    assert keras.backend.backend() == "tensorflow"
    inputs = dict(np.load(inputs_path))
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    one = tf.distribute.get_strategy()
    result = {"num_replicas": mirrored.num_replicas_in_sync, "seconds": {}}
    start = time.perf_counter()

    def lap(name):
        nonlocal start
        now = time.perf_counter()
        result["seconds"][name] = round(now - start, 1)
        start = now

    result["metrics"] = {
        "two": _evaluate_metrics(mirrored, inputs),
        "one": _evaluate_metrics(one, inputs),
    }
    lap("metrics")
    result["shard_loss"] = {
        "two": _shard_loss(mirrored, inputs),
        "one": _shard_loss(one, inputs),
    }
    lap("shard_loss")
    result["sorter"] = _train_sorter(mirrored)
    lap("sorter")
    result["fit"] = _fit_losses(mirrored)
    lap("fit")
    with open(output_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    command, inputs_path, output_path = sys.argv[1:]
    {"values": values, "distributed": distributed}[command](
        inputs_path, output_path
    )
