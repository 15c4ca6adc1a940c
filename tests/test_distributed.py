"""``tf.distribute.MirroredStrategy`` over two logical CPU devices.

The devices must be configured before TensorFlow initializes them, so the
work runs once, in a fresh process (``backend_workers.py distributed``), and
the tests below check what it reports against one device and against
scipy / scikit-learn.
"""

import itertools

import keras
import numpy as np
import pytest
from backend_workers import distributed_inputs, run_worker
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import average_precision_score, dcg_score, ndcg_score

# The worker takes about three minutes of CPU: CI runs it in its step of
# heavy tests; one xdist worker runs the whole module (one report).
pytestmark = [
    pytest.mark.heavy,
    pytest.mark.xdist_group("distributed"),
    pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="tf.distribute needs the TensorFlow backend",
    ),
]

METRICS = [
    "spearman_axis0",
    "spearman_rows",
    "map_axis0",
    "map_rows",
    "recall_axis0",
    "recall_rows",
    "ndcg_axis0",
    "ndcg_rows",
    "dcg_rows",
    "mrr_rows",
    "precision_rows",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distributed")
    np.savez(folder / "inputs.npz", **distributed_inputs())
    return run_worker(
        "distributed",
        folder / "inputs.npz",
        folder / "report.json",
        "tensorflow",
    )


def _recall_at_k(labels, scores, k):
    """Expected recall@k over random tie-breaking, by enumeration of ties."""
    relevant = labels > 0
    if not relevant.any():
        return None
    above = (scores[None, :] > scores[:, None]).sum(1)
    tied = (scores[None, :] == scores[:, None]).sum(1)
    share = np.clip((k - above) / tied, 0.0, 1.0)
    return share[relevant].mean()


def _over_tie_breaks(labels, scores, value):
    """Mean of ``value(labels in rank order)`` over every tie-breaking."""
    results = []
    for priority in itertools.permutations(range(len(scores))):
        order = np.lexsort((np.array(priority), -scores))
        results.append(value(labels[order]))
    return np.mean(results)


def _ndcg(y, s):
    gain = 2.0**y - 1.0
    return ndcg_score([gain], [s]) if gain.sum() > 0 else None


def _mrr(y, s):
    if not (y > 0).any():
        return None
    return _over_tie_breaks(y, s, lambda r: 1.0 / (np.argmax(r > 0) + 1))


def _precision_at_2(y, s):
    return _over_tie_breaks(y, s, lambda r: (r[:2] > 0).sum() / 2)


def _oracles(inputs):
    keep = inputs["keep"] > 0
    labels, scores = inputs["grades"][keep], inputs["predictions"][keep]
    columns = range(labels.shape[1])
    rows = range(labels.shape[0])

    def mean_defined(values):
        values = [v for v in values if v is not None and np.isfinite(v)]
        return np.mean(values)

    def spearman(y, s):
        if np.ptp(y) == 0 or np.ptp(s) == 0:
            return None
        return spearmanr(y, s).statistic

    def ap(y, s):
        return average_precision_score(y > 0, s) if (y > 0).any() else None

    return {
        "spearman_axis0": mean_defined(
            spearman(labels[:, c], scores[:, c]) for c in columns
        ),
        "spearman_rows": mean_defined(
            spearman(labels[r], scores[r]) for r in rows
        ),
        "map_axis0": mean_defined(
            ap(labels[:, c], scores[:, c]) for c in columns
        ),
        "map_rows": mean_defined(ap(labels[r], scores[r]) for r in rows),
        "recall_axis0": mean_defined(
            _recall_at_k(labels[:, c], scores[:, c], 5) for c in columns
        ),
        "recall_rows": mean_defined(
            _recall_at_k(labels[r], scores[r], 2) for r in rows
        ),
        "ndcg_axis0": mean_defined(
            _ndcg(labels[:, c], scores[:, c]) for c in columns
        ),
        "ndcg_rows": mean_defined(_ndcg(labels[r], scores[r]) for r in rows),
        "dcg_rows": mean_defined(
            dcg_score([2.0 ** labels[r] - 1.0], [scores[r]], k=2) for r in rows
        ),
        "mrr_rows": mean_defined(_mrr(labels[r], scores[r]) for r in rows),
        "precision_rows": mean_defined(
            _precision_at_2(labels[r], scores[r]) for r in rows
        ),
    }


def test_two_replicas(report):
    assert report["num_replicas"] == 2


@pytest.mark.parametrize("name", METRICS)
def test_metrics_are_exact_across_replicas(report, name):
    one, two = report["metrics"]["one"], report["metrics"]["two"]
    # After each batch, as logged from inside the replicated step: 16, 32
    # and 45 samples, the last global batch split 7 / 6.
    assert len(one["batches"]) == len(two["batches"]) == 3
    for one_batch, two_batch in zip(one["batches"], two["batches"]):
        np.testing.assert_allclose(two_batch[name], one_batch[name], atol=1e-6)
    # At the end of `evaluate`, read outside the step.
    np.testing.assert_allclose(two["end"][name], one["end"][name], atol=1e-6)
    # Inside the step, a batch-axis metric sorts again when its samples
    # have doubled (16, 32), not at 45: it logs the value of 32 samples.
    # Read outside the step, it is exact.
    last_sort = 1 if name.endswith("_axis0") else 2
    np.testing.assert_allclose(
        one["batches"][-1][name], one["batches"][last_sort][name], atol=1e-6
    )
    if name.endswith("_axis0"):
        assert not np.isclose(one["batches"][-1][name], one["end"][name])
    else:
        np.testing.assert_allclose(
            one["batches"][-1][name], one["end"][name], atol=1e-6
        )
    expected = _oracles(distributed_inputs())[name]
    np.testing.assert_allclose(one["end"][name], expected, atol=1e-5)


def test_loss_over_the_batch_axis_ranks_each_replica_shard(report):
    inputs = distributed_inputs()
    y, p = inputs["y"], inputs["p"]

    def eq4(y, p):
        n = len(y)
        return np.mean(((rankdata(-p) - rankdata(-y)) / n) ** 2)

    half = len(y) // 2
    shards = (eq4(y[:half], p[:half]) + eq4(y[half:], p[half:])) / 2
    whole = eq4(y, p)
    assert abs(shards - whole) > 1e-3  # the two set-ups differ here
    np.testing.assert_allclose(report["shard_loss"]["one"], whole, rtol=1e-4)
    np.testing.assert_allclose(report["shard_loss"]["two"], shards, rtol=1e-4)


def test_a_sorter_trains(report):
    sorter = report["sorter"]
    assert np.isfinite(sorter["after"])
    assert sorter["after"] < 0.5 * sorter["before"], sorter


def test_every_loss_and_metric_trains_and_evaluates(report):
    fit = report["fit"]
    for name, change in fit["kernel_change"].items():
        assert change > 1e-3, name
    for name, values in fit["history"].items():
        assert np.all(np.isfinite(values)), name
    logs = fit["evaluate"]
    assert all(np.isfinite(v) for v in logs.values()), logs
    for loss in [
        "spearman",
        "spearman_sorter",
        "map",
        "recall",
        "triplet",
        "rank",
    ]:
        assert f"{loss}_loss" in logs
    for metric in [
        "spearman_spearman",
        "map_map",
        "map_recall_at_8",
        "rank_map",
        "rank_recall_at_2",
        "rank_spearman",
    ]:
        assert metric in logs
        assert -1.0 <= logs[metric] <= 1.0
