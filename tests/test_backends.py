"""Backends and mixed precision.

Every test marked ``backend`` runs on the backend of ``KERAS_BACKEND`` (CI
runs them under JAX and PyTorch as well as TensorFlow): gradients through
each loss, sorters trained with ``fit``, a model with every loss and
metric, and the mixed-precision policies.
``test_losses_and_metrics_match_on_jax`` runs the JAX side in a fresh
process and compares with TensorFlow in this one.
"""

import keras
import numpy as np
import pytest
from backend_workers import (
    compute_values,
    loss_value_and_grad,
    make_sorter,
    parity_inputs,
    run_worker,
)
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import average_precision_score

from keras_sodeep.losses import (
    MeanAveragePrecisionLoss,
    RankLoss,
    RankTripletLoss,
    RecallAtKLoss,
    SpearmanLoss,
)
from keras_sodeep.metrics import (
    MeanAveragePrecision,
    RecallAtK,
    SpearmanCorrelation,
)
from keras_sodeep.ranking import NeuralSortRanker, SigmoidRanker, SorterRanker
from keras_sodeep.sorters import CNNSorter, GRUSorter, LSTMSorter

HALF = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


@pytest.fixture
def policy(request):
    """Sets a global dtype policy for the test, then float32 again."""
    keras.config.set_dtype_policy(request.param)
    try:
        yield request.param
    finally:
        keras.config.set_dtype_policy("float32")


# ---------------------------------------------------------------------------
# TensorFlow and JAX agree.
# ---------------------------------------------------------------------------


# About two minutes, most of it the JAX process compiling every case: CI
# runs it in its step of heavy tests.
@pytest.mark.heavy
@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="compares JAX (in a subprocess) with TensorFlow (here)",
)
def test_losses_and_metrics_match_on_jax(tmp_path):
    pytest.importorskip("jax")
    inputs = parity_inputs()
    np.savez(tmp_path / "inputs.npz", **inputs)
    keras.utils.set_random_seed(0)
    sorter = make_sorter()
    sorter.save_weights(str(tmp_path / "sorter.weights.h5"))
    jax_values = run_worker(
        "values", tmp_path / "inputs.npz", tmp_path / "jax.json", "jax"
    )
    assert jax_values["backend"] == "jax"
    tf_values = compute_values(inputs, sorter)
    assert sorted(jax_values["losses"]) == sorted(tf_values["losses"])
    for name, expected in tf_values["losses"].items():
        got = jax_values["losses"][name]
        np.testing.assert_allclose(
            got["value"], expected["value"], rtol=1e-5, atol=1e-5, err_msg=name
        )
        grad = np.asarray(expected["grad"])
        assert np.all(np.isfinite(grad)) and np.any(grad != 0), name
        # The sorters' counting front end sums hundreds of sigmoids per
        # item; the backends' float32 summation orders differ by ~1e-6.
        np.testing.assert_allclose(
            got["grad"], grad, rtol=1e-4, atol=1e-5, err_msg=name
        )
    for name, expected in tf_values["metrics"].items():
        np.testing.assert_allclose(
            jax_values["metrics"][name], expected, atol=1e-6, err_msg=name
        )


# ---------------------------------------------------------------------------
# Gradients on the current backend.
# ---------------------------------------------------------------------------


def _exact_metric(name, labels, scores):
    """The exact quantity each loss stands in for (higher is better)."""
    if name == "spearman":
        return spearmanr(labels, scores).statistic
    if name == "map":
        return average_precision_score(labels, scores)
    ranks = rankdata(-scores)
    if name == "recall":
        # Mean over k of the hit rate: fewer than k negatives above the
        # best positive.
        above = np.sum(scores[labels == 0] > scores[labels == 1].max())
        return np.mean([above < k for k in (1, 2, 4)])
    if name == "triplet":
        hardest = ranks[labels == 0].min()
        return -np.maximum(0.0, 1.0 + ranks[labels == 1] - hardest).sum()
    return -ranks[labels == 1].sum()


LOSSES = {
    "spearman": lambda r: SpearmanLoss(ranker=r),
    "map": lambda r: MeanAveragePrecisionLoss(ranker=r),
    "recall": lambda r: RecallAtKLoss((1, 2, 4), ranker=r, temperature=0.5),
    "triplet": lambda r: RankTripletLoss(1.0, ranker=r),
    "rank": lambda r: RankLoss(ranker=r),
}


@pytest.mark.backend
@pytest.mark.parametrize("ranker", ["sigmoid", "neuralsort", "sorter"])
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_a_gradient_step_improves_the_exact_metric(rng, loss_name, ranker):
    n = 30
    scores = rng.normal(size=n).astype("float32")
    if loss_name == "spearman":
        labels = rng.normal(size=n).astype("float32")
    else:
        # Positives at ranks 5, 12, 20 and 27: four negatives above the
        # best, so that one step can move the hit rates.
        labels = np.zeros(n, "float32")
        labels[np.argsort(-scores)[[4, 11, 19, 26]]] = 1.0
    if ranker == "sorter":
        # An untrained sorter ranks poorly: only check that the gradient
        # flows through it (the soft hits of the recall loss all vanish).
        ranker = SorterRanker(LSTMSorter(None, units=8, num_layers=1))
        loss = LOSSES[loss_name](ranker)
        value, grad = loss_value_and_grad(loss, labels, scores, None)
        assert np.isfinite(value) and np.all(np.isfinite(grad))
        assert loss_name == "recall" or np.any(grad != 0)
        return
    ranker = (
        SigmoidRanker(0.3) if ranker == "sigmoid" else NeuralSortRanker(0.3)
    )
    loss = LOSSES[loss_name](ranker)
    value, grad = loss_value_and_grad(loss, labels, scores, None)
    assert np.isfinite(value)
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)
    stepped = scores - 0.5 * grad / np.abs(grad).max()
    before = _exact_metric(loss_name, labels, scores)
    after = _exact_metric(loss_name, labels, stepped)
    assert after > before, (before, after)


# ---------------------------------------------------------------------------
# Training on the current backend.
# ---------------------------------------------------------------------------


def _normalized_ranks(x):
    return np.stack([rankdata(-row) / len(row) for row in x])


@pytest.mark.backend
@pytest.mark.parametrize(
    "make",
    [
        lambda: LSTMSorter(8, units=16, num_layers=1),
        lambda: CNNSorter(8, filters=8, num_blocks=2),
        lambda: GRUSorter(units=8, num_layers=1, context_units=4),
    ],
    ids=["lstm", "cnn", "gru"],
)
def test_sorters_learn_with_fit(rng, make):
    x = rng.normal(size=(512, 8)).astype("float32")
    target = _normalized_ranks(x).astype("float32")
    sorter = make()
    sorter.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    history = sorter.fit(x, target, epochs=4, batch_size=64, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses


def _every_loss_model(sorter, names=None):
    """A model with one output per loss; each output has its metrics."""
    heads = {
        "spearman": (SpearmanLoss(), 1, [SpearmanCorrelation(capacity=256)]),
        "spearman_sorter": (
            SpearmanLoss(ranker=sorter, axis=-1),
            6,
            [SpearmanCorrelation(axis=-1)],
        ),
        "map": (
            MeanAveragePrecisionLoss(),
            3,
            [
                MeanAveragePrecision(capacity=256),
                RecallAtK(8, axis=0, capacity=256),
            ],
        ),
        "recall": (RecallAtKLoss((1, 2)), 4, []),
        "triplet": (RankTripletLoss(), 4, []),
        "rank": (
            RankLoss(ranker=NeuralSortRanker()),
            6,
            [MeanAveragePrecision(axis=-1), RecallAtK(2)],
        ),
    }
    if names is not None:
        heads = {name: heads[name] for name in names}
    inputs = keras.Input((5,))
    outputs = {
        name: keras.layers.Dense(units, name=name)(inputs)
        for name, (_, units, _) in heads.items()
    }
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss={name: head[0] for name, head in heads.items()},
        metrics={name: head[2] for name, head in heads.items()},
    )
    return model


def _every_loss_data(rng):
    x = rng.normal(size=(96, 5)).astype("float32")
    relevance = (rng.random((96, 6)) < 0.3).astype("float32")
    relevance[:, 0] = 1.0
    return x, {
        "spearman": x @ rng.normal(size=5).astype("float32"),
        "spearman_sorter": x @ rng.normal(size=(5, 6)).astype("float32"),
        "map": (x[:, :3] + rng.normal(size=(96, 3)) > 0).astype("float32"),
        "recall": rng.integers(0, 4, size=(96,)).astype("float32"),
        "triplet": rng.integers(0, 4, size=(96,)).astype("float32"),
        "rank": relevance,
    }


# This test and `test_fit_under_mixed_precision` compile a model of every
# loss and its metrics, one to three minutes each even on TensorFlow: they
# are marked `heavy` (CI's step of heavy tests runs them on TensorFlow)
# as well as `backend` (CI's JAX and PyTorch steps run them).
@pytest.mark.heavy
@pytest.mark.backend
def test_every_loss_and_metric_fit_evaluate_save_and_load(rng, tmp_path):
    x, targets = _every_loss_data(rng)
    # An untrained sorter's own gradient is that of its spread estimate,
    # small and sparse; the smooth one trains the head that feeds it.
    sorter = GRUSorter(
        units=8, num_layers=1, context_units=4, gradient_temperature=0.3
    )
    model = _every_loss_model(sorter)
    kernels = {
        name: keras.ops.convert_to_numpy(model.get_layer(name).kernel)
        for name in targets
    }
    history = model.fit(x, targets, epochs=2, batch_size=48, verbose=0)
    assert all(np.all(np.isfinite(v)) for v in history.history.values())
    for name, kernel in kernels.items():
        trained = keras.ops.convert_to_numpy(model.get_layer(name).kernel)
        assert np.abs(trained - kernel).max() > 1e-3, name
    # The metrics, as logged, against their oracles.
    logs = model.evaluate(
        x, targets, batch_size=96, verbose=0, return_dict=True
    )
    pred = model.predict(x, batch_size=96, verbose=0)
    rho = spearmanr(targets["spearman"], pred["spearman"][:, 0]).statistic
    np.testing.assert_allclose(logs["spearman_spearman"], rho, atol=1e-5)
    ap = average_precision_score(targets["map"], pred["map"], average="macro")
    np.testing.assert_allclose(logs["map_map"], ap, atol=1e-5)
    row_ap = np.mean(
        [
            average_precision_score(t, p)
            for t, p in zip(targets["rank"], pred["rank"])
        ]
    )
    np.testing.assert_allclose(logs["rank_map"], row_ap, atol=1e-5)
    # A `.keras` round trip keeps the losses, the metrics and the sorter.
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    reloaded = loaded.evaluate(
        x, targets, batch_size=96, verbose=0, return_dict=True
    )
    for name, value in logs.items():
        np.testing.assert_allclose(
            reloaded[name], value, rtol=1e-5, err_msg=name
        )


# ---------------------------------------------------------------------------
# Mixed precision.
# ---------------------------------------------------------------------------


def _mixed_cases(sorter):
    return {
        "spearman_default": (SpearmanLoss(), "y"),
        "spearman_neuralsort": (
            SpearmanLoss(ranker=NeuralSortRanker(0.01)),
            "y",
        ),
        "spearman_sorter": (SpearmanLoss(ranker=sorter, axis=-1), "rows"),
        "map": (MeanAveragePrecisionLoss(axis=-1), "relevance"),
        "map_neuralsort": (
            MeanAveragePrecisionLoss(ranker=NeuralSortRanker(0.01), axis=-1),
            "relevance",
        ),
        "recall": (RecallAtKLoss(), "relevance"),
        "triplet": (RankTripletLoss(), "relevance"),
        "rank": (RankLoss(), "relevance"),
    }


@pytest.mark.backend
@pytest.mark.parametrize("policy", sorted(HALF), indirect=True)
def test_losses_run_in_float32_under_mixed_precision(rng, policy):
    # Long lists and widely spread scores: ranks above 256 are not exact in
    # bfloat16, and NeuralSort's logits overflow float16.
    n = 600
    scores = {
        "y": rng.normal(size=(n,)) * 30,
        "rows": rng.normal(size=(2, 50)) * 30,
        "relevance": rng.normal(size=(3, n)) * 30,
    }
    # Half-precision model outputs; the float32 reference sees the same.
    half = {k: keras.ops.cast(v, HALF[policy]) for k, v in scores.items()}
    exact = {k: keras.ops.convert_to_numpy(v) for k, v in half.items()}
    exact = {k: v.astype("float32") for k, v in exact.items()}
    labels = {
        "y": rng.normal(size=(n,)).astype("float32"),
        "rows": rng.normal(size=(2, 50)).astype("float32"),
        "relevance": (rng.random((3, n)) < 0.2).astype("float32"),
    }
    keras.utils.set_random_seed(0)
    sorter = LSTMSorter(None, units=8, num_layers=1)
    cases = _mixed_cases(sorter)
    values = {}
    for name, (loss, key) in cases.items():
        assert loss._ranker.compute_dtype == "float32", name
        value = loss(labels[key], half[key])
        assert keras.backend.standardize_dtype(value.dtype) == "float32"
        values[name] = float(value)
        assert np.isfinite(values[name]), name
    # The same losses under the float32 policy, with the sorter's weights.
    keras.config.set_dtype_policy("float32")
    reference = LSTMSorter(None, units=8, num_layers=1)
    reference.build((None, 50))
    reference.set_weights(sorter.get_weights())
    for name, (loss, key) in _mixed_cases(reference).items():
        expected = float(loss(labels[key], exact[key]))
        # The sorter's recurrent layers run in half precision.
        rtol = 1e-2 if name == "spearman_sorter" else 1e-5
        np.testing.assert_allclose(
            values[name], expected, rtol=rtol, err_msg=name
        )


@pytest.mark.backend
@pytest.mark.parametrize("policy", sorted(HALF), indirect=True)
def test_sorter_standardizes_in_float32_under_mixed_precision(rng, policy):
    x = rng.normal(size=(4, 16)).astype("float32")
    keras.utils.set_random_seed(0)
    sorter = GRUSorter(units=8, num_layers=1, context_units=4)
    ranks = sorter(x)
    assert keras.backend.standardize_dtype(ranks.dtype) == "float32"
    # Scores far from zero would lose every digit in half precision before
    # the standardization; the sorter standardizes in float32 first.
    shifted = sorter(x * 1000.0 + 5e4)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(shifted),
        keras.ops.convert_to_numpy(ranks),
        atol=1e-3,
    )
    ranker = SorterRanker(sorter)
    assert ranker.compute_dtype == "float32"
    loss = SpearmanLoss(ranker=ranker, axis=-1)
    value, grad = loss_value_and_grad(loss, x, x[::-1].copy(), None)
    assert np.isfinite(value) and np.all(np.isfinite(grad))


@pytest.mark.heavy
@pytest.mark.backend
@pytest.mark.parametrize("policy", sorted(HALF), indirect=True)
def test_fit_under_mixed_precision(rng, policy):
    x, targets = _every_loss_data(rng)
    names = ["spearman_sorter", "map", "triplet"]
    targets = {name: targets[name] for name in names}
    sorter = GRUSorter(units=8, num_layers=1, context_units=4)
    model = _every_loss_model(sorter, names)
    assert model.get_layer("map").compute_dtype == HALF[policy]
    history = model.fit(x, targets, epochs=2, batch_size=48, verbose=0)
    assert all(np.all(np.isfinite(v)) for v in history.history.values())
    logs = model.evaluate(
        x, targets, batch_size=96, verbose=0, return_dict=True
    )
    assert all(np.isfinite(v) for v in logs.values())
    assert logs["map_map"] > 0.5
