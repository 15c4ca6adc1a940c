"""Training across processes and devices, against one process.

- ``tf.distribute.MultiWorkerMirroredStrategy``: two worker processes on
  localhost (``TF_CONFIG`` with ports found free at run time), one CPU
  replica each, train a model with the package's losses and metrics.
- ``keras.distribution.DataParallel`` on JAX over two host devices
  (``XLA_FLAGS=--xla_force_host_platform_device_count=2``), in a fresh
  process.

Both against the same fit in one process, and the metrics against scipy /
scikit-learn. The workers are ``tests/multi_worker.py``.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
from multi_worker import GLOBAL_BATCH, fit_and_evaluate, inputs
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score

# Three fresh processes of TensorFlow or JAX, run at once beside the
# one-process fit: about two minutes of CPU time; CI runs them in its step
# of heavy tests, the whole module in one xdist worker.
pytestmark = [
    pytest.mark.heavy,
    pytest.mark.xdist_group("multi_worker"),
    pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="runs the workers in fresh processes from TensorFlow",
    ),
]

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "multi_worker.py")


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **extra)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(HERE)] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    return env


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start(folder, name, *args, **env):
    """Starts ``tests/multi_worker.py`` with ``args``; its stderr to a file."""
    with open(folder / f"{name}.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, WORKER, *args, str(folder / f"{name}.json")],
            env=_env(**env),
            cwd=os.path.dirname(HERE),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    return process, folder / name


def _finish(job, timeout=600):
    """Waits for a started process; its report."""
    process, path = job
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log = path.with_suffix(".log").read_text()
    assert process.returncode == 0, f"{path.name}:\n{log[-3000:]}"
    with open(path.with_suffix(".json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def started(tmp_path_factory):
    """The three processes, started at once: the two TensorFlow workers and
    the JAX run overlap with each other and with the one-process fit."""
    folder = tmp_path_factory.mktemp("multi_worker")
    cluster = [f"localhost:{port}" for port in _free_ports(2)]
    jobs = {}
    for index in range(2):
        config = {
            "cluster": {"worker": cluster},
            "task": {"type": "worker", "index": index},
        }
        jobs[index] = _start(
            folder,
            f"worker{index}",
            "tf",
            KERAS_BACKEND="tensorflow",
            TF_CONFIG=json.dumps(config),
        )
    if importlib.util.find_spec("jax") is not None:
        jobs["jax"] = _start(
            folder,
            "data_parallel",
            "jax",
            KERAS_BACKEND="jax",
            XLA_FLAGS="--xla_force_host_platform_device_count=2",
        )
    yield jobs
    for process, _ in jobs.values():
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def one_process(started):
    """The same fit on one device, in this process."""
    return fit_and_evaluate(keras)


@pytest.fixture(scope="module")
def workers(started, one_process):
    return [_finish(started[index]) for index in range(2)]


def _oracle_metrics(model_weights):
    """The evaluate metrics from the weights, by scipy and scikit-learn."""
    x, y = inputs()
    model = _model_with(model_weights)
    scores = keras.ops.convert_to_numpy(model(x)["score"])
    grades = y["score"]
    columns, rows = range(grades.shape[1]), range(grades.shape[0])
    rows_spearman = [
        spearmanr(grades[r], scores[r]).statistic
        for r in rows
        if np.ptp(grades[r]) > 0
    ]

    def recall_at_1(labels, s):
        # The share of the relevant items ranked first (ties: the
        # expectation over random tie-breaking).
        relevant = labels > 0
        if not relevant.any():
            return None
        above = (s[None, :] > s[:, None]).sum(1)
        tied = (s[None, :] == s[:, None]).sum(1)
        return np.clip((1 - above) / tied, 0.0, 1.0)[relevant].mean()

    recalls = [recall_at_1(grades[r], scores[r]) for r in rows]
    return {
        "score_spearman_axis0": np.mean(
            [spearmanr(grades[:, c], scores[:, c]).statistic for c in columns]
        ),
        "score_spearman_rows": np.mean(rows_spearman),
        "score_map_axis0": np.mean(
            [
                average_precision_score(grades[:, c] > 0, scores[:, c])
                for c in columns
            ]
        ),
        "score_recall_rows": np.mean([r for r in recalls if r is not None]),
    }


def _model_with(weights):
    from multi_worker import make_model

    model = make_model(keras)
    model.set_weights([np.asarray(w, "float32") for w in weights])
    return model


def test_two_workers_one_replica_each(workers):
    assert [r["task"] for r in workers] == [0, 1]
    assert all(r["num_replicas"] == 2 for r in workers)


def test_global_batch_loss_across_workers_equals_one_device(workers):
    from keras_sodeep.losses import MeanAveragePrecisionLoss

    _, y = inputs()
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(GLOBAL_BATCH, 6)).astype("float32")
    loss = MeanAveragePrecisionLoss(ranker="sigmoid:0.05")
    one = float(loss(y["embed"][:GLOBAL_BATCH], embeddings))
    half = GLOBAL_BATCH // 2
    shard = float(loss(y["embed"][:half], embeddings[:half]))
    assert abs(shard - one) > 1e-3  # each worker's half alone differs
    for report in workers:
        np.testing.assert_allclose(report["global_batch_loss"], one, 1e-5)


def test_training_across_workers_equals_one_process(workers, one_process):
    for report in workers:
        for got, expected in zip(report["weights"], one_process["weights"]):
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
        for key, values in one_process["history"].items():
            np.testing.assert_allclose(
                report["history"][key], values, rtol=1e-4, err_msg=key
            )
        for key, value in one_process["evaluate"].items():
            np.testing.assert_allclose(
                report["evaluate"][key], value, rtol=1e-4, err_msg=key
            )


def test_metrics_across_workers_are_exact(workers, one_process):
    expected = _oracle_metrics(one_process["weights"])
    for name, value in expected.items():
        np.testing.assert_allclose(
            one_process["evaluate"][name], value, atol=1e-5, err_msg=name
        )
        for report in workers:
            np.testing.assert_allclose(
                report["evaluate"][name],
                one_process["evaluate"][name],
                atol=1e-6,
                err_msg=name,
            )


@pytest.fixture(scope="module")
def jax_report(started):
    if "jax" not in started:
        pytest.skip("JAX is not installed")
    return _finish(started["jax"])


def test_jax_data_parallel_equals_one_device(jax_report):
    assert jax_report["backend"] == "jax"
    assert len(jax_report["devices"]) == 2
    # The variables live on both devices under DataParallel, on one
    # without it.
    assert jax_report["two"]["variable_devices"] == 2
    assert jax_report["one"]["variable_devices"] == 1
    one, two = jax_report["one"], jax_report["two"]
    for got, expected in zip(two["weights"], one["weights"]):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    for key, value in one["evaluate"].items():
        np.testing.assert_allclose(
            two["evaluate"][key], value, rtol=1e-5, atol=1e-6, err_msg=key
        )
    expected = _oracle_metrics(two["weights"])
    for name, value in expected.items():
        np.testing.assert_allclose(
            two["evaluate"][name], value, atol=1e-5, err_msg=name
        )
