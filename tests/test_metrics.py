import itertools
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import average_precision_score

from keras_sodeep.metrics import (
    HitRateAtK,
    MeanAveragePrecision,
    RecallAtK,
    SpearmanCorrelation,
)

# ---------------------------------------------------------------- oracles


def spearman_oracle(y, s, w=None):
    """scipy's Spearman; with weights, the weighted Pearson of the ranks of
    the positive-weight items (NumPy's weighted covariance)."""
    if w is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant input: NaN
            return spearmanr(y, s).statistic
    keep = w > 0
    c = np.cov(rankdata(y[keep]), rankdata(s[keep]), aweights=w[keep])
    return c[0, 1] / np.sqrt(c[0, 0] * c[1, 1])


def map_columns_oracle(y, s, valid=None, w=None):
    """Per-class sklearn AP over the valid rows, mean over classes with a
    positive."""
    valid = np.ones(y.shape, bool) if valid is None else valid
    w = np.ones(len(y)) if w is None else w
    aps = []
    for c in range(y.shape[1]):
        keep = valid[:, c] & (y[:, c] >= 0) & (w > 0)
        relevant = y[keep, c] > 0
        if relevant.any():
            aps.append(
                average_precision_score(
                    relevant, s[keep, c], sample_weight=w[keep]
                )
            )
    return np.mean(aps)


def map_rows_oracle(y, s, valid=None, w=None):
    """sklearn AP per row over its valid items, weighted mean over rows with
    a positive."""
    valid = np.ones(y.shape, bool) if valid is None else valid
    w = np.ones(len(y)) if w is None else w
    values, weights = [], []
    for row_y, row_s, keep, weight in zip(y, s, valid, w):
        keep = keep & (row_y >= 0)
        if (row_y[keep] > 0).any() and weight > 0:
            values.append(average_precision_score(row_y[keep] > 0, row_s[keep]))
            weights.append(weight)
    return np.average(values, weights=weights)


def recall_bruteforce(relevant, scores, k):
    """Mean over every tie-breaking order of the share of relevant items in
    the top k."""
    found = []
    for priority in itertools.permutations(range(len(scores))):
        order = np.lexsort((np.array(priority), -scores))
        found.append(relevant[order[:k]].sum())
    return np.mean(found) / relevant.sum()


def hit_rate_bruteforce(relevant, scores, k):
    """Mean over every tie-breaking order of whether some relevant item is
    in the top k."""
    hits = []
    for priority in itertools.permutations(range(len(scores))):
        order = np.lexsort((np.array(priority), -scores))
        hits.append(relevant[order[:k]].any())
    return np.mean(hits)


def recall_by_groups(relevant, scores, k):
    """Expected recall@k, walking the tie groups from the top: a group that
    straddles the k boundary hands out the slots left evenly."""
    hits, slots = 0.0, k
    for value in sorted(set(scores.tolist()), reverse=True):
        group = scores == value
        size = group.sum()
        hits += relevant[group].sum() * min(max(slots, 0), size) / size
        slots -= size
    return hits / relevant.sum()


def accumulate(metric, y, s, batch_size, w=None):
    for i in range(0, len(s), batch_size):
        part = (
            {key: v[i : i + batch_size] for key, v in y.items()}
            if isinstance(y, dict)
            else y[i : i + batch_size]
        )
        metric.update_state(
            part,
            s[i : i + batch_size],
            None if w is None else w[i : i + batch_size],
        )
    return float(metric.result())


# ------------------------------------------------------ SpearmanCorrelation


@pytest.mark.backend
@pytest.mark.parametrize(
    "true_shape, pred_shape",
    [((-1,), (-1,)), ((-1, 1), (-1, 1)), ((-1,), (-1, 1))],
)
def test_spearman_axis0_equals_scipy_over_all_batches(
    rng, true_shape, pred_shape
):
    y = rng.integers(0, 6, 300).astype("float32")
    s = rng.integers(0, 9, 300).astype("float32") + 0.5 * y
    metric = SpearmanCorrelation()
    value = accumulate(
        metric, y.reshape(true_shape), s.reshape(pred_shape), batch_size=64
    )
    np.testing.assert_allclose(value, spearman_oracle(y, s), rtol=1e-5)
    # Not the mean of per-batch correlations.
    per_batch = np.mean(
        [
            spearman_oracle(y[i : i + 64], s[i : i + 64])
            for i in range(0, 300, 64)
        ]
    )
    assert abs(value - per_batch) > 1e-4


@pytest.mark.backend
def test_spearman_axis0_columns_mask_and_constant_column(rng):
    y = rng.integers(0, 4, (120, 3)).astype("float32")
    s = rng.integers(0, 4, (120, 3)).astype("float32") + y
    y[:, 2] = 1.0  # a constant column has no correlation: left out
    mask = rng.random(y.shape) > 0.3
    metric = SpearmanCorrelation()
    value = accumulate(metric, {"labels": y, "mask": mask}, s, batch_size=50)
    expected = np.mean(
        [spearman_oracle(y[mask[:, c], c], s[mask[:, c], c]) for c in range(2)]
    )
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_spearman_axis0_sample_weight(rng):
    y = rng.integers(0, 5, 200).astype("float32")
    s = rng.integers(0, 5, 200).astype("float32") + y
    w = rng.choice([0.0, 0.5, 1.0, 3.0], size=200)
    value = accumulate(SpearmanCorrelation(), y, s, batch_size=64, w=w)
    np.testing.assert_allclose(value, spearman_oracle(y, s, w), rtol=1e-5)
    # Unit weights give scipy's value, (B, 1) weights are accepted.
    metric = SpearmanCorrelation()
    metric.update_state(y, s, np.ones((200, 1)))
    np.testing.assert_allclose(metric.result(), spearman_oracle(y, s), 1e-5)


def test_spearman_axis_minus1_rows(rng):
    y = rng.integers(0, 4, (40, 7)).astype("float32")
    s = rng.integers(0, 4, (40, 7)).astype("float32")
    mask = rng.random(y.shape) > 0.2
    mask[0] = [True, True, False, False, False, False, False]
    y[1] = 2.0  # constant target: no correlation, left out
    w = rng.choice([0.0, 1.0, 2.5], size=40)
    metric = SpearmanCorrelation(axis=-1)
    value = accumulate(
        metric, {"labels": y, "mask": mask}, s, batch_size=16, w=w
    )
    values, weights = [], []
    for row_y, row_s, keep, weight in zip(y, s, mask, w):
        rho = (
            spearman_oracle(row_y[keep], row_s[keep])
            if keep.sum() > 1
            else np.nan
        )
        if np.isfinite(rho) and weight > 0:
            values.append(rho)
            weights.append(weight)
    np.testing.assert_allclose(value, np.average(values, weights=weights), 1e-5)


def test_spearman_unbatched_list_and_empty():
    metric = SpearmanCorrelation(axis=-1)
    assert float(metric.result()) == 0.0
    y, s = np.array([3.0, 1.0, 2.0, 2.0]), np.array([0.2, 0.1, 0.4, 0.4])
    metric.update_state(y, s)
    np.testing.assert_allclose(metric.result(), spearmanr(y, s).statistic, 1e-6)
    assert float(SpearmanCorrelation().result()) == 0.0


def test_spearman_nan_score_gives_nan():
    metric = SpearmanCorrelation()
    metric.update_state([1.0, 2.0, 3.0], [0.1, np.nan, 0.3])
    assert np.isnan(float(metric.result()))
    # A masked NaN takes no part.
    metric = SpearmanCorrelation()
    y = {"labels": np.array([1.0, 2.0, 3.0]), "mask": [True, False, True]}
    metric.update_state(y, np.array([0.1, np.nan, 0.3]))
    assert float(metric.result()) == pytest.approx(1.0)


# ----------------------------------------------------- MeanAveragePrecision


def test_average_precision_hand_cases():
    metric = MeanAveragePrecision(axis=-1)
    # One threshold for the tied pair: precision 1/2 at recall 1.
    metric.update_state([[1, 0]], [[0.5, 0.5]])
    assert float(metric.result()) == pytest.approx(0.5)
    metric.reset_state()
    metric.update_state([[0, 1, 1]], [[0.9, 0.9, 0.1]])
    assert float(metric.result()) == pytest.approx((1 / 2 + 2 / 3) / 2)


@pytest.mark.backend
def test_map_axis0_equals_sklearn_macro(rng):
    y = (rng.random((250, 5)) > 0.75).astype("float32")
    y[:, 3] = 0.0  # a class without a positive is left out
    s = rng.integers(0, 6, (250, 5)).astype("float32")
    value = accumulate(MeanAveragePrecision(), y, s, batch_size=64)
    keep = [0, 1, 2, 4]
    expected = average_precision_score(y[:, keep], s[:, keep], average="macro")
    np.testing.assert_allclose(value, expected, rtol=1e-5)


@pytest.mark.backend
def test_map_axis0_sample_weight_mask_and_padding(rng):
    y = rng.integers(-1, 3, (200, 3)).astype("float32")  # -1 pads, 2 counts
    s = rng.integers(0, 5, (200, 3)).astype("float32")
    mask = rng.random(y.shape) > 0.2
    w = rng.choice([0.0, 0.3, 1.0, 2.0], size=200)
    metric = MeanAveragePrecision()
    value = accumulate(metric, {"labels": y, "mask": mask}, s, 48, w=w)
    np.testing.assert_allclose(
        value, map_columns_oracle(y, s, mask, w), rtol=1e-5
    )


def test_map_axis_minus1_rows(rng):
    y = rng.integers(-1, 3, (60, 8)).astype("float32")
    y[:5] = 0.0  # rows without a positive are left out
    s = rng.integers(0, 4, (60, 8)).astype("float32")
    mask = rng.random(y.shape) > 0.2
    w = rng.choice([0.0, 1.0, 2.0], size=(60, 1))
    metric = MeanAveragePrecision(axis=-1)
    value = accumulate(metric, {"labels": y, "mask": mask}, s, 25, w=w)
    np.testing.assert_allclose(
        value, map_rows_oracle(y, s, mask, w[:, 0]), rtol=1e-5
    )


# --------------------------------------------------------------- RecallAtK


def test_recall_hand_case():
    metric = RecallAtK(k=1)
    metric.update_state([[1, 0]], [[0.5, 0.5]])
    assert float(metric.result()) == pytest.approx(0.5)


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_recall_matches_bruteforce_over_tie_breaks(rng, k):
    y = rng.integers(-1, 3, (30, 6)).astype("float32")
    s = rng.integers(0, 3, (30, 6)).astype("float32")
    mask = rng.random(y.shape) > 0.15
    metric = RecallAtK(k=k)
    value = accumulate(metric, {"labels": y, "mask": mask}, s, batch_size=8)
    expected = []
    for row_y, row_s, keep in zip(y, s, mask):
        keep = keep & (row_y >= 0)
        relevant = row_y[keep] > 0
        if relevant.any():
            expected.append(recall_bruteforce(relevant, row_s[keep], k))
    np.testing.assert_allclose(value, np.mean(expected), rtol=1e-5)


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_hit_rate_matches_bruteforce_over_tie_breaks(rng, k):
    y = rng.integers(-1, 3, (30, 6)).astype("float32")
    s = rng.integers(0, 3, (30, 6)).astype("float32")
    mask = rng.random(y.shape) > 0.15
    w = rng.choice([0.0, 1.0, 3.0], size=30)
    value = accumulate(
        HitRateAtK(k=k), {"labels": y, "mask": mask}, s, batch_size=8, w=w
    )
    expected, weights = [], []
    for row_y, row_s, keep, weight in zip(y, s, mask, w):
        keep = keep & (row_y >= 0)
        relevant = row_y[keep] > 0
        if relevant.any() and weight > 0:
            expected.append(hit_rate_bruteforce(relevant, row_s[keep], k))
            weights.append(weight)
    np.testing.assert_allclose(
        value, np.average(expected, weights=weights), rtol=1e-5
    )
    # axis=0: each column is a list of all the samples seen.
    metric = HitRateAtK(k=k, axis=0)
    cols = accumulate(metric, np.maximum(y, 0).T, s.T, batch_size=4)
    per_column = [
        hit_rate_bruteforce(a > 0, b, k)
        for a, b in zip(np.maximum(y, 0), s)
        if (a > 0).any()
    ]
    np.testing.assert_allclose(cols, np.mean(per_column), rtol=1e-5)


def test_hit_rate_is_not_recall():
    y, s = [[1, 0, 1, 0]], [[0.9, 0.8, 0.1, 0.0]]
    hit, recall = HitRateAtK(k=1), RecallAtK(k=1)
    hit.update_state(y, s)
    recall.update_state(y, s)
    assert float(hit.result()) == 1.0 and float(recall.result()) == 0.5
    assert HitRateAtK(k=4).name == "hit_rate_at_4"
    restored = HitRateAtK.from_config(HitRateAtK(k=3, axis=0).get_config())
    assert (restored.k, restored.axis) == (3, 0)


def test_default_capacity_is_modest_for_wide_outputs():
    from keras_sodeep.metrics import default_capacity

    assert default_capacity(1) == 100_000
    assert default_capacity(1000) == 4096
    metric = MeanAveragePrecision()
    metric.update_state(np.ones((4, 1000)), np.zeros((4, 1000)))
    assert tuple(metric.scores_seen.shape) == (4096, 1000)


def test_recall_long_lists_weights_and_axis0(rng):
    y = rng.integers(0, 2, (20, 50)).astype("float32")
    s = rng.integers(0, 10, (20, 50)).astype("float32")
    w = rng.choice([0.0, 1.0, 4.0], size=20)
    value = accumulate(RecallAtK(k=10), y, s, batch_size=7, w=w)
    per_list = [recall_by_groups(a > 0, b, 10) for a, b in zip(y, s)]
    np.testing.assert_allclose(value, np.average(per_list, weights=w), 1e-5)
    # axis=0: each column is a list of all the samples seen.
    metric = RecallAtK(k=10, axis=0)
    value = accumulate(metric, y.T, s.T, batch_size=16)
    np.testing.assert_allclose(value, np.mean(per_list), rtol=1e-5)


# ------------------------------------------------------ shared behaviours


@pytest.mark.backend
@pytest.mark.parametrize(
    "metric",
    [
        SpearmanCorrelation(axis=-1),
        MeanAveragePrecision(axis=-1),
        RecallAtK(k=3),
    ],
)
def test_tie_order_does_not_matter(rng, metric):
    y = rng.integers(0, 3, (25, 9)).astype("float32")
    s = rng.integers(0, 3, (25, 9)).astype("float32")
    metric.update_state(y, s)
    first = float(metric.result())
    perm = rng.permutation(9)
    metric.reset_state()
    metric.update_state(y[:, perm], s[:, perm])
    np.testing.assert_allclose(metric.result(), first, rtol=1e-6)


@pytest.mark.backend
def test_capacity_overflow_is_nan_and_reset_recovers(rng):
    y = rng.normal(size=12).astype("float32")
    s = rng.normal(size=12).astype("float32")
    metric = SpearmanCorrelation(capacity=10)
    metric.update_state(y[:6], s[:6])
    metric.update_state(y[6:10], s[6:10])
    np.testing.assert_allclose(
        metric.result(), spearmanr(y[:10], s[:10])[0], 1e-5
    )
    metric.update_state(y[10:], s[10:])
    assert np.isnan(float(metric.result()))
    metric.reset_state()
    assert float(metric.result()) == 0.0
    metric.update_state(y[:12], s[:12])  # one batch larger than capacity
    assert np.isnan(float(metric.result()))
    metric.reset_state()
    metric.update_state(y[2:9], s[2:9])
    np.testing.assert_allclose(
        metric.result(), spearmanr(y[2:9], s[2:9])[0], 1e-5
    )


@pytest.mark.parametrize(
    "metric",
    [
        SpearmanCorrelation(axis=-1, capacity=7, name="rho"),
        MeanAveragePrecision(capacity=33, dtype="float32"),
        RecallAtK(k=5, axis=0, capacity=9),
    ],
)
def test_get_config_round_trip(metric):
    config = metric.get_config()
    clone = type(metric).from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(metric)
    )
    assert type(restored) is type(metric)
    assert restored.get_config() == config
    assert restored._direction == "up"


def test_default_names():
    assert SpearmanCorrelation().name == "spearman"
    assert MeanAveragePrecision().name == "map"
    assert RecallAtK(k=4).name == "recall_at_4"
    assert RecallAtK(k=np.int64(2)).k == 2


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda: RecallAtK(k=0),
            r"`k` should be a positive int. Received: k=0",
        ),
        (lambda: RecallAtK(k=2.5), "`k` should be a positive int"),
        (lambda: RecallAtK(k=True), "`k` should be a positive int"),
        (lambda: SpearmanCorrelation(axis=1), "`axis` should be 0"),
        (lambda: MeanAveragePrecision(axis="0"), "`axis` should be 0"),
        (lambda: SpearmanCorrelation(capacity=0), "`capacity` should be"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "y_true, y_pred, kwargs, match",
    [
        (np.zeros((4, 3)), np.zeros((4, 2)), {}, "same shape"),
        (np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), {}, "rank 1 or 2"),
        (
            np.array(["a", "b"]),
            np.zeros(2),
            {},
            "`y_true` should be a numeric tensor",
        ),
        (np.zeros(3), np.array(["a", "b", "c"]), {}, "`y_pred` should be"),
        (
            {"labels": np.zeros((4, 3)), "mask": np.ones((4, 2))},
            np.zeros((4, 3)),
            {},
            "`mask` should have the shape",
        ),
        ({"y": np.zeros(3)}, np.zeros(3), {}, "keys 'labels'"),
        (
            np.zeros((4, 3)),
            np.zeros((4, 3)),
            {"sample_weight": np.ones((4, 2))},
            "`sample_weight` should hold one weight",
        ),
    ],
)
@pytest.mark.parametrize("axis", [0, -1])
def test_bad_inputs(y_true, y_pred, kwargs, match, axis):
    with pytest.raises(ValueError, match=match):
        MeanAveragePrecision(axis=axis).update_state(y_true, y_pred, **kwargs)


def test_column_count_must_not_change():
    metric = MeanAveragePrecision()
    metric.update_state(np.ones((4, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="should have 3 columns"):
        metric.update_state(np.ones((4, 2)), np.zeros((4, 2)))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_graph_mode_and_xla(rng, jit_compile):
    y = (rng.random((90, 2)) > 0.6).astype("float32")
    s = rng.integers(0, 5, (90, 2)).astype("float32")
    metrics = [
        MeanAveragePrecision(capacity=5000),
        SpearmanCorrelation(axis=-1),
        RecallAtK(k=1),
    ]
    for m in metrics:
        m.update_state(y[:1], s[:1])  # builds the buffers
        m.reset_state()
    spec = tf.TensorSpec((None, 2), "float32")

    @tf.function(jit_compile=jit_compile, input_signature=[spec, spec])
    def step(a, b):
        for m in metrics:
            m.update_state(a, b)
        return [m.result() for m in metrics]

    for i in range(0, 90, 40):
        values = step(y[i : i + 40], s[i : i + 40])
    # Inside the compiled step, the axis=0 metric sorts again only once the
    # samples have doubled since its last sort (at 40 and 80, not at 90);
    # called eagerly, its result is exact.
    np.testing.assert_allclose(
        values[0],
        average_precision_score(y[:80], s[:80], average="macro"),
        1e-5,
    )
    assert not np.isclose(
        values[0], average_precision_score(y, s, average="macro")
    )
    np.testing.assert_allclose(
        metrics[0].result(),
        average_precision_score(y, s, average="macro"),
        1e-5,
    )
    rows = [spearman_oracle(a, b) for a, b in zip(y, s)]
    rows = [r for r in rows if np.isfinite(r)]
    np.testing.assert_allclose(values[1], np.mean(rows), rtol=1e-5)
    per_row = [recall_by_groups(a > 0, b, 1) for a, b in zip(y, s) if a.any()]
    np.testing.assert_allclose(values[2], np.mean(per_row), rtol=1e-5)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_in_model_evaluate_save_load_and_early_stopping(rng, tmp_path):
    x = rng.normal(size=(200, 4)).astype("float32")
    y = (x[:, :3] + rng.normal(size=(200, 3)) > 0.5).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(
        optimizer="adam",
        loss="mse",
        metrics=[
            SpearmanCorrelation(capacity=1000),
            MeanAveragePrecision(capacity=1000),
            MeanAveragePrecision(axis=-1, name="map_rows"),
            RecallAtK(k=1),
        ],
    )
    logs = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    s = model.predict(x, verbose=0)
    rho = np.mean([spearman_oracle(y[:, c], s[:, c]) for c in range(3)])
    np.testing.assert_allclose(logs["spearman"], rho, rtol=1e-5)
    np.testing.assert_allclose(logs["map"], map_columns_oracle(y, s), 1e-5)
    np.testing.assert_allclose(logs["map_rows"], map_rows_oracle(y, s), 1e-5)
    recall = np.mean(
        [recall_by_groups(a, b, 1) for a, b in zip(y, s) if a.any()]
    )
    np.testing.assert_allclose(logs["recall_at_1"], recall, rtol=1e-5)

    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    again = loaded.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    for key, value in logs.items():
        np.testing.assert_allclose(again[key], value, rtol=1e-6)
    by_name = {m.name: m for m in loaded.metrics[-1].metrics}
    assert isinstance(by_name["spearman"], SpearmanCorrelation)
    assert by_name["map"].capacity == 1000
    assert by_name["map_rows"].axis == -1

    stop = keras.callbacks.EarlyStopping(monitor="val_spearman", patience=5)
    history = loaded.fit(
        x,
        y,
        validation_data=(x, y),
        epochs=2,
        batch_size=50,
        verbose=0,
        callbacks=[stop],
    )
    assert stop.monitor_op is keras.ops.greater
    assert len(history.history["val_spearman"]) == 2


def test_recall_axis0_sample_weight(rng):
    y = rng.integers(0, 2, (7, 2)).astype("float32")
    y[0] = 1.0
    s = rng.integers(0, 3, (7, 2)).astype("float32")
    w = np.array([0.0, 1.0, 2.0, 0.5, 1.0, 3.0, 1.0])
    value = accumulate(RecallAtK(k=3, axis=0), y, s, batch_size=3, w=w)
    expected = []
    for c in range(2):
        keep = w > 0
        relevant, scores, weight = y[keep, c] > 0, s[keep, c], w[keep]
        found = []
        for priority in itertools.permutations(range(len(scores))):
            top = np.lexsort((np.array(priority), -scores))[:3]
            found.append(weight[top][relevant[top]].sum())
        expected.append(np.mean(found) / weight[relevant].sum())
    np.testing.assert_allclose(value, np.mean(expected), rtol=1e-5)


@pytest.mark.backend
@pytest.mark.parametrize("axis", [0, -1])
def test_unbatched_list(rng, axis):
    y = rng.integers(-1, 3, 12).astype("float32")
    y[0] = 1.0
    s = rng.integers(0, 4, 12).astype("float32")
    keep = y >= 0
    expected = average_precision_score(y[keep] > 0, s[keep])
    metric = MeanAveragePrecision(axis=axis)
    metric.update_state(y, s)
    np.testing.assert_allclose(metric.result(), expected, rtol=1e-5)
    metric = RecallAtK(k=4, axis=axis)
    metric.update_state(y, s)
    np.testing.assert_allclose(
        metric.result(), recall_by_groups(y[keep] > 0, s[keep], 4), 1e-5
    )
