"""``GlobalBatchLoss`` under ``MirroredStrategy`` on two logical CPUs.

The devices must be configured before TensorFlow initializes them, so the
work runs once in a fresh process (``global_batch_worker.py``); the tests
check its report: the global-batch loss and its weight update against one
device on the same global batch.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

# The worker, a fresh TensorFlow process, trains every loss on two
# replicas: CI runs it in its step of heavy tests, the whole module in one
# xdist worker (one report).
pytestmark = [
    pytest.mark.heavy,
    pytest.mark.xdist_group("global_batch"),
    pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="tf.distribute needs the TensorFlow backend",
    ),
]

HERE = os.path.dirname(os.path.abspath(__file__))
LOSSES = ["ranked_list", "rs_at_k", "recall_at_k", "map"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    output = tmp_path_factory.mktemp("global_batch") / "report.json"
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(HERE)] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    done = subprocess.run(
        [sys.executable, os.path.join(HERE, "global_batch_worker.py")]
        + [str(output)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with open(output) as f:
        return json.load(f)


def test_two_replicas(report):
    assert report["num_replicas"] == 2


@pytest.mark.parametrize("name", LOSSES)
def test_global_batch_loss_equals_one_device(report, name):
    entry = report[name]
    for split in (12, 13):  # even shards, and 13 / 11
        np.testing.assert_allclose(entry[f"global_{split}"], entry["one"], 1e-5)
        # Without the wrapper each replica ranks its own shard only.
        assert abs(entry[f"plain_{split}"] - entry["one"]) > 1e-3


@pytest.mark.parametrize("name", LOSSES)
def test_weight_update_equals_one_device(report, name):
    entry = report[name]
    for one, two in zip(entry["one_update"], entry["two_update"]):
        one, two = np.asarray(one), np.asarray(two)
        assert np.abs(one).max() > 1e-3
        np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(entry["two_evaluate"], entry["one_after"], 1e-5)


@pytest.mark.parametrize("name", ["ranked_list", "map"])
def test_logged_loss_on_uneven_shards_equals_one_device(report, name):
    # 47 samples in global batches of 24: the second splits 12 / 11. Keras
    # logs the mean of the replicas' losses weighted by their shard sizes:
    # every replica must report the global batch's loss.
    entry = report[name]
    first, second = entry["odd_batches"]
    assert abs(first - second) > 1e-3
    np.testing.assert_allclose(
        entry["two_odd_evaluate"], (24 * first + 23 * second) / 47, 1e-5
    )
    np.testing.assert_allclose(entry["two_odd_fit"], entry["one_odd_fit"], 1e-5)
    np.testing.assert_allclose(
        entry["one_odd_evaluate"], entry["two_odd_evaluate"], 1e-4
    )
