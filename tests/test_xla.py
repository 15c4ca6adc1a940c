"""Every loss, metric and sorter under XLA gives its eager value.

Each test runs the same computation eagerly and inside
``tf.function(jit_compile=True)`` (which fails if XLA cannot compile it),
or through ``model.compile(jit_compile=True)``, and compares the results.
A few values are also checked against scipy / scikit-learn.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import spearmanr
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
from keras_sodeep.ranking import ExactRanker, NeuralSortRanker, exact_rank
from keras_sodeep.sorters import CNNSorter, GRUSorter, LSTMSorter

B, N, D = 6, 10, 4


def _close(a, b):
    np.testing.assert_allclose(
        np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5
    )


def _inputs(kind, rng):
    """(y_true, y_pred) of a kind of problem, as float32 NumPy arrays."""
    scores = rng.normal(size=(B, N)).astype("float32")
    if kind == "regression":
        return rng.normal(size=(B * 2,)).astype("float32"), rng.normal(
            size=(B * 2,)
        ).astype("float32")
    if kind == "lists":
        return rng.normal(size=(B, N)).astype("float32"), scores
    if kind == "masked lists":
        mask = rng.uniform(size=(B, N)) < 0.7
        mask[:, :2] = True
        labels = rng.normal(size=(B, N)).astype("float32")
        return {"labels": labels, "mask": mask}, scores
    if kind == "relevance":
        labels = (rng.uniform(size=(B, N)) < 0.3).astype("float32")
        labels[:, 0] = 1.0
        labels[rng.uniform(size=(B, N)) < 0.1] = -1.0  # padding
        return labels, scores
    if kind == "embeddings":
        labels = np.arange(B * 2) % 3
        return labels, rng.normal(size=(B * 2, D)).astype("float32")
    raise ValueError(kind)


LOSS_CASES = {
    "spearman default axis 0": (SpearmanLoss, {}, "regression"),
    "spearman rows l1": (
        SpearmanLoss,
        {"axis": -1, "l1_weight": 0.5},
        "lists",
    ),
    "spearman masked": (SpearmanLoss, {"axis": -1}, "masked lists"),
    "spearman neuralsort": (
        SpearmanLoss,
        {"axis": -1, "ranker": NeuralSortRanker()},
        "masked lists",
    ),
    "spearman gru": (
        SpearmanLoss,
        {
            "axis": -1,
            "ranker": GRUSorter(units=4, num_layers=1, context_units=2),
        },
        "masked lists",
    ),
    "spearman lstm fixed": (
        SpearmanLoss,
        {"axis": -1, "ranker": LSTMSorter(N + 2, units=4, num_layers=1)},
        "masked lists",
    ),
    "spearman cnn": (
        SpearmanLoss,
        {"axis": -1, "ranker": CNNSorter(N, filters=4, num_blocks=2)},
        "lists",
    ),
    "map columns": (MeanAveragePrecisionLoss, {}, "relevance"),
    "map rows": (MeanAveragePrecisionLoss, {"axis": -1}, "relevance"),
    "map embeddings": (MeanAveragePrecisionLoss, {}, "embeddings"),
    "recall": (RecallAtKLoss, {"k": (1, 2)}, "relevance"),
    "recall embeddings": (RecallAtKLoss, {"k": (1, 4)}, "embeddings"),
    "triplet": (RankTripletLoss, {"margin": 2.0}, "relevance"),
    "triplet embeddings": (RankTripletLoss, {}, "embeddings"),
    "rank": (RankLoss, {}, "relevance"),
    "rank embeddings": (RankLoss, {}, "embeddings"),
}


def _value_and_grad(loss, y_true, y_pred, sample_weight):
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        value = loss(y_true, y_pred, sample_weight=sample_weight)
    return value, tape.gradient(value, y_pred)


@pytest.mark.parametrize("case", sorted(LOSS_CASES))
def test_loss_and_gradient_under_xla(case, rng):
    cls, kwargs, kind = LOSS_CASES[case]
    loss = cls(**kwargs)
    y_true, y_pred = _inputs(kind, rng)
    y_pred = tf.constant(y_pred)
    shape = tuple(y_pred.shape[:1])
    if (
        kind == "relevance"
        and kwargs.get("axis", 0) == 0
        and cls in (MeanAveragePrecisionLoss,)
    ):
        shape += (1,)  # one weight per item of the (B, C) columns
    weight = rng.uniform(0.5, 2.0, size=shape).astype("float32")
    eager = _value_and_grad(loss, y_true, y_pred, weight)
    compiled = tf.function(_value_and_grad, jit_compile=True)
    xla = compiled(loss, y_true, y_pred, weight)
    assert np.isfinite(float(eager[0]))
    _close(xla[0], eager[0])
    _close(xla[1], eager[1])


def test_spearman_loss_under_xla_matches_the_rank_formula(rng):
    # Oracle: mean over items and lists of ((r_hat - r) / n)^2 with exact
    # ranks from scipy's Spearman: (1 - rho) (n^2 - 1) / (6 n^2).
    y_true = rng.normal(size=(B, N)).astype("float32")
    y_pred = rng.normal(size=(B, N)).astype("float32")
    loss = SpearmanLoss(ranker=ExactRanker(), axis=-1)
    value = tf.function(loss, jit_compile=True)(y_true, y_pred)
    rho = np.array([spearmanr(t, p)[0] for t, p in zip(y_true, y_pred)])
    expected = np.mean((1 - rho) * (N**2 - 1) / (6 * N**2))
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)


def test_exact_rank_under_xla(rng):
    x = rng.integers(0, 4, size=(B, N)).astype("float32")  # many ties
    mask = rng.uniform(size=(B, N)) < 0.8
    ranks = tf.function(exact_rank, jit_compile=True)(x, mask)
    _close(ranks, exact_rank(x, mask=mask))


# Small buffers: `result()` with axis=0 sorts the filled part of them.
CAPACITY = 64
METRIC_CASES = {
    "spearman batch": (SpearmanCorrelation, {"capacity": CAPACITY}, "lists"),
    "spearman rows": (SpearmanCorrelation, {"axis": -1}, "masked lists"),
    "map batch": (MeanAveragePrecision, {"capacity": CAPACITY}, "relevance"),
    "map rows": (MeanAveragePrecision, {"axis": -1}, "relevance"),
    "recall rows": (RecallAtK, {"k": 3}, "relevance"),
    "recall batch": (
        RecallAtK,
        {"k": 2, "axis": 0, "capacity": CAPACITY},
        "relevance",
    ),
}


@pytest.mark.parametrize("case", sorted(METRIC_CASES))
def test_metric_under_xla(case, rng):
    cls, kwargs, kind = METRIC_CASES[case]
    batches = [_inputs(kind, rng) for _ in range(3)]
    eager = cls(**kwargs)
    compiled = cls(**kwargs)

    @tf.function(jit_compile=True)
    def update(y_true, y_pred):
        compiled.update_state(y_true, y_pred)
        return compiled.result()

    for i, (y_true, y_pred) in enumerate(batches):
        value = update(y_true, y_pred)
        eager.update_state(y_true, y_pred)
        if i == 1:
            # The samples have doubled since the first batch: exact.
            two_batches = eager.result()
            _close(value, two_batches)
    # Inside a compiled step, a batch-axis metric sorts again only when its
    # samples have doubled (3 batches < 4): the value of 2 batches; the
    # running means over rows are exact at every step.
    expected = two_batches if compiled.axis == 0 else eager.result()
    _close(value, expected)
    _close(tf.function(compiled.result, jit_compile=True)(), expected)
    _close(compiled.result(), eager.result())  # eagerly: exact


def test_metrics_under_xla_match_scipy_and_sklearn(rng):
    labels = rng.normal(size=(40, 3)).astype("float32")
    scores = rng.normal(size=(40, 3)).astype("float32")
    relevant = (labels > 0.5).astype("float32")
    spearman = SpearmanCorrelation(capacity=CAPACITY)
    average_precision = MeanAveragePrecision(capacity=CAPACITY)

    @tf.function(jit_compile=True)
    def update(y_true, y_pred, relevance):
        spearman.update_state(y_true, y_pred)
        average_precision.update_state(relevance, y_pred)
        return spearman.result(), average_precision.result()

    # 20 then 40 samples: the second step sorts them all again.
    update(labels[:20], scores[:20], relevant[:20])
    rho, ap = update(labels[20:], scores[20:], relevant[20:])
    expected_rho = np.mean(
        [spearmanr(labels[:, c], scores[:, c])[0] for c in range(3)]
    )
    expected_ap = average_precision_score(relevant, scores, average="macro")
    np.testing.assert_allclose(float(rho), expected_rho, rtol=1e-5)
    np.testing.assert_allclose(float(ap), expected_ap, rtol=1e-5)


SORTERS = {
    "lstm fixed": lambda: LSTMSorter(N, units=4, num_layers=1),
    "lstm generic": lambda: LSTMSorter(None, units=4, num_layers=1),
    "cnn": lambda: CNNSorter(N, filters=4, num_blocks=2),
    "gru": lambda: GRUSorter(units=4, num_layers=1, context_units=2),
}


@pytest.mark.parametrize(
    "name, masked",
    [
        ("cnn", False),
        ("cnn", True),
        ("gru", True),
        ("lstm fixed", True),
        ("lstm generic", False),
    ],
)
def test_sorter_and_its_gradient_under_xla(name, masked, rng):
    sorter = SORTERS[name]()
    scores = tf.constant(rng.normal(size=(B, N)).astype("float32"))
    mask = None
    if masked:
        mask = tf.constant(rng.uniform(size=(B, N)) < 0.7)
    targets = tf.constant(rng.uniform(size=(B, N)).astype("float32"))
    sorter(scores, mask=mask)

    def step(scores, mask):
        with tf.GradientTape() as tape:
            # training=True: batch statistics in the CNN's BatchNorm.
            ranks = sorter(scores, mask=mask, training=True)
            value = keras.ops.mean(keras.ops.square(ranks - targets))
        return ranks, tape.gradient(value, sorter.trainable_variables)

    eager = step(scores, mask)
    xla = tf.function(step, jit_compile=True)(scores, mask)
    _close(xla[0], eager[0])
    for a, b in zip(xla[1], eager[1]):
        _close(a, b)


def _evaluate_both_ways(model, make_loss, make_metrics, x, y, slow=False):
    """Fits one epoch under XLA, then evaluates with and without XLA.

    The comparison runs the same model, weights and loss (a sorter inside a
    loss keeps its weights) compiled again without XLA: eagerly, or as a
    plain graph for the slow recurrent sorters. Metrics are fresh objects.
    """
    loss = make_loss()
    model.compile(
        optimizer="sgd", loss=loss, metrics=make_metrics(), jit_compile=True
    )
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    # Keras silently falls back when a layer does not support XLA.
    assert model.jit_compile is True
    xla = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    model.compile(
        optimizer="sgd",
        loss=loss,
        metrics=make_metrics(),
        jit_compile=False,
        run_eagerly=not slow,
    )
    plain = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert set(xla) == set(plain)
    for key in plain:
        np.testing.assert_allclose(xla[key], plain[key], rtol=1e-4, atol=1e-5)
    return xla


# Each model-level case compiles a training and a test step with XLA, 30
# to 70 s: they are marked `heavy`, and CI runs them in a step of their
# own.
@pytest.mark.heavy
def test_model_compile_jit_spearman(rng):
    x = rng.normal(size=(32, 5)).astype("float32")
    y = (x @ rng.normal(size=(5,))).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    values = _evaluate_both_ways(
        model,
        SpearmanLoss,
        lambda: [SpearmanCorrelation(capacity=CAPACITY)],
        x,
        y,
    )
    assert np.isfinite(values["loss"])


@pytest.mark.slow
def test_model_compile_jit_spearman_with_a_sorter(rng):
    x = rng.normal(size=(32, 5)).astype("float32")
    y = (x @ rng.normal(size=(5,))).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    _evaluate_both_ways(
        model,
        lambda: SpearmanLoss(
            ranker=GRUSorter(units=4, num_layers=1, context_units=2)
        ),
        list,
        x,
        y,
        slow=True,
    )


@pytest.mark.heavy
def test_model_compile_jit_map_and_metrics(rng):
    x = rng.normal(size=(32, 5)).astype("float32")
    y = (x[:, :3] > 0).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    values = _evaluate_both_ways(
        model,
        MeanAveragePrecisionLoss,
        lambda: [
            MeanAveragePrecision(capacity=CAPACITY),
            MeanAveragePrecision(axis=-1, name="map_rows"),
            RecallAtK(2),
        ],
        x,
        y,
    )
    assert set(values) == {"loss", "map", "map_rows", "recall_at_2"}


@pytest.mark.heavy
def test_model_compile_jit_retrieval_losses(rng):
    # One head per retrieval loss, on embeddings with integer labels.
    x = rng.normal(size=(32, 5)).astype("float32")
    y = np.arange(32) % 4
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    names = ("recall", "triplet", "rank")
    outputs = {k: keras.layers.Dense(D, name=k)(inputs) for k in names}
    model = keras.Model(inputs, outputs)
    values = _evaluate_both_ways(
        model,
        lambda: {
            "recall": RecallAtKLoss(k=(1, 2)),
            "triplet": RankTripletLoss(),
            "rank": RankLoss(),
        },
        list,
        x,
        {k: y for k in names},
    )
    assert all(np.isfinite(v) for v in values.values())


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("cnn", marks=pytest.mark.heavy),
        pytest.param("gru", marks=pytest.mark.heavy),
        pytest.param("lstm fixed", marks=pytest.mark.slow),
    ],
)
def test_sorter_compile_jit(name, rng):
    keras.utils.set_random_seed(0)
    sorter = SORTERS[name]()
    x = rng.normal(size=(16, N)).astype("float32")
    y = np.asarray(exact_rank(x)) / N
    sorter(x)
    _evaluate_both_ways(sorter, lambda: "mse", list, x, y, slow=True)
